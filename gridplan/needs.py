"""Needs: how loaded each monitored asset is, when it needs an upgrade, and which upgrade.

From a power-flow result and the feeder's monitored assets this module computes, per
asset: peak loading, hours over the planning limit, overload energy, the years until the
peak reaches the limit under compound load growth, and the smallest upgrade option that
carries the peak.

Year of need under compound growth (*derived*, see the deferral-years formula in the EPRI
DER-VET deferral logic and distribution deferral studies): an asset with peak loading ``P``
and planning limit ``L`` growing at ``g`` per year reaches its limit after
``ln(L / P) / ln(1 + g)`` years; relief ``ΔP`` on the peak moves that by
``ln(P / (P − ΔP)) / ln(1 + g)`` years.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridplan.feeders import Feeder


def asset_loading_pct(feeder: Feeder, flow: object) -> np.ndarray:
    """Loading of each monitored asset [% of rating], shape (time, asset).

    Columns follow ``feeder.assets`` order. Lines use pandapower's line loading
    (current / ``max_i_ka``), transformers its transformer loading.

    Parameters
    ----------
    feeder
        The feeder whose ``assets`` table names the elements.
    flow
        A :class:`gridplan.powerflow.FlowResult` (``line_loading_pct``, ``trafo_loading_pct``
        with ``line_index``, ``trafo_index``).
    """
    columns = []
    line_pos = {int(e): k for k, e in enumerate(np.asarray(flow.line_index))}  # type: ignore[attr-defined]
    trafo_pos = {int(e): k for k, e in enumerate(np.asarray(flow.trafo_index))}  # type: ignore[attr-defined]
    for kind, element in zip(feeder.assets.kind, feeder.assets.element, strict=True):
        if kind == "line":
            columns.append(flow.line_loading_pct[:, line_pos[int(element)]])  # type: ignore[attr-defined]
        else:
            columns.append(flow.trafo_loading_pct[:, trafo_pos[int(element)]])  # type: ignore[attr-defined]
    return np.column_stack(columns) if columns else np.zeros((0, 0))


def asset_metrics(
    feeder: Feeder, loading_pct: np.ndarray, time_index: pd.DatetimeIndex, step_h: float
) -> pd.DataFrame:
    """Peak loading, hours over the limit and overload energy of each monitored asset.

    Parameters
    ----------
    feeder
        Feeder with the ``assets`` table (``rating_kva``, ``limit_pct``).
    loading_pct
        Asset loading [% of rating], shape (time, asset), ``feeder.assets`` order. NaN steps
        (non-converged power flows) are ignored and counted in ``nan_steps``.
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
    assets = feeder.assets
    rating = assets.rating_kva.to_numpy()
    limit = assets.limit_pct.to_numpy()
    valid = np.isfinite(loading_pct)
    filled = np.where(valid, loading_pct, -np.inf)
    peak_pos = filled.argmax(axis=0) if len(loading_pct) else np.zeros(len(assets), dtype=int)
    peak = filled.max(axis=0) if len(loading_pct) else np.full(len(assets), np.nan)
    peak = np.where(np.isfinite(peak), peak, np.nan)
    over = np.where(valid, loading_pct - limit, 0.0)
    return pd.DataFrame(
        {
            "peak_loading_pct": peak,
            "peak_time": time_index[peak_pos],
            "peak_kva": peak / 100.0 * rating,
            "hours_over_limit": (over > 0).sum(axis=0) * step_h,
            "overload_energy_kvah": np.clip(over, 0, None).sum(axis=0) / 100.0 * rating * step_h,
            "nan_steps": (~valid).sum(axis=0),
        },
        index=assets.index,
    )


def years_to_need(
    peak_loading_pct: np.ndarray | float, limit_pct: np.ndarray | float, growth_rate: float
) -> np.ndarray:
    """Years until the peak reaches the limit under compound growth [yr].

    ``0`` when the peak is already above the limit; ``ln(L/P) / ln(1 + g)`` otherwise;
    ``inf`` when the load does not grow (``g <= 0``) and the peak is within the limit.
    """
    peak = np.asarray(peak_loading_pct, dtype=float)
    limit = np.asarray(limit_pct, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if growth_rate > 0:
            years = np.log(limit / peak) / np.log1p(growth_rate)
        else:
            years = np.full(np.broadcast(peak, limit).shape, np.inf)
    years = np.where(peak > limit, 0.0, years)
    return np.where(peak > 0, years, np.inf)


def choose_upgrades(feeder: Feeder, peak_kva: pd.Series) -> pd.DataFrame:
    """The smallest upgrade option of each asset that carries its peak within the limit.

    Parameters
    ----------
    feeder
        Feeder with ``assets`` (``limit_pct``) and ``upgrades`` (options per asset).
    peak_kva
        Peak apparent power the upgrade must carry [kVA], indexed by ``asset_id``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``asset_id``: ``upgrade_option``, ``new_rating_kva`` [kVA], ``cost_usd``
        [USD, in the option's dollar year], ``dollar_year``, ``cost_source`` and
        ``upgrade_sufficient`` (False when no option carries the peak: the largest is given).
        Assets without any option get NaN and an empty source.
    """
    rows = {}
    for asset_id, limit in feeder.assets.limit_pct.items():
        options = feeder.upgrades[feeder.upgrades.asset_id == asset_id]
        if options.empty:
            rows[asset_id] = {
                "upgrade_option": np.nan,
                "new_rating_kva": np.nan,
                "cost_usd": np.nan,
                "dollar_year": np.nan,
                "cost_source": "",
                "upgrade_sufficient": False,
            }
            continue
        fits = options[options.new_rating_kva * limit / 100.0 >= peak_kva.get(asset_id, np.inf)]
        pick = fits.iloc[0] if not fits.empty else options.iloc[-1]
        rows[asset_id] = {
            "upgrade_option": int(pick.option),
            "new_rating_kva": float(pick.new_rating_kva),
            "cost_usd": float(pick.cost_usd),
            "dollar_year": int(pick.dollar_year),
            "cost_source": str(pick.source),
            "upgrade_sufficient": not fits.empty,
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("asset_id")
