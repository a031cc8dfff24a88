"""DOE/OpenEI Long Beach load shapes and per-customer diversity (issue 18)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from gridplan.core.errors import ConfigError
from gridplan.grid import loadshapes as ls


def test_residential_shapes_on_typical_year_index() -> None:
    shapes = ls.residential_shapes()
    assert list(shapes.columns) == ["BASE", "HIGH", "LOW"]
    assert len(shapes) == 8760
    assert shapes.index[0] == pd.Timestamp(f"{ls.TYPICAL_YEAR}-01-01 00:00")
    assert shapes.index[-1] == pd.Timestamp(f"{ls.TYPICAL_YEAR}-12-31 23:00")
    assert pd.Timestamp(f"{ls.TYPICAL_YEAR}-01-01").day_name() == "Sunday"
    assert "typical year" in ls.TYPICAL_YEAR_LABEL
    # annual energy of the DOE homes [kWh/yr], data README
    np.testing.assert_allclose(shapes.sum().to_numpy(), [8328.26, 12687.0, 4199.0], atol=1.0)


def test_base_home_peaks_on_summer_evenings() -> None:
    base = ls.residential_shapes()["BASE"]
    top = base.nlargest(50).index
    assert np.mean((top.month >= 6) & (top.month <= 10)) >= 0.9
    # interval start 13-19 h = hour ending 14-20 h
    assert np.mean((top.hour >= 13) & (top.hour <= 19)) >= 0.9


def test_commercial_shapes_rolled_into_calendar_order() -> None:
    shapes = ls.commercial_shapes()
    assert shapes.shape == (8760, 8)
    path = ls.DATA_DIR / "commercial/RefBldgStripMallNew2004_7.1_5.0_3B_USA_CA_LOS_ANGELES.csv.gz"
    with gzip.open(path, "rt") as handle:
        raw = pd.read_csv(handle)
    stamps = raw["Date/Time"].str.strip()
    first = int(np.flatnonzero(stamps == "01/01  01:00:00")[0])
    assert first > 0  # this file starts on 2 January
    assert shapes["strip_mall"].iloc[0] == raw[ls.TOTAL_COLUMN].iloc[first]
    # 1 January is a Sunday: the office is quieter than on Monday 2 January
    office = shapes["small_office"].to_numpy().reshape(365, 24).sum(axis=1)
    assert office[0] < 0.6 * office[1]


def test_to_step_keeps_annual_energy() -> None:
    hourly = ls.residential_shapes()["HIGH"].to_numpy()
    quarter = ls.to_step(hourly, 15)
    assert quarter.shape == (35040,)
    assert quarter.sum() / 4 == pytest.approx(hourly.sum(), rel=1e-12)
    np.testing.assert_array_equal(ls.to_step(hourly, 60), hourly)


def test_customer_profiles_reproducible_and_scaled() -> None:
    energy = [4000.0, 6250.0, 9000.0]
    a = ls.customer_profiles(energy, 7)
    b = ls.customer_profiles(energy, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (35040, 3)
    np.testing.assert_allclose(a.sum(axis=0) * 0.25, energy, rtol=1e-12)
    assert np.all(a >= 0)
    assert not np.array_equal(a, ls.customer_profiles(energy, 8))
    hourly = ls.customer_profiles(energy, 7, step_minutes=60)
    assert hourly.shape == (8760, 3)


def test_coincidence_factor_matches_kersting_table() -> None:
    """Mean coincidence factor of groups of 1, 5, 10, 50 within 10 % of Kersting Table 2.2."""
    pool = 200
    profiles = ls.customer_profiles(np.full(pool, 6250.0), 2026)
    rng = np.random.default_rng(18)
    for n, diversity in ls.KERSTING_DIVERSITY.items():
        groups = [rng.choice(pool, size=n, replace=False) for _ in range(40)]
        factor = np.mean([ls.coincidence_factor(profiles[:, g]) for g in groups])
        assert factor == pytest.approx(1.0 / diversity, rel=0.10), (n, factor, 1 / diversity)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"annual_kwh": [1000.0, -1.0]}, "annual_kwh"),
        ({"annual_kwh": ["x"]}, "annual_kwh"),
        ({"annual_kwh": [1000.0], "step_minutes": 20}, "step_minutes"),
        (
            {"annual_kwh": [1000.0], "method": ls.DiversityMethod(variant_shares=(1, 1, 0))},
            "variant_shares",
        ),
        ({"annual_kwh": [1000.0], "method": ls.DiversityMethod(noise_shape=0)}, "noise_shape"),
    ],
)
def test_bad_customer_inputs(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        ls.customer_profiles(**kwargs)
    assert info.value.field == field
    assert "\n" not in str(info.value)


def test_bad_files_name_file_and_field(tmp_path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("Date/Time,Electricity:Facility [kW](Hourly)\n 01/01  01:00:00,1.0\n")
    with pytest.raises(ConfigError, match="8760") as info:
        ls.read_doe_loadshape(short)
    assert info.value.file == str(short)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("Date/Time,Other\n 01/01  01:00:00,1.0\n")
    with pytest.raises(ConfigError) as info:
        ls.read_doe_loadshape(nocol)
    assert info.value.field == ls.TOTAL_COLUMN
    rows = [
        f" {t.month:02d}/{t.day:02d}  {t.hour + 1:02d}:00:00,1.0" for t in ls.typical_year_index()
    ]
    rows[5] = rows[5].replace("1.0", "nan")
    bad = tmp_path / "bad.csv"
    bad.write_text("Date/Time,Electricity:Facility [kW](Hourly)\n" + "\n".join(rows) + "\n")
    with pytest.raises(ConfigError, match="row 6") as info:
        ls.read_doe_loadshape(bad)
    rows[5] = rows[5].replace("nan", "1.0")
    rows[7], rows[8] = rows[8], rows[7]
    bad.write_text("Date/Time,Electricity:Facility [kW](Hourly)\n" + "\n".join(rows) + "\n")
    with pytest.raises(ConfigError, match="row 8") as info:
        ls.read_doe_loadshape(bad)
    assert info.value.field == "Date/Time"


def test_ca_residential_feeder_peaks_on_summer_evenings() -> None:
    """ca-residential: its 50 highest base-load hours fall mostly in June-October, 16-21 h."""
    from gridplan.grid.feeders import load_feeder

    feeder = load_feeder("ca-residential")
    assert feeder.time_index.equals(ls.typical_year_index(15))
    assert feeder.load_p_kw.shape == (35040, len(feeder.net.load))
    assert feeder.sgen_p_kw.shape == (35040, len(feeder.net.sgen)) and len(feeder.net.sgen) > 0
    base = pd.Series(feeder.load_p_kw.sum(axis=1), index=feeder.time_index)
    hourly = base.resample("1h").mean()
    top = hourly.nlargest(50).index
    summer = (top.month >= 6) & (top.month <= 10)
    evening = (top.hour >= 16) & (top.hour < 21)
    assert summer.mean() >= 0.9
    assert (summer & evening).mean() > 0.5
    # net of PV, the peak moves later into the evening
    net = pd.Series(feeder.net_load_kw, index=feeder.time_index).resample("1h").mean()
    assert net.idxmax().month in range(6, 11) and 16 <= net.idxmax().hour < 21
    # PV is zero at night
    night = (feeder.time_index.hour >= 21) | (feeder.time_index.hour < 3)
    assert np.all(feeder.sgen_p_kw[night] == 0.0)


def test_ca_residential_builder_bad_option() -> None:
    from gridplan.grid.builders import build_ca_residential

    with pytest.raises(ConfigError, match="pv_dc_kw"):
        build_ca_residential(pv_dc_kw=-1.0)


def test_shapes_at_15_minutes() -> None:
    quarter = ls.residential_shapes(step_minutes=15)
    assert quarter.index.equals(ls.typical_year_index(15))
    np.testing.assert_allclose(quarter.sum() / 4, ls.residential_shapes().sum(), rtol=1e-12)
    commercial = ls.commercial_shapes(step_minutes=15)
    assert commercial.shape == (35040, 8)
    cooling = ls.residential_shapes(ls.COOLING_COLUMN)
    assert (
        cooling["BASE"].loc[f"{ls.TYPICAL_YEAR}-01"].sum()
        < cooling["BASE"].loc[f"{ls.TYPICAL_YEAR}-09"].sum()
    )
