"""Targeted V2G per constrained asset: the enrollment search and the procure-or-build math.

A *targeted* program enrolls V2G EVs downstream of one constrained asset only, as many as
the asset needs (issue 20; the California Distribution Investment Deferral Framework asks
this per asset in its Grid Needs Assessment and Distribution Deferral Opportunity Report).
This module holds the array kernels; :mod:`gridplan.study.opportunities` runs the dispatch
and power flow that feed them.

- :func:`smallest_enrollment`: the least number ``k`` of enrolled EVs (taken in a fixed
  priority order) for which a monotone test holds, by bisection.
- :func:`enrollment_at_confidence`: the enrollment that holds in at least a share
  ``confidence`` of the draws, from each draw's least enrollment.
- :func:`procure_or_build`: per asset, the present cost of V2G until year ``X`` then the
  upgrade, for every ``X``; the least-cost plan; the break-even upfront incentive.
- :func:`hybrid_plan`: the present cost of "a smaller upgrade now plus V2G" for the rest
  of the horizon.
- :func:`choose_plan`: the least-present-cost plan among building at the need, V2G then
  the upgrade, and the smaller upgrade plus V2G (:data:`PLAN_KINDS`).
- :func:`credited_enrollment`: the rule for nested assets, so that EVs enrolled for a
  downstream asset's program are not paid for again by an upstream asset's program.
- :func:`tier`: the stated tier rule of the deferral-opportunity table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridplan.planning.economics import (
    ProgramCosts,
    ProgramEconomics,
    program_economics_by_year,
)
from gridplan.planning.valuation import present_worth_of_shift_usd

__all__ = [
    "PLAN_KINDS",
    "TIERS",
    "HybridCosts",
    "PlanCosts",
    "ProgramFlows",
    "choose_plan",
    "credited_enrollment",
    "enrollment_at_confidence",
    "hybrid_plan",
    "procure_or_build",
    "smallest_enrollment",
    "tier",
    "upgrade_present_worth_usd",
]

#: The plans compared per asset (``plan_kind`` of the deferral-opportunity table), in the
#: order that wins ties: build the planned upgrade at the need year; V2G until year ``X``,
#: then the planned upgrade; a smaller standard upgrade at the need year plus V2G for the
#: rest of the horizon.
PLAN_KINDS = ("build", "v2g_then_build", "smaller_upgrade_plus_v2g")

#: The tiers of the deferral-opportunity table, best first (rule: :func:`tier`); the last
#: one is not a V2G opportunity: the cheapest plan is a smaller standard upgrade that holds
#: the asset to the horizon's end without any V2G (right-sizing the planned upgrade).
TIERS = (
    "cost-effective and certain",
    "cost-effective but uncertain",
    "not cost-effective",
    "not deferrable",
    "right-size: a smaller upgrade suffices (no V2G)",
)


def smallest_enrollment(
    holds: Callable[[int], bool], n_max: int, lower: int = 0, hint: int | None = None
) -> int | None:
    """The least ``k`` in ``lower..n_max`` with ``holds(k)``.

    ``holds`` must be monotone (once true, true for every larger ``k``): enrolling one more
    EV in priority order never makes the asset worse. Without ``hint``, ``holds(lower)``
    and ``holds(n_max)`` are tried first (no more enrollment needed; even all EVs do not
    hold), then a bisection: ``2 + ceil(log2(n_max))`` calls at most. With ``hint`` (e.g.
    the draw's enrollment of the year before), the search starts there and gallops (steps
    1, 2, 4, ...) towards the answer before bisecting: a few calls when the answer is near.

    Parameters
    ----------
    holds
        Whether enrolling the first ``k`` EVs keeps the asset within its criterion.
    n_max
        EVs that can be enrolled [-], >= 0.
    lower
        The least ``k`` to try [-]: every smaller one is known not to hold (e.g. ``1``
        when the power flow already shows the need without enrollment).
    hint
        A first guess [-].

    Returns
    -------
    int or None
        The least ``k``; ``None`` when even ``n_max`` does not hold.
    """
    if lower > n_max:
        return None
    if hint is not None and lower < hint < n_max:
        return _gallop(holds, n_max, lower, int(hint))
    if holds(lower):
        return lower
    if n_max <= lower or not holds(n_max):
        return None
    return _bisect(holds, lower, n_max)


def _bisect(holds: Callable[[int], bool], lo: int, hi: int) -> int:
    """Least ``k`` in ``(lo, hi]`` with ``holds(k)``, given ``holds(lo)`` false and
    ``holds(hi)`` true."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if holds(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _gallop(holds: Callable[[int], bool], n_max: int, lower: int, hint: int) -> int | None:
    """:func:`smallest_enrollment` from a first guess ``lower < hint < n_max``."""
    step = 1
    if holds(hint):  # down: the answer is in lower..hint
        hi = hint
        while True:
            k = max(hi - step, lower)
            if not holds(k):
                return _bisect(holds, k, hi)
            if k == lower:
                return lower
            hi, step = k, step * 2
    lo = hint  # up: the answer is in hint+1..n_max, or none
    while True:
        k = min(lo + step, n_max)
        if holds(k):
            return _bisect(holds, lo, k)
        if k == n_max:
            return None
        lo, step = k, step * 2


