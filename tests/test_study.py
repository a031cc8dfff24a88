"""One study end to end: outputs written, numbers consistent, reproducible by seed."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from gridplan.errors import ConfigError
from gridplan.study import load_study_config, run

STUDY = """
name = "short"
feeder = "us-residential"
year = 2032
base_year = 2026
seed = 5

[period]
kind = "range"
start = "2016-12-22"
end = "2016-12-24"

[fleet]
evs_per_household = 0.8
v2g_capable_share = 0.8
v2g_enrolled_share = 0.8
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    path = folder / "short.toml"
    path.write_text(STUDY, encoding="utf-8")
    return run(path, output_dir=folder / "out")


def test_writes_every_output(result):
    out = result.output_path
    expected = {
        "config.toml",
        "summary.json",
        "assets.csv",
        "evs.csv",
        "timeseries.csv",
        "critical_asset_loading.png",
    }
    assert expected <= {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["period"]["steps"] == 2 * 96
    assert summary["fleet"]["evs"] == result.fleet.n_ev > 0
    assert summary["critical_asset"]["asset_id"] in result.feeder.assets.index
    assets = pd.read_csv(out / "assets.csv")
    assert len(assets) == len(result.feeder.assets)
    assert (out / "critical_asset_loading.png").read_bytes()[:4] == b"\x89PNG"
    # the resolved config is a valid study config again
    assert load_study_config(out / "config.toml").name == "short"


def test_numbers_are_consistent(result):
    a = result.assets
    # EV charging only adds load: the charging case is never below the no-EV case
    assert (a.peak_loading_pct_charging >= a.peak_loading_pct_base - 1e-9).all()
    over = a.peak_loading_pct_charging > a.limit_pct
    assert over.any(), "the study case should overload some service transformer"
    assert (a.hours_over_limit_charging[over] > 0).all()
    # overload energy = sum of excess over the limit x rating x step
    crit = result.summary["critical_asset"]["asset_id"]
    col = result.feeder.assets.index.get_loc(crit)
    load = result.loading_pct["charging"][:, col]
    limit, rating = a.limit_pct[crit], a.rating_kva[crit]
    excess = np.clip(load - limit, 0, None).sum() / 100 * rating * 0.25
    assert a.overload_energy_kvah_charging[crit] == pytest.approx(excess)
    # the upgrade picked carries the peak, or is flagged insufficient (largest option given)
    carries = a.new_rating_kva * a.limit_pct / 100 >= a.peak_kva_charging
    assert (carries[over] == a.upgrade_sufficient[over]).all()
    assert (a.new_rating_kva[over & ~carries] == 100.0).all()


def test_deferral_value_closed_form(result):
    """Recompute each asset's deferral value from the published present-worth formula."""
    cfg = result.config.valuation
    r, i = cfg.discount_rate, cfg.escalation_rate
    g = result.feeder.growth_rate
    q = (1 + i) / (1 + r)
    offset = result.config.year - cfg.dollar_year
    for asset_id, row in result.assets.iterrows():
        if not np.isfinite(row.cost_usd):
            continue

        def years(peak, limit=row.limit_pct):
            if peak > limit:
                return 0.0
            return min(math.log(limit / peak) / math.log(1 + g), cfg.horizon_years)

        t1, t2 = years(row.peak_loading_pct_charging), years(row.peak_loading_pct_v2g)
        cost = row.cost_usd * (1 + i) ** (cfg.dollar_year - row.dollar_year)
        expected = cost * (q ** (offset + t1) - q ** (offset + t2))
        assert row.deferral_value_usd == pytest.approx(expected, rel=1e-9, abs=1e-6), asset_id
        assert row.deferral_years == pytest.approx(t2 - t1)


def test_same_seed_same_result(result, tmp_path):
    path = tmp_path / "short.toml"
    path.write_text(STUDY, encoding="utf-8")
    again = run(path, write=False)
    pd.testing.assert_frame_equal(again.assets, result.assets)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        (('feeder = "us-residential"', 'feeder = "no-such-feeder"'), "feeder"),
        (('name = "short"', ""), "name"),
        (("seed = 5", "sede = 5"), "did you mean 'seed'"),
        (("year = 2032", 'year = "soon"'), "year"),
        (("evs_per_household = 0.8", "evs_per_household = -1"), "fleet.evs_per_household"),
        (('kind = "range"', 'kind = "month"'), "period.kind"),
        (('end = "2016-12-24"', 'end = "2016-12-20"'), "period"),
        (("[fleet]", "[fleet\n"), "malformed TOML"),
    ],
)
def test_bad_study_config(tmp_path, patch, field):
    path = tmp_path / "bad.toml"
    path.write_text(STUDY.replace(*patch), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        run(path, write=False)
    message = str(info.value)
    assert str(path) in message and field in message
    assert "\n" not in message


def test_evs_downstream(result):
    a = result.assets
    trafos = a[a.kind == "trafo"]
    # every EV sits behind exactly one service transformer
    assert trafos.evs_downstream.sum() == result.fleet.n_ev
    assert trafos.v2g_enrolled_evs_downstream.sum() == result.fleet.v2g_enrolled.sum()
    # the feeder head carries them all
    head = a[a.name == "Trunk 1"].iloc[0]
    assert head.evs_downstream == result.fleet.n_ev
    # assets without enrolled EVs downstream get no V2G relief at their peak
    no_v2g = a[(a.v2g_enrolled_evs_downstream == 0) & (a.kind == "trafo")]
    # (up to the small voltage effect of exports elsewhere on the feeder)
    assert (no_v2g.peak_loading_pct_v2g >= 0.99 * no_v2g.peak_loading_pct_charging).all()


def test_zones_relative_to_study_and_checked_first(tmp_path):
    import json

    zone = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"multiplier": 3},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[-120, 36], [-119, 36], [-119, 37], [-120, 37], [-120, 36]]],
                },
            }
        ],
    }
    (tmp_path / "zones.geojson").write_text(json.dumps(zone), encoding="utf-8")
    body = STUDY.replace("[fleet]", '[fleet]\nzones = "zones.geojson"')
    path = tmp_path / "zoned.toml"
    path.write_text(body, encoding="utf-8")
    zoned = run(path, write=False)
    # the zone covers the whole feeder: three times the adoption
    assert zoned.fleet.n_ev == pytest.approx(3 * 0.8 * zoned.feeder.households.sum(), rel=0.15)
    (tmp_path / "zones.geojson").write_text("{broken", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON") as info:
        load_study_config(path)
    assert "zones.geojson" in str(info.value)
