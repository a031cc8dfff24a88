"""One unit of a study: a (planning year, draw) pair, simulated end to end.

:func:`evaluate_unit` grows the base load to the year, draws the year's EV fleet, dispatches
it under every case's strategy, solves the power flow (every step, or the steps the
screening cannot certify) and applies the planning criteria. It returns a
:class:`UnitResult`; :meth:`gridplan.study.horizon.HorizonResult.from_units` stacks them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from gridplan.core.errors import GridplanError
from gridplan.ev.availability import Availability, derate_from_uniform, draw_availability
from gridplan.ev.dispatch import DispatchContext, DispatchResult, Strategy, dispatch
from gridplan.ev.events import ELRP, EventCalendar, TouRate, draw_event_calendar
from gridplan.ev.fleet import Fleet, Zones, sample_fleet
from gridplan.ev.mixed import case_behaviours, dispatch_mixed
from gridplan.grid.feeders import Feeder
from gridplan.grid.profiles import ProfileMatrix
from gridplan.grid.topology import downstream_of, service_bus_positions
from gridplan.planning.needs import (
    MonitoredAssets,
    asset_loading_pct,
    asset_metrics,
    characterize_need,
    deferral_requirement,
    excess_kva,
)
from gridplan.powerflow import (
    CompiledNetwork,
    compile_network,
    iter_timeseries,
    solve_timeseries,
)
from gridplan.powerflow.screening import ScreenBasis, build_basis, screen
from gridplan.study.config import StudyConfig
from gridplan.study.criteria import AssetCriteria, ambient_series_c

__all__ = [
    "CaseOutcome",
    "StudyUnit",
    "UnitContext",
    "UnitDetail",
    "UnitResult",
    "evaluate_unit",
]

#: Largest (time × EV) per-EV series the detail draw keeps [values] (float64 power, state of
#: charge and plug-in state: about 17 bytes per value, ~8 MB at this size; a peak week of a
#: few hundred EVs). Larger runs keep per-load series and take the dispatch's fast paths.
MAX_EV_SERIES = 500_000

#: Largest per-load EV power a unit keeps as a dense float64 array [values] (400 MB). Above
#: it, e.g. a year of a fleet at 2,000 of the 8,772 loads of a 9,099-bus grid (70 million
#: values), the dispatch records it as float32 (1e-6 kW of rounding on a home's EV power;
#: the dispatch itself runs in float64) in a sparse array, block by block: an EV
#: charges a few hours a day, so most values are zero (about a tenth as much memory).
MAX_FLOAT64_LOAD_POWER = 50_000_000

#: The need detail of a case without any excess (no rows).
NO_NEED_DETAIL = pd.DataFrame(
    {
        "asset_id": pd.Series(dtype=object),
        "peak_excess_kw": pd.Series(dtype=float),
        "max_daily_excess_kwh": pd.Series(dtype=float),
        "longest_excess_h": pd.Series(dtype=float),
        "days_with_excess": pd.Series(dtype=int),
        "excess_months": pd.Series(dtype=object),
        "excess_hours": pd.Series(dtype=object),
    }
)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class CaseOutcome:
    """What the planning criteria see of one case of one unit.

    Attributes
    ----------
    peak_loading_pct, hours_over_limit, overload_energy_kvah
        Per asset: peak loading [%], hours over the planning limit [h], energy over the
        limit [kVA·h], shape (asset,).
    need
        Loading criterion violated, per asset (:func:`gridplan.planning.needs.need_flags`);
        in an EV case a step whose power flow did not converge counts as over the limit.
    need_unsolved
        The need rests on steps that did not converge (without them there is none), per
        asset: "need (non-convergence)".
    min_vm_pu, max_vm_pu
        Lowest / highest service-point voltage of the period [pu].
    voltage_hours_out
        Hours with a service point outside the voltage band [h].
    voltage_need
        Voltage criterion violated.
    non_converged_steps
        Power-flow steps that did not converge.
    export_kwh, charge_kwh
        V2G export and charging energy of the whole fleet [kWh] (0 without EVs).
    """

    peak_loading_pct: np.ndarray
    hours_over_limit: np.ndarray
    overload_energy_kvah: np.ndarray
    need: np.ndarray
    need_unsolved: np.ndarray
    min_vm_pu: float
    max_vm_pu: float
    voltage_hours_out: float
    voltage_need: bool
    non_converged_steps: int
    export_kwh: float
    charge_kwh: float


@dataclass(frozen=True, eq=False)
class UnitDetail:
    """Time series of one unit, kept for the detail draw (figures, time-series table).

    Attributes
    ----------
    fleet
        The unit's fleet.
    dispatch
        Dispatch result per EV case.
    loading_pct
        Asset loading per case [%], (time, asset).
    converged
        Per case, whether each step converged, (time,).
    min_vm_pu
        Per case, lowest service-point voltage of each step [pu], (time,).
    bus_min_vm_pu
        Per case, lowest voltage of each bus over the period [pu], (bus,), NaN: never solved.
    """

    fleet: Fleet
    dispatch: dict[str, DispatchResult]
    loading_pct: dict[str, np.ndarray]
    converged: dict[str, np.ndarray]
    min_vm_pu: dict[str, np.ndarray]
    bus_min_vm_pu: dict[str, np.ndarray | None]


@dataclass(frozen=True, eq=False)
class UnitResult:
    """Everything one (planning year, draw) unit contributes to the horizon.

    Attributes
    ----------
    year, draw
        The planning year and the draw.
    load_factor
        Base-load factor of the year relative to the profiles [-].
    cases
        Outcome per case key, in the study's case order.
    need_detail
        Need characterization of the ``charging`` case: one row per asset with an excess
        (:func:`gridplan.planning.needs.characterize_need`).
    requirement_kw, requirement_kwh
        V2G power [kW] and energy [kWh] that would hold each asset within its limit in the
        ``charging`` case (EPRI DER-VET deferral logic), (asset,).
    evs_downstream, enrolled_downstream
        EVs / V2G-enrolled EVs downstream of each asset, (asset,).
    export_kw_downstream, usable_kwh_downstream
        Export limit [kW] and usable energy (target − reserve) [kWh] of the enrolled EVs
        downstream of each asset, (asset,).
    n_ev, n_enrolled
        EVs and V2G-enrolled EVs of the fleet.
    enrolled_kw
        Export limit of the fleet [kW].
    detail
        Time series (detail draw only).
    """

    year: int
    draw: int
    load_factor: float
    cases: dict[str, CaseOutcome]
    need_detail: pd.DataFrame
    requirement_kw: np.ndarray
    requirement_kwh: np.ndarray
    evs_downstream: np.ndarray
    enrolled_downstream: np.ndarray
    export_kw_downstream: np.ndarray
    usable_kwh_downstream: np.ndarray
    n_ev: int
    n_enrolled: int
    enrolled_kw: float
    detail: UnitDetail | None = None


# --------------------------------------------------------------------------- context
@dataclass(frozen=True, eq=False)
class UnitContext:
    """What every unit of a study shares (sent once to each worker process).

    The no-EV case depends on the year only: it is solved once per year and reused by every
    draw (with the year's screening basis when screening is on).
    """

    config: StudyConfig
    feeder: Feeder
    steps: slice
    time_index: pd.DatetimeIndex
    compiled: CompiledNetwork
    cases: dict[str, str | None]
    downstream: dict[str, np.ndarray]
    zones: Zones | None
    rate: TouRate | None = None
    calendar: EventCalendar | None = None
    screening: bool = True
    #: why screening is on or off (see gridplan.study.simulate.use_screening)
    screening_reason: str = "on"
    base_cache: dict[int, _Solved] = field(default_factory=dict)
    asset_base_cache: dict[int, np.ndarray] = field(default_factory=dict)
    #: steps per stage of the screening, summed over units (see gridplan.powerflow.screening)
    screen_stats: dict[str, int] = field(default_factory=dict)

    @cached_property
    def assets(self) -> MonitoredAssets:
        """The feeder's monitored assets as arrays."""
        return MonitoredAssets.from_table(self.feeder.assets)

    @cached_property
    def service(self) -> np.ndarray:
        """Positions of the service-point buses (buses with loads)."""
        return service_bus_positions(self.feeder)

    @cached_property
    def criteria(self) -> AssetCriteria:
        """The planning criterion of each asset (loading rule or transformer thermal model)."""
        return AssetCriteria(
            self.config.criteria,
            self.assets,
            ambient_series_c(self.config.criteria, self.time_index),
        )

    @cached_property
    def monitored_outputs(self) -> dict[str, Any]:
        """``solve_timeseries`` keywords that extract only what the criteria read: the
        monitored lines and transformers and the service-point buses."""
        kind, element = np.asarray(self.assets.kind), np.asarray(self.assets.element)
        return {
            "lines": [int(e) for e in element[kind == "line"]],
            "trafos": [int(e) for e in element[kind == "trafo"]],
            "buses": [int(b) for b in self.feeder.net.bus.index[self.service]],
        }

    @cached_property
    def allowed_hours(self) -> np.ndarray:
        """Hours each asset may spend over its limit [h], (asset,)."""
        crit = self.config.criteria
        kind = self.feeder.assets.kind.to_numpy()
        return np.where(kind == "trafo", crit.allowed_hours_trafo, crit.allowed_hours_line)

    def add_stats(self, stats: dict[str, int]) -> None:
        """Add screening step counts."""
        for key, value in stats.items():
            self.screen_stats[key] = self.screen_stats.get(key, 0) + value

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # for worker processes started by "spawn": the compiled network holds a sparse LU
        # factorisation that does not pickle; it is rebuilt from the net on arrival
        skip = {"compiled", "base_cache", "screen_stats", "asset_base_cache"}
        state = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip
        }
        return (_rebuild_context, (state,))


