"""Targeted V2G per constrained asset, procure or build (issue 20): the kernels of
:mod:`gridplan.planning.targeting` and the search of :mod:`gridplan.study.opportunities`."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridplan.ev.dispatch import DispatchContext, dispatch
from gridplan.ev.fleet import Fleet
from gridplan.planning.economics import ProgramCosts
from gridplan.planning.targeting import (
    TIERS,
    PlanCosts,
    ProgramFlows,
    enrollment_at_confidence,
    procure_or_build,
    smallest_enrollment,
    tier,
)
from gridplan.study.opportunities import TargetedSearch, _reason

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
    from gridplan.study.opportunities import OPPORTUNITY_COLUMNS, _Study, opportunities_table
    from gridplan.study.simulate import build_context, simulate_horizon
    from gridplan.study.tables import asset_table

    path = Path(examples).parent / "quickstart.toml"
    config = load_study_config(path).with_overrides({"horizon.end": 2029, "year": 2029})
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
        expected = tier(True, row.net_benefit_usd, row.certainty, conf)
        assert row.tier == expected
    assert (table[~np.isfinite(table.enrolled_needed)].tier == TIERS[3]).all()
    assert (table[table.tier == TIERS[3]].reason != "").all()
