"""Every input bounded and every bad one a clear, one-line error (issue 16), through the CLI:
nesting, zone multipliers, empty selections, profile clocks and steps, a step 8 times the
transformer rating."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tinyfeeder import FEEDER, YEAR, tiny_feeder, tiny_study, write_profiles

from gridplan.cli import main


def _run(capsys, study: Path, out: Path) -> tuple[int, str, str]:
    code = main(["study", str(study), "-o", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tiny_feeder_runs(tmp_path, capsys):
    tiny_feeder(tmp_path, YEAR.astype(str))
    code, out, err = _run(capsys, tiny_study(tmp_path), tmp_path / "out")
    assert code == 0, err
    assert "results:" in out


def test_utc_offsets_with_daylight_saving_and_a_date_range(tmp_path, capsys):
    """Times with offsets that change at daylight saving: read on the first row's clock
    (standard time all year), so the step stays fixed and a date range selects days."""
    utc = pd.date_range("2016-01-01 08:00", periods=len(YEAR), freq="15min", tz="UTC")
    local = utc.tz_convert("America/Los_Angeles")
    tiny_feeder(tmp_path, local.astype(str))
    code, _, err = _run(capsys, tiny_study(tmp_path), tmp_path / "out")
    assert code == 0, err
    summary = json.loads((tmp_path / "out" / "tiny-study" / "summary.json").read_text())
    assert summary["period"]["start"] == "2016-07-01 00:00:00"
    assert summary["period"]["steps"] == 2 * 96


@pytest.mark.parametrize(
    ("times", "needle"),
    [
        (np.arange(len(YEAR)) * 900, "time values are numbers"),  # epoch seconds
        (pd.date_range("2016-01-01", periods=366, freq="D").astype(str), "time step is 1440 min"),
        (pd.date_range("2016-01-01", periods=len(YEAR), freq="5min").astype(str), "5 min"),
    ],
)
def test_profile_clock_is_checked(tmp_path, capsys, times, needle):
    tiny_feeder(tmp_path, times)
    code, _, err = _run(capsys, tiny_study(tmp_path), tmp_path / "out")
    assert code == 2
    assert needle in err and "load.csv" in err and err.count("\n") == 1


def test_a_step_8_times_the_rating_is_never_no_need(tmp_path, capsys):
    """One quarter-hour at 8x the transformer's rating: the power flow diverges there. The
    EV cases count that step as over the limit, so the study reports a need, flagged."""
    spike = int(np.flatnonzero(YEAR == pd.Timestamp("2016-07-02 18:00"))[0])
    tiny_feeder(tmp_path, YEAR.astype(str), spike=spike)
    code, out, err = _run(capsys, tiny_study(tmp_path), tmp_path / "out")
    assert code == 0, err
    assert "did not converge" in out
    assets = pd.read_csv(tmp_path / "out" / "tiny-study" / "assets.csv").iloc[0]
    assert assets.year_of_need_charging_p50 == 2030
    assert assets.need_from_non_convergence_charging


def test_every_step_diverging_is_a_clear_error(tmp_path, capsys):
    times = YEAR.astype(str)
    load, pv = write_profiles(tmp_path, times)
    frame = pd.read_csv(load)
    frame[["load1", "load2"]] = 5000.0  # 40 times the rating, all year
    frame.to_csv(load, index=False)
    (tmp_path / "tiny.toml").write_text(
        FEEDER.format(profile=load.name, pv=pv.name, select='"all"')
    )
    code, _, err = _run(capsys, tiny_study(tmp_path), tmp_path / "out")
    assert code == 2
    assert "no power-flow step of the no-EV case converged" in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "tiny-study").exists()


def test_empty_asset_selection(tmp_path, capsys):
    tiny_feeder(tmp_path, YEAR.astype(str), select="[]")
    code, _, err = _run(capsys, tiny_study(tmp_path), tmp_path / "out")
    assert code == 2
    assert "tiny.toml" in err and "assets" in err and "selects no asset" in err


def test_deeply_nested_toml(tmp_path, capsys):
    study = tmp_path / "deep.toml"
    study.write_text('name = "x"\nfeeder = "us-residential"\nv = ' + "[" * 5000 + "]" * 5000)
    code, _, err = _run(capsys, study, tmp_path / "out")
    assert code == 2 and "nested too deeply" in err and err.count("\n") == 1


def test_deeply_nested_zone_file(tmp_path, capsys):
    (tmp_path / "zones.geojson").write_text(
        '{"type": "FeatureCollection", "features": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    tiny_feeder(tmp_path, YEAR.astype(str))
    study = tiny_study(tmp_path, extra='zones = "zones.geojson"\n')
    code, _, err = _run(capsys, study, tmp_path / "out")
    assert code == 2 and "nested too deeply" in err and "zones.geojson" in err


@pytest.mark.parametrize("multiplier", [1e6, -1, 25])
def test_zone_multiplier_is_bounded(tmp_path, capsys, multiplier):
    zone = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"multiplier": multiplier},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]],
                },
            }
        ],
    }
    (tmp_path / "zones.geojson").write_text(json.dumps(zone))
    tiny_feeder(tmp_path, YEAR.astype(str))
    study = tiny_study(tmp_path, extra='zones = "zones.geojson"\n')
    code, _, err = _run(capsys, study, tmp_path / "out")
    assert code == 2
    assert "multiplier" in err and "[0, 20]" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "horizon", ["start = 2026\nend = 2100\ndraws = 10000", "end = 2040\ndraws = 9000"]
)
def test_study_size_is_bounded(tmp_path, capsys, horizon):
    tiny_feeder(tmp_path, YEAR.astype(str))
    study = tiny_study(tmp_path, extra=f"\n[horizon]\n{horizon}\n")
    code, _, err = _run(capsys, study, tmp_path / "out")
    assert code == 2
    assert "(year, draw) units, over 50,000" in err and err.count("\n") == 1


def test_csv_profiles_without_a_pv_file_have_no_pv(tmp_path):
    """A feeder whose loads come from a CSV and that names no PV file has no generation
    (it used to get the sgens' nameplate output at every step, night included)."""
    from gridplan.grid.feeders import load_feeder

    tiny_feeder(tmp_path, YEAR.astype(str))
    spec = tmp_path / "tiny.toml"
    spec.write_text(spec.read_text().replace('pv_path = "pv.csv"\n', ""))
    feeder = load_feeder(spec)
    assert feeder.sgen_p_kw.shape == (len(YEAR), 2)
    assert (feeder.sgen_p_kw == 0).all()
