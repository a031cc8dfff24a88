"""What a deferral is worth: upgrade costs, present worth, carrying charges, program economics.

Pure functions over scalars or numpy arrays (see docs/architecture.md). All money is nominal US
dollars [USD]; every rate is a fraction per year (``0.07`` is 7 %/yr); time is in years after the
study's base year (``t = 0``), and annual flows are discounted end-of-year unless a function
says otherwise.

Contents
--------
Upgrade cost catalog
    :func:`load_upgrade_catalog`, :func:`upgrade_cost_usd`, :func:`select_transformer_upgrade`
    over the bundled ``gridplan/data/upgrade_costs.csv``.
Deferral value
    :func:`deferral_value_usd`, :func:`present_worth_of_shift_usd`, :func:`recc`,
    :func:`annual_deferral_value_usd`, :func:`capacity_value_usd_per_kw_yr`,
    :func:`value_per_enrolled_ev_usd_yr`.
Program economics
    :class:`ProgramCosts`, :func:`program_economics` -> :class:`ProgramEconomics`.
Sensitivity
    :func:`tornado`.

Sources
-------
- Present-worth (deferral) method ``PV = C·[1 − ((1 + i)/(1 + r))^n]``, used in distribution
  marginal-cost and DER valuation work; the real economic carrying charge (RECC) in its simple
  pre-tax form ``(r − i)/(1 − q^L)`` is derived from its definition (see :func:`recc`).
- Upgrade unit costs: NREL Distribution Upgrade Unit Cost Database (Horowitz et al. 2019,
  DOI 10.7799/1491263); PG&E Unit Cost Guide 2023 (as quoted in public hosting-capacity
  code); NREL DISCO generic cost database.
- Program figures: PG&E V2X pilots (residential upfront incentive), CPUC Emergency Load
  Reduction Program (ELRP), CEC Demand Side Grid Support (DSGS) Option 3.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np

from gridplan.core.errors import ConfigError
from gridplan.planning._inputs import (
    ArrayLike,
    FloatArray,
    _as_float_array,
    _broadcast,
    _check,
    _log_q,
    _non_negative,
    _out,
    _rate,
)

__all__ = [
    "annual_deferral_value_usd",
    "capacity_value_usd_per_kw_yr",
    "deferral_value_usd",
    "present_worth_of_shift_usd",
    "recc",
    "value_per_enrolled_ev_usd_yr",
]


# --------------------------------------------------------------------------------------------
# Deferral value
# --------------------------------------------------------------------------------------------


@overload
def deferral_value_usd(
    cost_usd: float,
    deferral_years: float,
    discount_rate: float,
    escalation_rate: float,
) -> float: ...


@overload
def deferral_value_usd(
    cost_usd: ArrayLike,
    deferral_years: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
) -> float | FloatArray: ...


def deferral_value_usd(
    cost_usd: ArrayLike,
    deferral_years: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
) -> float | FloatArray:
    """Present worth of deferring a capital upgrade by ``deferral_years``.

    ``PV = C · [1 − q^n]``, ``q = (1 + i)/(1 + r)`` (the present-worth or "deferral" method of
    distribution marginal-cost and DER valuation studies). For one year
    ``PV = C · (r − i)/(1 + r)``.

    Parameters
    ----------
    cost_usd
        ``C``, cost of the upgrade if built in the year of need, in base-year dollars [USD],
        >= 0.
    deferral_years
        ``n``, deferral [yr], >= 0; non-integer values are allowed.
    discount_rate
        ``r``, nominal discount rate, usually the utility's WACC [fraction/yr], > -1.
    escalation_rate
        ``i``, escalation of the upgrade's cost [fraction/yr], > -1.

    Returns
    -------
    float or numpy.ndarray
        Present value [USD] at the year of need. A float when every input is a scalar,
        otherwise an array of the broadcast shape. Lies in ``[0, C)`` when ``r > i``
        (increasing in ``n``, bounded by ``C``); exactly 0 when ``i == r``; **negative** when
        ``i > r`` -- the cost grows faster than money earns, so deferring costs more than
        building now. That is a valid answer, not an error.

    Raises
    ------
    ConfigError
        NaN or infinite inputs, a rate <= -1, a negative cost or deferral, or shapes that do
        not broadcast.

    Notes
    -----
    Computed as ``−C · expm1(n · log1p((i − r)/(1 + r)))``, accurate when ``i`` is near ``r``.
    When the need is ``t1`` years after the base year, use
    :func:`present_worth_of_shift_usd` (this function is its ``t1 = 0`` case).
    """
    c = _non_negative("cost_usd", cost_usd)
    n = _non_negative("deferral_years", deferral_years)
    r = _rate("discount_rate", discount_rate)
    i = _rate("escalation_rate", escalation_rate)
    c, n, r, i = _broadcast(cost_usd=c, deferral_years=n, discount_rate=r, escalation_rate=i)
    value = -c * np.expm1(n * _log_q(r, i)) + 0.0  # + 0.0 turns -0.0 into 0.0
    return _out(value, cost_usd, deferral_years, discount_rate, escalation_rate)


@overload
def present_worth_of_shift_usd(
    cost_usd: float,
    year_from: float,
    year_to: float,
    discount_rate: float,
    escalation_rate: float,
) -> float: ...


@overload
def present_worth_of_shift_usd(
    cost_usd: ArrayLike,
    year_from: ArrayLike,
    year_to: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
) -> float | FloatArray: ...


def present_worth_of_shift_usd(
    cost_usd: ArrayLike,
    year_from: ArrayLike,
    year_to: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
) -> float | FloatArray:
    """Present worth of moving an upgrade from ``year_from`` to ``year_to``.

    ``PV = C · (q^t1 − q^t2)``, ``q = (1 + i)/(1 + r)``, with ``t1``/``t2`` years after the base
    year. An upgrade costing ``C`` in base-year dollars costs ``C(1 + i)^t`` when built at
    ``t``, whose present worth is ``C q^t``; the shift is worth the difference. With
    ``t1 = 0`` this is :func:`deferral_value_usd` with ``n = t2``.

    Parameters
    ----------
    cost_usd
        ``C``, cost of the upgrade in base-year dollars [USD], >= 0.
    year_from
        ``t1``, year of need without the program [yr after the base year], >= 0.
    year_to
        ``t2``, year of need with the program [yr after the base year], >= 0. ``t2 < t1``
        (an upgrade brought forward) gives the opposite sign.
    discount_rate
        ``r``, nominal discount rate [fraction/yr], > -1.
    escalation_rate
        ``i``, escalation of the upgrade's cost [fraction/yr], > -1.

    Returns
    -------
    float or numpy.ndarray
        Present value at the base year [USD]; a float for all-scalar inputs. Negative when
        ``i > r`` and ``t2 > t1`` (see :func:`deferral_value_usd`).

    Raises
    ------
    ConfigError
        NaN or infinite inputs, a rate <= -1, a negative cost or year, or shapes that do not
        broadcast.
    """
    c = _non_negative("cost_usd", cost_usd)
    t1 = _non_negative("year_from", year_from)
    t2 = _non_negative("year_to", year_to)
    r = _rate("discount_rate", discount_rate)
    i = _rate("escalation_rate", escalation_rate)
    c, t1, t2, r, i = _broadcast(
        cost_usd=c, year_from=t1, year_to=t2, discount_rate=r, escalation_rate=i
    )
    log_q = _log_q(r, i)
    # C q^t1 (1 − q^(t2 − t1)), in the expm1 form for accuracy near i == r.
    value = -c * np.exp(t1 * log_q) * np.expm1((t2 - t1) * log_q) + 0.0
    return _out(value, cost_usd, year_from, year_to, discount_rate, escalation_rate)


_TIMINGS: tuple[str, ...] = ("end", "begin")


@overload
def recc(
    discount_rate: float,
    escalation_rate: float,
    life_years: float,
    timing: Literal["end", "begin"] = ...,
) -> float: ...


@overload
def recc(
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
    life_years: ArrayLike,
    timing: Literal["end", "begin"] = ...,
) -> float | FloatArray: ...


def recc(
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
    life_years: ArrayLike,
    timing: Literal["end", "begin"] = "end",
) -> float | FloatArray:
    """Real economic carrying charge: first-year capital charge per dollar of investment.

    The constant-in-real-terms series ``RECC · C · (1 + i)^(k−1)`` for ``k = 1..L``, discounted
    at ``r``, has present value ``C``. Simple pre-tax form (*derived*), ``q = (1 + i)/(1 + r)``:

    - end-of-year payments (year ``k`` paid at ``t = k``): ``RECC = (r − i)/(1 − q^L)``;
    - beginning-of-year payments (paid at ``t = k − 1``): ``RECC = (r − i)/((1 + r)(1 − q^L))``.

    Parameters
    ----------
    discount_rate
        ``r``, nominal discount rate (WACC) [fraction/yr], > -1.
    escalation_rate
        ``i``, escalation of the asset's cost / inflation [fraction/yr], > -1.
    life_years
        ``L``, asset life [yr], > 0 (normally a whole number; the formula accepts any).
    timing
        ``"end"`` (default) or ``"begin"``: when each year's payment falls.

    Returns
    -------
    float or numpy.ndarray
        RECC [1/yr, fraction of the investment per year]; a float for all-scalar inputs.

    Raises
    ------
    ConfigError
        NaN/inf, a rate <= -1, ``life_years <= 0``, unknown ``timing`` (valid ones listed),
        shapes that do not broadcast.

    Notes
    -----
    **Limit r == i** (``q = 1``). The end-of-year series is worth
    ``RECC·C·Σ_{k=1..L} (1+i)^(k−1)/(1+r)^k = RECC·C·L/(1 + r)``, so ``RECC = (1 + r)/L``;
    L'Hôpital on ``(r − i)/(1 − q^L)`` gives the same, since ``1 − q^L ≈ L(r − i)/(1 + r)``.
    Beginning-of-year payments are not discounted by that extra year: ``RECC = 1/L``.
    (Only the beginning-of-year limit is the plain ``1/L``; with end-of-year payments each
    payment arrives a year later and must be larger by ``1 + r``.) The function returns these
    limits exactly at ``r == i`` and is continuous across it (computed as
    ``(1 + r)·x / expm1(L·log1p(x))`` with ``x = (i − r)/(1 + r)``).

    As ``L → ∞`` with ``r > i``, the end-of-year RECC tends to ``r − i``, and its first
    payment ``C(r − i)`` at ``t = 1`` has present value ``C(r − i)/(1 + r)``: one year of
    deferral, as in :func:`deferral_value_usd`. Utility carrying-charge rates also include
    O&M, property tax, insurance and income-tax effects (e.g. National Grid/Niagara Mohawk 2025
    MCOS, NY PSC), which this simple form leaves out.
    """
    if timing not in _TIMINGS:
        raise ConfigError(
            f"unknown timing {timing!r}; expected one of {list(_TIMINGS)}", field="timing"
        )
    r = _rate("discount_rate", discount_rate)
    i = _rate("escalation_rate", escalation_rate)
    life = _as_float_array("life_years", life_years)
    _check("life_years", life, life > 0.0, "an asset life > 0 [yr]")
    r, i, life = _broadcast(discount_rate=r, escalation_rate=i, life_years=life)

    x = (i - r) / (1.0 + r)
    denom = np.expm1(life * np.log1p(x))  # q^L − 1; same sign as x, zero only when x == 0
    limit = x == 0.0
    safe_denom = np.where(limit, 1.0, denom)
    end = np.where(limit, (1.0 + r) / life, (1.0 + r) * x / safe_denom)
    value = end if timing == "end" else end / (1.0 + r)
    return _out(value, discount_rate, escalation_rate, life_years)


@overload
def annual_deferral_value_usd(
    cost_usd: float,
    discount_rate: float,
    escalation_rate: float,
    life_years: float,
    timing: Literal["end", "begin"] = ...,
) -> float: ...


@overload
def annual_deferral_value_usd(
    cost_usd: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
    life_years: ArrayLike,
    timing: Literal["end", "begin"] = ...,
) -> float | FloatArray: ...


def annual_deferral_value_usd(
    cost_usd: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
    life_years: ArrayLike,
    timing: Literal["end", "begin"] = "end",
) -> float | FloatArray:
    """Value of deferring an upgrade by one year, as a first-year annual charge: ``C · RECC``.

    Parameters
    ----------
    cost_usd
        ``C``, cost of the upgrade [USD], >= 0.
    discount_rate
        ``r``, nominal discount rate (WACC) [fraction/yr], > -1.
    escalation_rate
        ``i``, cost escalation [fraction/yr], > -1.
    life_years
        ``L``, asset life [yr], > 0.
    timing
        ``"end"`` or ``"begin"`` of year payments (see :func:`recc`).

    Returns
    -------
    float or numpy.ndarray
        First-year value [USD/yr]; year ``k``'s value is this times ``(1 + i)^(k−1)``.

    Raises
    ------
    ConfigError
        As :func:`recc`, plus a negative or non-finite cost.
    """
    c = _non_negative("cost_usd", cost_usd)
    rate = np.asarray(recc(discount_rate, escalation_rate, life_years, timing))
    c, rate = _broadcast(cost_usd=c, recc=rate)
    return _out(c * rate, cost_usd, discount_rate, escalation_rate, life_years)


@overload
def capacity_value_usd_per_kw_yr(
    annual_value_usd: float,
    capacity_kw: float,
) -> float: ...


@overload
def capacity_value_usd_per_kw_yr(
    annual_value_usd: ArrayLike,
    capacity_kw: ArrayLike,
) -> float | FloatArray: ...


def capacity_value_usd_per_kw_yr(
    annual_value_usd: ArrayLike, capacity_kw: ArrayLike
) -> float | FloatArray:
    """Value per kW-year of capacity: annual value ÷ capacity.

    As in marginal cost of service studies, the annualised cost (here, value) of a capacity
    addition divided by the kW it adds (e.g. Central Hudson 2025 MCOS, NY PSC docket
    19-E-0283). California T&D avoided-cost figures for comparison (CPUC demand-response
    cost-effectiveness decision, 2012 values): distribution PG&E 57.03, SCE 30.71, SDG&E 53.28
    $/kW-yr.

    Parameters
    ----------
    annual_value_usd
        Annual value [USD/yr], e.g. from :func:`annual_deferral_value_usd`; may be negative.
    capacity_kw
        Capacity provided [kW], >= 0 (e.g. the peak relief V2G delivers).

    Returns
    -------
    float or numpy.ndarray
        [USD/kW-yr]. **NaN where ``capacity_kw == 0``**: no capacity was provided, so a
        per-kW value is undefined (not infinite, not zero). NaN rather than an error, so that
        one feeder without V2G capacity does not stop a batch; filter it out before
        averaging.

    Raises
    ------
    ConfigError
        NaN/inf inputs, negative capacity, shapes that do not broadcast.
    """
    value = _as_float_array("annual_value_usd", annual_value_usd)
    cap = _non_negative("capacity_kw", capacity_kw)
    value, cap = _broadcast(annual_value_usd=value, capacity_kw=cap)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(cap > 0.0, value / np.where(cap > 0.0, cap, 1.0), np.nan)
    return _out(out, annual_value_usd, capacity_kw)


@overload
def value_per_enrolled_ev_usd_yr(
    annual_value_usd: float,
    n_enrolled: float,
) -> float: ...


@overload
def value_per_enrolled_ev_usd_yr(
    annual_value_usd: ArrayLike,
    n_enrolled: ArrayLike,
) -> float | FloatArray: ...


def value_per_enrolled_ev_usd_yr(
    annual_value_usd: ArrayLike, n_enrolled: ArrayLike
) -> float | FloatArray:
    """Value per enrolled EV and year: annual value ÷ number of enrolled EVs.

    For comparison: Evolved Energy Research for the Union of Concerned Scientists (2025)
    estimate just under $1,200/yr per participating EV for V2G in California in 2045 (about
    $500/yr for managed charging), avoided distribution investment being the largest share.

    Parameters
    ----------
    annual_value_usd
        Annual value [USD/yr]; may be negative.
    n_enrolled
        Number of EVs enrolled in V2G [-], >= 0 (a mean over draws may be non-integer).

    Returns
    -------
    float or numpy.ndarray
        [USD/EV-yr]. **NaN where ``n_enrolled == 0``**: no EV enrolled, so a per-EV value is
        undefined (same convention as :func:`capacity_value_usd_per_kw_yr`).

    Raises
    ------
    ConfigError
        NaN/inf inputs, a negative count, shapes that do not broadcast.
    """
    value = _as_float_array("annual_value_usd", annual_value_usd)
    n = _non_negative("n_enrolled", n_enrolled)
    value, n = _broadcast(annual_value_usd=value, n_enrolled=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(n > 0.0, value / np.where(n > 0.0, n, 1.0), np.nan)
    return _out(out, annual_value_usd, n_enrolled)
