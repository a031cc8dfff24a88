"""Mixed charging behaviours in one case (issue 19): shares of unmanaged, TOU and smart
customers, V2G-enrolled EVs on the V2G strategy."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from gridplan.core.config import validate
from gridplan.core.errors import ConfigError
from gridplan.ev.dispatch import DispatchContext, dispatch
from gridplan.ev.fleet import FleetScenario, sample_fleet
from gridplan.ev.mixed import case_behaviours, dispatch_mixed
from gridplan.grid.feeders import peak_week
from gridplan.study import run
from gridplan.study.config import StudyConfig

MIX = {"unmanaged": 0.5, "tou": 0.3, "smart": 0.2}


@pytest.fixture(scope="module")
def scenario():
    return FleetScenario(evs_per_household=1.0, v2g_enrolled_share=0.5, charging_mix=MIX)


@pytest.fixture(scope="module")
def fleet(us_feeder, scenario):
    return sample_fleet(us_feeder, scenario, 2030, 5)


@pytest.fixture(scope="module")
def week(us_feeder):
    return us_feeder.time_index[peak_week(us_feeder)]


@pytest.fixture(scope="module")
def context(us_feeder, fleet):
    return DispatchContext.from_feeder(
        us_feeder, fleet, us_feeder.load_p_kw, us_feeder.time_index, sgen_p_kw=us_feeder.sgen_p_kw
    )


# --------------------------------------------------------------------------- the draw
def test_mix_is_drawn_last_and_leaves_the_rest_of_the_fleet(us_feeder, fleet, scenario):
    plain = sample_fleet(us_feeder, scenario.model_copy(update={"charging_mix": None}), 2030, 5)
    assert plain.charging_behaviour is None
    for f in dataclasses.fields(plain):
        if f.name in ("charging_behaviour", "ev_uniform"):  # drawn after the mix
            continue
        a, b = getattr(plain, f.name), getattr(fleet, f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)
    assert set(fleet.charging_behaviour) <= set(MIX)


def test_mix_shares_and_persistence_along_a_trajectory(us_feeder):
    mix = {"unmanaged": 0.6, "tou": 0.25, "smart": 0.15}
    scenario = FleetScenario(
        adoption={
            "kind": "linear",
            "start_year": 2030,
            "end_year": 2040,
            "start_value": 2.0,
            "end_value": 6.0,
        },
        charging_mix=mix,
    )
    years = list(range(2030, 2041, 5))
    fleets = [sample_fleet(us_feeder, scenario, y, 9, horizon=years) for y in years]
    last = fleets[-1].charging_behaviour
    shares = {k: float(np.mean(last == k)) for k in mix}
    n = last.size
    for k, p in mix.items():  # binomial: within 4 standard deviations
        assert abs(shares[k] - p) < 4 * np.sqrt(p * (1 - p) / n), (k, shares[k], n)
    # adopters keep their behaviour: each EV of year t (same home, vehicle and first
    # arrival) is in every later year with the same behaviour
    for early, late in itertools.pairwise(fleets):
        later = {_identity(late, i): i for i in range(late.n_ev)}
        for i in range(early.n_ev):
            j = later[_identity(early, i)]
            assert late.charging_behaviour[j] == early.charging_behaviour[i]
            # and its own uniform number (the V2G derate is drawn from it once per trajectory)
            assert late.ev_uniform[j] == early.ev_uniform[i]


def _identity(fleet, i):
    return int(fleet.load_pos[i]), fleet.vehicle[i], float(fleet.arrival_h[0, i])


def test_bad_mix_is_a_clear_error():
    with pytest.raises(ValueError, match="charging behaviour 'v2g_event'"):
        FleetScenario(charging_mix={"unmanaged": 0.5, "v2g_event": 0.5})
    with pytest.raises(ValueError, match="sum to 1"):
        FleetScenario(charging_mix={"unmanaged": 0.5, "tou": 0.3})


# --------------------------------------------------------------------------- dispatch
def test_one_behaviour_is_exactly_the_uniform_dispatch(fleet, week, context):
    names = np.full(fleet.n_ev, "tou", dtype=object)
    a = dispatch_mixed(fleet, week, names, context=context)
    b = dispatch(fleet, week, "tou", context=context)
    np.testing.assert_array_equal(a.power_by_load_kw, b.power_by_load_kw)
    np.testing.assert_array_equal(a.asset_load_kw, b.asset_load_kw)


def test_groups_without_the_grid_add_up_to_their_own_dispatches(fleet, week, context):
    names = case_behaviours(fleet, None)
    names = np.where(names == "smart", "unmanaged", names)  # unmanaged + tou only
    mixed = dispatch_mixed(fleet, week, names, context=context)
    total = np.zeros_like(mixed.power_by_load_kw)
    for s in ("unmanaged", "tou"):
        keep = names == s
        sub = fleet.take(keep)
        alone = dispatch(sub, week, s, n_loads=mixed.power_by_load_kw.shape[1])
        np.testing.assert_allclose(mixed.ev_charge_kwh[keep], alone.ev_charge_kwh)
        total += alone.power_by_load_kw
    np.testing.assert_allclose(mixed.power_by_load_kw, total, atol=1e-9)


def test_mixed_case_invariants(fleet, week, context):
    names = case_behaviours(fleet, "v2g_peak_shave")
    r = dispatch_mixed(fleet, week, names, context=context)
    enrolled = fleet.v2g_enrolled
    # V2G-enrolled EVs follow V2G; only they export
    assert (names[enrolled] == "v2g_peak_shave").all()
    assert not r.ev_export_kwh[~enrolled].any()
    assert r.ev_export_kwh[enrolled].sum() > 0
    # per-EV series back in fleet order: power sums to the loads and the assets
    np.testing.assert_allclose(r.power_kw.sum(axis=1), r.power_by_load_kw.sum(axis=1), atol=1e-6)
    base = context.asset_base_kw[context.time_index.get_indexer(week)]
    np.testing.assert_allclose(r.asset_load_kw - base, r.power_kw @ context.ev_assets, atol=1e-6)
    # energy: what each EV drew is what the series integrates to
    np.testing.assert_allclose(
        np.clip(r.power_kw, 0, None).sum(axis=0) * r.step_h, r.ev_charge_kwh, rtol=1e-9, atol=1e-9
    )
    # state of charge within [0, battery] and never exported below reserve
    assert (r.soc_kwh >= -1e-9).all() and (r.soc_kwh <= fleet.battery_kwh + 1e-9).all()


def test_smart_customers_fill_the_valleys_the_others_leave(fleet, week, context):
    """A smart group planned on base + the other customers' power makes a lower asset peak
    than the same group planned on the base load alone and then added to them."""
    names = case_behaviours(fleet, None)
    mixed = dispatch_mixed(fleet, week, names, context=context)
    smart = names == "smart"
    others = dispatch_mixed(fleet.take(~smart), week, names[~smart], context=_sub(context, ~smart))
    blind = dispatch(fleet.take(smart), week, "smart", context=_sub(context, smart))
    base = context.asset_base_kw[context.time_index.get_indexer(week)]
    naive = others.asset_load_kw + blind.asset_load_kw - base
    head = 0 if context.asset_ids[0].startswith("trafo") else int(np.argmax(base.max(axis=0)))
    assert mixed.asset_load_kw.max(axis=0)[head] <= naive.max(axis=0)[head] + 1e-6
    assert mixed.asset_load_kw.max() < naive.max() - 1.0  # kW: a real difference


def _sub(context, keep):
    return dataclasses.replace(
        context,
        ev_assets=context.ev_assets[keep],
        export_group=None if context.export_group is None else context.export_group[keep],
    )


def test_smart_without_a_context_is_a_clear_error(fleet, week):
    with pytest.raises(ConfigError, match="needs the grid"):
        dispatch_mixed(fleet, week, case_behaviours(fleet, None))


# --------------------------------------------------------------------------- in a study
def test_study_with_a_charging_mix():
    config = validate(
        StudyConfig,
        {
            "name": "mix",
            "feeder": "ca-residential",
            "year": 2030,
            "seed": 4,
            "horizon": {"start": 2030, "end": 2030, "draws": 2},
            "fleet": {"evs_per_household": 1.5, "v2g_enrolled_share": 0.5, "charging_mix": MIX},
            "dispatch": {"charging": "unmanaged", "v2g": "v2g_peak_shave"},
            "targeting": {"enabled": False},
        },
    )
    mixed = run(config)
    uniform = run(config.with_overrides({"fleet.charging_mix": None}))
    h, u = mixed.horizon, uniform.horizon
    c = h.case("charging")
    # the fleets are the same (the mix is drawn last); the charging case is not
    np.testing.assert_array_equal(h.evs_downstream, u.evs_downstream)
    assert not np.allclose(h.peak_loading_pct[:, :, c], u.peak_loading_pct[:, :, c])
    # an asset with no enrolled EV downstream sees neither management nor export
    none = h.enrolled_downstream == 0
    np.testing.assert_allclose(
        h.peak_loading_pct[:, :, h.case("v2g")][none],
        h.peak_loading_pct[:, :, c][none],
        atol=0.5,
    )
    summary = mixed.summary.to_dict()
    assert summary["cases"]["charging"] == "mixed charging (50% unmanaged, 30% tou, 20% smart)"
    assert summary["cases"]["v2g"].startswith("v2g_peak_shave for V2G-enrolled EVs")
    assert any(a.startswith("Charging behaviours: 50% unmanaged") for a in summary["assumptions"])


def test_targeted_search_with_a_charging_mix():
    """The targeted search dispatches the mix as the study's cases do: with nobody enrolled
    its V2G dispatch is the charging case, so an asset the charging case does not need is
    held at 0 EVs, and the enrollments it finds are re-verified by dispatch + power flow."""
    config = validate(
        StudyConfig,
        {
            "name": "mix-target",
            "feeder": "ca-residential",
            "year": 2030,
            "seed": 4,
            "horizon": {"start": 2030, "end": 2031, "draws": 2},
            "fleet": {"evs_per_household": 1.5, "v2g_enrolled_share": 0.5, "charging_mix": MIX},
            "dispatch": {"charging": "unmanaged", "v2g": "v2g_peak_shave", "v1g_case": False},
            "availability": {"preset": "perfect"},
        },
    )
    table = run(config).opportunities
    assert table is not None and len(table)
    searched = table.dropna(subset=["verified_share"])
    assert len(searched)
    assert ((searched.verified_share >= 0) & (searched.verified_share <= 1)).all()
    assert (table.enrolled_needed_max.fillna(0) <= table.evs_downstream).all()
    # a smaller upgrade that holds without any V2G is right-sizing, not a V2G opportunity
    from gridplan.planning.targeting import TIERS

    right_size = table.plan.str.contains("no V2G needed")
    assert right_size.any()  # the short horizon makes a smaller unit enough for some assets
    assert (table.tier[right_size] == TIERS[4]).all()
    assert not (table.tier[~right_size] == TIERS[4]).any()
