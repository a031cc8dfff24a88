"""Targeted V2G per constrained asset, procure or build (issue 20): the kernels of
:mod:`gridplan.planning.targeting` and the search of :mod:`gridplan.study.opportunities`
(V2G then build, a smaller upgrade plus V2G, nested assets)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from gridplan.ev.dispatch import DispatchContext, dispatch
from gridplan.ev.fleet import Fleet
from gridplan.planning.economics import ProgramCosts
from gridplan.planning.targeting import (
    PLAN_KINDS,
    TIERS,
    PlanCosts,
    ProgramFlows,
    choose_plan,
    credited_enrollment,
    enrollment_at_confidence,
    hybrid_plan,
    procure_or_build,
    smallest_enrollment,
    tier,
    upgrade_present_worth_usd,
)
from gridplan.planning.upgrades import smaller_upgrades
from gridplan.planning.valuation import present_worth_of_shift_usd
from gridplan.study.opportunities import (
    TargetedSearch,
    _AssetState,
    _program_flows,
    _reason,
    _search_year,
    _Study,
)

STEP_H = 0.25


# --------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("threshold", [0, 1, 2, 5, 7, 8])
def test_smallest_enrollment_finds_the_threshold(threshold: int) -> None:
    calls: list[int] = []

    def holds(k: int) -> bool:
        calls.append(k)
        return k >= threshold

    assert smallest_enrollment(holds, 8) == threshold
    assert len(calls) <= 2 + math.ceil(math.log2(8))


@pytest.mark.parametrize("hint", [1, 2, 3, 5, 6, 7])
@pytest.mark.parametrize("threshold", [0, 1, 2, 4, 7, 8, 9])
def test_smallest_enrollment_from_a_hint(threshold: int, hint: int) -> None:
    expected = threshold if threshold <= 8 else None
    assert smallest_enrollment(lambda k: k >= threshold, 8, hint=hint) == expected
    assert smallest_enrollment(lambda k: k >= threshold, 8, lower=1, hint=hint) == (
        None if expected is None else max(expected, 1)
    )


def test_smallest_enrollment_none_when_all_do_not_hold() -> None:
    assert smallest_enrollment(lambda k: k >= 9, 8) is None
    assert smallest_enrollment(lambda k: False, 0) is None
    assert smallest_enrollment(lambda k: True, 0) == 0


def test_smallest_enrollment_from_a_lower_bound() -> None:
    calls: list[int] = []

    def holds(k: int) -> bool:
        calls.append(k)
        return k >= 0  # would hold at 0, but 0 is known not to

    assert smallest_enrollment(holds, 5, lower=1) == 1 and 0 not in calls
    assert smallest_enrollment(holds, 0, lower=1) is None


def test_enrollment_at_confidence() -> None:
    k = np.array([1.0, 3.0, 2.0, 2.0, 5.0])
    assert enrollment_at_confidence(k, 0.8) == (3.0, 0.8)
    assert enrollment_at_confidence(k, 0.9) == (5.0, 1.0)
    assert enrollment_at_confidence(k, 0.5) == (2.0, 0.6)
    inf = np.array([1.0, np.inf, 2.0, np.inf, 1.0])
    k_c, share = enrollment_at_confidence(inf, 0.9)
    assert math.isinf(k_c) and share == pytest.approx(0.6)


def _flows(n: int = 6) -> ProgramFlows:
    years = np.arange(2030, 2030 + n)
    return ProgramFlows(
        years=years,
        enrolled=np.minimum(np.arange(n) // 2 + 2, 4).astype(float),
        export_kwh=np.full(n, 40.0),
        charging_loss_kwh=np.full(n, 9.0),
        capacity_kw=np.full(n, 20.0),
    )


def _plans(incentive: float, flows: ProgramFlows | None = None) -> PlanCosts:
    costs = ProgramCosts(
        charging_energy_price_usd_per_kwh=0.3,
        upfront_incentive_usd_per_customer=incentive,
        capacity_payment_usd_per_kw_month=1.0,
    )
    return procure_or_build(
        flows or _flows(),
        upgrade_cost_usd=60_000.0,
        need_year=2030,
        base_year=2026,
        discount_rate=0.07,
        escalation_rate=0.02,
        costs=costs,
    )


def test_more_incentive_never_turns_a_v2g_loss_into_a_win() -> None:
    incentives = np.linspace(0.0, 10_000.0, 41)
    plans = [_plans(b) for b in incentives]
    nets = [float(p.net_benefit_usd[p.best]) for p in plans]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(nets))
    wins = [p.best > 0 for p in plans]
    # once building wins, it keeps winning at every larger incentive
    first_loss = wins.index(False)
    assert not any(wins[first_loss:])


def test_break_even_incentive_separates_win_and_loss() -> None:
    b_star = _plans(2500.0).break_even_incentive_usd
    assert 0 < b_star < 60_000
    below, above = _plans(b_star * 0.99), _plans(b_star * 1.01)
    assert below.best > 0 and below.net_benefit_usd[below.best] > 0
    assert above.best == 0
    # building at the need year: no value, no cost
    assert above.net_benefit_usd[0] == 0 and above.upgrade_years[0] == 2030


def test_plan_x_by_hand() -> None:
    """Plan "V2G 2030, upgrade 2031": value of a one-year shift less the program's cost."""
    flows = _flows(1)
    plans = _plans(1000.0, flows)
    r, i = 0.07, 0.02
    value = 60_000.0 * (((1 + i) / (1 + r)) ** 4 - ((1 + i) / (1 + r)) ** 5)
    cost = 2 * 1000.0 / (1 + r) ** 4 + 20.0 * 1.0 * 6 / (1 + r) ** 5
    assert plans.deferral_value_usd[1] == pytest.approx(value)
    assert plans.program_cost_usd[1] == pytest.approx(cost)
    assert plans.net_benefit_usd[1] == pytest.approx(value - cost)


