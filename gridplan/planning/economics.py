"""Program economics: what a V2G program costs and pays, for the ratepayer and the participant.

:class:`ProgramCosts` (defaults from the PG&E V2X pilots, CPUC ELRP and CEC DSGS; see each
field), :func:`program_economics` -> :class:`ProgramEconomics`, :func:`annuity_factor`.

Perspectives
------------
**Ratepayer perspective** (the utility that defers the upgrade). Benefit: the deferral
value only, i.e. the present worth of the local capacity relief. Costs: upfront
incentives + performance payments + event payments if
``costs.event_payments_utility_funded`` + capacity payments if
``costs.capacity_payments_utility_funded``.

**Participant perspective** (all enrolled EV owners together). Revenue: upfront
incentives + performance + event + capacity payments, whoever funds them. Costs: battery
wear on all exported kWh + the energy bought to replace all exported kWh and their
losses. Export credits under the participant's own tariff are not modelled.

**No double counting of event kWh.** ``event_export_kwh_per_yr`` is the part of
``v2g_export_kwh_per_yr`` exported during emergency (ELRP) events. Each exported kWh is
paid once: event kWh at ``event_payment_usd_per_kwh``, the other
``v2g_export − event_export`` kWh at ``performance_payment_usd_per_kwh``. The deferral
value is a capacity value (it comes from the years the upgrade moves, not from kWh), and
no per-kWh value of event exports enters the ratepayer benefit. ELRP is a statewide
reliability product: by default its payments are participant revenue funded outside the
local deferral, and neither its cost nor its system benefit appears in the ratepayer
test. If the local utility pays the event payments itself, set
``event_payments_utility_funded=True`` and they become a ratepayer cost -- still with
no event benefit added, so a kWh that both relieves the feeder and earns an event
payment is valued once (through the deferral) and paid once. Wear and energy costs
apply to the total export, counted once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

from gridplan.core.errors import ConfigError
from gridplan.planning._inputs import _non_negative, _rate, _scalar

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_V2G_ROUNDTRIP_EFFICIENCY",
    "ELRP_MAX_EVENT_HOURS_PER_YR",
    "ProgramCosts",
    "ProgramEconomics",
    "annuity_factor",
    "program_economics",
    "program_economics_by_year",
]


#: ELRP caps events at 60 hours a year (CPUC ELRP); used only to flag implausible inputs.
ELRP_MAX_EVENT_HOURS_PER_YR = 60.0

#: V2G round-trip efficiency grid -> battery -> grid [-] used when charging losses are not
#: given: 0.9 × 0.9 (*derived* from the charging efficiency of about 0.9 typical of EV
#: chargers, assumed to hold for discharging too).
DEFAULT_V2G_ROUNDTRIP_EFFICIENCY = 0.81


@dataclass(frozen=True)
class ProgramCosts:
    """Prices of a V2G program: what the utility pays participants and what V2G costs them.

    Attributes
    ----------
    charging_energy_price_usd_per_kwh
        Price the participant pays for the extra energy charged to replace exported energy
        and its losses [USD/kWh]. **Required, no default**: tariffs change at least yearly and
        differ by utility, so the study must name the tariff, period and date it uses (e.g.
        the off-peak price of PG&E's residential EV rate EV2-A in force in the study year).
    upfront_incentive_usd_per_customer
        One-time enrollment incentive the utility pays per enrolled customer (EV) [USD].
        Default 2,500: PG&E V2X pilot, residential ($3,000 in disadvantaged communities; the
        $1,500 early-adopter bonus for the first 250 is not included).
    performance_payment_usd_per_kwh
        Utility payment per kWh exported for *local* relief outside emergency events
        [USD/kWh]. Default 0 (the PG&E V2X pilot pays "up to $2,000" of performance
        incentives per residential customer, which is not a per-kWh rate).
    event_payment_usd_per_kwh
        Payment per kWh exported during emergency events [USD/kWh]. Default 2.0: CPUC
        Emergency Load Reduction Program (ELRP), $2/kWh of verified reduction, 4-9 pm,
        May-October, at most 60 h/yr; PG&E V2X pilot participants must enroll in ELRP.
    event_payments_utility_funded
        Whether the utility running the local deferral pays the event payments out of the
        deferral budget [-]. Default False: ELRP buys statewide reliability (it is triggered
        by CAISO alerts, warnings, emergencies or Flex Alerts), a benefit this module does not
        count, so its payments stay out of the local ratepayer test too.
    capacity_payment_usd_per_kw_month
        Reservation payment per kW of enrolled export capacity and program month
        [USD/kW-month], modelled on DSGS Option 3 (CEC; capacity commitment with a
        reservation payment, May 1-Oct 31, minimum 500 kW aggregate). Default 0: DSGS rates
        depend on yearly appropriations; set a value to study a local capacity payment.
    capacity_payment_months_per_yr
        Months a year the capacity payment is paid [month/yr]. Default 6: the DSGS season
        May 1-Oct 31.
    capacity_payments_utility_funded
        Whether the utility pays the capacity payment for the local relief [-]. Default True
        (a local DSGS-style reservation bought for the deferral); set False for actual DSGS,
        which the CEC funds.
    battery_wear_usd_per_kwh
        Battery degradation cost per kWh exported [USD/kWh]. Default 0.02 ($83/kWh ÷ 3,650
        cycles), as used in some V2G studies -- **weakly sourced**; vary it in sensitivity
        runs.

    Raises
    ------
    ConfigError
        Any price negative or not finite, months outside [0, 12], flags not bool.
    """

    charging_energy_price_usd_per_kwh: float
    upfront_incentive_usd_per_customer: float = 2500.0
    performance_payment_usd_per_kwh: float = 0.0
    event_payment_usd_per_kwh: float = 2.0
    event_payments_utility_funded: bool = False
    capacity_payment_usd_per_kw_month: float = 0.0
    capacity_payment_months_per_yr: float = 6.0
    capacity_payments_utility_funded: bool = True
    battery_wear_usd_per_kwh: float = 0.02

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            name = f"ProgramCosts.{f.name}"
            if f.name.endswith("_funded"):
                if not isinstance(value, bool | np.bool_):
                    raise ConfigError(f"expected True or False, got {value!r}", field=name)
                continue
            arr = _non_negative(name, value)
            if arr.ndim != 0:
                raise ConfigError(f"expected a scalar, got shape {arr.shape}", field=name)
            object.__setattr__(self, f.name, float(arr))
        if self.capacity_payment_months_per_yr > 12.0:
            raise ConfigError(
                f"expected 0-12 months, got {self.capacity_payment_months_per_yr!r}",
                field="ProgramCosts.capacity_payment_months_per_yr",
            )


@dataclass(frozen=True)
class ProgramEconomics:
    """Result of :func:`program_economics`. Present values [USD] at the base year ``t = 0``.

    Attributes
    ----------
    years
        Program duration [yr].
    annuity_factor
        Present value of 1 USD paid at the end of each program year [yr-equivalent].
    ratepayer_benefit_pv_usd
        Deferral value (local capacity relief only).
    upfront_incentives_pv_usd
        Enrollment incentives, paid at ``t = 0``.
    performance_payments_pv_usd
        Utility payments for non-event (local) export kWh.
    event_payments_pv_usd
        Event (ELRP) payments, whoever funds them.
    capacity_payments_pv_usd
        Capacity reservation payments, whoever funds them.
    ratepayer_cost_pv_usd
        Upfront + performance + the event/capacity payments the utility funds.
    ratepayer_net_benefit_pv_usd
        Benefit − cost.
    ratepayer_benefit_cost_ratio
        Benefit ÷ cost [-]; ``inf`` (signed like the benefit) when the cost is 0, NaN when
        both are 0.
    participant_revenue_pv_usd
        Upfront + performance + event + capacity payments.
    participant_battery_wear_pv_usd
        Battery wear on exported energy.
    participant_energy_cost_pv_usd
        Energy bought to replace exports and their losses.
    participant_cost_pv_usd
        Wear + energy.
    participant_net_benefit_pv_usd
        Revenue − cost, all participants together.
    participant_benefit_cost_ratio
        Revenue ÷ cost [-] (same zero-cost convention as the ratepayer ratio).
    participant_net_per_ev_pv_usd
        Participant net benefit per enrolled EV [USD/EV] (NaN when none enrolled).
    event_payments_in_ratepayer_cost
        Whether event payments were counted as a ratepayer cost [-].
    capacity_payments_in_ratepayer_cost
        Whether capacity payments were counted as a ratepayer cost [-].
    """

    years: int
    annuity_factor: float
    ratepayer_benefit_pv_usd: float
    upfront_incentives_pv_usd: float
    performance_payments_pv_usd: float
    event_payments_pv_usd: float
    capacity_payments_pv_usd: float
    ratepayer_cost_pv_usd: float
    ratepayer_net_benefit_pv_usd: float
    ratepayer_benefit_cost_ratio: float
    participant_revenue_pv_usd: float
    participant_battery_wear_pv_usd: float
    participant_energy_cost_pv_usd: float
    participant_cost_pv_usd: float
    participant_net_benefit_pv_usd: float
    participant_benefit_cost_ratio: float
    participant_net_per_ev_pv_usd: float
    event_payments_in_ratepayer_cost: bool
    capacity_payments_in_ratepayer_cost: bool


def _ratio(benefit: float, cost: float) -> float:
    if cost > 0.0:
        return benefit / cost
    if benefit == 0.0:
        return math.nan
    return math.copysign(math.inf, benefit)


def annuity_factor(discount_rate: float, years: int) -> float:
    """Present value of 1 USD paid at the end of each of ``years`` years [yr-equivalent].

    ``(1 − (1 + r)^−N) / r``, and ``N`` when ``r = 0`` (computed with expm1/log1p so it is
    accurate near ``r = 0``).
    """
    r = float(discount_rate)
    return float(years) if r == 0.0 else -math.expm1(-years * math.log1p(r)) / r


class _ProgramInputs(NamedTuple):
    benefit: float
    n_ev: float
    export: float
    event: float
    cap_kw: float
    n_years: int
    rate: float
    loss: float


def _program_inputs(
    deferral_value_usd: float,
    n_enrolled: float,
    v2g_export_kwh_per_yr: float,
    event_export_kwh_per_yr: float,
    enrolled_capacity_kw: float,
    years: int,
    discount_rate: float,
    charging_loss_kwh_per_yr: float | None,
) -> _ProgramInputs:
    """Check the inputs of :func:`program_economics` (errors name the argument)."""
    benefit = _scalar("deferral_value_usd", deferral_value_usd)
    n_ev = _scalar("n_enrolled", n_enrolled)
    export = _scalar("v2g_export_kwh_per_yr", v2g_export_kwh_per_yr)
    event = _scalar("event_export_kwh_per_yr", event_export_kwh_per_yr)
    cap_kw = _scalar("enrolled_capacity_kw", enrolled_capacity_kw)
    for name, v in (
        ("n_enrolled", n_ev),
        ("v2g_export_kwh_per_yr", export),
        ("event_export_kwh_per_yr", event),
        ("enrolled_capacity_kw", cap_kw),
    ):
        if v < 0.0:
            raise ConfigError(f"expected a value >= 0, got {v!r}", field=name)
    if event > export:
        raise ConfigError(
            f"event exports ({event:g} kWh/yr) exceed total V2G exports ({export:g} kWh/yr); "
            "event_export_kwh_per_yr must be the part of v2g_export_kwh_per_yr exported in events",
            field="event_export_kwh_per_yr",
        )
    n_years = _scalar("years", years)
    if n_years < 0 or n_years != int(n_years):
        raise ConfigError(f"expected a whole number of years >= 0, got {years!r}", field="years")
    n_years_int = int(n_years)
    r = float(_rate("discount_rate", discount_rate))
    if charging_loss_kwh_per_yr is None:
        loss = export * (1.0 / DEFAULT_V2G_ROUNDTRIP_EFFICIENCY - 1.0)
    else:
        loss = _scalar("charging_loss_kwh_per_yr", charging_loss_kwh_per_yr)
        if loss < 0.0:
            raise ConfigError(
                f"expected a value >= 0, got {loss!r}", field="charging_loss_kwh_per_yr"
            )
    if event > ELRP_MAX_EVENT_HOURS_PER_YR * cap_kw:
        logger.warning(
            "event exports %.0f kWh/yr exceed %.0f h/yr x %.1f kW enrolled (the ELRP event-hour "
            "cap); check the event dispatch",
            event,
            ELRP_MAX_EVENT_HOURS_PER_YR,
            cap_kw,
        )

    return _ProgramInputs(benefit, n_ev, export, event, cap_kw, n_years_int, r, loss)


def program_economics(
    deferral_value_usd: float,
    *,
    n_enrolled: float,
    v2g_export_kwh_per_yr: float,
    event_export_kwh_per_yr: float,
    enrolled_capacity_kw: float,
    years: int,
    discount_rate: float,
    costs: ProgramCosts,
    charging_loss_kwh_per_yr: float | None = None,
) -> ProgramEconomics:
    """Ratepayer (utility) and participant economics of a V2G deferral program.

    Timing: upfront incentives at ``t = 0``; every annual flow is constant in nominal terms
    and paid at the **end** of program years ``1..years``, discounted at ``discount_rate``:
    ``PV = annual · AF``, ``AF = (1 − (1 + r)^−N)/r`` (``AF = N`` when ``r = 0``).

    Who pays and receives what, and why no event kWh is counted twice: see the module
    docstring (*Perspectives*).

    Parameters
    ----------
    deferral_value_usd
        Present value at ``t = 0`` of the deferral [USD] (from :func:`deferral_value_usd`
        or :func:`present_worth_of_shift_usd` with the same base year and discount rate);
        negative when escalation exceeds the discount rate.
    n_enrolled
        Enrolled EVs/customers [-], >= 0 (one upfront incentive each).
    v2g_export_kwh_per_yr
        All V2G energy exported at the meter per year [kWh/yr], >= 0.
    event_export_kwh_per_yr
        The part of it exported during emergency events [kWh/yr], 0 <= it <= the total.
    enrolled_capacity_kw
        Enrolled export capacity [kW], >= 0 (basis of the capacity payment).
    years
        Program duration [yr], a whole number >= 0.
    discount_rate
        Nominal discount rate [fraction/yr], > -1 (the same rate as the deferral value).
    costs
        Program prices, :class:`ProgramCosts`.
    charging_loss_kwh_per_yr
        Extra energy lost recharging the battery for the exports [kWh/yr], >= 0. ``None``
        (default) estimates it as ``export · (1/η − 1)`` with
        ``η =`` :data:`DEFAULT_V2G_ROUNDTRIP_EFFICIENCY` (0.81, *derived*); pass the losses
        from the dispatch results when available.

    Returns
    -------
    ProgramEconomics

    Raises
    ------
    ConfigError
        NaN/inf or negative quantities, event export above the total export, non-integer or
        negative ``years``, ``discount_rate <= -1``, ``costs`` not a :class:`ProgramCosts`.
    """
    if not isinstance(costs, ProgramCosts):
        raise ConfigError(f"expected a ProgramCosts, got {type(costs).__name__}", field="costs")
    inputs = _program_inputs(
        deferral_value_usd,
        n_enrolled,
        v2g_export_kwh_per_yr,
        event_export_kwh_per_yr,
        enrolled_capacity_kw,
        years,
        discount_rate,
        charging_loss_kwh_per_yr,
    )
    benefit, n_ev, export, event = inputs.benefit, inputs.n_ev, inputs.export, inputs.event
    cap_kw, n_years_int, r, loss = inputs.cap_kw, inputs.n_years, inputs.rate, inputs.loss
    af = annuity_factor(r, n_years_int)

    upfront = n_ev * costs.upfront_incentive_usd_per_customer
    performance = (export - event) * costs.performance_payment_usd_per_kwh * af
    event_pay = event * costs.event_payment_usd_per_kwh * af
    capacity = (
        cap_kw * costs.capacity_payment_usd_per_kw_month * costs.capacity_payment_months_per_yr * af
    )
    wear = export * costs.battery_wear_usd_per_kwh * af
    energy = (export + loss) * costs.charging_energy_price_usd_per_kwh * af
    return _assemble(
        costs, n_years_int, af, benefit, n_ev, upfront, performance, event_pay, capacity, wear,
        energy,
    )  # fmt: skip


def _assemble(
    costs: ProgramCosts,
    n_years_int: int,
    af: float,
    benefit: float,
    n_ev: float,
    upfront: float,
    performance: float,
    event_pay: float,
    capacity: float,
    wear: float,
    energy: float,
) -> ProgramEconomics:
    """Both perspectives from the present values of each flow [USD]."""
    ratepayer_cost = upfront + performance
    if costs.event_payments_utility_funded:
        ratepayer_cost += event_pay
    if costs.capacity_payments_utility_funded:
        ratepayer_cost += capacity
    revenue = upfront + performance + event_pay + capacity
    p_cost = wear + energy
    p_net = revenue - p_cost
    return ProgramEconomics(
        years=n_years_int,
        annuity_factor=af,
        ratepayer_benefit_pv_usd=benefit,
        upfront_incentives_pv_usd=upfront,
        performance_payments_pv_usd=performance,
        event_payments_pv_usd=event_pay,
        capacity_payments_pv_usd=capacity,
        ratepayer_cost_pv_usd=ratepayer_cost,
        ratepayer_net_benefit_pv_usd=benefit - ratepayer_cost,
        ratepayer_benefit_cost_ratio=_ratio(benefit, ratepayer_cost),
        participant_revenue_pv_usd=revenue,
        participant_battery_wear_pv_usd=wear,
        participant_energy_cost_pv_usd=energy,
        participant_cost_pv_usd=p_cost,
        participant_net_benefit_pv_usd=p_net,
        participant_benefit_cost_ratio=_ratio(revenue, p_cost),
        participant_net_per_ev_pv_usd=p_net / n_ev if n_ev > 0 else math.nan,
        event_payments_in_ratepayer_cost=bool(costs.event_payments_utility_funded),
        capacity_payments_in_ratepayer_cost=bool(costs.capacity_payments_utility_funded),
    )


def program_economics_by_year(
    deferral_value_usd: float,
    *,
    years: Sequence[int] | np.ndarray,
    base_year: int,
    new_enrolled: Sequence[float] | np.ndarray,
    v2g_export_kwh: Sequence[float] | np.ndarray,
    event_export_kwh: Sequence[float] | np.ndarray,
    enrolled_capacity_kw: Sequence[float] | np.ndarray,
    discount_rate: float,
    costs: ProgramCosts,
    charging_loss_kwh: Sequence[float] | np.ndarray | None = None,
) -> ProgramEconomics:
    """Program economics with flows in the years they happen (issue 19, valuation timing).

    Timing: a customer's upfront incentive is paid when it enrolls, at the start of its
    enrollment year (``t = year − base_year``); each year's export, event and capacity
    payments, battery wear and energy are paid at the end of that year
    (``t = year − base_year + 1``); every flow is discounted at ``discount_rate`` to
    ``base_year`` (the dollar year of the deferral value). With one enrollment in the first
    year and constant flows this equals :func:`program_economics` over ``len(years)`` years.

    Parameters
    ----------
    deferral_value_usd
        Present value at ``base_year`` of the deferral [USD].
    years
        Program years [year], increasing, the first >= ``base_year``.
    base_year
        Year of ``t = 0`` [year].
    new_enrolled
        Customers enrolling in each year [-], >= 0, shape (year,).
    v2g_export_kwh, event_export_kwh
        Export at the meter in each year, and its part during emergency events [kWh],
        shape (year,).
    enrolled_capacity_kw
        Enrolled export capacity in each year [kW] (capacity payment basis), shape (year,).
    discount_rate
        Nominal discount rate [fraction/yr], > -1.
    costs
        Program prices.
    charging_loss_kwh
        Extra energy lost recharging for the exports in each year [kWh]; default
        ``export · (1/η − 1)`` with :data:`DEFAULT_V2G_ROUNDTRIP_EFFICIENCY`.

    Returns
    -------
    ProgramEconomics
        ``annuity_factor`` is the present value of 1 USD at the end of each program year.
    """
    if not isinstance(costs, ProgramCosts):
        raise ConfigError(f"expected a ProgramCosts, got {type(costs).__name__}", field="costs")
    y = np.asarray(years, dtype=float)
    flows = {
        "new_enrolled": new_enrolled,
        "v2g_export_kwh": v2g_export_kwh,
        "event_export_kwh": event_export_kwh,
        "enrolled_capacity_kw": enrolled_capacity_kw,
    }
    arr = {}
    for name, value in flows.items():
        a = np.asarray(value, dtype=float)
        if a.shape != y.shape or not np.isfinite(a).all() or (a < 0).any():
            raise ConfigError(
                f"{name} must be {y.size} finite values >= 0 (one per program year)", field=name
            )
        arr[name] = a
    if (arr["event_export_kwh"] > arr["v2g_export_kwh"] + 1e-9).any():
        raise ConfigError(
            "event export exceeds the total export in a year", field="event_export_kwh"
        )
    if not (math.isfinite(discount_rate) and discount_rate > -1.0):
        raise ConfigError(f"discount_rate must be > -1, got {discount_rate}", field="discount_rate")
    export, event = arr["v2g_export_kwh"], arr["event_export_kwh"]
    if charging_loss_kwh is None:
        loss = export * (1.0 / DEFAULT_V2G_ROUNDTRIP_EFFICIENCY - 1.0)
    else:
        loss = np.asarray(charging_loss_kwh, dtype=float)
    start = (1.0 + discount_rate) ** -(y - base_year)  # start of each year
    end = (1.0 + discount_rate) ** -(y - base_year + 1.0)  # end of each year
    upfront = float(arr["new_enrolled"] @ start) * costs.upfront_incentive_usd_per_customer
    performance = float((export - event) @ end) * costs.performance_payment_usd_per_kwh
    event_pay = float(event @ end) * costs.event_payment_usd_per_kwh
    capacity = float(arr["enrolled_capacity_kw"] @ end) * (
        costs.capacity_payment_usd_per_kw_month * costs.capacity_payment_months_per_yr
    )
    wear = float(export @ end) * costs.battery_wear_usd_per_kwh
    energy = float((export + loss) @ end) * costs.charging_energy_price_usd_per_kwh
    return _assemble(
        costs, int(y.size), float(end.sum()), float(deferral_value_usd),
        float(arr["new_enrolled"].sum()), upfront, performance, event_pay, capacity, wear, energy,
    )  # fmt: skip