def _rebuild_context(state: dict[str, Any]) -> UnitContext:
    return UnitContext(compiled=compile_network(state["feeder"].net), **state)


# --------------------------------------------------------------------------- one unit
@dataclass(frozen=True, eq=False)
class _Solved:
    """One case solved: its outcome and the series the detail and the need use."""

    outcome: CaseOutcome
    loading_pct: np.ndarray
    converged: np.ndarray
    min_vm_pu: np.ndarray
    bus_min_vm_pu: np.ndarray | None
    basis: ScreenBasis | None = None


@dataclass(frozen=True, eq=False)
class _Inputs:
    """The year's base load and generation over the study period [kW, kvar], read row by
    row (:class:`~gridplan.grid.profiles.ProfileMatrix`: a big feeder's year is never
    held as (time × load))."""

    factor: float
    load_p_kw: ProfileMatrix
    load_q_kvar: ProfileMatrix
    sgen_p_kw: ProfileMatrix

    def with_ev(self, result: DispatchResult | None) -> ProfileMatrix:
        """The base load plus a dispatch's EV power per load [kW] (still row by row)."""
        if result is None:
            return self.load_p_kw
        power = result.load_power_kw  # an array, or sparse for a big fleet
        if result.load_columns is None:
            return self.load_p_kw.plus(np.arange(power.shape[1]), power)
        return self.load_p_kw.plus(result.load_columns, power)


