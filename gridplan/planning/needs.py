"""Needs: how loaded each monitored asset is, when it needs an upgrade, and which upgrade.

From a power-flow result and the feeder's monitored assets this module computes, per
asset: peak loading, hours over the planning limit, overload energy, the need flags of the
planning criteria, the need's characterization, the resource that meets it (EPRI DER-VET
deferral logic), years of need across draws, and the smallest upgrade option that carries
the peak. Years of need come from simulating each planning year, not from a growth
extrapolation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from gridplan.powerflow import FlowResult

__all__ = [
    "MonitoredAssets",
    "asset_loading_pct",
    "asset_metrics",
    "characterize_need",
    "deferral_requirement",
    "excess_kva",
    "first_year",
    "need_flags",
    "need_probability",
    "year_quantile",
]


@dataclass(frozen=True, eq=False)
class MonitoredAssets:
    """Monitored assets as arrays in one order: what the criteria need to know of them.

    Attributes
    ----------
    asset_id
        Asset ids, shape (asset,).
    kind
        ``"trafo"`` or ``"line"``, shape (asset,).
    element
        Index of the element in pandapower's ``trafo`` or ``line`` table, shape (asset,).
    rating_kva
        Rating [kVA], shape (asset,).
    limit_pct
        Planning limit [% of rating], shape (asset,).
    """

    asset_id: pd.Index
    kind: np.ndarray
    element: np.ndarray
    rating_kva: np.ndarray
    limit_pct: np.ndarray

    @classmethod
    def from_table(cls, assets: pd.DataFrame) -> MonitoredAssets:
        """From a feeder's ``assets`` table (``kind``, ``element``, ``rating_kva``,
        ``limit_pct``, indexed by ``asset_id``)."""
        return cls(
            asset_id=assets.index,
            kind=assets.kind.to_numpy(),
            element=assets.element.to_numpy(),
            rating_kva=assets.rating_kva.to_numpy(dtype=float),
            limit_pct=assets.limit_pct.to_numpy(dtype=float),
        )

    def __len__(self) -> int:
        return len(self.asset_id)


def asset_loading_pct(flow: FlowResult, assets: MonitoredAssets) -> np.ndarray:
    """Loading of each monitored asset [% of rating], shape (time, asset).

    Columns follow ``assets`` order. Lines use pandapower's line loading
    (current / ``max_i_ka``), transformers its transformer loading.

    Parameters
    ----------
    flow
        A power-flow result (``line_loading_pct``, ``trafo_loading_pct`` with
        ``line_index``, ``trafo_index``).
    assets
        The monitored assets (:meth:`MonitoredAssets.from_table`).
    """
    columns = []
    line_pos = {int(e): k for k, e in enumerate(np.asarray(flow.line_index))}
    trafo_pos = {int(e): k for k, e in enumerate(np.asarray(flow.trafo_index))}
    for kind, element in zip(assets.kind, assets.element, strict=True):
        if kind == "line":
            columns.append(flow.line_loading_pct[:, line_pos[int(element)]])
        else:
            columns.append(flow.trafo_loading_pct[:, trafo_pos[int(element)]])
    return np.column_stack(columns) if columns else np.zeros((0, 0))


def asset_metrics(
    loading_pct: np.ndarray,
    assets: MonitoredAssets,
    time_index: pd.DatetimeIndex,
    step_h: float,
) -> pd.DataFrame:
    """Peak loading, hours over the limit and overload energy of each monitored asset.

    Parameters
    ----------
    loading_pct
        Asset loading [% of rating], shape (time, asset), ``assets`` order. NaN steps
        (non-converged power flows) are ignored and counted in ``nan_steps``.
    assets
        Ratings [kVA] and planning limits [%] of the assets.
    time_index
        Time of each row.
    step_h
        Step length [h].

    Returns
    -------
    pandas.DataFrame
        Indexed by ``asset_id``: ``peak_loading_pct`` [%], ``peak_time``, ``peak_kva``
        [kVA], ``hours_over_limit`` [h], ``overload_energy_kvah`` [kVA·h above the limit, about
        kWh at unity power factor], ``nan_steps``.
    """
    rating = assets.rating_kva
    limit = assets.limit_pct
    loading_pct = np.asarray(loading_pct, dtype=float)
    nan_steps = np.isnan(loading_pct).sum(axis=0)
    filled = (
        np.where(np.isnan(loading_pct), -np.inf, loading_pct) if nan_steps.any() else loading_pct
    )
    if len(loading_pct):
        peak_pos = filled.argmax(axis=0)
        peak = np.take_along_axis(filled, peak_pos[None, :], axis=0)[0]
    else:
        peak_pos = np.zeros(len(assets), dtype=int)
        peak = np.full(len(assets), np.nan)
    peak = np.where(np.isfinite(peak), peak, np.nan)
    over = filled - limit  # NaN steps: -inf, never over
    is_over = over > 0
    hours = is_over.sum(axis=0) * step_h
    energy = np.zeros(len(assets))
    cols = np.flatnonzero(hours > 0)
    if cols.size:
        energy[cols] = np.where(is_over[:, cols], over[:, cols], 0.0).sum(axis=0)
    return pd.DataFrame(
        {
            "peak_loading_pct": peak,
            "peak_time": time_index[peak_pos],
            "peak_kva": peak / 100.0 * rating,
            "hours_over_limit": hours,
            "overload_energy_kvah": energy / 100.0 * rating * step_h,
            "nan_steps": nan_steps,
        },
        index=assets.asset_id,
    )


# --------------------------------------------------------------------------- criteria
def excess_kva(
    loading_pct: np.ndarray, rating_kva: np.ndarray, limit_pct: np.ndarray
) -> np.ndarray:
    """Apparent power above each asset's planning limit [kVA], shape (time, asset).

    ``max(loading − limit, 0) / 100 × rating``; NaN steps (non-converged) count as 0.
    """
    over = np.nan_to_num(loading_pct - limit_pct, nan=0.0)
    return np.clip(over, 0.0, None) / 100.0 * rating_kva


def need_flags(
    loading_pct: np.ndarray,
    limit_pct: np.ndarray,
    allowed_hours: np.ndarray,
    step_h: float,
    *,
    unsolved_over: bool = False,
) -> np.ndarray:
    """Whether each asset violates its loading criterion: more than ``allowed_hours`` over
    its limit in the simulated period, shape (asset,).

    Parameters
    ----------
    loading_pct
        Asset loading [%], (time, asset); NaN at steps whose power flow did not converge.
    limit_pct
        Planning limit [%], (asset,).
    allowed_hours
        Hours each asset may be over its limit [h], (asset,).
    step_h
        Step length [h].
    unsolved_over
        Count a step that did not converge as over the limit (divergence under added load
        is a sign of overload or voltage collapse: a need unless proven otherwise). Off, it
        counts as not over.
    """
    over = np.nan_to_num(loading_pct, nan=0.0) > limit_pct
    if unsolved_over:
        over |= np.isnan(loading_pct)
    hours = over.sum(axis=0) * step_h
    return hours > allowed_hours + 1e-9


def characterize_need(
    excess: np.ndarray, time_index: pd.DatetimeIndex, step_h: float
) -> pd.DataFrame:
    """Describe each asset's need from its excess series (CPUC GNA/DDOR-style fields).

    Parameters
    ----------
    excess
        Power above the limit [kW or kVA], shape (time, asset).
    time_index
        Time of each row (whole days expected for daily figures).
    step_h
        Step length [h].

    Returns
    -------
    pandas.DataFrame
        One row per asset (column order): ``peak_excess_kw`` [kW], ``max_daily_excess_kwh``
        [kWh], ``longest_excess_h`` [h] (longest run of consecutive steps over the limit),
        ``days_with_excess``, ``excess_months`` and ``excess_hours`` (space-separated month
        numbers and hours of day with any excess).
    """
    n_asset = excess.shape[1]
    over = excess > 0
    any_over = over.any(axis=0)
    if not any_over.any():  # the common case in a screening study: nothing to describe
        return pd.DataFrame(
            {
                "peak_excess_kw": np.zeros(n_asset),
                "max_daily_excess_kwh": np.zeros(n_asset),
                "longest_excess_h": np.zeros(n_asset),
                "days_with_excess": np.zeros(n_asset, dtype=int),
                "excess_months": [""] * n_asset,
                "excess_hours": [""] * n_asset,
            }
        )
    days = pd.DatetimeIndex(time_index).normalize()
    day_codes, day_index = pd.factorize(days)
    daily = np.zeros((len(day_index), n_asset))
    np.add.at(daily, day_codes, excess * step_h)
    months = np.asarray(time_index.month)
    hours = np.asarray(time_index.hour)
    rows = []
    for a in range(n_asset):
        mask = over[:, a]
        rows.append(
            {
                "peak_excess_kw": float(excess[:, a].max()) if len(excess) else 0.0,
                "max_daily_excess_kwh": float(daily[:, a].max()) if len(daily) else 0.0,
                "longest_excess_h": _longest_run(mask) * step_h,
                "days_with_excess": int((daily[:, a] > 0).sum()),
                "excess_months": " ".join(str(m) for m in np.unique(months[mask])),
                "excess_hours": " ".join(str(h) for h in np.unique(hours[mask])),
            }
        )
    return pd.DataFrame(rows)


def _longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True values."""
    if not mask.any():
        return 0
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max())


