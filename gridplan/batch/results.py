"""The results table's columns, read from each unit's typed study summary."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from gridplan.study import StudySummary

__all__ = ["ID_COLUMNS", "PRIMARY_CASE", "RESULT_COLUMNS", "SUMMARY_COLUMNS", "summary_metrics"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- results
#: Columns of the results table read from each unit's study summary
#: (:func:`summary_metrics`): the critical asset's figures, the primary V2G case's
#: economics (``v2g``), counts of assets over their limit.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "year",
    "evs",
    "v2g_enrolled_evs",
    "critical_asset_id",
    "critical_asset",
    "peak_loading_pct_base",
    "peak_loading_pct_charging",
    "peak_loading_pct_v2g",
    "year_of_need_charging",
    "year_of_need_v2g",
    "year_of_need_p90_charging",
    "year_of_need_p90_v2g",
    "deferral_years",
    "upgrade_cost_usd",
    "deferral_value_usd_critical",
    "deferral_value_usd",
    "value_usd_per_kw_yr",
    "program_cost_usd",
    "net_benefit_usd",
    "firmness",
    "assets_over_limit_charging",
    "assets_over_limit_v2g",
)
#: Key of the primary V2G case in summary tables per case.
PRIMARY_CASE = "v2g"
_TEXT_COLUMNS = ("critical_asset_id", "critical_asset")
_INT_COLUMNS = (
    "year",
    "evs",
    "v2g_enrolled_evs",
    "year_of_need_charging",
    "year_of_need_v2g",
    "year_of_need_p90_charging",
    "year_of_need_p90_v2g",
    "assets_over_limit_charging",
    "assets_over_limit_v2g",
    "non_converged_steps",
)
#: Identity columns of the results table (then one column per scenario field).
ID_COLUMNS = ["unit_id", "feeder", "scenario", "scenario_name", "draw", "seed", "status", "error"]
#: Result columns after the scenario fields: :data:`SUMMARY_COLUMNS`, the power-flow steps
#: that did not converge (all cases), the net deferral value (net benefit when the summary
#: has one, else the deferral value) and its basis, and bookkeeping.
RESULT_COLUMNS = [
    *SUMMARY_COLUMNS,
    "non_converged_steps",
    "net_deferral_value_usd",
    "net_value_basis",
    "duration_s",
    "attempts",
    "worker",
    "config_hash",
]


def summary_metrics(summary: StudySummary) -> dict[str, Any]:
    """The results-table values of one study summary (NaN/None for absent figures).

    Parameters
    ----------
    summary
        A study's summary (:attr:`gridplan.study.StudyResult.summary`).

    Returns
    -------
    dict
        :data:`SUMMARY_COLUMNS` plus ``non_converged_steps``, ``net_deferral_value_usd``
        [USD] and ``net_value_basis``.
    """
    c = summary.critical_asset
    econ = summary.primary_economics
    values: dict[str, Any] = {
        "year": summary.year,
        "evs": summary.fleet.evs,
        "v2g_enrolled_evs": summary.fleet.v2g_enrolled_evs,
        "critical_asset_id": c.asset_id,
        "critical_asset": c.name,
        **{f"peak_loading_pct_{k}": c.peak_loading_pct.get(k) for k in ("base", "charging")},
        "peak_loading_pct_v2g": c.peak_loading_pct.get(PRIMARY_CASE),
        "year_of_need_charging": c.year_of_need_charging,
        "year_of_need_v2g": c.year_of_need_v2g,
        "year_of_need_p90_charging": c.year_of_need_charging_p90,
        "year_of_need_p90_v2g": None,  # the summary has no P90 with V2G
        "deferral_years": c.deferral_years,
        "upgrade_cost_usd": c.upgrade_cost_usd,
        "deferral_value_usd_critical": c.deferral_value_usd,
        "deferral_value_usd": (
            econ.deferral_value_usd
            if econ is not None
            else summary.deferral_value_usd_total.get(PRIMARY_CASE)
        ),
        "value_usd_per_kw_yr": None if econ is None else econ.value_usd_per_kw_yr,
        "program_cost_usd": None if econ is None else econ.ratepayer_cost_pv_usd,
        "net_benefit_usd": None if econ is None else econ.ratepayer_net_benefit_pv_usd,
        "firmness": c.firmness_v2g_end,
        "assets_over_limit_charging": summary.assets_over_limit.get("charging"),
        "assets_over_limit_v2g": summary.assets_over_limit.get(PRIMARY_CASE),
    }
    row: dict[str, Any] = {}
    for column in SUMMARY_COLUMNS:
        value = values[column]
        if column not in _TEXT_COLUMNS:
            value = _number(value)
            if column in _INT_COLUMNS and not math.isnan(value):
                value = int(value)
        row[column] = value
    steps = [_number(case.non_converged_steps) for case in summary.power_flow.values()]
    row["non_converged_steps"] = float(np.nansum(steps)) if steps else math.nan
    if not math.isnan(row["net_benefit_usd"]):
        row["net_deferral_value_usd"] = row["net_benefit_usd"]
        row["net_value_basis"] = "net_benefit_usd"
    else:
        row["net_deferral_value_usd"] = row["deferral_value_usd"]
        row["net_value_basis"] = "deferral_value_usd"
    return row


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan
