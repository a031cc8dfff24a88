"""Fast paths of dispatch (``keep_ev_series=False``): ``unmanaged`` in closed form and
``v2g_peak_shave`` windowed equal the step loop (``_fast_path=False``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dispatch import build_case

import gridplan.ev.dispatch as dispatch_module
import gridplan.ev.fastpath as fastpath_module
from gridplan.ev.dispatch import DispatchContext, DispatchResult, dispatch
from gridplan.ev.fastpath import closed_form
from gridplan.ev.fleet import Fleet, FleetScenario, sample_fleet
from gridplan.ev.sessions import Sessions
from gridplan.grid.feeders import Feeder

STRATEGIES = ["unmanaged", "v2g_peak_shave"]
FIELDS = [
    "power_by_load_kw",
    "asset_load_kw",
    "ev_charge_kwh",
    "ev_export_kwh",
    "departure_shortfall_kwh",
]
STEPS_PER_DAY = 96


def both(fleet: Fleet, index: pd.DatetimeIndex, strategy: str, **kw) -> tuple:
    """(fast, loop) results of one dispatch."""
    fast = dispatch(fleet, index, strategy, keep_ev_series=False, **kw)
    loop = dispatch(fleet, index, strategy, keep_ev_series=False, _fast_path=False, **kw)
    return fast, loop


def assert_same(fast: DispatchResult, loop: DispatchResult, base: np.ndarray | None) -> None:
    """Equal within 1e-7 (NaN pattern too); no EV power: exactly 0 in the fast result."""
    for name in FIELDS:
        a, b = getattr(fast, name), getattr(loop, name)
        if b is None:
            assert a is None, name
            continue
        assert a.shape == b.shape and a.dtype == b.dtype, name
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7, equal_nan=True, err_msg=name)
    idle = np.abs(loop.power_by_load_kw) < 1e-9
    assert (fast.power_by_load_kw[idle] == 0).all()
    if base is not None:
        assert fast.asset_load_kw is not None and loop.asset_load_kw is not None
        ev_idle = np.abs(loop.asset_load_kw - base) < 1e-9
        assert (fast.asset_load_kw[ev_idle] == base[ev_idle]).all()


# --------------------------------------------------------------------------- bundled feeders
def feeder_case(
    feeder: Feeder, seed: int, limit_fraction: float
) -> tuple[Fleet, DispatchContext, np.ndarray]:
    """A fleet with many V2G shavers and a context with limits scaled down (overloads)."""
    scenario = FleetScenario(evs_per_household=1.5, v2g_capable_share=0.6, v2g_enrolled_share=0.8)
    fleet = sample_fleet(feeder, scenario, 2030, seed)
    ctx = DispatchContext.from_feeder(
        feeder, fleet, feeder.load_p_kw, feeder.time_index, sgen_p_kw=feeder.sgen_p_kw
    )
    ctx = dataclasses.replace(ctx, asset_limit_kw=ctx.asset_limit_kw * limit_fraction)
    return fleet, ctx, ctx.asset_base_kw


def check_feeder(
    feeder: Feeder,
    seed: int,
    index: pd.DatetimeIndex,
    *,
    limit_fraction: float,
    warmup_h: float,
    export_limit: float | None,
) -> dict[str, DispatchResult]:
    fleet, ctx, base_all = feeder_case(feeder, seed, limit_fraction)
    base = base_all[feeder.time_index.get_indexer(index)]
    out = {}
    for strategy in STRATEGIES:
        fast, loop = both(
            fleet,
            index,
            strategy,
            context=ctx,
            warmup_h=warmup_h,
            transformer_export_limit_kw=export_limit,
        )
        assert_same(fast, loop, base)
        out[strategy] = loop
    return out


def test_full_year_lv(lv_feeder):
    """A full year (no warm-up: the fleet's first day), overloads, V2G export."""
    r = check_feeder(
        lv_feeder, 0, lv_feeder.time_index, limit_fraction=0.6, warmup_h=24, export_limit=None
    )
    shave = r["v2g_peak_shave"]
    assert shave.export_kwh.sum() > 0
    assert r["unmanaged"].asset_overload_kw.sum() > shave.asset_overload_kw.sum()


def test_full_year_with_warmup_and_export_limit(lv_feeder):
    """From the second day (24 h warm-up), a 1.5 kW transformer export limit."""
    index = lv_feeder.time_index[STEPS_PER_DAY:]
    r = check_feeder(lv_feeder, 1, index, limit_fraction=0.5, warmup_h=24, export_limit=1.5)
    assert r["v2g_peak_shave"].export_kwh.sum() > 0


def week(feeder: Feeder, day: int, start_h: int, end_h: int) -> pd.DatetimeIndex:
    """A week from ``start_h`` (EVs already plugged in) to ``end_h`` (EVs still plugged in)."""
    first = day * STEPS_PER_DAY + start_h * 4
    return feeder.time_index[first : first + 6 * STEPS_PER_DAY + (end_h - start_h) * 4]


@pytest.mark.parametrize(
    ("seed", "day", "warmup_h", "export_limit", "limit_fraction"),
    [
        (2, 10, 0.0, None, 0.5),
        (3, 180, 24.0, 3.0, 0.6),
        (4, 200, 48.0, 0.5, 0.4),
        (5, 330, 6.0, None, 0.8),
    ],
)
def test_weeks_lv(lv_feeder, seed, day, warmup_h, export_limit, limit_fraction):
    index = week(lv_feeder, day, 3, 22)
    check_feeder(
        lv_feeder,
        seed,
        index,
        limit_fraction=limit_fraction,
        warmup_h=warmup_h,
        export_limit=export_limit,
    )


@pytest.mark.parametrize(
    ("seed", "day", "warmup_h", "export_limit", "limit_fraction"),
    [
        (0, 190, 0.0, None, 0.7),
        (1, 20, 24.0, 2.0, 0.6),
        (2, 250, 48.0, None, 0.9),
    ],
)
def test_weeks_us(us_feeder, seed, day, warmup_h, export_limit, limit_fraction):
    index = week(us_feeder, day, 5, 20)
    r = check_feeder(
        us_feeder,
        seed,
        index,
        limit_fraction=limit_fraction,
        warmup_h=warmup_h,
        export_limit=export_limit,
    )
    assert r["v2g_peak_shave"].export_kwh.sum() > 0


@pytest.mark.parametrize(
    ("paint_cost", "max_signatures", "chunk_elements"),
    [
        (0, 32, 1),  # paint loads, assets by the signature product; 64-step chunks
        (0, 0, 20_000),  # paint loads, assets by running sums
        (10**9, 32, 1),  # running sums only
    ],
)
def test_every_series_path_and_small_chunks(
    lv_feeder, monkeypatch, paint_cost, max_signatures, chunk_elements
):
    """The series paths agree; windows cross chunks; chunks inside a long warm-up."""
    monkeypatch.setattr(fastpath_module, "_PAINT_COST", paint_cost)
    monkeypatch.setattr(fastpath_module, "_MAX_SIGNATURES", max_signatures)
    monkeypatch.setattr(fastpath_module, "_CHUNK_ELEMENTS", chunk_elements)
    r = check_feeder(
        lv_feeder,
        9,
        week(lv_feeder, 20, 2, 23),
        limit_fraction=0.4,
        warmup_h=72.0,
        export_limit=2.0,
    )
    assert r["v2g_peak_shave"].export_kwh.sum() > 0


def test_float32_and_no_context(lv_feeder):
    fleet, ctx, _ = feeder_case(lv_feeder, 6, 0.6)
    index = week(lv_feeder, 40, 0, 24)
    fast, loop = both(fleet, index, "v2g_peak_shave", context=ctx, dtype=np.float32)
    assert fast.power_by_load_kw.dtype == np.float32 and fast.asset_load_kw.dtype == np.float32
    np.testing.assert_allclose(fast.power_by_load_kw, loop.power_by_load_kw, atol=1e-4)
    np.testing.assert_allclose(fast.asset_load_kw, loop.asset_load_kw, rtol=1e-6)
    np.testing.assert_allclose(fast.ev_export_kwh, loop.ev_export_kwh, atol=1e-7)
    fast, loop = both(fleet, index, "unmanaged", n_loads=len(lv_feeder.net.load))
    assert fast.asset_load_kw is None
    assert_same(fast, loop, None)


def test_fast_path_skips_the_loop(lv_feeder, monkeypatch):
    fleet, ctx, _ = feeder_case(lv_feeder, 7, 0.6)
    index = week(lv_feeder, 100, 0, 24)
    loop = {s: both(fleet, index, s, context=ctx)[1] for s in STRATEGIES}

    def no_loop(*args, **kwargs):
        raise AssertionError("the step loop ran")

    monkeypatch.setattr(dispatch_module, "run_loop", no_loop)
    for s in STRATEGIES:
        fast = dispatch(fleet, index, s, context=ctx, keep_ev_series=False)
        np.testing.assert_allclose(fast.asset_load_kw, loop[s].asset_load_kw, atol=1e-7)
    with pytest.raises(AssertionError, match="step loop"):
        dispatch(fleet, index, "unmanaged", context=ctx)  # per-EV series: the loop


def test_no_evs_and_no_shavers(lv_feeder):
    empty = sample_fleet(lv_feeder, FleetScenario(evs_per_household=0.0), 2030, 0)
    assert empty.n_ev == 0
    ctx = DispatchContext.from_feeder(lv_feeder, empty, lv_feeder.load_p_kw, lv_feeder.time_index)
    index = week(lv_feeder, 3, 0, 24)
    base = ctx.asset_base_kw[lv_feeder.time_index.get_indexer(index)]
    for s in STRATEGIES:
        fast, loop = both(empty, index, s, context=ctx)
        assert_same(fast, loop, base)
        assert (fast.power_by_load_kw == 0).all()
    fleet = sample_fleet(
        lv_feeder, FleetScenario(evs_per_household=1.5, v2g_enrolled_share=0.0), 2030, 0
    )
    ctx = DispatchContext.from_feeder(lv_feeder, fleet, lv_feeder.load_p_kw, lv_feeder.time_index)
    ctx = dataclasses.replace(ctx, asset_limit_kw=ctx.asset_limit_kw * 0.5)
    fast, loop = both(fleet, index, "v2g_peak_shave", context=ctx)
    assert_same(fast, loop, ctx.asset_base_kw[lv_feeder.time_index.get_indexer(index)])


# --------------------------------------------------------------------------- synthetic fleets
case_params = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "n_ev": st.integers(1, 8),
        "n_day": st.integers(2, 4),
        "n_trafo": st.integers(1, 3),
        "step_min": st.sampled_from([15, 30, 60]),
        "export_limit": st.sampled_from([np.inf, 3.0, 8.0]),
        "tight": st.sampled_from([0.5, 0.8, 1.2]),
        "feasible": st.booleans(),
    }
)