def _year_inputs(ctx: UnitContext, year: int) -> _Inputs:
    config, feeder = ctx.config, ctx.feeder
    factor = config.load_growth.factor(year, config.base_year, feeder.growth_rate)
    return _Inputs(
        factor=factor,
        load_p_kw=feeder.load_p.take(ctx.steps).scaled(factor),
        load_q_kvar=feeder.load_q.take(ctx.steps).scaled(factor),
        sgen_p_kw=feeder.sgen_p.take(ctx.steps),
    )


def _bus_min(vm_pu: np.ndarray) -> np.ndarray:
    """Lowest voltage of each bus over the steps that solved [pu], (bus,); NaN if none."""
    with np.errstate(all="ignore"):
        low = np.where(np.isfinite(vm_pu), vm_pu, np.inf).min(axis=0)
    low[np.isinf(low)] = np.nan
    return low


def service_extremes(vm_pu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest service voltage of each step [pu]; ``inf``/``-inf`` where the
    step did not converge (NaN), so that it counts neither as low nor as high."""
    with np.errstate(all="ignore"):
        finite = np.isfinite(vm_pu)
        lo = np.min(np.where(finite, vm_pu, np.inf), axis=1, initial=np.inf)
        hi = np.max(np.where(finite, vm_pu, -np.inf), axis=1, initial=-np.inf)
    return lo, hi


def event_calendar(ctx: UnitContext, rng: np.random.Generator) -> EventCalendar | None:
    """The V2G event calendar of one (year, draw): every day (``None``), drawn (ELRP) or
    from a file, on the profile year's dates."""
    spec = ctx.config.dispatch
    if spec.events == "every_day":
        return None
    if spec.events == "elrp":
        return draw_event_calendar(int(ctx.feeder.time_index[0].year), rng, program=ELRP)
    return ctx.calendar


class StudyUnit:
    """The state of one unit (a planning year and a draw) while its cases are dispatched
    and solved in order.

    Building one draws the unit's fleet, V2G event calendar and availability from the
    study's seed (the same streams as :func:`evaluate_unit`), so the targeted V2G search
    (:mod:`gridplan.study.opportunities`) sees exactly the study's (year, draw).

    Parameters
    ----------
    ctx
        The study's unit context.
    year
        Planning year [year].
    draw
        Draw (trajectory) number [-].
    keep_detail
        Keep the per-step series of the detail unit (time series, figures).
    """

    def __init__(self, ctx: UnitContext, year: int, draw: int, keep_detail: bool) -> None:
        self.ctx = ctx
        self.year = year
        self.keep_detail = keep_detail
        self.inputs = _year_inputs(ctx, year)
        config = ctx.config
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, year, draw]))
        if config.horizon.draws_as == "trajectories":  # one fleet path per draw, nested
            self.fleet = sample_fleet(
                ctx.feeder,
                config.fleet,
                year,
                np.random.default_rng(np.random.SeedSequence([config.seed, draw])),
                zones=ctx.zones,
                horizon=config.trajectory_years(),
                period=ctx.time_index,
            )
        else:
            self.fleet = sample_fleet(
                ctx.feeder, config.fleet, year, rng, zones=ctx.zones, period=ctx.time_index
            )
        self.events = event_calendar(ctx, rng)
        # whether enrolled EVs answer: drawn on a stream of its own (fleet and events keep
        # theirs), from the fleet before any case changes it
        params = config.availability.parameters()
        self.availability = (
            None
            if params.is_perfect
            else draw_availability(
                self.fleet,
                params,
                np.random.default_rng(np.random.SeedSequence([config.seed, year, draw, 19])),
                # an EV's performance derate is its own, kept along the trajectory; the
                # day-by-day opt-outs, lost communications and overrides are drawn per year
                derate=None
                if self.fleet.ev_uniform is None
                else derate_from_uniform(self.fleet.ev_uniform, params),
            )
        )
        self.dispatch_context: DispatchContext | None = None
        self.dispatched: dict[str, DispatchResult] = {}
        # the year's screening basis, and the charging case reused by the V2G cases
        self.basis: ScreenBasis | None = None
        self.known: tuple[np.ndarray, Any] | None = None

    # ------------------------------------------------------------------ dispatch
    def grid_context(self) -> DispatchContext:
        """The grid context of the grid-aware strategies (built once per unit)."""
        if self.dispatch_context is None:
            ctx, inputs = self.ctx, self.inputs
            context = DispatchContext.from_feeder(
                ctx.feeder,
                self.fleet,
                inputs.load_p_kw,
                ctx.time_index,
                sgen_p_kw=inputs.sgen_p_kw,
                asset_base_kw=ctx.asset_base_cache.get(self.year),
            )
            if self.year not in ctx.asset_base_cache:  # the same for every draw
                ctx.asset_base_cache.clear()
                ctx.asset_base_cache[self.year] = context.asset_base_kw
            self.dispatch_context = dataclasses.replace(
                context,
                asset_limit_kw=context.asset_limit_kw * ctx.config.dispatch.target_fraction,
            )
        return self.dispatch_context

    def behaviours(self, case: str, strategy: str) -> np.ndarray | None:
        """Each EV's strategy in ``case`` when the fleet mixes charging behaviours: the
        ``charging`` case follows every EV's own behaviour, the V2G cases (``v1g``
        included) put the enrolled EVs on the case's V2G strategy; extra charging cases
        (``charging:<name>``) stay uniform what-ifs. ``None``: no mix."""
        if case.startswith("charging:"):
            return None
        return case_behaviours(self.fleet, None if case == "charging" else strategy)

    def dispatch(self, case: str, strategy: str) -> DispatchResult:
        """Dispatch the fleet under one strategy (each EV its own, with a charging mix)."""
        behaviours = self.behaviours(case, strategy)
        needed = {strategy} if behaviours is None else set(behaviours)
        grid_aware = any(Strategy(s).needs_context for s in needed)
        context = self.grid_context() if grid_aware else self.dispatch_context
        n_steps = len(self.inputs.load_p_kw)
        fleet = self.fleet
        if case == "v1g":  # the V2G strategy's charging management without export
            fleet = dataclasses.replace(fleet, export_kw=np.zeros_like(fleet.export_kw))
        # per-EV series only for the detail draw, and only while they are small (a full
        # year of a large MV fleet would take gigabytes); figures fall back to per-load series
        keep = self.keep_detail and n_steps * self.fleet.n_ev <= MAX_EV_SERIES
        availability = None if case == "v2g_perfect" else self.availability
        result = self.run_dispatch(fleet, strategy, behaviours, context, availability, keep)
        if self.keep_detail:  # the detail unit's figures and tables read them
            self.dispatched[case] = result
        return result

    def run_dispatch(
        self,
        fleet: Fleet,
        strategy: str,
        behaviours: np.ndarray | None,
        context: DispatchContext | None,
        availability: Availability | None,
        keep_ev_series: bool,
    ) -> DispatchResult:
        """Dispatch ``fleet`` with the study's dispatch settings and this unit's events:
        under ``strategy``, or each EV under its own of ``behaviours`` (a charging mix)."""
        ctx, spec = self.ctx, self.ctx.config.dispatch
        columns = np.unique(fleet.load_pos)
        big = len(ctx.time_index) * columns.size > MAX_FLOAT64_LOAD_POWER
        options: dict[str, Any] = {
            "window_start_h": spec.window_start_h,
            "window_end_h": spec.window_end_h,
            "event_months": tuple(spec.event_months),
            "context": context,
            "rate": ctx.rate,
            "events": self.events,
            "availability": availability,
            "objective": spec.objective,
            "n_loads": len(ctx.feeder.net.load),
            "keep_ev_series": keep_ev_series,
            # EV power for the loads with EVs only, not (time × every load)
            "load_columns": columns,
            "dtype": np.float32 if big else np.float64,
            "sparse_loads": big,
        }
        if behaviours is None:
            return dispatch(fleet, ctx.time_index, strategy, **options)
        return dispatch_mixed(fleet, ctx.time_index, behaviours, **options)

    # ------------------------------------------------------------------ power flow
    def _solve_rows(
        self, ev_kw: np.ndarray
    ) -> Any:  # the screening's callback: (rows) -> loading, vm min, vm max, converged
        ctx, inputs = self.ctx, self.inputs

        def solve_rows(rows: np.ndarray) -> tuple[np.ndarray, ...]:
            flow = solve_timeseries(
                ctx.compiled,
                inputs.load_p_kw[rows] + ev_kw[rows],
                load_q_kvar=inputs.load_q_kvar[rows],
                sgen_p_kw=inputs.sgen_p_kw[rows],
                **ctx.monitored_outputs,
            )
            lo, hi = service_extremes(flow.vm_pu)
            loading = asset_loading_pct(flow, ctx.assets)
            return loading, lo, hi, np.asarray(flow.converged, dtype=bool)

        return solve_rows

    def _screened(self, case: str, ev_kw: np.ndarray) -> tuple[np.ndarray, ...]:
        """Solve an EV case at the steps the screening cannot certify."""
        ctx, crit = self.ctx, self.ctx.config.criteria
        assert self.basis is not None
        sc = screen(
            self.basis,
            ev_kw,
            self._solve_rows(ev_kw),
            vm_band_pu=(crit.vm_min_pu, crit.vm_max_pu),
            requirement=case == "charging",
            known=self.known,
        )
        if self.known is None:
            self.known = (ev_kw, sc)
        ctx.add_stats(sc.stats)
        ctx.add_stats({"steps": len(ev_kw)})
        return sc.loading_pct, sc.converged, sc.vm_min_pu, sc.vm_max_pu

    def asset_loading(self, ev: DispatchResult | None) -> np.ndarray:
        """Loading of the monitored assets [%], (time, asset), with a dispatch's EV power
        (``None``: the base load), solved chunk by chunk: only the monitored branches are
        extracted."""
        ctx = self.ctx
        outputs = {k: v for k, v in ctx.monitored_outputs.items() if k != "buses"}
        loading = [
            asset_loading_pct(flow, ctx.assets)
            for _rows, flow in iter_timeseries(
                ctx.compiled,
                self.inputs.with_ev(ev),
                load_q_kvar=self.inputs.load_q_kvar,
                sgen_p_kw=self.inputs.sgen_p_kw,
                buses=[],
                **outputs,
            )
        ]
        return np.concatenate(loading) if loading else np.zeros((0, len(ctx.assets)))

    def _full(self, ev: DispatchResult | None, base_case: bool) -> tuple[Any, ...]:
        """Solve every step; the base case also builds the year's screening basis.

        Only the screening basis (small feeders: :data:`SCREENING_MAX_NODES`) needs the
        whole flow at once. Otherwise the steps are solved chunk by chunk
        (:func:`~gridplan.powerflow.iter_timeseries`) and each chunk is reduced before the
        next: the monitored branches' loading, the service buses' extremes and, for the
        base case and the detail unit (figures, maps), each bus's lowest voltage -- a study
        never holds (time × every bus) for a big feeder."""
        ctx, inputs = self.ctx, self.inputs
        if base_case and ctx.screening:
            return self._full_with_basis(inputs.with_ev(ev))
        everything = base_case or self.keep_detail
        outputs = dict(ctx.monitored_outputs)
        if everything:
            del outputs["buses"]  # every bus, reduced to its minimum chunk by chunk
        loading, converged, lows, highs = [], [], [], []
        bus_vm: np.ndarray | None = None
        for _rows, flow in iter_timeseries(
            ctx.compiled,
            inputs.with_ev(ev),
            load_q_kvar=inputs.load_q_kvar,
            sgen_p_kw=inputs.sgen_p_kw,
            **outputs,
        ):
            loading.append(asset_loading_pct(flow, ctx.assets))
            converged.append(np.asarray(flow.converged, dtype=bool))
            lo, hi = service_extremes(flow.vm_pu[:, ctx.service] if everything else flow.vm_pu)
            lows.append(lo)
            highs.append(hi)
            if everything:
                chunk_min = _bus_min(flow.vm_pu)
                bus_vm = chunk_min if bus_vm is None else np.fmin(bus_vm, chunk_min)
        return (
            np.concatenate(loading),
            np.concatenate(converged),
            np.concatenate(lows),
            np.concatenate(highs),
            bus_vm,
        )

    def _full_with_basis(self, load_p: ProfileMatrix) -> tuple[Any, ...]:
        """The base case of a screened study: the whole flow at once (the year's screening
        basis reads it; screening is only on for small feeders)."""
        ctx, inputs = self.ctx, self.inputs
        base_p, base_q, sgen_p = (
            inputs.load_p_kw.to_array(),
            inputs.load_q_kvar.to_array(),
            inputs.sgen_p_kw.to_array(),
        )
        flow = solve_timeseries(
            ctx.compiled,
            load_p.to_array(),
            load_q_kvar=base_q,
            sgen_p_kw=sgen_p,
        )
        loading = asset_loading_pct(flow, ctx.assets)
        converged = np.asarray(flow.converged, dtype=bool)
        vm_min, vm_max = service_extremes(flow.vm_pu[:, ctx.service])
        assets = ctx.assets
        self.basis = build_basis(
            ctx.compiled,
            flow,
            base_p,
            base_q,
            sgen_p,
            None,
            assets.kind,
            assets.element,
            assets.limit_pct,
            ctx.service,
        )
        return loading, converged, vm_min, vm_max, _bus_min(flow.vm_pu)

    def solve(self, case: str, strategy: str | None) -> _Solved:
        """Dispatch and solve one case (the base case from the year's cache if solved)."""
        ctx = self.ctx
        if strategy is None and self.year in ctx.base_cache:
            cached = ctx.base_cache[self.year]
            self.basis = cached.basis
            return cached
        export_kwh = charge_kwh = 0.0
        result = None
        if strategy is not None:
            result = self.dispatch(case, strategy)
            export_kwh = float(result.export_kwh.sum())
            charge_kwh = float(result.charge_kwh.sum())
        bus_vm = None
        screened = ctx.screening and not self.keep_detail
        if screened and result is not None and self.basis is not None:
            # screening is on for small feeders only: the EV power as a (time, load) array
            ev_kw = np.asarray(result.power_by_load_kw, dtype=float)
            loading, converged, vm_min, vm_max = self._screened(case, ev_kw)
        else:
            loading, converged, vm_min, vm_max, bus_vm = self._full(result, strategy is None)
        if strategy is None and not converged.any():
            raise GridplanError(
                f"no power-flow step of the no-EV case converged in {self.year} (feeder "
                f"'{ctx.feeder.name}'): the feeder cannot carry its own base load; check its "
                "network and profiles (nothing was written)"
            )
        outcome = self._outcome(
            loading, converged, vm_min, vm_max, export_kwh, charge_kwh, ev_case=strategy is not None
        )
        solved = _Solved(outcome, loading, converged, vm_min, bus_vm, self.basis)
        if strategy is None:
            ctx.base_cache.clear()
            ctx.base_cache[self.year] = solved
        return solved

    # ------------------------------------------------------------------ criteria
    def _outcome(
        self,
        loading: np.ndarray,
        converged: np.ndarray,
        vm_min: np.ndarray,
        vm_max: np.ndarray,
        export_kwh: float,
        charge_kwh: float,
        *,
        ev_case: bool,
    ) -> CaseOutcome:
        ctx, crit = self.ctx, self.ctx.config.criteria
        step_h = ctx.feeder.step_h
        allowed = ctx.allowed_hours
        need = ctx.criteria.need(loading, allowed, step_h, unsolved_over=False)
        need_unsolved = np.zeros_like(need)
        if ev_case and not converged.all():  # divergence under added load: a need
            with_unsolved = ctx.criteria.need(loading, allowed, step_h, unsolved_over=True)
            need_unsolved = with_unsolved & ~need
            need = with_unsolved
        metrics = asset_metrics(loading, ctx.assets, ctx.time_index, step_h)
        out_band = (vm_min < crit.vm_min_pu) | (vm_max > crit.vm_max_pu)
        voltage_hours = float(out_band.sum() * step_h)
        return CaseOutcome(
            peak_loading_pct=metrics.peak_loading_pct.to_numpy(),
            hours_over_limit=metrics.hours_over_limit.to_numpy(),
            overload_energy_kvah=metrics.overload_energy_kvah.to_numpy(),
            need=need,
            need_unsolved=need_unsolved,
            min_vm_pu=float(np.min(vm_min, initial=np.inf)),
            max_vm_pu=float(np.max(vm_max, initial=-np.inf)),
            voltage_hours_out=voltage_hours,
            voltage_need=voltage_hours > crit.allowed_hours_voltage + 1e-9,
            non_converged_steps=int((~converged).sum()),
            export_kwh=export_kwh,
            charge_kwh=charge_kwh,
        )

    def charging_need(self, solved: _Solved) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """The need of the charging case: its characterization and the V2G power [kW] and
        energy [kWh] that would meet it."""
        ctx, config = self.ctx, self.ctx.config
        n_assets = len(ctx.assets)
        if not solved.outcome.hours_over_limit.any():
            # never over any limit: no need to describe, nothing to supply
            return NO_NEED_DETAIL, np.zeros(n_assets), np.zeros(n_assets)
        rating, limit = ctx.assets.rating_kva, ctx.assets.limit_pct
        step_h = ctx.feeder.step_h
        excess = excess_kva(solved.loading_pct, rating, limit)
        rows = characterize_need(excess, ctx.time_index, step_h)
        rows.insert(0, "asset_id", list(ctx.assets.asset_id))
        load_kva = np.nan_to_num(solved.loading_pct, nan=0.0) / 100.0 * rating
        power, energy = deferral_requirement(
            load_kva,
            rating * limit / 100.0,
            step_h,
            roundtrip_efficiency=config.fleet.charge_efficiency * config.fleet.discharge_efficiency,
        )
        return rows[rows.peak_excess_kw > 0], power, energy

    def downstream(self) -> np.ndarray:
        """Per asset: EVs, enrolled EVs, their export limit [kW] and usable energy [kWh]
        downstream, shape (asset, 4)."""
        fleet = self.fleet
        usable = np.where(fleet.v2g_enrolled, fleet.target_kwh - fleet.reserve_kwh, 0.0)
        below = downstream_of(self.ctx.downstream, self.ctx.assets.asset_id, fleet.bus).T
        enrolled = np.asarray(fleet.v2g_enrolled, dtype=float)
        per_ev = np.column_stack(
            [np.ones(fleet.n_ev), enrolled, fleet.export_kw * enrolled, usable]
        ).reshape(fleet.n_ev, 4)
        return below.astype(float) @ per_ev  # (asset, 4)