def enrollment_at_confidence(k_per_draw: np.ndarray, confidence: float) -> tuple[float, float]:
    """The enrollment that holds in at least ``confidence`` of the draws.

    Parameters
    ----------
    k_per_draw
        Each draw's least enrollment [EVs], shape (draw,); ``inf`` where no enrollment
        holds.
    confidence
        Share of draws that must hold, in (0, 1].

    Returns
    -------
    k, share
        The least ``k`` with ``share(k_per_draw <= k) >= confidence`` [EVs] (``inf`` when
        fewer than that share of draws can hold at all), and that share [-] (with ``inf``:
        the share of draws that can hold).
    """
    k = np.sort(np.asarray(k_per_draw, dtype=float))
    if k.size == 0:
        return math.inf, math.nan
    need = max(1, math.ceil(confidence * k.size - 1e-9))  # draws that must hold
    chosen = float(k[need - 1])
    if not math.isfinite(chosen):
        return math.inf, float(np.isfinite(k).mean())
    return chosen, float((k <= chosen).mean())


@dataclass(frozen=True, eq=False)
class ProgramFlows:
    """A targeted program's enrollment and yearly flows, one entry per year of V2G.

    Attributes
    ----------
    years
        Years the program runs [year], increasing from the asset's year of need, (year,).
    enrolled
        EVs enrolled in each year [-] (enrollment persists: never below an earlier year's),
        (year,).
    export_kwh
        Energy the enrolled EVs export in each year [kWh], (year,).
    charging_loss_kwh
        Extra energy charged beyond the export (losses of the round trip) [kWh], (year,).
    capacity_kw
        Export limit of the enrolled EVs [kW] (capacity-payment basis), (year,).
    event_share
        Share of the export paid as emergency-event export (1 for ``v2g_event``) [-].
    """

    years: np.ndarray
    enrolled: np.ndarray
    export_kwh: np.ndarray
    charging_loss_kwh: np.ndarray
    capacity_kw: np.ndarray
    event_share: float = 0.0

    def first(self, n: int) -> ProgramFlows:
        """The program's first ``n`` years."""
        return dataclasses.replace(
            self,
            years=self.years[:n],
            enrolled=self.enrolled[:n],
            export_kwh=self.export_kwh[:n],
            charging_loss_kwh=self.charging_loss_kwh[:n],
            capacity_kw=self.capacity_kw[:n],
        )