def test_tier_rule() -> None:
    assert tier(False, 100.0, 1.0, 0.9) == TIERS[3]
    assert tier(True, 0.0, 1.0, 0.9) == TIERS[2]
    assert tier(True, 10.0, 0.95, 0.9) == TIERS[0]
    assert tier(True, 10.0, 0.8, 0.9) == TIERS[1]


# --------------------------------------------------------------------------- hand search
def _hand_fleet(n_ev: int, arrival_h: float, departure_h: float) -> Fleet:
    """``n_ev`` V2G-capable EVs (60 kWh, 3.5 kW charge, 5 kW export once enrolled), 3 days."""
    days = pd.date_range("2030-07-01", periods=3, freq="D")
    shape = (len(days), n_ev)
    battery = np.full(n_ev, 60.0)
    values = {
        "year": 2030,
        "evs_per_household": 1.0,
        "load_pos": np.zeros(n_ev, dtype=int),
        "bus": np.zeros(n_ev, dtype=int),
        "vehicle": np.array(["test"] * n_ev, dtype=object),
        "charger": np.array(["test"] * n_ev, dtype=object),
        "battery_kwh": battery,
        "charger_kw": np.full(n_ev, 3.5),
        "export_kw": np.zeros(n_ev),
        "v2g_capable": np.ones(n_ev, dtype=bool),
        "v2g_enrolled": np.zeros(n_ev, dtype=bool),
        "reserve_kwh": 0.2 * battery,
        "target_kwh": 0.9 * battery,
        "charge_efficiency": 0.9,
        "discharge_efficiency": 0.9,
        "transformer_export_limit_kw": np.inf,
        "days": days,
        "arrival_h": np.full(shape, arrival_h),
        "departure_h": np.full(shape, departure_h),
        "trip_kwh": np.full(shape, 8.0),
        "trip_shortfall_kwh": np.zeros(shape),
        "dwell_shortfall_kwh": np.zeros(shape),
    }
    kwargs = {}
    for f in dataclasses.fields(Fleet):
        if f.name in values:
            kwargs[f.name] = values[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs[f.name] = np.zeros(n_ev)
    return Fleet(**kwargs)


def _hand_search(peak_kw: float, *, arrival_h: float = 12.0, n_ev: int = 6) -> TargetedSearch:
    """One 25 kVA asset whose base load peaks at ``peak_kw`` from 17 to 19 h; its EVs are
    home from ``arrival_h`` to 7 am (their 8 kWh trips recharged in about 2.5 h)."""
    fleet = _hand_fleet(n_ev, arrival_h, 31.0)
    index = pd.date_range("2030-07-02", "2030-07-03 23:45", freq="15min")
    hour = index.hour + index.minute / 60
    base = np.where((hour >= 17) & (hour < 19), peak_kw, 0.0)[:, None]
    context = DispatchContext(
        asset_ids=("t",),
        time_index=index,
        asset_base_kw=base,
        asset_limit_kw=np.array([25.0]),
        ev_assets=np.ones((n_ev, 1), dtype=bool),
        n_loads=1,
    )

    def run(f: Fleet, ctx: DispatchContext, av: object) -> object:
        return dispatch(f, index, "v2g_peak_shave", context=ctx, n_loads=1)

    return TargetedSearch(
        fleet=fleet,
        context=context,
        base_kva=base.astype(float),
        rating_kva=np.array([25.0]),
        judge=lambda loading: (np.nan_to_num(loading, nan=1e9) > 100.0 + 1e-6).any(axis=0),
        run=run,  # type: ignore[arg-type]
        equipment=(np.full(n_ev, 3.5), np.full(n_ev, 5.0)),
        availability=None,
        priority=np.arange(n_ev, dtype=np.uint64),
    )


def test_least_enrollment_is_verified_by_dispatch() -> None:
    search = _hand_search(36.0)
    k = search.least_k(0)
    assert k is not None and 0 < k <= 6
    # re-dispatch exactly k and k - 1 enrolled EVs
    held = search.holds(0, search.loading_pct(0, search.dispatch_asset(0, k)))
    short = search.holds(0, search.loading_pct(0, search.dispatch_asset(0, k - 1)))
    assert held and not short
    # 11 kW over the limit, 5 kW of export per EV, charging done before 5 pm: 3 EVs
    assert k == 3


def test_a_larger_need_never_needs_fewer_evs() -> None:
    ks = []
    for peak in (20.0, 26.0, 30.0, 36.0, 41.0, 48.0, 60.0):
        k = _hand_search(peak).least_k(0)
        ks.append(math.inf if k is None else k)
    assert ks[0] == 0 and math.isinf(ks[-1])
    assert all(b >= a for a, b in itertools.pairwise(ks))


def test_evs_away_at_the_need_hours_are_not_deferrable() -> None:
    search = _hand_search(30.0, arrival_h=20.0)  # home from 8 pm, the need is 5-7 pm
    assert search.least_k(0) is None
    assert search.away_share(0) == pytest.approx(1.0)
    assert _reason(6.0, [search.away_share(0)]) == "EVs away at the need hours"
    assert _reason(0.0, []) == "no V2G-capable EV downstream"


# --------------------------------------------------------------------------- study
def test_study_targeted_enrollment_reverified() -> None:
    """The quick start over 2026-2029: every deferrable asset's enrollment in its need year
    holds, re-dispatched, in at least ``confidence`` of the draws, and one EV fewer does
    not; the table is complete and its tiers follow the rule."""
    from gridplan.examples import __file__ as examples
    from gridplan.grid.feeders import load_feeder
    from gridplan.study.config import feeder_ref, load_study_config
    from gridplan.study.opportunities import OPPORTUNITY_COLUMNS, opportunities_table
    from gridplan.study.simulate import build_context, simulate_horizon
    from gridplan.study.tables import asset_table

    path = Path(examples).parent / "quickstart.toml"
    # a sizing margin of 100 %: the planned upgrades skip a size, so smaller ones are tried
    config = load_study_config(path).with_overrides(
        {"horizon.end": 2029, "year": 2029, "valuation.upgrade_margin": 1.0}
    )
    feeder = load_feeder(feeder_ref(config, path))
    ctx = build_context(config, feeder, path)
    h = simulate_horizon(ctx, workers=1, progress=False)
    assets = asset_table(feeder, config, h)
    table = opportunities_table(ctx, h, assets)
    assert table is not None
    assert list(table.columns) == list(OPPORTUNITY_COLUMNS)
    assert set(table.asset_id) == set(assets.index[assets.year_of_need_charging_p50.notna()])
    assert set(table.tier) <= set(TIERS)
    conf = config.horizon.confidence
    deferrable = table[np.isfinite(table.enrolled_needed)]
    assert not deferrable.empty
    study = _Study(ctx, h)
    for row in deferrable.itertuples():
        a = feeder.assets.index.get_loc(row.asset_id)
        k = int(row.enrolled_needed)
        held, short = [], []
        for d in range(config.horizon.draws):
            search, _ = study.draw(int(row.need_year_p50), d)
            held.append(search.holds(a, search.loading_pct(a, search.dispatch_asset(a, k))))
            if k > 0:
                r = search.dispatch_asset(a, k - 1)
                short.append(search.holds(a, search.loading_pct(a, r)))
        assert np.mean(held) >= conf - 1e-9
        if k > 0:
            assert np.mean(short) < conf
        assert 0.0 <= row.verified_share <= 1.0
        if row.plan_kind != "smaller_upgrade_plus_v2g":
            assert row.tier == tier(True, row.net_benefit_usd, row.certainty, conf)
    hybrid_ok = np.isfinite(table.hybrid_present_cost_usd)
    assert (table[~np.isfinite(table.enrolled_needed) & ~hybrid_ok].tier == TIERS[3]).all()
    assert (table[table.tier == TIERS[3]].reason != "").all()
    _check_plans(table, study, list(feeder.assets.index), conf, config.horizon.draws)


def _check_plans(
    table: pd.DataFrame, study: _Study, asset_ids: list[str], conf: float, draws: int
) -> None:
    """The least-present-cost plan is chosen; a chosen smaller upgrade plus V2G holds at
    the smaller rating, re-dispatched; without a size in between it is not applicable."""
    columns = ["build", "v2g_then_build", "hybrid"]  # PLAN_KINDS order
    present = table[[f"{k}_present_cost_usd" for k in columns]].to_numpy()
    chosen = np.array([PLAN_KINDS.index(k) for k in table.plan_kind])
    best = np.nanmin(present, axis=1)
    assert np.allclose(present[np.arange(len(table)), chosen], best)
    hybrids = table[table.plan_kind == "smaller_upgrade_plus_v2g"]
    assert not hybrids.empty  # the 100 % margin makes a smaller size enough somewhere
    for row in hybrids.itertuples():
        assert row.rating_kva < row.smaller_upgrade_kva
        assert row.hybrid_net_benefit_usd > 0
        expected = tier(True, row.hybrid_net_benefit_usd, row.hybrid_certainty, conf)
        if row.hybrid_enrolled_max == 0:  # no V2G in the plan: right-sizing
            expected = TIERS[4]
        assert row.tier == expected
        a = asset_ids.index(row.asset_id)
        held = []
        for d in range(draws):
            search, _ = study.draw(int(row.need_year_p50), d)
            small = search.resized(a, row.smaller_upgrade_kva)
            k = int(row.hybrid_enrolled_max)
            held.append(small.holds(a, small.loading_pct(a, small.dispatch_asset(a, k))))
        assert np.mean(held) >= conf - 1e-9
    na = table[table.hybrid_note.str.startswith("not applicable")]
    assert na.smaller_upgrade_kva.isna().all() and na.hybrid_present_cost_usd.isna().all()


# --------------------------------------------------------------------------- hybrid
def test_upgrade_present_worth_is_the_shift_convention() -> None:
    """C q^t1 − C q^t2 is the present worth of moving the upgrade from t1 to t2."""
    args = (0.07, 0.02)
    pw = [upgrade_present_worth_usd(60_000.0, y, 2026, *args) for y in (2030, 2033)]
    assert pw[0] - pw[1] == pytest.approx(present_worth_of_shift_usd(60_000.0, 4, 7, *args))
    assert upgrade_present_worth_usd(1000.0, 2020, 2026, *args) == 1000.0  # before: now


def _hybrid(incentive: float, flows: ProgramFlows | None = None) -> float:
    """Present cost of a 20,000 USD smaller upgrade in 2030 plus the program of ``flows``."""
    costs = ProgramCosts(
        charging_energy_price_usd_per_kwh=0.3,
        upfront_incentive_usd_per_customer=incentive,
        capacity_payment_usd_per_kw_month=1.0,
    )
    return hybrid_plan(
        flows or _flows(),
        smaller_cost_usd=20_000.0,
        need_year=2030,
        base_year=2026,
        discount_rate=0.07,
        escalation_rate=0.02,
        costs=costs,
    ).present_cost_usd


def test_hybrid_cost_by_hand() -> None:
    """One year of V2G with 2 EVs: the smaller unit's present worth plus the program cost
    (the same program costs the same as in plan "V2G 2030, upgrade 2031")."""
    flows = _flows(1)
    q = 1.02 / 1.07
    program = float(_plans(1000.0, flows).program_cost_usd[1])
    assert _hybrid(1000.0, flows) == pytest.approx(20_000.0 * q**4 + program)
    assert _hybrid(1000.0, _flows(0)) == pytest.approx(20_000.0 * q**4)  # no V2G needed


def test_hybrid_picked_when_cheapest() -> None:
    """A 60,000 USD planned upgrade, a 20,000 USD smaller one plus 6 years of V2G, and V2G
    until X then the planned upgrade: the least present cost wins, and a larger upfront
    incentive never turns a hybrid loss into a win."""
    build = upgrade_present_worth_usd(60_000.0, 2030, 2026, 0.07, 0.02)
    chosen = []
    for incentive in np.linspace(0.0, 40_000.0, 41):
        plans = _plans(incentive)
        v2g = build - float(plans.net_benefit_usd[plans.best]) if plans.best else math.nan
        present = {
            "build": build,
            "v2g_then_build": v2g,
            "smaller_upgrade_plus_v2g": _hybrid(incentive),
        }
        kind = choose_plan(present)
        assert present[kind] == pytest.approx(np.nanmin(list(present.values())))
        chosen.append(kind)
    assert chosen[0] == "smaller_upgrade_plus_v2g"  # cheap enrollment: the hybrid
    assert chosen[-1] == "build"  # 40,000 USD per EV: build
    wins = [k == "smaller_upgrade_plus_v2g" for k in chosen]
    assert not any(wins[wins.index(False) :])
    costs = [_hybrid(b) for b in np.linspace(0.0, 40_000.0, 41)]
    assert all(b >= a for a, b in itertools.pairwise(costs))


def test_choose_plan_ties_and_missing_plans() -> None:
    assert choose_plan({"build": 10.0, "smaller_upgrade_plus_v2g": 10.0}) == "build"
    assert choose_plan({"build": 10.0, "v2g_then_build": math.nan}) == "build"
    assert choose_plan({"build": 10.0, "v2g_then_build": 9.0}) == "v2g_then_build"


def test_smaller_upgrades_between_today_and_planned() -> None:
    options = pd.DataFrame(
        {
            "asset_id": ["t"] * 4 + ["u"],
            "option": [0, 1, 2, 3, 0],
            "new_rating_kva": [50.0, 75.0, 100.0, 75.0, 50.0],
            "cost_usd": [4178.0, 5249.0, 6057.0, 9999.0, 4178.0],
            "dollar_year": [2017] * 5,
            "source": [""] * 5,
        }
    )
    between = smaller_upgrades(options, "t", 25.0, 100.0)
    assert list(between.new_rating_kva) == [75.0, 50.0]  # largest first
    assert list(between.cost_usd) == [5249.0, 4178.0]  # the cheapest of each size
    assert smaller_upgrades(options, "t", 25.0, 50.0).empty  # no size in between
    assert smaller_upgrades(options, "t", 25.0, math.nan).empty
    assert smaller_upgrades(options, "v", 25.0, 100.0).empty


def test_a_larger_smaller_upgrade_never_needs_more_evs() -> None:
    """The 36 kW peak on the 25 kVA asset: 3 EVs at 25 kVA, fewer the larger the unit,
    none once the unit carries the peak (judged against the new rating)."""
    search = _hand_search(36.0)
    ks = [search.resized(0, kva).least_k(0) for kva in (25.0, 28.0, 31.0, 33.0, 36.0, 40.0)]
    assert ks[0] == 3 and ks[-1] == 0
    assert all(b is not None and a is not None and b <= a for a, b in itertools.pairwise(ks))
    small = search.resized(0, 31.0)  # 5 kW over: one EV at 5 kW
    assert small.context.asset_limit_kw[0] == pytest.approx(31.0)
    assert small.least_k(0) == 1
    assert search.rating_kva[0] == 25.0  # the original is untouched


# --------------------------------------------------------------------------- nesting
def _nested_search() -> TargetedSearch:
    """Eight EVs behind a feeder head (asset 1, 58 kW peak, 50 kW limit); EVs 0-3 also
    behind a transformer (asset 0, 31 kW peak, 25 kW limit). Sign-up priority: EV 7 first,
    so the feeder head's own first choices are not the transformer's EVs."""
    n_ev = 8
    fleet = _hand_fleet(n_ev, 12.0, 31.0)
    index = pd.date_range("2030-07-02", "2030-07-03 23:45", freq="15min")
    hour = index.hour + index.minute / 60
    peak = (hour >= 17) & (hour < 19)
    base = np.column_stack([np.where(peak, 31.0, 0.0), np.where(peak, 58.0, 0.0)])
    ev_assets = np.column_stack([np.arange(n_ev) < 4, np.ones(n_ev, dtype=bool)])
    context = DispatchContext(
        asset_ids=("t", "head"),
        time_index=index,
        asset_base_kw=base,
        asset_limit_kw=np.array([25.0, 50.0]),
        ev_assets=ev_assets,
        n_loads=1,
    )

    def run(f: Fleet, ctx: DispatchContext, av: object) -> object:
        return dispatch(f, index, "v2g_peak_shave", context=ctx, n_loads=1)

    return TargetedSearch(
        fleet=fleet,
        context=context,
        base_kva=base.astype(float),
        rating_kva=np.array([25.0, 50.0]),
        judge=lambda loading: (np.nan_to_num(loading, nan=1e9) > 100.0 + 1e-6).any(axis=0),
        run=run,  # type: ignore[arg-type]
        equipment=(np.full(n_ev, 3.5), np.full(n_ev, 5.0)),
        availability=None,
        priority=np.arange(n_ev, dtype=np.uint64)[::-1].copy(),
    )


def _stub_study() -> SimpleNamespace:
    return SimpleNamespace(
        config=SimpleNamespace(horizon=SimpleNamespace(confidence=1.0)),
        charging_need=lambda year, d, a: None,
        to_year=1.0,
        v2g_strategy="v2g_peak_shave",
    )


def test_nested_assets_share_the_downstream_enrollment() -> None:
    """The feeder head signs up the transformer's chosen EVs first: its 2 EVs are the
    transformer's 2, so the two programs enroll 2 EVs, not 4; with the transformer's
    program adopted the head's program costs none of them (nor their flows)."""
    study = _stub_study()
    down = _AssetState(a=0, need_year=2030, last_year=2030)
    up = _AssetState(a=1, need_year=2030, last_year=2030, nested=[0])
    search = _nested_search()
    _search_year(study, 2030, [down, up], [search])  # type: ignore[arg-type]
    assert down.k == [2.0] and up.k == [2.0]
    own_down = search.pool(0)[:2]
    own_up = search.pool(1)[:2]
    assert set(own_down) == {3, 2} and set(own_up) == set(own_down)
    # without the rule the head would take its own first choices: 4 EVs in all
    alone = _AssetState(a=1, need_year=2030, last_year=2030)
    other = _nested_search()
    _search_year(study, 2030, [alone], [other])  # type: ignore[arg-type]
    assert set(other.pool(1)[: int(alone.k[0])]).isdisjoint(own_down)
    # the costing: each EV exports 10 kWh, charges 11 kWh more, has a 5 kW export limit
    values = np.tile([10.0, 11.0, 5.0], (2, 1))
    up.ev_flows = [[(values, np.isin(own_up, own_down)[:, None])]]
    shared_flows, shared = _program_flows(study, up, {0: {2030}})  # type: ignore[arg-type]
    assert shared.tolist() == [2.0]
    assert shared_flows.enrolled.tolist() == [0.0] and shared_flows.export_kwh.tolist() == [0.0]
    own_flows, shared = _program_flows(study, up, {})  # type: ignore[arg-type]
    assert shared.tolist() == [0.0]  # not adopted downstream: the head pays for them
    assert own_flows.enrolled.tolist() == [2.0]
    assert own_flows.export_kwh.tolist() == [20.0]
    assert own_flows.charging_loss_kwh.tolist() == [2.0]
    assert own_flows.capacity_kw.tolist() == [10.0]


def test_credited_enrollment_rule() -> None:
    enrolled = np.array([3.0, 5.0, 4.0, 6.0])
    shared = np.array([2.0, 2.0, 4.0, 0.0])
    # increments 1, 3, 0, 6; enrollment persists (running maximum)
    assert credited_enrollment(enrolled, shared).tolist() == [1.0, 3.0, 3.0, 6.0]
    assert credited_enrollment(np.zeros(0), np.zeros(0)).size == 0
