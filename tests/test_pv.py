"""Rooftop PV and ambient temperature from the bundled Long Beach TMY3 file (issue 18)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridplan.core.errors import ConfigError
from gridplan.grid import pv
from gridplan.grid.loadshapes import typical_year_index


@pytest.fixture(scope="module")
def unit_kw() -> pd.Series:
    return pd.Series(pv.pv_ac_kw(), index=typical_year_index(15))


def test_weather_on_typical_year_index() -> None:
    weather = pv.read_weather()
    assert "722970" in weather.station
    assert weather.latitude == pytest.approx(33.833)
    assert weather.utc_offset_h == -8.0
    assert weather.hourly.index.equals(typical_year_index(60))


def test_annual_yield_per_kw_plausible(unit_kw: pd.Series) -> None:
    """Specific yield of a 20 deg south rooftop array with PVWatts default losses.

    Plausibility band 1,300-1,700 kWh/kW-DC/yr: coastal Southern California with PVWatts
    defaults (20 deg tilt, 14.08 % losses) is about 1,400-1,600 kWh/kW-DC/yr (NREL PVWatts,
    TMY data); the band is not a PVWatts run on this file.
    """
    yield_kwh_per_kw = unit_kw.sum() * 0.25
    assert 1300.0 <= yield_kwh_per_kw <= 1700.0
    # summer months produce more than winter months
    monthly = unit_kw.groupby(unit_kw.index.month).sum()
    assert monthly.loc[[5, 6, 7, 8]].mean() > 1.4 * monthly.loc[[12, 1]].mean()


def test_zero_at_night_and_bounded(unit_kw: pd.Series) -> None:
    night = (unit_kw.index.hour >= 21) | (unit_kw.index.hour < 3)
    assert np.all(unit_kw[night] == 0.0)
    assert unit_kw.min() >= 0.0
    assert unit_kw.max() <= 1.0 / pv.PVSystem().dc_ac_ratio + 1e-9  # inverter AC rating


def test_peak_near_solar_noon(unit_kw: pd.Series) -> None:
    # solar noon at -118.2 deg in UTC-8 is about 11:40-12:10 over the year
    minutes = unit_kw.index.hour * 60 + unit_kw.index.minute + 7.5
    mean_day = unit_kw.groupby(minutes).mean()
    assert 11 * 60 <= mean_day.idxmax() <= 12 * 60 + 30
    days = unit_kw.to_numpy().reshape(365, 96)
    peak_minutes = days.argmax(axis=1) * 15 + 7.5
    assert 11 * 60 <= np.median(peak_minutes) <= 12 * 60 + 30


def test_ambient_temperature_series() -> None:
    temp = pv.ambient_temperature_c()
    assert temp.index.equals(typical_year_index(15))
    assert 14.0 <= temp.mean() <= 21.0  # Long Beach annual mean about 18 degC
    by_month = temp.groupby(temp.index.month).mean()
    assert by_month.loc[[7, 8, 9]].mean() > by_month.loc[[12, 1, 2]].mean() + 4.0
    hourly = pv.ambient_temperature_c(step_minutes=60)
    np.testing.assert_array_equal(hourly.to_numpy(), pv.read_weather().hourly["temp_air"])


def test_profiles_scale_with_size_and_sources() -> None:
    profiles = pv.pv_profiles_kw([0.0, 7.1], step_minutes=60)
    assert profiles.shape == (8760, 2)
    assert np.all(profiles[:, 0] == 0.0)
    np.testing.assert_allclose(profiles[:, 1], 7.1 * pv.pv_ac_kw(step_minutes=60))
    for adoption in pv.PV_ADOPTION.values():
        assert 0.0 <= adoption.share <= 1.0 and adoption.dc_kw > 0 and adoption.source


def test_bad_inputs_name_field_or_file(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        pv.pv_ac_kw(pv.PVSystem(tilt_deg=120.0))
    assert info.value.field == "tilt_deg"
    with pytest.raises(ConfigError) as info:
        pv.pv_profiles_kw([-1.0])
    assert info.value.field == "dc_kw"
    lines = pv.LONG_BEACH_TMY3.read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:100]) + "\n")
    with pytest.raises(ConfigError, match="8760") as info:
        pv.read_weather(short)
    assert info.value.file == str(short)
    junk = tmp_path / "junk.csv"
    junk.write_text("not,a\ntmy3,file\n")
    with pytest.raises(ConfigError) as info:
        pv.read_weather(junk)
    assert info.value.file == str(junk)
    assert "\n" not in str(info.value)
