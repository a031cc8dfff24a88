"""EV fleet sampling: reproducible, expected totals hold, plug-in windows are consistent."""

from __future__ import annotations

import numpy as np
import pytest

from gridplan.config import validate
from gridplan.errors import ConfigError
from gridplan.fleet import FleetScenario, sample_fleet


def test_same_seed_same_fleet(us_feeder):
    a = sample_fleet(us_feeder, FleetScenario(), 2030, 7)
    b = sample_fleet(us_feeder, FleetScenario(), 2030, np.random.default_rng(7))
    c = sample_fleet(us_feeder, FleetScenario(), 2030, 8)
    np.testing.assert_array_equal(a.load_pos, b.load_pos)
    np.testing.assert_array_equal(a.arrival_h, b.arrival_h)
    np.testing.assert_array_equal(a.trip_kwh, b.trip_kwh)
    assert a.n_ev != c.n_ev or not np.array_equal(a.arrival_h, c.arrival_h)


def test_expected_totals(us_feeder):
    scenario = FleetScenario(evs_per_household=0.4, v2g_capable_share=0.5, v2g_enrolled_share=0.6)
    counts = [sample_fleet(us_feeder, scenario, 2030, s) for s in range(40)]
    n_ev = np.array([f.n_ev for f in counts])
    expected = 0.4 * us_feeder.households.sum()
    # Poisson total: mean over 40 draws within 4 standard errors
    assert abs(n_ev.mean() - expected) < 4 * np.sqrt(expected / 40)
    assert n_ev.std() > 0
    enrolled = np.concatenate([f.v2g_enrolled for f in counts]).mean()
    assert enrolled == pytest.approx(0.3, abs=0.03)


def test_windows_and_energy(us_feeder):
    scenario = FleetScenario(daily_miles_mean=60, daily_miles_sd=60, battery_kwh=40)
    fleet = sample_fleet(us_feeder, scenario, 2030, 3)
    assert (fleet.departure_h > fleet.arrival_h).all()
    assert (fleet.departure_h[:-1] < fleet.arrival_h[1:] + 24).all()
    assert (fleet.arrival_h >= 0).all() and (fleet.arrival_h < 24).all()
    usable = (scenario.target_soc - scenario.reserve_soc) * scenario.battery_kwh
    assert (fleet.trip_kwh <= usable + 1e-9).all()
    # capped energy is reported, not dropped
    assert fleet.trip_shortfall_kwh.sum() > 0
    total = fleet.trip_kwh + fleet.trip_shortfall_kwh
    assert total.mean() == pytest.approx(60 * 0.3, rel=0.05)
    assert fleet.days.size == 366
    assert fleet.bus.tolist() == us_feeder.load_bus[fleet.load_pos].tolist()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"evs_per_household": -0.1}, "evs_per_household"),
        ({"reserve_soc": 0.95}, "target_soc"),
        ({"charger_kw": "fast"}, "charger_kw"),
        ({"charger_kwh": 7}, "charger_kwh"),
    ],
)
def test_bad_scenario(data, field):
    with pytest.raises(ConfigError, match=field):
        validate(FleetScenario, data, file="s.toml")
