"""A feeder at a glance: size, peak and the headroom of its critical asset."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridplan.grid.feeders import Feeder
from gridplan.planning.needs import MonitoredAssets, asset_loading_pct, asset_metrics
from gridplan.powerflow import iter_timeseries

__all__ = ["feeder_overview"]


def feeder_overview(feeder: Feeder) -> dict[str, Any]:
    """Size and headroom of a feeder at its base-load peak step.

    Solves the power flow over the whole profile year (:func:`gridplan.powerflow.iter_timeseries`)
    and reports the critical asset: the monitored asset whose own peak is highest relative to
    its planning limit.

    Returns
    -------
    dict
        ``name``, ``buses``, ``loads``, ``assets``, ``households``, ``peak_load_kw`` [kW]
        (highest net base load), ``critical_asset``, ``critical_loading_pct`` [%],
        ``headroom_kva`` [kVA] (limit minus peak, negative when over).
    """
    assets = MonitoredAssets.from_table(feeder.assets)
    chunks = iter_timeseries(  # branch results of the monitored assets only, chunk by chunk
        feeder.net,
        feeder.load_p,
        load_q_kvar=feeder.load_q,
        sgen_p_kw=feeder.sgen_p,
        lines=[int(e) for k, e in zip(assets.kind, assets.element, strict=True) if k == "line"],
        trafos=[int(e) for k, e in zip(assets.kind, assets.element, strict=True) if k == "trafo"],
        buses=[],
    )
    loading = np.concatenate([asset_loading_pct(flow, assets) for _, flow in chunks])
    metrics = asset_metrics(loading, assets, feeder.time_index, feeder.step_h)
    headroom = (feeder.assets.limit_pct - metrics.peak_loading_pct) / 100 * feeder.assets.rating_kva
    critical = str((metrics.peak_loading_pct / feeder.assets.limit_pct).idxmax())
    return {
        "name": feeder.name,
        "buses": len(feeder.net.bus),
        "loads": len(feeder.net.load),
        "assets": len(feeder.assets),
        "households": int(feeder.households.sum()),
        "peak_load_kw": float(feeder.net_load_kw.max()),
        "critical_asset": str(feeder.assets.name.at[critical]),
        "critical_loading_pct": float(metrics.peak_loading_pct.at[critical]),
        "headroom_kva": float(headroom.at[critical]),
    }