@dataclass(frozen=True, eq=False)
class PlanCosts:
    """Procure or build for one asset: every plan "V2G until ``X``, then upgrade in ``X``".

    Attributes
    ----------
    upgrade_years
        ``X`` of each plan [year]: the year of need (build, no V2G) up to the first year V2G
        no longer holds (or the horizon's end + 1: upgrade after the horizon), (plan,).
    deferral_value_usd
        Present worth of moving the upgrade from the year of need to ``X`` [USD], (plan,).
    program_cost_usd
        Ratepayer present cost of the targeted program until ``X`` [USD], (plan,).
    participant_net_usd
        Participants' net benefit (payments less battery wear and energy) [USD], (plan,).
    net_benefit_usd
        Deferral value less program cost [USD], (plan,); 0 for building at the need year.
    enrollment_pv_per_usd
        Present worth of one dollar of upfront incentive per enrolled EV [USD/USD] (the sum
        of discounted enrollments), (plan,).
    best
        Position of the least-present-cost plan (largest net benefit; ties: earlier ``X``).
    break_even_incentive_usd
        The upfront incentive per enrolled EV [USD] below which some V2G plan beats building
        at the need year (``inf``: no enrollment needed; NaN: no V2G plan).
    """

    upgrade_years: np.ndarray
    deferral_value_usd: np.ndarray
    program_cost_usd: np.ndarray
    participant_net_usd: np.ndarray
    net_benefit_usd: np.ndarray
    enrollment_pv_per_usd: np.ndarray
    best: int
    break_even_incentive_usd: float


def procure_or_build(
    flows: ProgramFlows,
    *,
    upgrade_cost_usd: float,
    need_year: int,
    base_year: int,
    discount_rate: float,
    escalation_rate: float,
    costs: ProgramCosts,
) -> PlanCosts:
    """Present cost of "V2G until ``X``, then upgrade" for every ``X``, and the best plan.

    Plan ``X`` runs the targeted program in the years ``need_year .. X − 1`` (enrollments
    and flows of :class:`ProgramFlows`, valued by
    :func:`~gridplan.planning.economics.program_economics_by_year`: incentives when each
    customer enrolls, yearly flows at each year's end) and builds the upgrade in ``X``. Its
    benefit is the present worth of moving the upgrade from ``need_year`` to ``X``
    (:func:`~gridplan.planning.valuation.present_worth_of_shift_usd`, as the study's asset
    table values a deferral); its net benefit is that value less the ratepayer program
    cost. ``X = need_year`` is building at the need, net benefit 0.

    The break-even upfront incentive ``b*`` is where the best V2G plan's net benefit is 0:
    ``max_X (value(X) − other_cost(X)) / enrollments_pv(X)``, ``other_cost`` the program
    cost without upfront incentives. Net benefit falls as the incentive rises (each plan's
    cost grows with it), so below ``b*`` a V2G plan wins and above it building does.

    Parameters
    ----------
    flows
        The targeted program's years (from ``need_year``, as long as V2G holds).
    upgrade_cost_usd
        Upgrade cost in base-year dollars [USD].
    need_year
        Year of need without V2G [year].
    base_year
        Dollar year of the present values [year].
    discount_rate, escalation_rate
        Nominal discount rate and the upgrade cost's escalation [fraction/yr].
    costs
        Program prices.
    """
    n = len(flows.years)
    t1 = max(float(need_year - base_year), 0.0)
    xs = np.arange(n + 1) + int(need_year)
    value = np.zeros(n + 1)
    cost = np.zeros(n + 1)
    participant = np.zeros(n + 1)
    enroll_pv = np.zeros(n + 1)
    other = np.zeros(n + 1)
    no_upfront = dataclasses.replace(costs, upfront_incentive_usd_per_customer=0.0)
    for m in range(1, n + 1):
        part = flows.first(m)
        value[m] = present_worth_of_shift_usd(
            upgrade_cost_usd, t1, max(t1 + m, 0.0), discount_rate, escalation_rate
        )
        econ = _economics(part, value[m], base_year, discount_rate, costs)
        cost[m] = econ.ratepayer_cost_pv_usd
        participant[m] = econ.participant_net_benefit_pv_usd
        other[m] = _economics(
            part, value[m], base_year, discount_rate, no_upfront
        ).ratepayer_cost_pv_usd
        new = np.diff(np.r_[0.0, np.maximum.accumulate(part.enrolled)])
        enroll_pv[m] = float(new @ (1.0 + discount_rate) ** -(part.years - base_year))
    net = value - cost
    best = int(np.argmax(net))  # first maximum: the earlier upgrade on ties
    return PlanCosts(
        upgrade_years=xs,
        deferral_value_usd=value,
        program_cost_usd=cost,
        participant_net_usd=participant,
        net_benefit_usd=net,
        enrollment_pv_per_usd=enroll_pv,
        best=best,
        break_even_incentive_usd=_break_even(value[1:], other[1:], enroll_pv[1:]),
    )


