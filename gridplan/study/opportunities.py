"""Deferral opportunities: targeted V2G per constrained asset, procure or build (issue 20).

For each monitored asset with a need (``charging`` case) in the horizon, and each year from
its P50 year of need on, :func:`opportunities_table` finds the least number of V2G EVs
downstream of it that must be enrolled to keep it within its planning criterion in at
least ``horizon.confidence`` of the draws, runs the procure-or-build comparison
(:func:`gridplan.planning.targeting.procure_or_build`) and returns one row per asset (the
``deferral_opportunities.csv`` table, in the spirit of California's Distribution Deferral
Opportunity Report).

Method
------
*Who enrolls.* In each draw (a trajectory), the V2G-capable EVs downstream of the asset
sign up in a fixed random priority order, drawn once per trajectory: a salt from the
draw's own ``numpy`` Generator mixed with each EV's identity (its home and its first
session, the same in every year of a trajectory's nested fleets), so an EV keeps its place
in every year. Enrolling the first ``k`` gives them the V2G equipment of their model (the
bidirectional charger of the vehicle catalog, its export limit); every other EV is not
enrolled (under ``v2g_peak_shave`` it charges ``unmanaged``).

*Search.* For each ``k`` tried, the EVs downstream of the asset are dispatched under the
study's V2G strategy with the asset alone as the grid context (its base load, its planning
limit times ``dispatch.target_fraction``) and the draw's availability (opt-outs, overrides,
lost communications, derates; caps from each EV's own export limit): plugged-in hours,
reserve, charger and export limits and departure energy are the dispatch's own. The
asset's load is judged against its criterion as the base case's power-flow loading [kVA]
plus the EVs' power [kW] (reactive power and losses of the base load kept, those the EVs
add ignored); no power flow inside the search. The year's targeted enrollment is the
least ``k`` that holds in ``confidence`` of the draws (a draw with fewer capable EVs
enrolls all of them), found by
:func:`~gridplan.planning.targeting.smallest_enrollment` on that share: bisection in the
year of need, then galloping from the year before's enrollment; each probe stops as soon
as enough draws hold or fail. Draws whose charging case (the study's power flow) has no
need hold without a dispatch when the V2G strategy without enrollment charges as that
case does.

*Verification.* For each year, the whole fleet is dispatched again with exactly the
chosen enrollments of every asset in its V2G years (every monitored asset in the
context) and the power flow is solved; an asset holds in a draw when its criterion is
met. ``search_share`` and ``verified_share`` report both.

*Not deferrable.* When even every V2G-capable EV downstream does not hold the asset in its
year of need in ``confidence`` of the draws: "no V2G-capable EV downstream", "EVs away at
the need hours" (most of the energy over the limit, with all enrolled, falls in steps when
none of them is plugged in) or "too few EVs (export power or energy short)".

*Plans compared* (least present cost wins, ties to the plan listed first; ``plan_kind``):

- ``build``: the planned upgrade (the study's choice for the need-year peak) in the year of
  need: its present worth (``build_present_cost_usd``).
- ``v2g_then_build``: the targeted program until year ``X``, then the planned upgrade
  (:func:`~gridplan.planning.targeting.procure_or_build`; V2G for at most
  :data:`MAX_DEFERRAL_YEARS`).
- ``smaller_upgrade_plus_v2g``: a standard size of the asset's upgrade options larger than
  today's rating but smaller than the planned one
  (:func:`~gridplan.planning.upgrades.smaller_upgrades`; the largest
  :data:`MAX_HYBRID_SIZES` tried, each only if it costs less than the planned one), built
  in the year of need, plus the targeted enrollment that keeps that smaller asset within
  its criterion in every year to the horizon's end: the same search and verification with
  the asset's rating replaced by the smaller size's (loading judged against it, the
  dispatch limit scaled with it; the base load through the asset and the power flow keep
  today's impedance). Present cost: the smaller upgrade's present worth plus the
  program's ratepayer cost (:func:`~gridplan.planning.targeting.hybrid_plan`); nothing is
  costed after the horizon, as for the planned upgrade. Not applicable (``hybrid_note``)
  without a standard size in between; not available when V2G does not hold the smaller
  size in some year; its search stops once its present cost so far passes building the
  planned upgrade (it cannot win: program costs only add).

*Nested assets.* An EV behind a distribution transformer is also behind the feeder-head
line or transformer upstream (:func:`~gridplan.grid.topology.downstream_buses`: an asset
whose downstream buses all lie downstream of another is nested in it). Assets are searched
bottom-up (fewest downstream buses first), and the EVs that the nested assets' targeted
enrollments take in a year sign up first for the upstream asset. Rule: when a nested
asset's program is adopted (its least-cost plan is ``v2g_then_build``, in the years it runs
V2G), those shared EVs are enrolled and paid for downstream; the upstream program counts
them first and costs only its increment ``max(k − shared, 0)`` with the shared EVs' export,
charging and capacity left out of its flows
(:func:`~gridplan.planning.targeting.credited_enrollment`; ``shared_enrolled_evs``: the most
shared EVs in a year of the best V2G plan). ``enrolled_needed`` and ``enrollment_by_year``
stay the physical enrollment the asset needs, shared EVs included. A nested asset whose
least-cost plan is the smaller upgrade plus V2G is not credited upstream (conservative:
the upstream program may be costed a few EVs too many, never too few).

The feeder-wide program of the study's V2G case stays the second view (its deferral and
value are in the study's asset table and ``economics``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from gridplan.ev.availability import Availability, draw_availability
from gridplan.ev.dispatch import DispatchContext, DispatchResult, Strategy
from gridplan.ev.fleet import Fleet
from gridplan.ev.mixed import case_behaviours
from gridplan.grid.topology import downstream_buses
from gridplan.planning.economics import ProgramCosts
from gridplan.planning.targeting import (
    TIERS,
    HybridCosts,
    ProgramFlows,
    choose_plan,
    credited_enrollment,
    hybrid_plan,
    procure_or_build,
    smallest_enrollment,
    tier,
    upgrade_present_worth_usd,
)
from gridplan.planning.upgrades import smaller_upgrades
from gridplan.study.config import StudyConfig
from gridplan.study.horizon import HorizonResult
from gridplan.study.tables import lower_median
from gridplan.study.units import StudyUnit, UnitContext

log = logging.getLogger(__name__)

__all__ = [
    "MAX_DEFERRAL_YEARS",
    "MAX_HYBRID_SIZES",
    "MAX_TARGETED_ASSETS",
    "OPPORTUNITY_COLUMNS",
    "TargetedSearch",
    "opportunities_table",
    "program_costs",
    "v2g_equipment",
    "with_enrollment",
]

#: Largest number of assets with a need for which a study runs the targeted search (each
#: asset costs a few V2G dispatches of its downstream EVs per year and draw) [-]. The
#: quick start has 24.
MAX_TARGETED_ASSETS = 40

#: Years of V2G searched from an asset's year of need [yr]: plans defer the upgrade by at
#: most this many years (stated assumption: a deferral plan is revisited in each yearly
#: planning cycle, and later years add ever smaller present values; it also bounds the
#: search's cost). ``deferrable_capped`` says when the horizon or this cap ended the search.
MAX_DEFERRAL_YEARS = 5

#: Smaller standard upgrade sizes tried per asset for "a smaller upgrade plus V2G" (the
#: largest ones below the planned size first: they need the fewest EVs) [-]. Each costs a
#: targeted search and a verification per year to the horizon's end, stopped as soon as its
#: present cost passes building the planned upgrade.
MAX_HYBRID_SIZES = 2

#: Columns of the deferral-opportunity table, in order (module docstring: the plans and
#: the nesting rule). ``plan``, ``plan_kind`` (one of
#: :data:`~gridplan.planning.targeting.PLAN_KINDS`) and ``upgrade_year`` are the
#: least-present-cost plan; ``deferral_years``, ``deferral_value_usd``,
#: ``program_cost_usd``, ``net_benefit_usd`` (ratepayer) and ``participant_net_usd`` are
#: those of the best plan "V2G until X, then upgrade" (X after the need year), so a row
#: where another plan wins still shows what V2G would cost; ``break_even_incentive_usd`` is
#: the upfront incentive per enrolled EV below which such a plan beats building;
#: ``certainty`` the lowest verified share over the chosen plan's V2G years (the best V2G
#: plan's when building wins); ``value_usd_per_kw_yr`` the value of a one-year deferral at
#: the need year per kW of need [USD/kW-yr]. ``*_present_cost_usd`` is each plan's present
#: cost [USD]; ``smaller_upgrade_*`` and ``hybrid_*`` describe the best "smaller upgrade
#: plus V2G" (``hybrid_note``: why it is not applicable or not available, else the years it
#: holds); ``shared_enrolled_evs`` the EVs of the enrollment already paid for by adopted
#: nested programs (not costed again).
OPPORTUNITY_COLUMNS = (
    "asset_id", "kind", "rating_kva", "need_year_p50", "need_year_p90", "need_kw",
    "need_kwh", "need_duration_h", "need_hours", "evs_downstream", "v2g_capable_downstream",
    "enrolled_needed", "enrolled_needed_max", "enrollment_by_year", "search_share",
    "verified_share", "deferrable_years", "deferrable_capped", "plan", "upgrade_year",
    "deferral_years", "upgrade_cost_usd", "deferral_value_usd", "program_cost_usd",
    "net_benefit_usd", "participant_net_usd", "break_even_incentive_usd",
    "value_usd_per_kw_yr", "certainty", "tier", "reason",
    "feeder_wide_deferral_years", "feeder_wide_deferral_value_usd",
    "plan_kind", "build_present_cost_usd", "v2g_then_build_present_cost_usd",
    "smaller_upgrade_kva", "smaller_upgrade_cost_usd", "hybrid_enrolled_max",
    "hybrid_program_cost_usd", "hybrid_present_cost_usd", "hybrid_net_benefit_usd",
    "hybrid_certainty", "hybrid_note", "shared_enrolled_evs",
)  # fmt: skip


# --------------------------------------------------------------------------- enrollment
def v2g_equipment(fleet: Fleet, config: StudyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Charging limit [kW] and export limit [kW] of each EV once enrolled, (ev,) each.

    Enrolled EVs keep theirs; a V2G-capable EV not enrolled gets its vehicle's
    bidirectional charger (vehicle catalog), as :func:`gridplan.ev.fleet.sample_fleet`
    equips enrolled EVs (the scenario's uniform ``charger_kw``/``export_kw`` overrides
    apply); EVs that are not capable get 0 export.
    """
    scenario = config.fleet
    charger_kw = np.asarray(fleet.charger_kw, dtype=float).copy()
    export_kw = np.asarray(fleet.export_kw, dtype=float).copy()
    new = np.flatnonzero(np.asarray(fleet.v2g_capable) & ~np.asarray(fleet.v2g_enrolled))
    if new.size:
        vehicles, chargers = scenario.catalogs()
        spec = vehicles.reindex(fleet.vehicle[new])
        ch = chargers.reindex(spec.bidirectional_charger.to_numpy(dtype=object))
        dc = ch.level.astype(str).to_numpy() == "dc"
        power = ch.power_kw.to_numpy(float)
        ac = np.minimum(spec.max_ac_charge_kw.to_numpy(float), power)
        kw = np.where(dc, power, ac)
        ex = np.minimum(spec.v2g_export_kw.to_numpy(float), ch.export_kw.to_numpy(float))
        charger_kw[new] = scenario.charger_kw if scenario.charger_kw is not None else kw
        export_kw[new] = scenario.export_kw if scenario.export_kw is not None else ex
    export_kw = np.where(np.asarray(fleet.v2g_capable), np.nan_to_num(export_kw), 0.0)
    charger_kw = np.where(np.isnan(charger_kw), fleet.charger_kw, charger_kw)
    return charger_kw, export_kw


