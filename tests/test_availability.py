"""Availability of enrolled EVs (opt-outs, overrides, lost communications, derates): the
parameter table, the draws, and every exporting strategy honouring them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_dispatch import EXPORTING, build_case, case_params, check_constraints, make_fleet, run

from gridplan.core.errors import ConfigError
from gridplan.ev.availability import (
    Availability,
    AvailabilityParameters,
    availability_table,
    derate_from_uniform,
    draw_availability,
)
from gridplan.ev.dispatch import DispatchContext, dispatch
from gridplan.ev.fleet import Fleet, FleetScenario, sample_fleet
from gridplan.grid.feeders import peak_week

FIELDS = (
    "power_by_load_kw",
    "asset_load_kw",
    "ev_charge_kwh",
    "ev_export_kwh",
    "departure_shortfall_kwh",
)
#: Harsh parameters: every effect often (invariants under stress).
HARSH = AvailabilityParameters(
    opt_out_probability=0.3,
    override_probability=0.5,
    override_window_h=2.0,
    comms_failure_probability=0.2,
    derate_mean=0.7,
    derate_sd=0.2,
)
FEW = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def assert_same(a, b, atol: float = 0.0) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if y is None:
            assert x is None, name
            continue
        np.testing.assert_allclose(x, y, rtol=0, atol=atol, equal_nan=True, err_msg=name)


def big_fleet(n_ev: int = 400, n_day: int = 60) -> Fleet:
    days = pd.date_range("2030-07-01", periods=n_day, freq="D")
    shape = (n_day, n_ev)
    return make_fleet(
        battery=np.full(n_ev, 60.0),
        charger=np.full(n_ev, 7.2),
        export=np.linspace(0.0, 10.0, n_ev),
        reserve=np.full(n_ev, 12.0),
        target=np.full(n_ev, 54.0),
        arrival_h=np.full(shape, 18.0),
        departure_h=np.full(shape, 31.0),
        trip=np.full(shape, 10.0),
        days=days,
    )


# --------------------------------------------------------------------------- parameters
def test_bundled_table_sources_every_default():
    table = availability_table()
    assert set(table.index) == set(AvailabilityParameters.model_fields)
    assert (table.source.str.len() > 20).all()
    assert set(table.status) <= {"published", "assumption"}
    params = AvailabilityParameters()
    assert (
        params == AvailabilityParameters.published() == AvailabilityParameters.preset("published")
    )
    for name in table.index:
        value = table.at[name, "value"]
        expected = value if name == "comms_scope" else float(value)
        assert getattr(params, name) == expected, name
    assert not params.is_perfect
    assert AvailabilityParameters.perfect().is_perfect
    assert AvailabilityParameters.preset("perfect") == AvailabilityParameters.perfect()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"opt_out_probability": 1.5},
        {"override_probability": -0.1},
        {"comms_failure_probability": float("nan")},
        {"override_window_h": 0.0},
        {"comms_scope": "aggregator"},
        {"derate_mean": 0.9, "derate_sd": 0.4},
        {"derate_mean": 1.0, "derate_sd": 0.1},
        {"opt_out_probability": "0.1"},
        {"unknown": 1.0},
    ],
)
def test_bad_parameters(kwargs):
    with pytest.raises(ValidationError):
        AvailabilityParameters(**kwargs)


def test_bad_preset():
    with pytest.raises(ConfigError, match="preset"):
        AvailabilityParameters.preset("oracle")


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("wishful_probability,0.1,-,a source,assumption", "unknown parameter"),
        ("opt_out_probability,0.1,-,,assumption", "source"),
        ("opt_out_probability,0.1,-,a source,guess", "status"),
    ],
)
def test_bad_tables(tmp_path: Path, row, match):
    file = tmp_path / "availability.csv"
    file.write_text("parameter,value,unit,source,status\n" + row + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        availability_table(file)


def test_table_duplicates_and_columns(tmp_path: Path):
    file = tmp_path / "availability.csv"
    row = "opt_out_probability,0.1,-,a source,assumption\n"
    file.write_text("parameter,value,unit,source,status\n" + row + row, encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate"):
        availability_table(file)
    file.write_text("parameter,value\nopt_out_probability,0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="missing columns"):
        availability_table(file)


# --------------------------------------------------------------------------- draws
def test_same_seed_same_draw():
    fleet = big_fleet(50, 10)
    a = draw_availability(fleet, HARSH, 7)
    b = draw_availability(fleet, HARSH, np.random.default_rng(7))
    c = draw_availability(fleet, HARSH, 8)
    for f in dataclasses.fields(Availability):
        np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name), err_msg=f.name)
    assert not np.array_equal(a.opted_out, c.opted_out)


def test_draw_stream_does_not_depend_on_parameters():
    """Common random numbers: a larger probability only adds opt-outs."""
    fleet = big_fleet(50, 10)
    low = draw_availability(fleet, AvailabilityParameters(opt_out_probability=0.1), 3)
    high = draw_availability(fleet, AvailabilityParameters(opt_out_probability=0.4), 3)
    assert (high.opted_out >= low.opted_out).all()
    np.testing.assert_array_equal(low.derate, high.derate)
    np.testing.assert_array_equal(low.comms_lost, high.comms_lost)


def test_sampled_rates_match_the_parameters():
    fleet = big_fleet()
    a = draw_availability(fleet, HARSH, 2026)
    n = a.export_factor.size  # 24,000 (day, EV)

    def close(share: float, p: float, count: int) -> None:
        assert abs(share - p) <= 5 * np.sqrt(p * (1 - p) / count), (share, p)

    close(a.opted_out.mean(), HARSH.opt_out_probability, n)
    close(a.comms_lost.mean(), HARSH.comms_failure_probability, n)
    taking_part = ~(a.opted_out | a.comms_lost)
    close(a.overridden[taking_part].mean(), HARSH.override_probability, int(taking_part.sum()))
    assert abs(a.derate.mean() - HARSH.derate_mean) < 5 * HARSH.derate_sd / np.sqrt(a.derate.size)
    assert abs(a.derate.std() - HARSH.derate_sd) < 0.2 * HARSH.derate_sd
    share = a.override_share[a.overridden]
    assert abs(share.mean() - 0.5) < 5 * np.sqrt(1 / 12 / share.size)
    summary = a.summary()
    assert summary["opted_out"] == pytest.approx(a.opted_out.mean())
    assert summary["overridden"] == pytest.approx(a.overridden[taking_part].mean())


def test_draw_structure():
    fleet = big_fleet(100, 20)
    a = draw_availability(fleet, HARSH, 1)
    assert a.shape == (20, 100)
    assert ((a.export_factor >= 0) & (a.export_factor <= 1)).all()
    off = a.opted_out | a.comms_lost
    assert (a.export_factor[off] == 0).all()
    np.testing.assert_array_equal(a.export_factor[~off], np.broadcast_to(a.derate, off.shape)[~off])
    assert not (a.overridden & off).any()
    assert np.isfinite(a.export_cap_kwh).sum() == a.overridden.sum()
    expected = (
        a.override_share * HARSH.override_window_h * a.derate[None, :] * fleet.export_kw[None, :]
    )
    np.testing.assert_allclose(a.export_cap_kwh[a.overridden], expected[a.overridden])
    assert np.isnan(a.override_share[~a.overridden]).all()


def test_fleet_wide_communications_and_given_derate():
    fleet = big_fleet(30, 200)
    params = AvailabilityParameters(comms_failure_probability=0.3, comms_scope="fleet")
    a = draw_availability(fleet, params, 5, derate=np.full(30, 0.5))
    lost = a.comms_lost
    assert (lost == lost[:, :1]).all()  # one draw per day for every EV
    assert 0.15 < lost[:, 0].mean() < 0.45
    np.testing.assert_array_equal(a.derate, 0.5)
    with pytest.raises(ConfigError, match="derate"):
        draw_availability(fleet, params, 5, derate=np.full(29, 0.5))
    with pytest.raises(ConfigError, match="derate"):
        draw_availability(fleet, params, 5, derate=np.full(30, 1.5))


def test_perfect_draw_and_derate_mapping():
    fleet = big_fleet(20, 5)
    a = draw_availability(fleet, AvailabilityParameters.perfect(), 0)
    np.testing.assert_array_equal(a.export_factor, 1.0)
    assert np.isinf(a.export_cap_kwh).all()
    u = np.linspace(0.001, 0.999, 50)
    d = derate_from_uniform(u, HARSH)
    assert (np.diff(d) > 0).all() and (d > 0).all() and (d < 1).all()
    np.testing.assert_array_equal(derate_from_uniform(u, AvailabilityParameters.perfect()), 1.0)


# --------------------------------------------------------------------------- dispatch
def _session_steps(fleet: Fleet, step_h: float, n_step: int):
    """(day, ev, first step, step after last) of every session inside the period (the
    period starts at the first day's midnight, no warm-up)."""
    n_day, n_ev = fleet.arrival_h.shape
    spd = round(24 / step_h)
    for d in range(n_day):
        for e in range(n_ev):
            a = d * spd + int(np.ceil(fleet.arrival_h[d, e] / step_h - 1e-9))
            b = d * spd + int(np.ceil(fleet.departure_h[d, e] / step_h - 1e-9))
            if a < n_step:
                yield d, e, a, min(b, n_step)


def check_availability(case, r, avail: Availability) -> None:
    """Export within factor x limit at every step and within each session's cap."""
    fleet, p, dt = case.fleet, r.power_kw, r.step_h
    out = np.clip(-p, 0.0, None)
    for d, e, a, b in _session_steps(fleet, dt, p.shape[0]):
        limit = avail.export_factor[d, e] * fleet.export_kw[e]
        assert (out[a:b, e] <= limit + 1e-7).all(), (d, e)
        assert out[a:b, e].sum() * dt <= avail.export_cap_kwh[d, e] + 1e-7, (d, e)


@FEW
@given(params=case_params, seed=st.integers(0, 2**32 - 1))
def test_invariants_under_availability(params, seed):
    case = build_case(**params, feasible=False)
    avail = draw_availability(case.fleet, HARSH, seed)
    for strategy in sorted(EXPORTING):
        r = run(case, strategy, availability=avail)
        check_constraints(case, r, strategy)
        check_availability(case, r, avail)


@FEW
@given(params=case_params)
def test_perfect_availability_is_none(params):
    """``availability=None`` keeps today's results: the perfect draw gives them exactly."""
    case = build_case(**params, feasible=False)
    perfect = Availability.perfect(case.fleet)
    for strategy in sorted(EXPORTING):
        assert_same(run(case, strategy, availability=perfect), run(case, strategy))
    for fast in (True, False):
        kw = {"keep_ev_series": False, "_fast_path": fast}
        base = run(case, "v2g_peak_shave", **kw)
        assert_same(run(case, "v2g_peak_shave", availability=perfect, **kw), base)


@FEW
@given(params=case_params, seed=st.integers(0, 2**32 - 1))
def test_fast_path_honours_availability(params, seed):
    case = build_case(**params, feasible=False)
    avail = draw_availability(case.fleet, HARSH, seed)
    fast = run(case, "v2g_peak_shave", availability=avail, keep_ev_series=False)
    loop = run(case, "v2g_peak_shave", availability=avail, keep_ev_series=False, _fast_path=False)
    assert_same(fast, loop, atol=1e-7)


@pytest.mark.parametrize("strategy", sorted(EXPORTING))
def test_no_factor_no_export(strategy):
    case = build_case(3, 6, 3, 2, 60, feasible=True, export_limit=np.inf, tight=0.5)
    avail = draw_availability(case.fleet, AvailabilityParameters(opt_out_probability=1.0), 0)
    assert (avail.export_factor == 0).all()
    r = run(case, strategy, availability=avail)
    assert (r.power_kw >= 0).all()
    assert r.export_kwh.sum() == 0
    check_constraints(case, r, strategy)
    if strategy != "v2g_optimal":  # nobody takes part: unmanaged charging
        assert_same(r, run(case, "unmanaged"))
    assert case.fleet.export_kw.max() > 0 and run(case, strategy).export_kwh.sum() > 0


def _one_ev_case():
    days = pd.date_range("2030-07-01", periods=3, freq="D")
    index = pd.date_range(days[0], periods=72, freq="h")
    hours = np.asarray(index.hour)
    base = np.where((hours >= 17) & (hours < 22), 18.0, 4.0)
    fleet = make_fleet(
        battery=np.array([60.0]),
        charger=np.array([7.0]),
        export=np.array([7.0]),
        reserve=np.array([12.0]),
        target=np.array([54.0]),
        arrival_h=np.full((3, 1), 17.0),
        departure_h=np.full((3, 1), 31.0),
        trip=np.full((3, 1), 10.0),
        days=days,
        eta_c=1.0,
        eta_d=1.0,
    )
    ctx = DispatchContext(
        asset_ids=("a",),
        time_index=index,
        asset_base_kw=base[:, None].astype(float),
        asset_limit_kw=np.array([15.0]),
        ev_assets=np.ones((1, 1), bool),
    )
    return fleet, index, ctx


@pytest.mark.parametrize("strategy", sorted(EXPORTING))
def test_opted_out_day_exports_nothing_and_meets_departure(strategy):
    fleet, index, ctx = _one_ev_case()
    avail = Availability.perfect(fleet)
    factor = avail.export_factor.copy()
    factor[0, 0] = 0.0  # opted out on day 0
    cap = avail.export_cap_kwh.copy()
    cap[1, 0] = 2.0  # overrides on day 1 after 2 kWh
    avail = dataclasses.replace(avail, export_factor=factor, export_cap_kwh=cap)
    r = dispatch(fleet, index, strategy, context=ctx, warmup_h=0, availability=avail)
    out = np.clip(-r.power_kw[:, 0], 0.0, None)
    day0, day1, day2 = out[17:31], out[41:55], out[65:]
    assert day0.sum() == 0
    assert day1.sum() == pytest.approx(2.0, abs=1e-4)  # HiGHS tolerance for v2g_optimal
    assert day2.sum() > 2.0  # available again
    np.testing.assert_allclose(r.departure_shortfall_kwh[:2, 0], 0.0, atol=1e-6)
    free = dispatch(fleet, index, strategy, context=ctx, warmup_h=0)
    assert np.clip(-free.power_kw[17:31, 0], 0, None).sum() > 0


def test_derate_scales_event_export():
    fleet, index, ctx = _one_ev_case()
    full = Availability.perfect(fleet)
    half = dataclasses.replace(full, export_factor=full.export_factor * 0.5)
    r_full = dispatch(fleet, index, "v2g_event", context=ctx, warmup_h=0, availability=full)
    r_half = dispatch(fleet, index, "v2g_event", context=ctx, warmup_h=0, availability=half)
    assert -r_half.power_kw.min() == pytest.approx(0.5 * -r_full.power_kw.min())
    assert -r_half.power_kw.min() <= 3.5 + 1e-9


def test_availability_must_fit_the_fleet():
    fleet, index, ctx = _one_ev_case()
    other = Availability.perfect(big_fleet(2, 3))
    with pytest.raises(ConfigError, match="availability"):
        dispatch(fleet, index, "v2g_event", context=ctx, availability=other)
    bad = dataclasses.replace(
        Availability.perfect(fleet), export_factor=np.full(fleet.arrival_h.shape, 1.5)
    )
    with pytest.raises(ConfigError, match="export_factor"):
        dispatch(fleet, index, "v2g_event", context=ctx, availability=bad)
    bad = dataclasses.replace(
        Availability.perfect(fleet), export_cap_kwh=np.full(fleet.arrival_h.shape, np.nan)
    )
    with pytest.raises(ConfigError, match="export_cap_kwh"):
        dispatch(fleet, index, "v2g_event", context=ctx, availability=bad)


def test_non_exporting_strategies_ignore_availability():
    case = build_case(4, 5, 2, 2, 60, feasible=True, export_limit=np.inf, tight=0.5)
    avail = draw_availability(case.fleet, HARSH, 4)
    for strategy in ("unmanaged", "tou", "smart"):
        assert_same(run(case, strategy, availability=avail), run(case, strategy))


# --------------------------------------------------------------------------- bundled feeder
@pytest.fixture(scope="module")
def us_case(us_feeder):
    scenario = FleetScenario(evs_per_household=1.0, v2g_capable_share=0.6, v2g_enrolled_share=0.8)
    fleet = sample_fleet(us_feeder, scenario, 2030, 11)
    ctx = DispatchContext.from_feeder(
        us_feeder, fleet, us_feeder.load_p_kw, us_feeder.time_index, sgen_p_kw=us_feeder.sgen_p_kw
    )
    ctx = dataclasses.replace(ctx, asset_limit_kw=ctx.asset_limit_kw * 0.6)
    week = us_feeder.time_index[peak_week(us_feeder)]
    return fleet, ctx, week


@pytest.mark.parametrize("strategy", ["v2g_peak_shave", "v2g_event"])
def test_us_feeder_perfect_is_none_and_published_exports_less(us_case, strategy):
    fleet, ctx, week = us_case
    kw = {"context": ctx, "keep_ev_series": False}
    base = dispatch(fleet, week, strategy, **kw)
    assert_same(
        dispatch(fleet, week, strategy, availability=Availability.perfect(fleet), **kw), base
    )
    avail = draw_availability(fleet, AvailabilityParameters.published(), 19)
    real = dispatch(fleet, week, strategy, availability=avail, **kw)
    if strategy == "v2g_event":  # blind export: less of it
        assert 0 < real.export_kwh.sum() < base.export_kwh.sum()
        return
    # peak shaving: fewer EVs to defer and discharge, so more overload is left (the
    # available ones export more to make up for the others)
    over, over_base = real.asset_totals().overload_kwh, base.asset_totals().overload_kwh
    assert (over >= over_base - 1e-6).all() and over.sum() > over_base.sum()
    loop = dispatch(fleet, week, strategy, availability=avail, _fast_path=False, **kw)
    assert_same(real, loop, atol=1e-7)


def test_v1g_case_overrides_change_nothing_opt_outs_unmanage():
    """The study's v1g case (enrolled EVs, export zeroed, still managed): an override has
    no export to cap; an opt-out leaves the EV unmanaged that day."""
    case = build_case(5, 6, 3, 2, 60, feasible=True, export_limit=np.inf, tight=0.5)
    v1g = dataclasses.replace(
        case, fleet=dataclasses.replace(case.fleet, export_kw=np.zeros(case.fleet.n_ev))
    )
    managed = run(v1g, "v2g_peak_shave")
    assert_same(run(v1g, "v2g_peak_shave", availability=Availability.perfect(v1g.fleet)), managed)
    overriding = draw_availability(case.fleet, AvailabilityParameters(override_probability=1.0), 1)
    assert_same(run(v1g, "v2g_peak_shave", availability=overriding), managed)
    none = Availability.perfect(v1g.fleet)
    capped = dataclasses.replace(none, export_cap_kwh=np.zeros(none.shape))  # no export at all
    assert_same(run(v1g, "v2g_peak_shave", availability=capped), managed)
    out = draw_availability(case.fleet, AvailabilityParameters(opt_out_probability=1.0), 1)
    assert_same(run(v1g, "v2g_peak_shave", availability=out), run(v1g, "unmanaged"))
    assert not np.allclose(managed.power_kw, run(v1g, "unmanaged").power_kw)
