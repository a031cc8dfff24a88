"""Charging and V2G dispatch: EV power per step from a :class:`~gridplan.ev.fleet.Fleet`.

Strategies (:class:`Strategy`; the study config names them, unknown names list the valid
ones):

``unmanaged``
    Every EV charges at full power from arrival until it reaches its departure target.
``tou``
    Time-of-use charging: an EV charges at full power during the off-peak hours of a rate
    (default :data:`gridplan.ev.events.PGE_EV2A`, PG&E EV2-A: peak 4-9 p.m., partial-peak
    3-4 p.m. and 9 p.m.-12 a.m., so charging starts at midnight) and, outside them, only
    the power its laxity forces (the least power from which full power at every remaining
    step still reaches the target by departure), so it starts earlier when it must. Every
    EV on one rate starts at the same minute: the rate moves the peak to the off-peak start
    (a "timer peak") rather than removing it.
``smart``
    V1G valley filling. Each EV belongs to the smallest monitored asset upstream of it
    (its service transformer, else the next asset up); for each such asset and each fleet
    day the energy its arriving EVs need is water-filled into the lowest-load steps of the
    asset's load (base load plus EV charging already planned, including EVs of the previous
    day still plugged in), under the power the EVs plugged in at each step can draw.
    Assets are planned bottom-up, so a feeder head sees the plans below it. At each step the
    EVs of an asset share its planned power in proportion to the power they can draw, and an
    EV always takes at least its laxity-forced power. EVs under no monitored asset charge
    ``unmanaged``. The plan knows the day's base load and arrivals in advance (planning
    foresight). Needs a :class:`DispatchContext`.
``v2g_peak_shave``
    Enrolled EVs discharge to hold each monitored asset under its planning limit and
    recharge before departure; non-enrolled EVs charge ``unmanaged``. Order at each step:
    (1) every EV's ``unmanaged`` power is computed (for enrolled EVs from a *shadow*
    unmanaged state of charge); enrolled EVs never charge above their shadow's power
    except into headroom; (2) the excess of each asset over its limit is relieved
    bottom-up through the asset nesting (service transformers before the feeder head; an
    EV relieves every asset upstream of its bus), first by deferring enrolled EVs'
    charging, then by discharging them (down to a floor from which full-power charging
    still restores the target by departure, never below reserve), each asset sharing its
    relief among its EVs in proportion to their room; (3) enrolled EVs behind their shadow
    recharge -- laxity-forced energy first -- into the headroom under
    ``min(limit, highest unmanaged load of the asset so far in the period)``. By
    construction no monitored asset's load exceeds its ``unmanaged`` peak; the price is a
    departure shortfall when headroom stays closed until departure (reported). What
    remains over the limit is reported (:attr:`DispatchResult.asset_overload_kw`). Needs a
    :class:`DispatchContext`.
``v2g_event``
    Enrolled EVs discharge at their export limit during V2G events, never below their
    reserve and never so deep that full-power charging could not restore the departure
    target before they leave; otherwise EVs charge ``unmanaged``. Events: an
    :class:`~gridplan.ev.events.EventCalendar` (``events=``: a CSV file, or drawn within ELRP
    rules -- 4-9 p.m., May-October, at most 60 h/yr -- by
    :func:`~gridplan.ev.events.draw_event_calendar`), or, without one, every day of
    ``event_months`` between ``window_start_h`` and ``window_end_h`` (default 4-9 p.m.
    every day, the previous behaviour).
``v2g_optimal``
    The reference: one linear program per monitored asset and fleet day (HiGHS through
    :func:`scipy.optimize.linprog`), over the EVs whose smallest upstream asset it is (for
    a feeder of service transformers under a head: one program per transformer; the head
    sees their sum and is not minimized itself). Variables are each session's charging
    and discharging power and state of charge per step; constraints are the ones below
    plus the departure target (less the unavoidable shortfall when even full power cannot
    reach it); the objective is the asset's peak load (epigraph variable) or, with
    ``objective="overload"``, its energy above the planning limit; a second solve keeps
    that optimum and minimizes charge plus discharge throughput. Every EV's charging is
    scheduled (V2G export for enrolled EVs only). Assets are solved bottom-up and days in
    order; power already planned (lower assets, the previous day) is part of the load.
    EVs under no monitored asset charge ``unmanaged``; sessions arriving below reserve do
    not export. Small feeders only: every program must have at most ``max_lp_variables``
    variables (default 200,000; about 2-3 variables per EV and step), checked before any
    solve, else a :class:`~gridplan.core.errors.ConfigError` says how large it is.

Availability (``availability=``, :func:`gridplan.ev.availability.draw_availability`): per
(day, EV) an export factor and an export-energy cap (opt-outs, lost communications,
overrides, derates). Every exporting strategy honours them: a session's export limit is
the EV's times its day's factor, and its export (grid side) stops once the cap is spent;
an EV opted out or cut off that day, or whose cap is spent, takes no part in the V2G
rule (:meth:`Sessions.taking_part <gridplan.ev.sessions.Sessions.taking_part>`) and
charges as an EV not enrolled under that strategy (``unmanaged`` for ``v2g_peak_shave``
and ``v2g_event``; scheduled charging without export for ``v2g_optimal``, whose programs
see each cap in advance). An enrolled EV without export (the V1G case) has no cap to
spend: only opt-outs and lost communications end its management. ``None`` (default):
every enrolled EV at its full limit, the results of before. Strategies that do not export
ignore it.

Constraints enforced by every strategy (tested): power only while plugged in; charging
within the EV's charging limit (charger and vehicle, ``Fleet.charger_kw``); discharge within
the export limit (``Fleet.export_kw``, 0 for EVs not enrolled) and, per service transformer,
total export within ``transformer_export_limit_kw`` (EVs scaled down together); state of
charge within ``[0, battery]``, and never discharged below the reserve; charge and discharge
efficiencies in the energy balance; every departure's shortfall against the target
reported. An arrival takes the day's driving energy out of the battery (not below 0).

Sign: charging is positive kW (a load), V2G export negative kW. The simulation steps through
time vectorized over EVs (one set of numpy operations per step over all EVs, no per-EV
loop). Memory: per-EV series are (time, ev) arrays of ``dtype``; with
``keep_ev_series=False`` only per-load and per-asset aggregates and per-EV totals are kept
(a year at 15 min for 10,000 EVs needs about 1.4 GB per float32 series otherwise).
Steps are simulated by position, each ``step_h`` long (a local-time index with a repeated
or missing daylight-saving hour is accepted, with a warning).

Fast paths (``keep_ev_series=False``): ``unmanaged`` needs no step loop -- each EV's
sessions follow each other, and per session the state of charge at arrival, the number of
full-power steps and the last partial step are closed-form; the per-load and per-asset
series are summed from the charging intervals (exactly 0 at steps without EV power).
``v2g_peak_shave`` equals ``unmanaged`` wherever no enrolled EV is behind its shadow and no
asset above one is over its limit under unmanaged power, so its step rule runs only in
windows from such an over-limit step until the state is quiet again, started from the
closed-form state. Both give the loop's results up to round-off (about 1e-9); sessions of
one EV that overlap fall back to the loop.

Where the pieces live: :mod:`gridplan.ev.options` (:class:`Strategy`,
:class:`DispatchOptions`), :mod:`gridplan.ev.context` (:class:`DispatchContext`),
:mod:`gridplan.ev.sessions` (sessions, state of charge, departures, export limit),
:mod:`gridplan.ev.policies` (``unmanaged``, ``tou``, ``v2g_event``),
:mod:`gridplan.ev.smart`, :mod:`gridplan.ev.peak_shave`, :mod:`gridplan.ev.optimal`
(one policy each), :mod:`gridplan.ev.simulation` (the step loop),
:mod:`gridplan.ev.fastpath` (the fast paths) and :mod:`gridplan.ev.results`
(:class:`DispatchResult`). This module checks the inputs and puts them together.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import DTypeLike

from gridplan.core.errors import ConfigError
from gridplan.ev.availability import Availability
from gridplan.ev.context import DispatchContext, GridView
from gridplan.ev.events import PGE_EV2A, EventCalendar, TouRate
from gridplan.ev.fastpath import run_fast
from gridplan.ev.fleet import Fleet
from gridplan.ev.optimal import OptimalPolicy
from gridplan.ev.options import DEFAULT_DISPATCH_OPTIONS, DispatchOptions, Strategy
from gridplan.ev.peak_shave import PeakShavePolicy
from gridplan.ev.policies import EventPolicy, Policy, TouPolicy, UnmanagedPolicy
from gridplan.ev.results import DispatchResult, load_power_kw
from gridplan.ev.sessions import ExportCap, Sessions
from gridplan.ev.simulation import RunSetup, run_loop
from gridplan.ev.smart import SmartPolicy

__all__ = [
    "DEFAULT_DISPATCH_OPTIONS",
    "DispatchContext",
    "DispatchOptions",
    "DispatchResult",
    "Strategy",
    "dispatch",
    "load_power_kw",
]

log = logging.getLogger(__name__)

_DEFAULT = DEFAULT_DISPATCH_OPTIONS


def dispatch(
    fleet: Fleet,
    time_index: pd.DatetimeIndex,
    strategy: Strategy | str = Strategy.UNMANAGED,
    *,
    window_start_h: float = _DEFAULT.window_start_h,
    window_end_h: float = _DEFAULT.window_end_h,
    event_months: tuple[int, ...] = _DEFAULT.event_months,
    warmup_h: float = _DEFAULT.warmup_h,
    context: DispatchContext | None = None,
    rate: TouRate | None = None,
    events: EventCalendar | None = None,
    transformer_export_limit_kw: float | None = _DEFAULT.transformer_export_limit_kw,
    objective: Literal["peak", "overload"] = _DEFAULT.objective,
    max_lp_variables: int = _DEFAULT.max_lp_variables,
    keep_ev_series: bool = _DEFAULT.keep_ev_series,
    dtype: DTypeLike = _DEFAULT.dtype,
    n_loads: int | None = None,
    availability: Availability | None = None,
    load_columns: np.ndarray | None = None,
    sparse_loads: bool = False,
    _fast_path: bool = True,
) -> DispatchResult:
    """Simulate EV charging (and V2G export) over ``time_index``.

    Sessions are the fleet's daily plug-in windows; at each arrival the day's driving
    energy leaves the battery. The simulation starts ``warmup_h`` before the period (within
    the fleet's days) with every EV at its departure target, so that EVs plugged in at the
    period's start carry a realistic state of charge; the warm-up is not returned. The
    settings' defaults, and their sources, are those of :class:`DispatchOptions`.

    Parameters
    ----------
    fleet
        The EVs and their daily plug-in windows.
    time_index
        Steps to simulate (fixed step, inside the fleet's days).
    strategy
        A :class:`Strategy` or its name (see the module docstring for the rules).
    window_start_h, window_end_h, event_months
        ``v2g_event`` without ``events``: the event window, hours of the day [h], and the
        months with events.
    warmup_h
        Simulated time before the period [h], discarded.
    transformer_export_limit_kw
        Limit on total V2G export behind one service transformer [kW] (``inf``: none;
        ``None``: the fleet's), per ``context.export_group`` (no context: per bus).
    objective, max_lp_variables
        ``v2g_optimal``: minimize each asset's ``"peak"`` load or its ``"overload"``
        energy; the largest linear program allowed [variables].
    keep_ev_series, dtype
        Keep the per-EV (time, ev) series (``False``: aggregates and per-EV totals only);
        float type of the kept series and aggregates (the simulation runs in float64).
    context
        Monitored assets, base load, limits and EVs downstream
        (:meth:`DispatchContext.from_feeder`); required by ``smart``, ``v2g_peak_shave``
        and ``v2g_optimal``; with any strategy it adds per-asset loads to the result.
    rate
        ``tou``: the time-of-use rate; default :data:`gridplan.ev.events.PGE_EV2A`.
    events
        ``v2g_event``: the event calendar (:class:`~gridplan.ev.events.EventCalendar`);
        default every day of ``event_months``, ``window_start_h``-``window_end_h``.
    n_loads, load_columns, sparse_loads
        Loads in :attr:`DispatchResult.power_by_load_kw` (default ``context.n_loads``, else
        past the last ``fleet.load_pos``); keep ``load_columns`` only (sorted, with every
        EV's load), ``None``: every load; record them as a sparse array (a big fleet).
    availability
        Export factor and cap per (day, EV) (``draw_availability``); ``None``: none.
    _fast_path
        With ``keep_ev_series=False``, ``unmanaged`` and ``v2g_peak_shave`` skip the step
        loop (same results up to round-off, :mod:`gridplan.ev.fastpath`); ``False`` forces
        the loop.

    Returns
    -------
    DispatchResult

    Raises
    ------
    ConfigError
        Unknown strategy, a grid-aware strategy without a context, bad windows, months or
        objective, an export limit below zero, inconsistent fleet values, a context or
        availability that does not match the fleet or period, or a linear program above
        ``max_lp_variables``.
    """
    strategy = Strategy.parse(strategy)
    _check_time_index(time_index)
    options = DispatchOptions(
        window_start_h=window_start_h,
        window_end_h=window_end_h,
        event_months=event_months,
        warmup_h=warmup_h,
        transformer_export_limit_kw=transformer_export_limit_kw,
        objective=objective,
        max_lp_variables=max_lp_variables,
        keep_ev_series=keep_ev_series,
        dtype=dtype,
    )
    _check_fleet(fleet)
    export_limit_kw = _export_limit(fleet, options.transformer_export_limit_kw)
    _check_context(strategy, context, fleet, time_index)
    sim, n_warm, step_h = _simulated_steps(time_index, fleet, options.warmup_h)
    sessions = Sessions(fleet, sim[0], len(sim), step_h, _limits(strategy, availability, fleet))
    export_cap = _export_cap(fleet, context, export_limit_kw)
    grid = GridView(context, sim, n_warm) if context is not None else None
    layout = _load_layout(fleet, _n_loads(n_loads, context, fleet), load_columns)
    setup = RunSetup(time_index, n_warm, strategy, options.keep_ev_series, np.dtype(options.dtype),
                     **layout, sparse_loads=sparse_loads)  # fmt: skip
    policy = _policy(strategy, sessions, grid, export_cap, sim, n_warm, options, rate, events)
    if _fast_path and not options.keep_ev_series:
        if strategy is Strategy.UNMANAGED or isinstance(policy, PeakShavePolicy):
            shave = policy if isinstance(policy, PeakShavePolicy) else None
            result = run_fast(setup, sessions, grid, shave)
            if result is not None:
                return result
    return run_loop(setup, sessions, policy, grid)


def _policy(
    strategy: Strategy,
    sessions: Sessions,
    grid: GridView | None,
    export_cap: ExportCap,
    sim: pd.DatetimeIndex,
    n_warm: int,
    options: DispatchOptions,
    rate: TouRate | None,
    events: EventCalendar | None,
) -> Policy:
    """The policy of ``strategy`` with its inputs (over the simulated steps ``sim``)."""
    if strategy is Strategy.UNMANAGED:
        return UnmanagedPolicy(sessions)
    if strategy is Strategy.TOU:
        return TouPolicy(sessions, (rate if rate is not None else PGE_EV2A).off_peak(sim))
    if strategy is Strategy.V2G_EVENT:
        calendar = events
        if calendar is None:
            calendar = EventCalendar.every_day(
                sim, options.window_start_h, options.window_end_h, options.event_months
            )
        return EventPolicy(sessions, calendar.active(sim), export_cap)
    assert grid is not None  # grid-aware strategies: checked by _check_context
    if strategy is Strategy.SMART:
        return SmartPolicy(sessions, grid)
    if strategy is Strategy.V2G_PEAK_SHAVE:
        return PeakShavePolicy(sessions, grid, export_cap, n_warm)
    days = sessions.fleet_days
    return OptimalPolicy.solve(
        sessions, grid, export_cap, days, options.objective, options.max_lp_variables
    )


def _limits(
    strategy: Strategy, availability: Availability | None, fleet: Fleet
) -> Availability | None:
    """The availability the sessions apply: checked against ``fleet``; ``None`` for
    strategies that do not export."""
    if availability is not None:
        availability.check(fleet)
    return availability if strategy.exports else None


def _export_cap(fleet: Fleet, context: DispatchContext | None, limit_kw: float) -> ExportCap:
    """The export limit per service transformer (the context's export groups, else the
    EVs' buses)."""
    if context is not None and context.export_group is not None:
        return ExportCap(context.export_group, limit_kw)
    return ExportCap(np.asarray(fleet.bus), limit_kw)


def _load_layout(fleet: Fleet, n_loads: int, load_columns: np.ndarray | None) -> dict[str, Any]:
    """The per-load aggregate's columns: every load, or ``load_columns`` (checked)."""
    load_pos = np.asarray(fleet.load_pos, dtype=np.int64)
    if load_columns is None:
        return {"n_loads": n_loads, "load_pos": load_pos}
    columns = np.asarray(load_columns, dtype=np.int64)
    if columns.ndim != 1 or (columns.size > 1 and (np.diff(columns) <= 0).any()):
        raise ConfigError(
            "load_columns must be sorted, unique load positions", field="load_columns"
        )
    pos = np.searchsorted(columns, load_pos)
    found = pos < columns.size
    found[found] = columns[pos[found]] == load_pos[found]
    if not found.all():
        raise ConfigError("load_columns must include the load of every EV", field="load_columns")
    return {
        "n_loads": columns.size,
        "load_pos": pos,
        "load_columns": columns,
        "total_loads": max(n_loads, int(columns.max(initial=-1)) + 1),
    }


def _n_loads(n_loads: int | None, context: DispatchContext | None, fleet: Fleet) -> int:
    """Columns of the per-load aggregate: given, the context's, or past the last EV load."""
    if n_loads is not None:
        return int(n_loads)
    if context is not None and context.n_loads is not None:
        return int(context.n_loads)
    return int(np.max(fleet.load_pos, initial=-1)) + 1


# --------------------------------------------------------------------------- input checks
def _check_time_index(time_index: pd.DatetimeIndex) -> None:
    """At least two steps; unequal steps are simulated by position (with a warning)."""
    if len(time_index) < 2:
        raise ConfigError("dispatch needs at least two time steps", field="time_index")
    steps = np.diff(np.asarray(time_index.asi8))
    if (steps != steps[0]).any():
        # e.g. local-time profiles with a daylight-saving gap or repeated hour: steps are
        # simulated by position, each ``step_h`` long
        log.warning("time_index steps are not all equal; dispatch treats steps by position")


def _check_context(
    strategy: Strategy,
    context: DispatchContext | None,
    fleet: Fleet,
    time_index: pd.DatetimeIndex,
) -> None:
    """A context when the strategy needs one, built for this fleet, with the same step."""
    if strategy.needs_context and context is None:
        raise ConfigError(
            f"strategy '{strategy.value}' needs the grid: pass "
            "context=DispatchContext.from_feeder(feeder, fleet, base_load_kw, time_index)",
            field="context",
        )
    if context is not None and context.ev_assets.shape[0] != fleet.n_ev:
        raise ConfigError(
            f"the context has {context.ev_assets.shape[0]} EVs, the fleet {fleet.n_ev} "
            "(expected a context built for this fleet)",
            field="context",
        )
    step = time_index[1] - time_index[0]
    if context is not None and len(context.time_index) > 1:
        ctx_step = context.time_index[1] - context.time_index[0]
        if ctx_step != step:
            raise ConfigError(
                f"the context's step {ctx_step} differs from the dispatch step {step}",
                field="context.time_index",
            )


def _simulated_steps(
    time_index: pd.DatetimeIndex, fleet: Fleet, warmup_h: float
) -> tuple[pd.DatetimeIndex, int, float]:
    """The simulated steps (the period after up to ``warmup_h`` of warm-up inside the
    fleet's days), the number of warm-up steps and the step length [h]."""
    step = time_index[1] - time_index[0]
    step_h = float(step / pd.Timedelta(hours=1))
    n_warm = int(max(0.0, warmup_h) / step_h)
    if len(fleet.days):
        n_warm = min(n_warm, max(0, int((time_index[0] - fleet.days[0]) / step)))
    if not n_warm:
        return time_index, 0, step_h
    start = time_index[0] - n_warm * step
    sim = pd.date_range(start, periods=len(time_index) + n_warm, freq=step)
    return pd.DatetimeIndex(sim, name=time_index.name), n_warm, step_h


def _check_fleet(fleet: Fleet) -> None:
    """Raise :class:`ConfigError` on fleet values no strategy can honour."""
    n = fleet.n_ev
    for name in ("battery_kwh", "charger_kw", "export_kw", "reserve_kwh", "target_kwh"):
        value = np.asarray(getattr(fleet, name), dtype=float)
        if value.shape != (n,):
            raise ConfigError(f"must have shape ({n},) (got {value.shape})", field=name)
        if not np.isfinite(value).all():
            raise ConfigError("holds NaN or inf", field=name)
        if (value < 0).any():
            i = int(np.flatnonzero(value < 0)[0])
            raise ConfigError(
                f"EV {i}: {value[i]:g} is below zero (expected >= 0)", field=f"fleet.{name}"
            )
    if (fleet.target_kwh > fleet.battery_kwh + 1e-9).any() or (
        fleet.reserve_kwh > fleet.target_kwh + 1e-9
    ).any():
        raise ConfigError(
            "expected reserve_kwh <= target_kwh <= battery_kwh for every EV", field="fleet"
        )
    for name in ("charge_efficiency", "discharge_efficiency"):
        eta = float(getattr(fleet, name))
        if not 0 < eta <= 1:
            raise ConfigError(f"{eta:g} is not in (0, 1]", field=f"fleet.{name}")


def _export_limit(fleet: Fleet, override: float | None) -> float:
    value = (
        float(getattr(fleet, "transformer_export_limit_kw", np.inf))
        if override is None
        else float(override)
    )
    if np.isnan(value) or value < 0:
        raise ConfigError(
            f"transformer export limit {value:g} kW is below zero (expected >= 0, inf for none)",
            field="transformer_export_limit_kw",
        )
    return value