def _economics(
    flows: ProgramFlows, value: float, base_year: int, rate: float, costs: ProgramCosts
) -> ProgramEconomics:
    new = np.diff(np.r_[0.0, np.maximum.accumulate(flows.enrolled)])
    return program_economics_by_year(
        value,
        years=flows.years,
        base_year=base_year,
        new_enrolled=new,
        v2g_export_kwh=flows.export_kwh,
        event_export_kwh=flows.export_kwh * flows.event_share,
        enrolled_capacity_kw=flows.capacity_kw,
        discount_rate=rate,
        costs=costs,
        charging_loss_kwh=flows.charging_loss_kwh,
    )


def _break_even(value: np.ndarray, other: np.ndarray, enroll_pv: np.ndarray) -> float:
    """``max_X (value − other) / enrollments_pv`` [USD] over the V2G plans."""
    if value.size == 0:
        return math.nan
    room = value - other
    if (enroll_pv <= 0).any() and (room[enroll_pv <= 0] >= 0).any():
        return math.inf  # a plan needs no enrollment and pays for itself
    ok = enroll_pv > 0
    if not ok.any():
        return math.nan
    return float(np.max(room[ok] / enroll_pv[ok]))


def upgrade_present_worth_usd(
    cost_usd: float, year: float, base_year: float, discount_rate: float, escalation_rate: float
) -> float:
    """Present worth at ``base_year`` of an upgrade built in ``year`` [USD].

    ``C · q^t`` with ``q = (1 + i)/(1 + r)`` and ``t = max(year − base_year, 0)``: the cost
    in base-year dollars escalated to its year and discounted back, the convention of
    :func:`~gridplan.planning.valuation.present_worth_of_shift_usd` (whose shift from
    ``t1`` to ``t2`` is the difference of two of these).

    Parameters
    ----------
    cost_usd
        Cost in base-year dollars [USD].
    year, base_year
        Year it is built and the dollar year of the present value [year].
    discount_rate, escalation_rate
        Nominal discount rate and the cost's escalation [fraction/yr].
    """
    t = max(float(year) - float(base_year), 0.0)
    return float(cost_usd) * ((1.0 + escalation_rate) / (1.0 + discount_rate)) ** t


@dataclass(frozen=True, eq=False)
class HybridCosts:
    """A "smaller upgrade now plus V2G" plan for one asset.

    Attributes
    ----------
    upgrade_pv_usd
        Present worth of the smaller upgrade built in the need year [USD].
    program_cost_usd
        Ratepayer present cost of the targeted program over its years [USD].
    participant_net_usd
        Participants' net benefit of that program [USD].
    present_cost_usd
        ``upgrade_pv_usd + program_cost_usd`` [USD].
    """

    upgrade_pv_usd: float
    program_cost_usd: float
    participant_net_usd: float
    present_cost_usd: float


