"""EV fleet sampling: reproducible, expected totals hold, plug-in windows are consistent."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gridplan.core.config import validate
from gridplan.core.errors import ConfigError
from gridplan.ev.fleet import FleetScenario, sample_fleet


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
    scenario = FleetScenario(
        daily_miles_mean=60, daily_miles_sd=60, battery_kwh=40, efficiency_kwh_per_mi=0.3
    )
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
    assert fleet.days.size == 365  # the feeder's typical (TMY3) year
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


# --------------------------------------------------------------------------- catalogs, mix
def test_catalogs_have_sources():
    from gridplan.ev.fleet import charger_catalog, vehicle_catalog

    vehicles, chargers = vehicle_catalog(), charger_catalog()
    assert (vehicles.source.str.len() > 10).all() and (chargers.source.str.len() > 10).all()
    assert (vehicles.battery_kwh > 0).all()
    assert vehicles.efficiency_kwh_per_mi.between(0.2, 0.6).all()
    v2g = vehicles[vehicles.v2g_export_kw > 0]
    assert len(v2g) >= 2
    # every V2G model names a bidirectional charger in the charger catalog
    assert set(v2g.bidirectional_charger) <= set(chargers.index[chargers.bidirectional])
    assert vehicles.loc["ford_f150_lightning", "v2g_export_kw"] == 9.6  # Charge Station Pro


def test_mix_and_limits(us_feeder):
    from gridplan.ev.fleet import charger_catalog, vehicle_catalog

    scenario = FleetScenario(evs_per_household=2.0, v2g_capable_share=0.4, v2g_enrolled_share=0.5)
    fleet = sample_fleet(us_feeder, scenario, 2030, 2)
    vehicles, chargers = vehicle_catalog(), charger_catalog()
    capable = vehicles.v2g_export_kw.reindex(fleet.vehicle).to_numpy() > 0
    np.testing.assert_array_equal(capable, fleet.v2g_capable)
    assert fleet.v2g_capable.mean() == pytest.approx(0.4, abs=0.05)
    assert fleet.v2g_enrolled[~fleet.v2g_capable].sum() == 0
    # enrolled EVs use their bidirectional charger; export within vehicle and charger limits
    enrolled = fleet.v2g_enrolled
    assert chargers.bidirectional.reindex(fleet.charger[enrolled]).all()
    limit = np.minimum(
        vehicles.v2g_export_kw.reindex(fleet.vehicle).to_numpy(),
        chargers.export_kw.reindex(fleet.charger).to_numpy(),
    )
    np.testing.assert_allclose(fleet.export_kw[enrolled], limit[enrolled])
    assert (fleet.export_kw[~enrolled] == 0).all()
    assert (fleet.charger_kw <= chargers.power_kw.reindex(fleet.charger).to_numpy() + 1e-9).all()
    np.testing.assert_allclose(
        fleet.battery_kwh, vehicles.battery_kwh.reindex(fleet.vehicle).to_numpy()
    )


# --------------------------------------------------------------------------- statistics
def test_behaviour_statistics_weekday_weekend(us_feeder):
    """Sample moments match the configured distributions (fixed seed, stated tolerances)."""
    scenario = FleetScenario(
        evs_per_household=3.0, efficiency_kwh_per_mi=0.3, battery_kwh=200, target_soc=1.0,
        reserve_soc=0.0,
    )  # fmt: skip
    fleet = sample_fleet(us_feeder, scenario, 2030, 12345)
    weekend = np.asarray(fleet.days.dayofweek >= 5)
    for mask, spec in ((~weekend, scenario.weekday), (weekend, scenario.weekend)):
        miles = (fleet.trip_kwh[mask] / 0.3).ravel()
        n = miles.size
        # mean within 4 standard errors, sd within 3 %
        assert abs(miles.mean() - spec.daily_miles_mean) < 4 * spec.daily_miles_sd / np.sqrt(n)
        assert miles.std() == pytest.approx(spec.daily_miles_sd, rel=0.03)
        arrival = fleet.arrival_h[mask].ravel()
        # arrival is a normal clipped to 0.5-23.5 h: compare with its exact mean
        expected = _clipped_normal_mean(spec.arrival_mean_h, spec.arrival_sd_h, 0.5, 23.5)
        assert arrival.mean() == pytest.approx(expected, abs=4 * spec.arrival_sd_h / np.sqrt(n))
        assert arrival.std() == pytest.approx(spec.arrival_sd_h, rel=0.1)
    # weekend behaviour differs from weekday behaviour
    assert fleet.trip_kwh[weekend].mean() < fleet.trip_kwh[~weekend].mean()


def _clipped_normal_mean(mu: float, sigma: float, lo: float, hi: float) -> float:
    """E[clip(X, lo, hi)] for X ~ N(mu, sigma), closed form."""
    from scipy.stats import norm

    a, b = (lo - mu) / sigma, (hi - mu) / sigma
    inside = mu * (norm.cdf(b) - norm.cdf(a)) - sigma * (norm.pdf(b) - norm.pdf(a))
    return lo * norm.cdf(a) + hi * norm.sf(b) + inside


def test_arrival_times_ks(us_feeder):
    from scipy import stats

    scenario = FleetScenario(evs_per_household=2.0)
    fleet = sample_fleet(us_feeder, scenario, 2030, 99)
    weekday = np.asarray(fleet.days.dayofweek < 5)
    sample = fleet.arrival_h[weekday].ravel()[:5000]
    spec = scenario.weekday
    result = stats.kstest(sample, "norm", args=(spec.arrival_mean_h, spec.arrival_sd_h))
    assert result.pvalue > 0.001


# --------------------------------------------------------------------------- adoption
def test_adoption_trajectories():
    from gridplan.ev.fleet import AdoptionSpec

    linear = AdoptionSpec(kind="linear", start_year=2025, start_value=0.1, end_year=2035,
                          end_value=0.6)  # fmt: skip
    assert linear.evs_per_household(2030) == pytest.approx(0.35)
    assert linear.evs_per_household(2020) == pytest.approx(0.1)
    assert linear.evs_per_household(2040) == pytest.approx(0.6)
    logistic = AdoptionSpec(kind="logistic", midpoint_year=2032, ceiling=1.2, steepness=0.4)
    assert logistic.evs_per_household(2032) == pytest.approx(0.6)
    values = [logistic.evs_per_household(y) for y in range(2020, 2050)]
    assert all(b > a for a, b in itertools.pairwise(values)) and values[-1] < 1.2
    table = AdoptionSpec(kind="table", table={"2026": 0.1, "2030": 0.3, "2040": 0.8})
    assert table.evs_per_household(2028) == pytest.approx(0.2)
    assert table.evs_per_household(2050) == pytest.approx(0.8)


def test_adoption_year_changes_counts(us_feeder):
    scenario = FleetScenario(
        adoption={"kind": "linear", "start_year": 2026, "start_value": 0.1, "end_year": 2036,
                  "end_value": 1.0}
    )  # fmt: skip
    early = np.mean([sample_fleet(us_feeder, scenario, 2026, s).n_ev for s in range(10)])
    late = np.mean([sample_fleet(us_feeder, scenario, 2036, s).n_ev for s in range(10)])
    households = us_feeder.households.sum()
    assert early == pytest.approx(0.1 * households, rel=0.2)
    assert late == pytest.approx(1.0 * households, rel=0.1)


# --------------------------------------------------------------------------- zones
def _zone_file(tmp_path, feeder, multiplier=4.0):
    """A zone covering the buses of lateral 1 of the US feeder."""
    import json

    import shapely

    lateral = feeder.bus_geo[feeder.bus_geo.name.str.startswith("L1 ")]
    hull = shapely.buffer(shapely.MultiPoint(list(lateral.geometry)).convex_hull, 1e-4)
    data = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "L1", "multiplier": multiplier},
                "geometry": json.loads(shapely.to_geojson(hull)),
            }
        ],
    }
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path, set(lateral.index)


def test_zone_allocation(us_feeder, tmp_path):
    from gridplan.ev.fleet import read_zones, zone_multipliers

    path, inside_buses = _zone_file(tmp_path, us_feeder)
    zones = read_zones(path)
    mult = zone_multipliers(us_feeder, zones)
    inside = np.isin(us_feeder.load_bus, list(inside_buses))
    assert inside.any() and (~inside).any()
    assert (mult[inside] == 4.0).all() and (mult[~inside] == 1.0).all()
    scenario = FleetScenario(evs_per_household=0.2, zones=str(path))
    hh = us_feeder.households
    rates_in, rates_out = [], []
    for seed in range(20):
        fleet = sample_fleet(us_feeder, scenario, 2030, seed)
        per_load = fleet.evs_per_load(len(hh))
        rates_in.append(per_load[inside].sum() / hh[inside].sum())
        rates_out.append(per_load[~inside].sum() / hh[~inside].sum())
    assert np.mean(rates_in) == pytest.approx(0.8, rel=0.1)
    assert np.mean(rates_out) == pytest.approx(0.2, rel=0.15)


def test_zones_need_coordinates(us_feeder, tmp_path):
    import dataclasses

    from gridplan.ev.fleet import read_zones, zone_multipliers

    path, _ = _zone_file(tmp_path, us_feeder)
    no_geo = dataclasses.replace(us_feeder, bus_geo=None, line_geo=None)
    with pytest.raises(ConfigError, match="no bus coordinates"):
        zone_multipliers(no_geo, read_zones(path))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"type": "Feature"}', "FeatureCollection"),
        ('{"type": "FeatureCollection", "features": []}', "non-empty"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
         '{"multiplier": 2}, "geometry": {"type": "Point", "coordinates": [0, 0]}}]}',
         "Polygon"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
         '{"multiplier": -1}, "geometry": {"type": "Polygon", "coordinates": '
         "[[[0,0],[1,0],[1,1],[0,0]]]}}]}", "multiplier"),
    ],
)  # fmt: skip
def test_bad_zone_file(tmp_path, text, match):
    from gridplan.ev.fleet import read_zones

    path = tmp_path / "z.geojson"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as info:
        read_zones(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"v2g_enrolled_share": 1.5}, "v2g_enrolled_share"),
        ({"v2g_capable_share": -0.1}, "v2g_capable_share"),
        ({"daily_miles_mean": -5}, "daily_miles_mean"),
        ({"weekday": {"arrival_mean_h": 17, "arrival_sd_h": 1, "departure_mean_h": 7,
                      "departure_sd_h": 1, "daily_miles_mean": 30, "daily_miles_sd": -1}},
         "weekday.daily_miles_sd"),
        ({"adoption": {"kind": "table", "table": {"2026": 0.5, "2030": 0.2}}}, "not decrease"),
        ({"adoption": {"kind": "logistic", "ceiling": 1.0}}, "midpoint_year"),
        ({"adoption": {"kind": "linear", "start_year": 2030, "start_value": 0.1,
                       "end_year": 2026, "end_value": 0.5}}, "end_year"),
        ({"vehicle_mix": {"tesla_model_3": 0.5}}, "sum to 1"),
        ({"vehicle_mix": {"tesla_modl_3": 1.0}}, "did you mean 'tesla_model_3'"),
        ({"evs_per_household": 0.5, "adoption": {"kind": "constant", "value": 0.5}}, "not both"),
    ],
)  # fmt: skip
def test_bad_fleet_fields(data, field):
    with pytest.raises(ConfigError, match=field) as info:
        validate(FleetScenario, data, file="study.toml")
    assert "study.toml" in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- invariants
def test_invariants_hypothesis(us_feeder):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        rate=st.floats(0, 3),
        capable=st.floats(0, 1),
        enrolled=st.floats(0, 1),
        miles=st.floats(0, 400),
        miles_sd=st.floats(0, 200),
        arrival=st.floats(0, 23.9),
        arrival_sd=st.floats(0, 6),
        departure=st.floats(0, 23.9),
        reserve=st.floats(0, 0.5),
        seed=st.integers(0, 2**32 - 1),
    )
    def check(rate, capable, enrolled, miles, miles_sd, arrival, arrival_sd, departure,
              reserve, seed):  # fmt: skip
        scenario = FleetScenario(
            evs_per_household=rate, v2g_capable_share=capable, v2g_enrolled_share=enrolled,
            daily_miles_mean=miles, daily_miles_sd=miles_sd, arrival_mean_h=arrival,
            arrival_sd_h=arrival_sd, departure_mean_h=departure, reserve_soc=reserve,
        )  # fmt: skip
        fleet = sample_fleet(us_feeder, scenario, 2030, seed)
        assert (fleet.evs_per_load(len(us_feeder.households)) >= 0).all()
        assert (fleet.departure_h > fleet.arrival_h).all()
        assert (fleet.departure_h[:-1] < fleet.arrival_h[1:] + 24).all()
        usable = fleet.target_kwh - fleet.reserve_kwh
        assert (fleet.trip_kwh <= usable + 1e-9).all()
        assert (fleet.trip_kwh >= 0).all() and (fleet.trip_shortfall_kwh >= 0).all()
        assert (fleet.dwell_shortfall_kwh >= 0).all()
        assert (fleet.dwell_shortfall_kwh <= fleet.trip_kwh + 1e-9).all()
        assert (fleet.export_kw[~fleet.v2g_enrolled] == 0).all()

    check()