def with_enrollment(
    fleet: Fleet, equipment: tuple[np.ndarray, np.ndarray], enrolled: np.ndarray
) -> Fleet:
    """The fleet with exactly ``enrolled`` (bool, (ev,)) enrolled in V2G, equipped by
    :func:`v2g_equipment`; the others export nothing."""
    enrolled = np.asarray(enrolled, dtype=bool) & np.asarray(fleet.v2g_capable, dtype=bool)
    charger_kw, export_kw = equipment
    return dataclasses.replace(
        fleet,
        v2g_enrolled=enrolled,
        export_kw=np.where(enrolled, export_kw, 0.0),
        charger_kw=np.where(enrolled, charger_kw, fleet.charger_kw),
    )


def _priority(fleet: Fleet, salt: int) -> np.ndarray:
    """Sign-up priority of each EV (lower first): a 64-bit mix (splitmix64) of a salt drawn
    per trajectory and the EV's identity (home load and first session)."""
    with np.errstate(over="ignore"):
        first = np.ascontiguousarray(fleet.arrival_h[0] if len(fleet.arrival_h) else 0.0)
        x = np.broadcast_to(first.astype(np.float64), (fleet.n_ev,)).view(np.uint64).copy()
        dep = np.ascontiguousarray(fleet.departure_h[0] if len(fleet.departure_h) else 0.0)
        x ^= np.broadcast_to(dep.astype(np.float64), (fleet.n_ev,)).view(np.uint64)
        x ^= np.asarray(fleet.load_pos, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        x ^= np.uint64(salt)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _slice_availability(av: Availability | None, keep: np.ndarray) -> Availability | None:
    if av is None:
        return None
    return dataclasses.replace(
        av,
        export_factor=av.export_factor[:, keep],
        export_cap_kwh=av.export_cap_kwh[:, keep],
        derate=av.derate[keep],
        opted_out=av.opted_out[:, keep],
        comms_lost=av.comms_lost[:, keep],
        overridden=av.overridden[:, keep],
        override_share=av.override_share[:, keep],
    )


def plugged_any(fleet: Fleet, time_index: pd.DatetimeIndex) -> np.ndarray:
    """Whether any EV of ``fleet`` is plugged in at each step, (time,)."""
    out = np.zeros(len(time_index), dtype=bool)
    if fleet.n_ev == 0 or len(fleet.days) == 0:
        return out
    t_h = np.asarray((time_index - fleet.days[0]) / pd.Timedelta(hours=1), dtype=float)
    for i, day in enumerate(fleet.days):
        off = (day - fleet.days[0]) / pd.Timedelta(hours=1)
        start = off + fleet.arrival_h[i][None, :]
        end = off + fleet.departure_h[i][None, :]
        out |= ((t_h[:, None] >= start) & (t_h[:, None] < end)).any(axis=1)
    return out


# --------------------------------------------------------------------------- one draw
@dataclass(eq=False)
class TargetedSearch:
    """One (year, draw): its fleet, the V2G dispatch of a chosen enrollment, the judge.

    Attributes
    ----------
    fleet
        The draw's fleet (as the study drew it).
    context
        The full dispatch context (every monitored asset, limits × target fraction).
    base_kva
        The base case's power-flow load through each asset [kVA], (time, asset).
    rating_kva
        Rating of each asset [kVA], (asset,).
    judge
        Need flag of each asset from its loading [%], (time, asset) -> (asset,).
    run
        Dispatch of a fleet with a context and availability (the study's V2G strategy).
    equipment
        :func:`v2g_equipment` of the fleet.
    availability
        Availability of the fleet with every capable EV enrolled (``None``: perfect).
    priority
        Sign-up priority of each EV (lower first), (ev,).
    """

    fleet: Fleet
    context: DispatchContext
    base_kva: np.ndarray
    rating_kva: np.ndarray
    judge: Callable[[np.ndarray], np.ndarray]
    run: Callable[[Fleet, DispatchContext, Availability | None], DispatchResult]
    equipment: tuple[np.ndarray, np.ndarray]
    availability: Availability | None
    priority: np.ndarray
    last: dict[int, DispatchResult] = field(default_factory=dict)
    first: dict[int, np.ndarray] = field(default_factory=dict)

    def pool(self, a: int, nested_first: bool = True) -> np.ndarray:
        """V2G-capable EVs downstream of asset ``a``, in sign-up order (positions).

        With ``nested_first``, the EVs that the targeted programs of the assets nested
        inside ``a`` enroll this year (``first[a]``, set by the search bottom-up) sign up
        first, then the others by priority (the nesting rule,
        :func:`~gridplan.planning.targeting.credited_enrollment`)."""
        idx = np.flatnonzero(self.context.ev_assets[:, a] & np.asarray(self.fleet.v2g_capable))
        idx = idx[np.argsort(self.priority[idx], kind="stable")]
        head = self.first.get(a) if nested_first else None
        if head is None or head.size == 0:
            return idx
        head = head[np.isin(head, idx)]
        return np.concatenate([head, idx[~np.isin(idx, head)]])

    def resized(self, a: int, rating_kva: float) -> TargetedSearch:
        """The search with asset ``a`` at another rating [kVA] (a smaller upgrade).

        Its loading is judged against the new rating (the criteria are in % of rating)
        and its dispatch limit scales with it; the base load through it [kVA] is kept (the
        power flow keeps today's impedance). Sign-up order: priority only."""
        rating = np.asarray(self.rating_kva, dtype=float).copy()
        limit = np.asarray(self.context.asset_limit_kw, dtype=float).copy()
        limit[a] *= rating_kva / rating[a]
        rating[a] = rating_kva
        context = dataclasses.replace(self.context, asset_limit_kw=limit)
        return dataclasses.replace(self, context=context, rating_kva=rating, last={}, first={})

    def loading_pct(self, a: int, result: DispatchResult, col: int = 0) -> np.ndarray:
        """Loading of asset ``a`` [%] judged from a dispatch: base kVA plus the EV power."""
        assert result.asset_load_kw is not None
        ev_kw = result.asset_load_kw[:, col] - self.context.asset_base_kw[:, a]
        return (self.base_kva[:, a] + ev_kw) / self.rating_kva[a] * 100.0

    def holds(self, a: int, loading_pct: np.ndarray) -> bool:
        """Whether asset ``a`` meets its criterion at this loading [%], (time,)."""
        full = np.zeros_like(self.base_kva)
        full[:, a] = loading_pct
        return not bool(self.judge(full)[a])

    def dispatch_asset(self, a: int, k: int) -> DispatchResult:
        """Dispatch the EVs downstream of ``a`` with its first ``k`` capable EVs enrolled."""
        down = self.context.ev_assets[:, a]
        enrolled = np.zeros(self.fleet.n_ev, dtype=bool)
        enrolled[self.pool(a)[:k]] = True
        fleet = with_enrollment(self.fleet, self.equipment, enrolled).take(down)
        ctx = self.context
        sub = DispatchContext(
            asset_ids=(ctx.asset_ids[a],),
            time_index=ctx.time_index,
            asset_base_kw=ctx.asset_base_kw[:, [a]],
            asset_limit_kw=ctx.asset_limit_kw[[a]],
            ev_assets=np.ones((fleet.n_ev, 1), dtype=bool),
            export_group=None if ctx.export_group is None else ctx.export_group[down],
            n_loads=ctx.n_loads,
        )
        return self.run(fleet, sub, _slice_availability(self.availability, down))

    def least_k(self, a: int, need: bool | None = None, hint: int | None = None) -> int | None:
        """Least enrollment that holds asset ``a`` in this draw (``None``: none does).

        ``need``: whether the study's power flow of the charging case found a need in this
        draw, when the V2G strategy without enrollment is that case's charging (then
        ``False`` means 0 without a dispatch, ``True`` that 0 does not hold); ``None``:
        unknown, judged here. ``hint``: a first guess (the draw's enrollment the year
        before)."""
        self.last.clear()
        if need is False:
            return 0

        def holds(k: int) -> bool:
            result = self.dispatch_asset(a, k)
            self.last[k] = result
            return self.holds(a, self.loading_pct(a, result))

        n_max = int(self.pool(a).size)
        return smallest_enrollment(holds, n_max, lower=1 if need else 0, hint=hint)

    def away_share(self, a: int) -> float:
        """Share of the energy over the limit, with every capable EV downstream enrolled,
        in steps when none of them is plugged in [-] (NaN: nothing over)."""
        pool = self.pool(a)
        result = self.last.get(int(pool.size)) or self.dispatch_asset(a, int(pool.size))
        load = self.loading_pct(a, result) / 100.0 * self.rating_kva[a]
        over = np.maximum(load - self.context.asset_limit_kw[a], 0.0)
        if over.sum() <= 0:
            return math.nan
        mask = np.zeros(self.fleet.n_ev, dtype=bool)
        mask[pool] = True
        home = plugged_any(self.fleet.take(mask), self.context.time_index)
        return float(over[~home].sum() / over.sum())


# --------------------------------------------------------------------------- study level
def program_costs(config: StudyConfig) -> tuple[ProgramCosts, str]:
    """The program prices of the study (``[program]``), else the defaults of
    :class:`~gridplan.planning.economics.ProgramCosts` with no energy price (the ratepayer
    view does not use it), and a note saying which."""
    if config.program is not None:
        return config.program.costs(), "the study's [program]"
    return ProgramCosts(charging_energy_price_usd_per_kwh=0.0), (
        "ProgramCosts defaults (no [program] section: participant energy cost at 0)"
    )


class _Study:
    """What the search needs of the study: draws as :class:`TargetedSearch`, base loads."""

    def __init__(self, ctx: UnitContext, h: HorizonResult) -> None:
        self.ctx, self.h = ctx, h
        self.config = ctx.config
        self.v2g_strategy = str(ctx.cases["v2g"])
        self.charging_strategy = str(ctx.cases["charging"])
        self.base_kva: dict[int, np.ndarray] = {}
        period_days = len(ctx.time_index) * ctx.feeder.step_h / 24.0
        #: the study period's flows to a year's [-]
        self.to_year = (self.config.period.represents_days or period_days) / period_days

    def charging_need(self, year: int, d: int, a: int) -> bool | None:
        """The charging case's need of asset ``a`` in (year, draw) from the study's power
        flow, when the V2G strategy with nobody enrolled charges as that case does
        (``unmanaged`` charging under ``v2g_peak_shave`` or ``v2g_event``); else ``None``."""
        same = self.config.fleet.charging_mix is not None or (  # nobody enrolled: own behaviour
            self.charging_strategy == "unmanaged"
            and self.v2g_strategy in ("v2g_peak_shave", "v2g_event")
        )
        if not same:
            return None
        y = int(np.flatnonzero(self.h.years == year)[0])
        return bool(self.h.need[y, d, self.h.case("charging"), a])

    def _base_kva(self, unit: StudyUnit) -> np.ndarray:
        if unit.year not in self.base_kva:
            loading = np.nan_to_num(unit.asset_loading(None))
            self.base_kva = {unit.year: loading / 100.0 * self.ctx.assets.rating_kva}
        return self.base_kva[unit.year]

    def draw(self, year: int, d: int) -> tuple[TargetedSearch, StudyUnit]:
        """The search state of one (year, draw)."""
        ctx, config = self.ctx, self.config
        unit = StudyUnit(ctx, year, d, keep_detail=False)
        full = unit.grid_context()  # the unit's own grid view (limits at target_fraction)
        equipment = v2g_equipment(unit.fleet, config)
        params = config.availability.parameters()
        availability = None
        if not params.is_perfect:  # the study's stream for this (year, draw)
            everyone = with_enrollment(unit.fleet, equipment, unit.fleet.v2g_capable)
            availability = draw_availability(
                everyone,
                params,
                np.random.default_rng(np.random.SeedSequence([config.seed, year, d, 19])),
            )
        salt = int(
            np.random.default_rng(np.random.SeedSequence([config.seed, d, 20])).integers(2**62)
        )
        search = TargetedSearch(
            fleet=unit.fleet,
            context=full,
            base_kva=self._base_kva(unit),
            rating_kva=ctx.assets.rating_kva,
            judge=lambda loading: ctx.criteria.need(
                loading, ctx.allowed_hours, ctx.feeder.step_h, unsolved_over=True
            ),
            run=lambda fleet, context, av: self.dispatch(unit, fleet, context, av),
            equipment=equipment,
            availability=availability,
            priority=_priority(unit.fleet, salt),
        )
        return search, unit

    def dispatch(
        self,
        unit: StudyUnit,
        fleet: Fleet,
        context: DispatchContext,
        availability: Availability | None,
        strategy: str | None = None,
    ) -> DispatchResult:
        """Dispatch under the study's V2G strategy (or the charging ``strategy``) and
        settings. With a charging mix (``fleet.charging_mix``) every EV follows its own
        behaviour, and in the V2G dispatch the enrolled EVs the V2G strategy, as in the
        study's cases (:func:`gridplan.ev.mixed.case_behaviours`)."""
        behaviours = case_behaviours(fleet, None if strategy is not None else self.v2g_strategy)
        return unit.run_dispatch(
            fleet, strategy or self.v2g_strategy, behaviours, context, availability, False
        )


@dataclass(eq=False)
class _AssetState:
    """The search's record of one asset's plan over its years of V2G.

    ``rating_kva`` is ``None`` for "V2G then the planned upgrade" (the asset at today's
    rating, searched up to ``last_year``); for "a smaller upgrade plus V2G" it is the
    smaller upgrade's rating, ``rank`` its place among the asset's smaller sizes (largest
    first), ``upgrade_cost_usd`` its cost [USD, dollar year] and ``budget_usd`` the present
    cost of building the planned upgrade at the need, above which the search stops.
    ``ev_flows`` holds, per year and draw, each enrolled EV's export [kWh], extra charging
    [kWh] and export limit [kW] from the verification dispatch, and whether each is shared
    with the programs of the assets in ``nested`` (those nested inside this one).
    """

    a: int
    need_year: int
    last_year: int
    rating_kva: float | None = None
    rank: int = -1
    upgrade_cost_usd: float = math.nan
    budget_usd: float = math.inf
    nested: list[int] = field(default_factory=list)
    active: bool = True
    years: list[int] = field(default_factory=list)
    k: list[float] = field(default_factory=list)
    search_share: list[float] = field(default_factory=list)
    verified_share: list[float] = field(default_factory=list)
    ev_flows: list[list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=list)
    evs: float = math.nan
    capable: float = math.nan
    fail_share: float = math.nan
    reason: str = ""
    hybrid_note: str = ""


class _DrawProbe:
    """Whether each draw holds one asset at an enrollment ``k`` (cached), for the search at
    confidence: a draw enrolls ``min(k, its capable EVs)``; a draw whose charging case has
    no need holds without a dispatch, one with a need does not hold at 0 (``exact``: only
    at the asset's own rating; a larger one may hold without V2G)."""

    def __init__(
        self,
        study: _Study,
        searches: list[TargetedSearch],
        a: int,
        year: int,
        exact: bool = True,
    ) -> None:
        self.searches, self.a = searches, a
        self.pools = [int(s.pool(a).size) for s in searches]
        need = [study.charging_need(year, d, a) for d in range(len(searches))]
        self.need = need if exact else [False if n is False else None for n in need]
        self.cache: dict[tuple[int, int], bool] = {}
        self.order = list(range(len(searches)))  # draws that failed last are tried first

    def holds(self, d: int, k: int) -> bool:
        k = min(k, self.pools[d])
        if self.need[d] is False:
            return True
        if self.need[d] is True and k == 0:
            return False
        if (d, k) not in self.cache:
            search = self.searches[d]
            result = search.dispatch_asset(self.a, k)
            self.cache[d, k] = search.holds(self.a, search.loading_pct(self.a, result))
        return self.cache[d, k]

    def enough(self, k: int, n_need: int) -> bool:
        """Whether at least ``n_need`` draws hold at ``k`` (stops as soon as it is known)."""
        held = failed = 0
        for d in list(self.order):
            if self.holds(d, k):
                held += 1
            else:
                failed += 1
                self.order.remove(d)
                self.order.insert(0, d)
            if held >= n_need:
                return True
            if failed > len(self.order) - n_need:
                return False
        return held >= n_need

    def share(self, k: int) -> float:
        """Share of draws that hold at ``k`` [-]."""
        return float(np.mean([self.holds(d, k) for d in range(len(self.searches))]))


def _search_year(
    study: _Study, year: int, states: list[_AssetState], searches: list[TargetedSearch]
) -> None:
    """Each active asset's targeted enrollment in ``year``: the least ``k`` that holds in
    ``confidence`` of the draws (the search gallops from the year before's). ``states``
    come bottom-up: a nested asset's chosen EVs sign up first for the assets around it."""
    draws = len(searches)
    n_need = max(1, math.ceil(study.config.horizon.confidence * draws - 1e-9))
    for st in states:
        if not st.active:
            continue
        mine = searches
        if st.rating_kva is not None:
            mine = [s.resized(st.a, st.rating_kva) for s in searches]
        probe = _DrawProbe(study, mine, st.a, year, exact=st.rating_kva is None)
        if not st.years:  # the need year: who is behind the asset
            st.capable = float(np.median(probe.pools))
            st.evs = float(np.median([s.context.ev_assets[:, st.a].sum() for s in searches]))
        k_max = max(probe.pools)
        hint = int(st.k[-1]) if st.k and 0 < st.k[-1] < k_max else None
        k = smallest_enrollment(partial(_DrawProbe.enough, probe, n_need=n_need), k_max, hint=hint)
        if k is None:
            st.active = False
            if st.rating_kva is not None:
                st.reason = f"V2G does not hold the {st.rating_kva:g} kVA unit in {year}"
            elif not st.years:
                failing = [d for d in range(draws) if not probe.holds(d, k_max)]
                away = [searches[d].away_share(st.a) for d in failing]
                st.fail_share, st.reason = probe.share(k_max), _reason(st.capable, away)
            continue
        st.years.append(year)
        st.k.append(float(k))
        st.search_share.append(probe.share(k))
        if st.rating_kva is None:
            _sign_up_first(searches, st, k, states)


def _sign_up_first(
    searches: list[TargetedSearch], st: _AssetState, k: int, states: list[_AssetState]
) -> None:
    """Put the EVs of ``st``'s enrollment first in the sign-up order of every asset it is
    nested in (the nesting rule)."""
    around = [up.a for up in states if st.a in up.nested and up.rating_kva is None]
    for search in searches:
        chosen = search.pool(st.a)[:k]
        for u in around:
            head = search.first.get(u, np.zeros(0, dtype=np.int64))
            search.first[u] = np.concatenate([head, chosen[~np.isin(chosen, head)]])


def _reason(capable: float, away: list[float]) -> str:
    if capable <= 0:
        return "no V2G-capable EV downstream"
    shares = [s for s in away if not math.isnan(s)]
    if shares and float(np.median(shares)) >= 0.5:
        return "EVs away at the need hours"
    return "too few EVs (export power or energy short)"


def _verify_year(
    study: _Study,
    year: int,
    states: list[_AssetState],
    searches: list[TargetedSearch],
    units: list[StudyUnit],
    charging: dict[int, DispatchResult],
) -> None:
    """Dispatch the whole fleet with the year's chosen enrollments and solve the power
    flow; record each asset's verified share and its enrolled EVs' flows per draw.

    ``states`` hold distinct assets; one at a smaller upgrade's rating is judged at that
    rating (loading rescaled) with its dispatch limit scaled. ``charging`` caches each
    draw's charging-strategy dispatch (the baseline of the extra charging energy)."""
    ctx = study.ctx
    live = [st for st in states if st.years and st.years[-1] == year]
    if not live:
        return
    scale = np.ones(len(ctx.assets.rating_kva))
    for st in live:
        if st.rating_kva is not None:
            scale[st.a] = st.rating_kva / float(ctx.assets.rating_kva[st.a])
    held = {st.a: np.zeros(len(searches)) for st in live}
    flows: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {st.a: [] for st in live}
    for d, (search, unit) in enumerate(zip(searches, units, strict=True)):
        enrolled = np.zeros(search.fleet.n_ev, dtype=bool)
        own = {}
        for st in live:
            own[st.a] = search.pool(st.a, nested_first=st.rating_kva is None)[: int(st.k[-1])]
            enrolled[own[st.a]] = True
        fleet = with_enrollment(search.fleet, search.equipment, enrolled)
        context = search.context
        if (scale != 1.0).any():
            context = dataclasses.replace(context, asset_limit_kw=context.asset_limit_kw * scale)
        result = study.dispatch(unit, fleet, context, search.availability)
        if d not in charging:
            charging[d] = study.dispatch(
                unit, search.fleet, search.context, None, study.charging_strategy
            )
        base = charging[d]
        need = search.judge(unit.asset_loading(result) / scale)
        for st in live:
            mine = own[st.a]
            held[st.a][d] = not need[st.a]
            values = np.column_stack(
                [
                    result.ev_export_kwh[mine],
                    result.ev_charge_kwh[mine] - base.ev_charge_kwh[mine],
                    fleet.export_kw[mine],
                ]
            )
            member = np.zeros((mine.size, len(st.nested)), dtype=bool)
            for j, n in enumerate(st.nested):
                if n in own:  # a nested asset whose program runs this year
                    member[:, j] = np.isin(mine, own[n])
            flows[st.a].append((values, member))
    for st in live:
        st.verified_share.append(float(held[st.a].mean()))
        st.ev_flows.append(flows[st.a])


def _year_flows(
    st: _AssetState, i: int, shared_with: np.ndarray, to_year: float
) -> tuple[float, float, float, float]:
    """Program flows of ``st``'s year ``i`` without the EVs shared with the nested assets
    flagged in ``shared_with`` (bool, over ``st.nested``): export [kWh/yr], extra charging
    beyond the export [kWh/yr], export limit [kW] (medians over draws) and the EVs shared
    [EVs] (lower median)."""
    per_draw = np.zeros((len(st.ev_flows[i]), 4))
    for d, (values, member) in enumerate(st.ev_flows[i]):
        shared = (
            member[:, shared_with].any(axis=1) if shared_with.any() else np.zeros(len(values), bool)
        )
        keep = values[~shared]
        export, extra, cap = keep.sum(axis=0) if keep.size else (0.0, 0.0, 0.0)
        per_draw[d] = (export, max(extra - export, 0.0), cap, shared.sum())
    med = np.median(per_draw, axis=0)
    return (
        float(med[0]) * to_year,
        float(med[1]) * to_year,
        float(med[2]),
        float(lower_median(per_draw[:, 3:])[0]),
    )


def _program_flows(
    study: _Study, st: _AssetState, adopted: dict[int, set[int]]
) -> tuple[ProgramFlows, np.ndarray]:
    """The program's flows over ``st``'s years, EVs shared with adopted nested programs
    credited (``adopted``: asset -> years its chosen plan runs V2G), and the EVs shared
    each year [EVs]."""
    n = len(st.years)
    out = np.zeros((n, 4))
    for i, year in enumerate(st.years):
        cols = np.array([year in adopted.get(nd, ()) for nd in st.nested], dtype=bool)
        out[i] = _year_flows(st, i, cols, study.to_year)
    flows = ProgramFlows(
        years=np.asarray(st.years),
        enrolled=credited_enrollment(np.asarray(st.k), out[:, 3]),
        export_kwh=out[:, 0],
        charging_loss_kwh=out[:, 1],
        capacity_kw=out[:, 2],
        event_share=1.0 if study.v2g_strategy == "v2g_event" else 0.0,
    )
    return flows, out[:, 3]


# --------------------------------------------------------------------------- the plans
def _states(
    study: _Study, assets: pd.DataFrame, with_need: list[int], end: int
) -> tuple[list[_AssetState], list[_AssetState]]:
    """The "V2G then build" states bottom-up (fewest downstream buses first), each with the
    assets nested inside it, and the "smaller upgrade plus V2G" states."""
    down = downstream_buses(study.ctx.feeder)
    ids = [str(assets.index[a]) for a in with_need]
    size = {a: down[i].size for a, i in zip(with_need, ids, strict=True)}
    order = sorted(with_need, key=lambda a: (size[a], a))
    need_year = assets.year_of_need_charging_p50
    plain: list[_AssetState] = []
    for a in order:
        inside = [
            st.a
            for st in plain
            if size[st.a] > 0
            and np.isin(down[str(assets.index[st.a])], down[ids[with_need.index(a)]]).all()
        ]
        y = int(need_year.iloc[a])
        plain.append(
            _AssetState(
                a=a, need_year=y, last_year=min(end, y + MAX_DEFERRAL_YEARS - 1), nested=inside
            )
        )
    hybrids = [hs for st in plain for hs in _hybrid_states(study, assets, st, end)]
    return plain, hybrids


def _hybrid_states(
    study: _Study, assets: pd.DataFrame, st: _AssetState, end: int
) -> list[_AssetState]:
    """The "smaller upgrade plus V2G" states of one asset: its standard sizes between
    today's rating and the planned upgrade's (largest first, at most
    :data:`MAX_HYBRID_SIZES`) cheaper than the planned upgrade; else a note on ``st``."""
    val = study.config.valuation
    row = assets.iloc[st.a]
    rating, planned = float(row.rating_kva), float(row.new_rating_kva)
    if not math.isfinite(planned):
        st.hybrid_note = "not applicable: no planned upgrade"
        return []
    options = smaller_upgrades(study.ctx.feeder.upgrades, str(assets.index[st.a]), rating, planned)
    if options.empty:
        st.hybrid_note = f"not applicable: no standard size between {rating:g} and {planned:g} kVA"
        return []

    def escalate(dollar_year: float) -> float:
        year = val.dollar_year if pd.isna(dollar_year) else float(dollar_year)
        return (1.0 + val.escalation_rate) ** (val.dollar_year - year)

    planned_usd = float(row.cost_usd_dollar_year)
    factor = (
        planned_usd / (float(row.cost_usd) * escalate(row.dollar_year)) if row.cost_usd else 1.0
    )
    build_pv = upgrade_present_worth_usd(
        planned_usd, st.need_year, val.dollar_year, val.discount_rate, val.escalation_rate
    )
    out: list[_AssetState] = []
    for opt in options.itertuples():
        cost = float(opt.cost_usd) * escalate(opt.dollar_year) * factor
        if len(out) >= MAX_HYBRID_SIZES:
            break
        if cost >= planned_usd:
            continue
        out.append(
            _AssetState(
                a=st.a, need_year=st.need_year, last_year=end, rating_kva=float(opt.new_rating_kva),
                rank=len(out), upgrade_cost_usd=cost, budget_usd=build_pv,
            )
        )  # fmt: skip
    if not out:
        st.hybrid_note = "not cheaper: no smaller standard size costs less than the planned one"
    return out


def _stop_over_budget(study: _Study, year: int, hybrids: list[_AssetState]) -> None:
    """Stop a "smaller upgrade plus V2G" search once its present cost so far is at least
    building the planned upgrade at the need (its program costs only add)."""
    val = study.config.valuation
    costs, _ = program_costs(study.config)
    for hs in hybrids:
        if not (hs.active and hs.years and hs.years[-1] == year):
            continue
        flows, _ = _program_flows(study, hs, {})
        cost = hybrid_plan(
            flows, smaller_cost_usd=hs.upgrade_cost_usd, need_year=hs.need_year,
            base_year=val.dollar_year, discount_rate=val.discount_rate,
            escalation_rate=val.escalation_rate, costs=costs,
        ).present_cost_usd  # fmt: skip
        if cost >= hs.budget_usd and year < hs.last_year:
            hs.active = False
            hs.reason = (
                f"stopped in {year}: its present cost so far (${cost:,.0f}) is above "
                f"building the planned upgrade (${hs.budget_usd:,.0f})"
            )


def opportunities_table(
    ctx: UnitContext, h: HorizonResult, assets: pd.DataFrame
) -> pd.DataFrame | None:
    """The deferral-opportunity table: one row per asset with a need (module docstring).

    Parameters
    ----------
    ctx
        The study's unit context (the simulated horizon's).
    h
        The simulated horizon.
    assets
        The study's asset table (:func:`gridplan.study.tables.asset_table`): years of need,
        need characterization, planned upgrade and its cost, the feeder-wide V2G deferral.

    Returns
    -------
    pandas.DataFrame or None
        Columns :data:`OPPORTUNITY_COLUMNS`, best tier first then the largest net benefit;
        ``None`` when the study has no V2G case that exports, or more than
        :data:`MAX_TARGETED_ASSETS` assets with a need.
    """
    strategy = ctx.cases.get("v2g")
    if strategy is None or not Strategy(strategy).exports:
        return None
    need_year = assets.year_of_need_charging_p50
    with_need = [int(ctx.feeder.assets.index.get_loc(a)) for a in assets.index[need_year.notna()]]
    if len(with_need) > MAX_TARGETED_ASSETS:
        log.info(
            "targeted V2G search skipped: %d assets with a need > %d",
            len(with_need),
            MAX_TARGETED_ASSETS,
        )
        return None
    started = time.perf_counter()
    study = _Study(ctx, h)
    end = int(h.years[-1])
    plain, hybrids = _states(study, assets, with_need, end)
    for year in (int(y) for y in h.years):
        for st in plain + hybrids:  # the cap on the years of V2G
            st.active = st.active and year <= st.last_year
        groups = [[st for st in plain if st.active and st.need_year <= year]]
        groups += [
            [hs for hs in hybrids if hs.active and hs.need_year <= year and hs.rank == r]
            for r in range(MAX_HYBRID_SIZES)
        ]
        if not any(groups):
            continue
        pairs = [study.draw(year, d) for d in range(study.config.horizon.draws)]
        searches, units = [p[0] for p in pairs], [p[1] for p in pairs]
        charging: dict[int, DispatchResult] = {}
        for group in (g for g in groups if g):
            _search_year(study, year, group, searches)
            _verify_year(study, year, group, searches, units, charging)
        _stop_over_budget(study, year, hybrids)
    table = _table(study, h, assets, plain, hybrids)
    log.info(
        "targeted V2G search: %d assets (%d smaller-upgrade plans) in %.1f s",
        len(plain),
        len(hybrids),
        time.perf_counter() - started,
    )
    return table


def _table(
    study: _Study,
    h: HorizonResult,
    assets: pd.DataFrame,
    plain: list[_AssetState],
    hybrids: list[_AssetState],
) -> pd.DataFrame:
    """One row per asset, decided bottom-up so that an upstream asset knows which nested
    programs are adopted (their EVs are credited, not costed again)."""
    adopted: dict[int, set[int]] = {}
    rows = []
    for st in plain:
        mine = [hs for hs in hybrids if hs.a == st.a]
        row, v2g_years = _row(study, h, assets, st, mine, adopted)
        if v2g_years:
            adopted[st.a] = v2g_years
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(OPPORTUNITY_COLUMNS))
    if table.empty:
        return table
    rank = table.tier.map({t: i for i, t in enumerate(TIERS)})
    order = np.lexsort((-table.net_benefit_usd.fillna(-np.inf).to_numpy(), rank.to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def _identity(study: _Study, assets: pd.DataFrame, st: _AssetState) -> dict[str, object]:
    """The row's fields that do not depend on the plans."""
    row_in = assets.iloc[st.a]
    row: dict[str, object] = {c: math.nan for c in OPPORTUNITY_COLUMNS}
    row.update(
        asset_id=str(assets.index[st.a]),
        kind=row_in.kind,
        rating_kva=float(row_in.rating_kva),
        need_year_p50=st.need_year,
        need_year_p90=row_in.year_of_need_charging_p90,
        need_kw=row_in.peak_excess_kw,
        need_kwh=row_in.max_daily_excess_kwh,
        need_duration_h=row_in.longest_excess_h,
        need_hours=row_in.excess_hours,
        evs_downstream=st.evs,
        v2g_capable_downstream=st.capable,
        upgrade_cost_usd=float(row_in.cost_usd_dollar_year),
        feeder_wide_deferral_years=row_in.deferral_years_v2g,
        feeder_wide_deferral_value_usd=row_in.deferral_value_usd_v2g,
        reason=st.reason,
        shared_enrolled_evs=0.0,
    )
    return row


def _best_hybrid(
    study: _Study, st: _AssetState, hybrids: list[_AssetState], build_pv: float
) -> tuple[dict[str, object], float, float]:
    """The least-present-cost "smaller upgrade plus V2G" of one asset: its columns, its
    present cost [USD] (NaN: none holds) and its certainty [-]."""
    val = study.config.valuation
    costs, _ = program_costs(study.config)
    best: tuple[_AssetState, HybridCosts] | None = None
    for hs in hybrids:
        if hs.reason or not hs.years:
            continue
        flows, _ = _program_flows(study, hs, {})
        hc = hybrid_plan(
            flows, smaller_cost_usd=hs.upgrade_cost_usd, need_year=hs.need_year,
            base_year=val.dollar_year, discount_rate=val.discount_rate,
            escalation_rate=val.escalation_rate, costs=costs,
        )  # fmt: skip
        if best is None or hc.present_cost_usd < best[1].present_cost_usd:
            best = (hs, hc)
    if best is None:
        shown = hybrids[0] if hybrids else None
        note = st.hybrid_note or "; ".join(f"{hs.rating_kva:g} kVA: {hs.reason}" for hs in hybrids)
        cols: dict[str, object] = {"hybrid_note": note}
        if shown is not None:
            cols.update(
                smaller_upgrade_kva=shown.rating_kva,
                smaller_upgrade_cost_usd=shown.upgrade_cost_usd,
            )
        return cols, math.nan, math.nan
    hs, hc = best
    certainty = float(min(hs.verified_share))
    cols = {
        "smaller_upgrade_kva": hs.rating_kva,
        "smaller_upgrade_cost_usd": hs.upgrade_cost_usd,
        "hybrid_enrolled_max": float(max(hs.k)),
        "hybrid_program_cost_usd": hc.program_cost_usd,
        "hybrid_present_cost_usd": hc.present_cost_usd,
        "hybrid_net_benefit_usd": build_pv - hc.present_cost_usd,
        "hybrid_certainty": certainty,
        "hybrid_note": f"holds {hs.years[0]}-{hs.years[-1]} with at most {int(max(hs.k))} "
        "enrolled EVs",
    }
    return cols, hc.present_cost_usd, certainty


def _row(
    study: _Study,
    h: HorizonResult,
    assets: pd.DataFrame,
    st: _AssetState,
    hybrids: list[_AssetState],
    adopted: dict[int, set[int]],
) -> tuple[dict[str, object], set[int]]:
    """One asset's row and the years its chosen plan runs V2G ("V2G then build" only: the
    years nested in it are credited upstream)."""
    config = study.config
    val, conf = config.valuation, config.horizon.confidence
    end = int(h.years[-1])
    row = _identity(study, assets, st)
    cost_usd = float(assets.iloc[st.a].cost_usd_dollar_year)
    if not math.isfinite(cost_usd):
        cost_usd = 0.0
    build_pv = upgrade_present_worth_usd(
        cost_usd, st.need_year, val.dollar_year, val.discount_rate, val.escalation_rate
    )
    hybrid_cols, hybrid_pv, hybrid_certainty = _best_hybrid(study, st, hybrids, build_pv)
    row.update(hybrid_cols, build_present_cost_usd=build_pv)
    present = {"build": build_pv, "smaller_upgrade_plus_v2g": hybrid_pv}
    b, certainty, net = 0, st.fail_share, 0.0
    if st.years:
        b, certainty, net = _v2g_columns(study, st, row, adopted, cost_usd)
        present["v2g_then_build"] = build_pv - net if b > 0 else math.nan
    kind = choose_plan(present)
    v2g_years: set[int] = set()
    if kind == "smaller_upgrade_plus_v2g":
        hs = next(hs for hs in hybrids if hs.rating_kva == row["smaller_upgrade_kva"])
        x, net, certainty = st.need_year, build_pv - hybrid_pv, hybrid_certainty
        plan = f"{hs.rating_kva:g} kVA upgrade in {x} + V2G {hs.years[0]}-{hs.years[-1]}"
        if max(hs.k) == 0:
            plan = f"{hs.rating_kva:g} kVA upgrade in {x} (no V2G needed to {hs.years[-1]})"
    elif kind == "v2g_then_build":
        x = st.need_year + b
        after = " (after the horizon)" if x > end else ""
        plan = f"V2G {st.need_year}-{x - 1}, upgrade in {x}{after}"
        v2g_years = set(range(st.need_year, x))
    else:
        x, net = st.need_year, 0.0
        plan = f"build in {x}"
    deferrable = bool(st.years) or math.isfinite(hybrid_pv)
    if not st.years:  # V2G alone does not hold in the need year
        row.update(
            enrolled_needed=math.inf, search_share=st.fail_share, deferrable_years=0,
            deferrable_capped=False, deferral_years=0, deferral_value_usd=0.0,
            program_cost_usd=0.0, net_benefit_usd=0.0,
        )  # fmt: skip
    row.update(
        plan=plan,
        plan_kind=kind,
        upgrade_year=x,
        certainty=certainty,
        tier=tier(deferrable, net, certainty if math.isfinite(certainty) else 0.0, conf),
    )
    if kind == "smaller_upgrade_plus_v2g" and "no V2G needed" in plan:
        row["tier"] = TIERS[4]  # right-sizing, not a V2G opportunity
    return row, v2g_years


def _v2g_columns(
    study: _Study,
    st: _AssetState,
    row: dict[str, object],
    adopted: dict[int, set[int]],
    cost_usd: float,
) -> tuple[int, float, float]:
    """Fill the "V2G until X, then upgrade" columns; return the least-cost plan's position
    (0: build at the need), the certainty of the plans shown and that plan's net benefit."""
    config = study.config
    val = config.valuation
    end = int(study.h.years[-1])
    costs, _ = program_costs(config)
    flows, shared = _program_flows(study, st, adopted)
    plans = procure_or_build(
        flows,
        upgrade_cost_usd=cost_usd,
        need_year=st.need_year,
        base_year=val.dollar_year,
        discount_rate=val.discount_rate,
        escalation_rate=val.escalation_rate,
        costs=costs,
    )
    b = plans.best  # the least-cost plan (0: build at the need year)
    v = 1 + int(np.argmax(plans.net_benefit_usd[1:]))  # the best plan with V2G
    certainty = float(min(st.verified_share[: max(b, v)]))
    need = row["need_kw"]
    need_kw = float(need) if isinstance(need, (int, float, np.number)) else math.nan
    one_year = float(plans.deferral_value_usd[1])  # value of deferring one year [USD]
    row.update(
        enrolled_needed=st.k[0],
        enrolled_needed_max=float(max(st.k[:v])),
        enrollment_by_year=" ".join(f"{y}:{int(k)}" for y, k in zip(st.years, st.k, strict=True)),
        search_share=st.search_share[0],
        verified_share=st.verified_share[0],
        deferrable_years=len(st.years),
        deferrable_capped=st.years[-1] == min(end, st.need_year + MAX_DEFERRAL_YEARS - 1),
        deferral_years=int(plans.upgrade_years[v]) - st.need_year,
        deferral_value_usd=float(plans.deferral_value_usd[v]),
        program_cost_usd=float(plans.program_cost_usd[v]),
        net_benefit_usd=float(plans.net_benefit_usd[v]),
        participant_net_usd=float(plans.participant_net_usd[v]),
        break_even_incentive_usd=plans.break_even_incentive_usd,
        value_usd_per_kw_yr=one_year / need_kw if need_kw > 0 else math.nan,
        v2g_then_build_present_cost_usd=row["build_present_cost_usd"] - plans.net_benefit_usd[v],
        shared_enrolled_evs=float(max(shared[:v])),
    )
    return b, certainty, float(plans.net_benefit_usd[b])