def evaluate_unit(ctx: UnitContext, year: int, draw: int, *, keep_detail: bool) -> UnitResult:
    """Simulate one planning year and draw: fleet, dispatch, power flow, criteria.

    Parameters
    ----------
    ctx
        The study's shared context.
    year, draw
        Planning year and draw; the fleet's random numbers derive from
        ``(config.seed, year, draw)``.
    keep_detail
        Keep the time series (:class:`UnitDetail`); every step is then solved.
    """
    unit = StudyUnit(ctx, year, draw, keep_detail)
    outcomes: dict[str, CaseOutcome] = {}
    solved_cases: dict[str, _Solved] = {}
    n_assets = len(ctx.assets)
    need_detail, req_kw, req_kwh = NO_NEED_DETAIL, np.zeros(n_assets), np.zeros(n_assets)
    for case, strategy in ctx.cases.items():
        solved = unit.solve(case, strategy)
        outcomes[case] = solved.outcome
        solved_cases[case] = solved
        if case == "charging":
            need_detail, req_kw, req_kwh = unit.charging_need(solved)
    down = unit.downstream()
    fleet = unit.fleet
    detail = None
    if keep_detail:
        detail = UnitDetail(
            fleet=fleet,
            dispatch=unit.dispatched,
            loading_pct={c: s.loading_pct for c, s in solved_cases.items()},
            converged={c: s.converged for c, s in solved_cases.items()},
            min_vm_pu={c: s.min_vm_pu for c, s in solved_cases.items()},
            bus_min_vm_pu={c: s.bus_min_vm_pu for c, s in solved_cases.items()},
        )
    return UnitResult(
        year=year,
        draw=draw,
        load_factor=unit.inputs.factor,
        cases=outcomes,
        need_detail=need_detail,
        requirement_kw=req_kw,
        requirement_kwh=req_kwh,
        evs_downstream=down[:, 0],
        enrolled_downstream=down[:, 1],
        export_kw_downstream=down[:, 2],
        usable_kwh_downstream=down[:, 3],
        n_ev=fleet.n_ev,
        n_enrolled=int(fleet.v2g_enrolled.sum()),
        enrolled_kw=float(fleet.export_kw.sum()),
        detail=detail,
    )