@settings(max_examples=40, deadline=None)
@given(params=case_params, warmup_h=st.sampled_from([0.0, 24.0]))
def test_random_small_fleets(params, warmup_h):
    """Random batteries, chargers, efficiencies, reserves, limits and step lengths."""
    case = build_case(**params)
    index = case.index
    if warmup_h:
        index = index[index >= case.fleet.days[1]]  # the first day becomes the warm-up
    base = case.context.asset_base_kw[case.context.time_index.get_indexer(index)]
    for s in STRATEGIES:
        fast, loop = both(case.fleet, index, s, context=case.context, warmup_h=warmup_h)
        assert_same(fast, loop, base)


def test_overlapping_sessions_fall_back_to_the_loop():
    case = build_case(
        3, 4, 3, 2, 60, feasible=True, export_limit=np.inf, tight=0.5
    )  # sessions from 14-22 h to 6-10 h the next morning
    fleet = dataclasses.replace(case.fleet, departure_h=case.fleet.departure_h + 12.0)
    sessions = Sessions(fleet, case.index[0], len(case.index), 1.0)
    assert closed_form(sessions, 0, 0, keep_soc=False) is None
    base = case.context.asset_base_kw
    for s in STRATEGIES:
        fast, loop = both(fleet, case.index, s, context=case.context, warmup_h=0)
        assert_same(fast, loop, base)