def deferral_requirement(
    load_kw: np.ndarray,
    limit_kw: np.ndarray,
    step_h: float,
    roundtrip_efficiency: float = 0.81,
    recovery: Literal["after_losses", "storagevet"] = "after_losses",
) -> tuple[np.ndarray, np.ndarray]:
    """Power and energy a resource must supply to keep each asset within its limit.

    EPRI DER-VET / StorageVET ``Deferral`` logic: the resource must discharge
    ``max(load − limit, 0)`` at every step; the required power is the peak of that. Between
    discharges it recharges as fast as it can -- at most the required power and at most the
    asset's headroom ``limit − load`` -- with recharge losses (``roundtrip_efficiency``
    applied to recharge energy). The required energy is the deepest the stored energy has
    to fall below its starting level (the largest range of the energy walk).

    With the walk ``w`` (energy below the starting level, >= 0) and
    ``y_t = discharge_t − η · recharge_t`` per step, ``w_t = max(0, w_{t−1} + y_t)`` (the
    Lindley recursion), computed in closed form ``w_t = Y_t − min(0, min_{s<=t} Y_s)`` with
    ``Y = cumsum(y)``, vectorized over assets.

    The recovery rule (``recovery``):

    - ``"after_losses"`` (default): a recharge step restores the whole deficit when the
      headroom allows, the cap applying to the energy *after* losses (the walk is floored
      at 0: the grid may draw up to ``w/(η·Δt)``).
    - ``"storagevet"``: StorageVET's walk caps the recharge power at ``w_{t−1}/Δt``
      *before* losses, so a step restores at most ``η·w_{t−1}`` and a deficit is never
      quite recovered between close events: its energy requirement can be several percent
      higher (computed step by step).

    Parameters
    ----------
    load_kw
        Load through each asset [kW], shape (time, asset).
    limit_kw
        Planning limit of each asset [kW], shape (asset,).
    step_h
        Step length [h].
    roundtrip_efficiency
        Round-trip efficiency of the resource [-]; default 0.81 = 0.9 charge x 0.9
        discharge (typical charging efficiency about 0.9, AFDC).
    recovery
        ``"after_losses"`` or ``"storagevet"`` (see above).

    Returns
    -------
    (power_kw, energy_kwh)
        Required discharge power [kW] and energy [kWh], each shape (asset,).
    """
    load = np.asarray(load_kw, dtype=float)
    limit = np.asarray(limit_kw, dtype=float)
    n_asset = load.shape[1]
    power, energy = np.zeros(n_asset), np.zeros(n_asset)
    if not len(load):
        return power, energy
    # only assets that ever exceed their limit need the walk (the rest need nothing)
    cols = np.flatnonzero(np.any(load > limit, axis=0))
    if not cols.size:
        return power, energy
    load = np.nan_to_num(load[:, cols], nan=0.0)
    limit = limit[cols]
    discharge = np.clip(load - limit, 0.0, None)
    power[cols] = p = discharge.max(axis=0)
    headroom = np.clip(limit - load, 0.0, None)
    recharge = np.minimum(headroom, p)
    if recovery == "storagevet":
        w = np.zeros(cols.size)
        deepest = np.zeros(cols.size)
        for t in range(load.shape[0]):  # the cap depends on the deficit: step by step
            r = np.minimum(recharge[t], w / step_h)
            w = np.maximum(w + (discharge[t] - roundtrip_efficiency * r) * step_h, 0.0)
            np.maximum(deepest, w, out=deepest)
        energy[cols] = deepest
        return power, energy
    if recovery != "after_losses":
        raise ValueError(f"unknown recovery rule {recovery!r} (after_losses or storagevet)")
    y = (discharge - roundtrip_efficiency * recharge) * step_h
    cum = np.cumsum(y, axis=0)
    floor = np.minimum(np.minimum.accumulate(cum, axis=0), 0.0)
    walk = cum - floor
    energy[cols] = walk.max(axis=0)
    return power, energy