def hybrid_plan(
    flows: ProgramFlows,
    *,
    smaller_cost_usd: float,
    need_year: int,
    base_year: int,
    discount_rate: float,
    escalation_rate: float,
    costs: ProgramCosts,
) -> HybridCosts:
    """Present cost of a smaller upgrade in the need year plus the targeted program.

    The smaller upgrade (cost in base-year dollars, :func:`upgrade_present_worth_usd` in
    ``need_year``) plus the ratepayer cost of the targeted program that keeps the smaller
    asset within its criterion in every year of ``flows`` (valued as
    :func:`procure_or_build` values its plans: incentives when each customer enrolls,
    yearly flows at each year's end). ``flows`` run to the horizon's end; nothing after the
    horizon is costed (as for the planned upgrade built at the need year, whose later life
    is not examined either).

    Parameters
    ----------
    flows
        The program that holds the smaller asset, from ``need_year`` to the horizon's end.
    smaller_cost_usd
        The smaller upgrade's cost in base-year dollars [USD].
    need_year
        Year the smaller upgrade is built (the year of need without V2G) [year].
    base_year
        Dollar year of the present values [year].
    discount_rate, escalation_rate
        Nominal discount rate and the upgrade cost's escalation [fraction/yr].
    costs
        Program prices.
    """
    upgrade = upgrade_present_worth_usd(
        smaller_cost_usd, need_year, base_year, discount_rate, escalation_rate
    )
    if len(flows.years) == 0:
        program = participant = 0.0
    else:
        econ = _economics(flows, 0.0, base_year, discount_rate, costs)
        program = float(econ.ratepayer_cost_pv_usd)
        participant = float(econ.participant_net_benefit_pv_usd)
    return HybridCosts(
        upgrade_pv_usd=upgrade,
        program_cost_usd=program,
        participant_net_usd=participant,
        present_cost_usd=upgrade + program,
    )


def choose_plan(present_cost_usd: dict[str, float]) -> str:
    """The least-present-cost plan (one of :data:`PLAN_KINDS`).

    Parameters
    ----------
    present_cost_usd
        Present cost of each plan considered [USD], keyed by plan kind; NaN or a missing
        key: the plan is not available (e.g. V2G does not hold the asset). Ties go to the
        plan listed first in :data:`PLAN_KINDS` (building, the plan without a program).
    """
    best, best_cost = PLAN_KINDS[0], math.inf
    for kind in PLAN_KINDS:
        cost = present_cost_usd.get(kind, math.nan)
        if math.isfinite(cost) and cost < best_cost - 1e-9:
            best, best_cost = kind, cost
    return best


def credited_enrollment(enrolled: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """EVs an upstream asset's program pays for each year, nested programs credited [EVs].

    Rule for nested assets (an EV behind a distribution transformer is also behind the
    feeder-head line upstream): the upstream asset's sign-up order puts first the EVs that
    the targeted programs of the assets nested inside it enroll that year; when those
    programs are adopted (their least-cost plan runs V2G that year), the shared EVs are
    already enrolled and paid for downstream, so the upstream program counts them first
    and costs only its increment ``max(enrolled − shared, 0)``. Enrollment persists (a
    running maximum), as for every program (:class:`ProgramFlows`).

    Parameters
    ----------
    enrolled
        The upstream asset's targeted enrollment each year [EVs], (year,).
    shared
        EVs of that enrollment that adopted nested programs already enroll [EVs], (year,).
    """
    own = np.maximum(np.asarray(enrolled, float) - np.asarray(shared, float), 0.0)
    return np.maximum.accumulate(own) if own.size else own


def tier(deferrable: bool, net_benefit_usd: float, certainty: float, confidence: float) -> str:
    """The tier of a deferral opportunity (one of :data:`TIERS`).

    Stated rule: *not deferrable* when no targeted enrollment holds the asset in its year
    of need in ``confidence`` of the draws (neither at today's rating nor with a smaller
    upgrade); else *not cost-effective* when no plan with V2G (V2G then the upgrade, or a
    smaller upgrade plus V2G) has a positive net benefit against building the planned
    upgrade at the need (the least-cost plan is to build); else *cost-effective and
    certain* when the targeted V2G of the chosen plan holds, re-verified by dispatch and
    power flow, in at least ``confidence`` of the draws in every year of the plan
    (``certainty``), and *cost-effective but uncertain* otherwise.
    """
    if not deferrable:
        return TIERS[3]
    if not net_benefit_usd > 0:
        return TIERS[2]
    return TIERS[0] if certainty >= confidence - 1e-9 else TIERS[1]