def first_year(flags: np.ndarray, years: np.ndarray) -> np.ndarray:
    """First year in which ``flags`` is True along axis 0, else NaN.

    Parameters
    ----------
    flags
        Boolean array, shape (year, ...).
    years
        The planning years, shape (year,).

    Returns
    -------
    numpy.ndarray
        Shape ``flags.shape[1:]``, float (NaN = not within the horizon).
    """
    flags = np.asarray(flags, dtype=bool)
    any_flag = flags.any(axis=0)
    idx = flags.argmax(axis=0)
    return np.where(any_flag, np.asarray(years, dtype=float)[idx], np.nan)


def need_probability(year_of_need: np.ndarray, years: np.ndarray) -> np.ndarray:
    """Probability across draws that the need has arisen by each year.

    Parameters
    ----------
    year_of_need
        Year of need per draw (NaN: not within the horizon), shape (draw, ...).
    years
        Planning years, shape (year,).

    Returns
    -------
    numpy.ndarray
        Shape (year, ...): share of draws with ``year_of_need <= year``.
    """
    yon = np.asarray(year_of_need, dtype=float)
    filled = np.where(np.isnan(yon), np.inf, yon)
    return np.stack([(filled <= y).mean(axis=0) for y in years])


def year_quantile(year_of_need: np.ndarray, q: float, horizon_end: int) -> np.ndarray:
    """The first year by which the need has arisen in at least a share ``q`` of draws.

    The inverted-CDF quantile of the year of need across draws (axis 0): P50 is the year by
    which half the draws have the need, P90 the year by which 90 % have it. Draws without a
    need inside the horizon count as later than ``horizon_end``; a quantile that falls on
    them is NaN ("after the horizon").
    """
    yon = np.asarray(year_of_need, dtype=float)
    filled = np.where(np.isnan(yon), np.inf, yon)
    value = np.quantile(filled, q, axis=0, method="inverted_cdf")
    return np.where(np.isfinite(value) & (value <= horizon_end), value, np.nan)
