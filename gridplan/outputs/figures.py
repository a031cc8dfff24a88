"""Figures of a study and of a batch screen, drawn from result objects only.

Every function here reads a :class:`~gridplan.study.result.StudyResult` (or a batch results
table) and returns a :class:`matplotlib.figure.Figure`; nothing is recomputed -- no power flow,
no dispatch, no valuation. The critical asset is the one the study's typed summary names
(``result.summary.critical_asset``). Figures are built on :class:`~matplotlib.figure.Figure`
directly (no global figure state and no backend switch, so they are safe in threads, batch
workers and notebooks) and saved with the Agg renderer.

:func:`write_figures` writes every figure of a study as PNG and SVG:

============================  ===============================================================
``loading_duration``          loading duration curve of the critical asset per case
``loading_heatmap``           day × time-of-day loading of the critical asset, without and
                              with V2G (the days simulated)
``peak_day``                  the peak day stacked: base load, EV charging, V2G export, net,
                              against the planning limit
``need_probability``          probability of need by year, without and with V2G
``deferral_waterfall``        gross deferral value, program costs, net benefit
``sensitivity_tornado``       one-at-a-time sensitivity (only with ``[sensitivity]``)
``feeder_map``                lines and transformers by peak loading, buses by minimum
                              voltage and EVs per bus, constrained assets marked
============================  ===============================================================

A feeder without geographic coordinates is drawn on the schematic coordinates of its model
(:func:`model_layout`, e.g. OpenDSS ``BusCoords``; no CRS) or, without those, on a schematic
layout computed from its topology (:func:`schematic_layout`); the map says which in its title.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gridplan.core.io import write_with
from gridplan.grid.topology import downstream_buses

if TYPE_CHECKING:
    from gridplan.grid.feeders import Feeder
    from gridplan.study.result import StudyResult

__all__ = [
    "FORMATS",
    "DPI",
    "CAPTIONS",
    "write_figures",
    "save_figure",
    "case_label",
    "plot_loading_duration",
    "plot_loading_heatmap",
    "plot_peak_day",
    "plot_need_probability",
    "waterfall_steps",
    "plot_deferral_waterfall",
    "parameter_label",
    "range_text",
    "headline_label",
    "plot_sensitivity_tornado",
    "model_layout",
    "schematic_layout",
    "map_geometry",
    "asset_points",
    "ev_legend_counts",
    "plot_feeder_map",
    "STUDY_FIGURES",
    "BATCH_CAPTIONS",
    "plot_batch_screen",
    "write_batch_figures",
]

log = logging.getLogger(__name__)

#: Figure file formats written by :func:`write_figures`.
FORMATS = ("png", "svg")
#: Resolution of the PNG files [dots per inch].
DPI = 120

#: Caption of each study figure (used by the report).
CAPTIONS: dict[str, str] = {
    "loading_duration": (
        "Loading duration curve of the critical asset over the simulated period of the "
        "detail year (the critical asset's median draw): share of time at or above each "
        "loading, per case."
    ),
    "loading_heatmap": (
        "Loading of the critical asset by day and time of day (detail year, the critical "
        "asset's median draw), without and with V2G; only the simulated days are shown."
    ),
    "peak_day": (
        "Peak day of the critical asset (the day of its highest loading without V2G): base "
        "load, EV charging and V2G export of the EVs downstream, and the asset's loading "
        "with and without V2G, against the planning limit."
    ),
    "need_probability": (
        "Probability that the critical asset needs an upgrade by each planning year, and the "
        "expected number of monitored assets that need one, without and with V2G (share "
        "of Monte Carlo draws)."
    ),
    "deferral_waterfall": (
        "Deferral value waterfall (present worth): gross deferral value, the program costs "
        "the utility pays, and the ratepayer net benefit."
    ),
    "sensitivity_tornado": (
        "One-at-a-time sensitivity: the headline value with each parameter at its low and "
        "high value, the others at base."
    ),
    "feeder_map": (
        "Feeder map: lines and transformers coloured by peak loading (detail year, median "
        "over draws), buses by minimum voltage, marker size by EVs per bus; assets over "
        "their planning limit are marked."
    ),
}

_CASE_COLORS = {"base": "0.45", "charging": "tab:red", "v2g": "tab:blue"}
_EXTRA_COLORS = ["tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:cyan", "tab:olive"]
_PARAMETER_LABELS = {
    "discount_rate": "discount rate",
    "escalation_rate": "cost escalation",
    "upgrade_cost": "upgrade cost",
    "load_growth": "load growth",
    "ev_adoption": "EV adoption",
    "enrollment": "V2G enrollment",
}
_RC: Any = {  # matplotlib rcParams (typed as Any: its stubs list every key)
    "svg.hashsalt": "gridplan",  # stable element ids: the same result gives the same SVG
    "svg.fonttype": "path",
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 11,
}


# --------------------------------------------------------------------------- writing
def write_figures(result: StudyResult, out_dir: str | Path, *, progress: bool = False) -> list[str]:
    """Write every figure of a study into ``out_dir`` as PNG and SVG (each atomically).

    Figures whose data the result does not hold (the tornado without ``[sensitivity]``, the
    waterfall without economics) are skipped.

    Parameters
    ----------
    result
        A study result (:func:`gridplan.study.run`).
    out_dir
        Folder to write into (created if missing).
    progress
        Show a progress bar over the figures.

    Returns
    -------
    list of str
        File names written, ``<figure>.png`` and ``<figure>.svg`` in :data:`STUDY_FIGURES`
        order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    items: Any = list(STUDY_FIGURES.items())
    if progress:
        from gridplan.core.progress import progress_bar

        items = progress_bar(
            iterable=items, desc="figures", unit="figure", leave=False, disable=False
        )
    for name, draw in items:
        with _style():
            fig = draw(result)
        if fig is None:
            log.info("figure %s skipped: the result holds no data for it", name)
            continue
        files.extend(save_figure(fig, out, name))
    return files


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> list[str]:
    """Save ``fig`` as ``<name>.png`` and ``<name>.svg`` in ``out_dir`` (atomically).

    PNG at :data:`DPI`; the SVG carries no date, so the same figure gives the same bytes.

    Returns
    -------
    list of str
        The file names written.
    """
    out = Path(out_dir)
    files = []
    with _style():
        for fmt in FORMATS:
            metadata = {"Date": None} if fmt == "svg" else None

            def writer(tmp: Path, fmt: str = fmt, metadata: Any = metadata) -> None:
                fig.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata)

            write_with(out / f"{name}.{fmt}", writer)
            files.append(f"{name}.{fmt}")
    return files


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(_RC):
        yield


# --------------------------------------------------------------------------- helpers
def _asset(result: StudyResult, asset_id: str | None) -> tuple[str, int, pd.Series]:
    """Asset id (default: the critical asset), its column and its row of ``result.assets``."""
    if asset_id is None:
        asset_id = result.summary.critical_asset.asset_id
    assets = result.feeder.assets
    if asset_id not in assets.index:
        raise KeyError(f"unknown asset '{asset_id}' (expected one of: {', '.join(assets.index)})")
    return asset_id, int(assets.index.get_loc(asset_id)), result.assets.loc[asset_id]


def case_label(result: StudyResult, case: str) -> str:
    """Readable label of a case key (``base`` -> ``no EVs``, ``v2g`` -> ``with V2G (…)``)."""
    strategy = result.horizon.strategies.get(case)
    if strategy is None:
        return "no EVs"
    if case == "v1g":
        return f"managed charging only, no export (V1G: {strategy} without export)"
    if case == "v2g_perfect":
        return f"with V2G, every enrolled EV answering at full power ({strategy})"
    if case.startswith("v2g"):
        return f"with V2G ({strategy})"
    return f"EV charging, no V2G ({strategy})"


def _case_style(case: str, cases: Sequence[str]) -> dict[str, Any]:
    if case in _CASE_COLORS:
        return {"color": _CASE_COLORS[case], "ls": "-"}
    extra = [c for c in cases if c not in _CASE_COLORS]
    color = _EXTRA_COLORS[extra.index(case) % len(_EXTRA_COLORS)]
    return {"color": color, "ls": "--"}


def _period_text(result: StudyResult) -> str:
    index = result.time_index
    kind = result.config.period.kind.replace("_", " ")
    return f"{kind} {index[0]:%d %b}–{index[-1]:%d %b} (profile dates)"


def _title(result: StudyResult, what: str, asset: pd.Series | None = None) -> str:
    parts = [f"{result.feeder.name} {result.config.year}"]
    if asset is not None:
        name = str(asset["name"])
        parts.append(name if "kVA" in name else f"{name} ({asset.rating_kva:.0f} kVA)")
    parts.append(what)
    return " · ".join(parts)


def _usd(value: float) -> str:
    """Compact dollar text: $1.23M, $45.6k, $789."""
    if not np.isfinite(value):
        return "n/a"
    sign = "−" if value < 0 else ""
    v = abs(value)
    if v >= 1e6:
        return f"{sign}${v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{sign}${v / 1e3:.1f}k"
    return f"{sign}${v:.0f}"


def _downstream_ev_power(result: StudyResult, asset_id: str, case: str) -> tuple[np.ndarray, bool]:
    """Power of the EVs downstream of an asset in one case [kW], (time, ev or load).

    Per EV (second value ``True``) when the dispatch kept per-EV series, else summed per
    home load (``False``).
    """
    buses = downstream_buses(result.feeder)[asset_id]
    dispatch = result.ev_dispatch[case]
    per_ev = getattr(dispatch, "ev_power_kw", None)
    if per_ev is not None:
        return np.asarray(per_ev)[:, np.isin(result.fleet.bus, buses)], True
    return dispatch.loads_power_kw(np.isin(result.feeder.load_bus, buses)), False


def _downstream_pv_kw(result: StudyResult, asset_id: str, times: pd.DatetimeIndex) -> np.ndarray:
    """Output of the PV (``sgen``) downstream of an asset at ``times`` [kW], (time,).

    Zero where the feeder has no generation downstream of the asset.
    """
    feeder = result.feeder
    if feeder.sgen_p.shape[1] == 0:
        return np.zeros(len(times))
    buses = downstream_buses(feeder)[asset_id]
    mine = np.isin(feeder.net.sgen.bus.to_numpy(), buses).astype(float)
    rows = feeder.time_index.get_indexer(times)
    # only the rows asked for, summed over the generators downstream (never the whole year)
    out = feeder.sgen_p[np.clip(rows, 0, None)] @ mine
    return np.where(rows >= 0, out, 0.0)


# --------------------------------------------------------------------------- figures
def plot_loading_duration(result: StudyResult, asset_id: str | None = None) -> Figure:
    """Loading duration curve of an asset (default: the critical asset) per case.

    Parameters
    ----------
    result
        Study result; uses ``loading_pct`` (detail year, the critical asset's median draw).
    asset_id
        Monitored asset; default the critical asset of ``result.summary``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    asset_id, col, row = _asset(result, asset_id)
    fig = Figure(figsize=(8, 4.5), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    step_h = result.feeder.step_h
    cases = list(result.loading_pct)
    for case in cases:
        values = np.sort(np.nan_to_num(result.loading_pct[case][:, col], nan=0.0))[::-1]
        # The asset is at or above values[i] for (i + 1) steps.
        hours = np.arange(values.size + 1) * step_h
        over = float((values > row.limit_pct).sum() * step_h)
        ax.step(
            hours,
            np.concatenate([values[:1], values]),
            where="pre",
            lw=1.4,
            label=f"{case_label(result, case)}: peak {values[0]:.0f} %, {over:g} h over",
            **_case_style(case, cases),
        )
    ax.axhline(row.limit_pct, color="k", ls=":", lw=1, label=f"planning limit {row.limit_pct:g} %")
    total_h = len(result.time_index) * step_h
    ax.set_xlim(0, total_h)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"hours at or above the loading [h] (of {total_h:g} h simulated)")
    ax.set_ylabel("loading [% of rating]")
    ax.set_title(_title(result, f"loading duration, {_period_text(result)}", row))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return fig


def _day_matrix(
    index: pd.DatetimeIndex, values: np.ndarray, step_h: float
) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Values as (day, step of day) for the days present in ``index`` (NaN where missing)."""
    days = index.normalize()
    unique = pd.DatetimeIndex(days.unique())
    per_day = round(24.0 / step_h)
    row = unique.get_indexer(days)
    col = np.clip(((index - days) / pd.Timedelta(hours=step_h)).astype(int), 0, per_day - 1)
    matrix = np.full((len(unique), per_day), np.nan)
    # Duplicate (day, step) labels (a DST fall-back hour): keep the higher value.
    order = np.argsort(np.nan_to_num(values, nan=-np.inf))
    matrix[row[order], col[order]] = values[order]
    return matrix, unique


def plot_loading_heatmap(
    result: StudyResult, asset_id: str | None = None, cases: Sequence[str] = ("charging", "v2g")
) -> Figure:
    """Day × time-of-day heatmap of an asset's loading, one panel per case.

    Only the simulated days appear (a peak week gives seven rows, a full year 365).
    The colour scale is centred on the planning limit: red is over it.

    Parameters
    ----------
    result
        Study result; uses ``loading_pct`` (detail year, the critical asset's median draw).
    asset_id
        Monitored asset; default the critical asset.
    cases
        Cases to show side by side (those present in the result).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.dates as mdates
    from matplotlib.colors import TwoSlopeNorm

    asset_id, col, row = _asset(result, asset_id)
    shown = [c for c in cases if c in result.loading_pct] or list(result.loading_pct)[:1]
    step_h = result.feeder.step_h
    matrices = []
    for case in shown:
        matrix, days = _day_matrix(result.time_index, result.loading_pct[case][:, col], step_h)
        matrices.append(matrix)
    vmax = max(float(np.nanmax(m)) if np.isfinite(m).any() else 0.0 for m in matrices)
    limit = float(row.limit_pct)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=limit, vmax=max(vmax, limit * 1.05))
    n_days = len(days)
    height = float(np.clip(2.2 + 0.012 * n_days, 3.2, 9.0)) if n_days > 10 else 3.6
    fig = Figure(figsize=(5.0 * len(shown) + 1.2, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(shown), sharey=True, squeeze=False)[0]
    first = mdates.date2num(days[0].to_pydatetime())
    last = mdates.date2num((days[-1] + pd.Timedelta(days=1)).to_pydatetime())
    image = None
    for ax, case, matrix in zip(axes, shown, matrices, strict=True):
        image = ax.imshow(
            matrix,
            aspect="auto",
            cmap="RdYlBu_r",
            norm=norm,
            extent=(0.0, 24.0, last, first),
            interpolation="nearest",
        )
        ax.set_title(case_label(result, case))
        ax.set_xlabel("time of day [h]")
        ax.set_xticks(np.arange(0, 25, 3))
        ax.yaxis_date()
        locator = mdates.AutoDateLocator(minticks=3, maxticks=12)
        ax.yaxis.set_major_locator(locator)
        ax.yaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes[0].set_ylabel(f"day ({n_days} simulated, profile dates)")
    assert image is not None
    bar = fig.colorbar(image, ax=list(axes), shrink=0.9, pad=0.02)
    bar.set_label("loading [% of rating]")
    bar.ax.axhline(limit, color="k", lw=1.2)
    fig.suptitle(_title(result, "loading by day and time of day", row))
    return fig


def plot_peak_day(result: StudyResult, asset_id: str | None = None) -> Figure:
    """The peak day of an asset stacked: base load, EV charging, V2G export, net, and PV.

    The peak day is the day of the asset's highest loading without V2G (``charging``).
    Rooftop PV downstream of the asset (the feeder's ``sgen`` profiles) is drawn as a line
    when there is any: it is already netted in the base load.
    Base load is the ``base`` case loading; EV charging and V2G export are the power of
    the EVs downstream of the asset in the ``v2g`` case (charging above zero, export
    below); the net lines are the asset's loading with and without V2G from the power
    flow. Loadings are converted to kVA with the asset's rating; EV power is in kW.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.dates as mdates

    asset_id, col, row = _asset(result, asset_id)
    rating = float(row.rating_kva)
    to_kva = rating / 100.0
    index = result.time_index
    without = "charging" if "charging" in result.loading_pct else list(result.loading_pct)[-1]
    with_v2g = "v2g" if "v2g" in result.loading_pct else without
    peak_step = int(np.nanargmax(np.nan_to_num(result.loading_pct[without][:, col], nan=-1)))
    day = index[peak_step].normalize()
    sel = (index >= day) & (index < day + pd.Timedelta(days=1))
    t = index[sel]
    base = np.nan_to_num(result.loading_pct["base"][sel, col]) * to_kva
    per_ev = True
    if with_v2g in result.ev_dispatch:
        power, per_ev = _downstream_ev_power(result, asset_id, with_v2g)
        ev = power[sel]
    else:
        ev = np.zeros((int(sel.sum()), 0))
    charging = np.clip(ev, 0.0, None).sum(axis=1)
    export = np.clip(ev, None, 0.0).sum(axis=1)
    solar = _downstream_pv_kw(result, asset_id, t)
    net = np.nan_to_num(result.loading_pct[with_v2g][sel, col]) * to_kva
    net_without = np.nan_to_num(result.loading_pct[without][sel, col]) * to_kva
    limit = float(row.limit_pct) * to_kva

    # Repeat the last value one step later so that the last step is drawn in full.
    t = t.append(pd.DatetimeIndex([t[-1] + pd.Timedelta(hours=result.feeder.step_h)]))
    base, charging, export, net, net_without, solar = (
        np.append(a, a[-1]) for a in (base, charging, export, net, net_without, solar)
    )
    fig = Figure(figsize=(9, 4.8), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    kw: dict[str, Any] = {"step": "post", "lw": 0}
    ax.fill_between(t, 0, base, color="0.75", label="base load (no EVs) [kVA]", **kw)
    ax.fill_between(
        t, base, base + charging, color="tab:orange", alpha=0.8, label="EV charging [kW]", **kw
    )
    ax.fill_between(
        t, 0, export, color="tab:green", alpha=0.8, label="V2G export [kW] (negative)", **kw
    )
    ax.step(
        t,
        net_without,
        where="post",
        color="tab:red",
        ls="--",
        lw=1.3,
        label=f"net, {case_label(result, without)} [kVA]",
    )
    ax.step(
        t, net, where="post", color="k", lw=1.6, label=f"net, {case_label(result, with_v2g)} [kVA]"
    )
    if solar.any():
        ax.step(
            t,
            solar,
            where="post",
            color="goldenrod",
            lw=1.4,
            label="rooftop PV downstream [kW] (netted in base load)",
        )
    ax.axhline(
        limit,
        color="tab:purple",
        ls=":",
        lw=1.3,
        label=f"planning limit {row.limit_pct:g} % = {limit:.0f} kVA",
    )
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("power [kW] / apparent power [kVA]")
    ax.set_xlabel(f"{day:%a %d %b} (profile dates)")
    ax.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 3)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.set_xlim(t[0], t[-1])
    n_ev = int(ev.shape[1]) if per_ev else None
    who = (
        f"{n_ev} EVs downstream (this asset's median draw)"
        if n_ev is not None
        else "EVs downstream"
    )
    ax.set_title(_title(result, f"peak day, {who}", row))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", ncols=2)
    top = max(float(np.max(base + charging)), float(np.max(net_without)), limit)
    ax.set_ylim(min(float(export.min(initial=0.0)) * 1.1, -0.05 * top), top * 1.35)
    return fig


def plot_need_probability(result: StudyResult, asset_id: str | None = None) -> Figure:
    """Probability of need by planning year, without and with V2G.

    Left: the share of draws in which an asset (default: the critical asset) needs an
    upgrade in or before each year. Right: the expected number of monitored assets that
    need an upgrade by each year (sum of their probabilities). From ``result.needs``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    asset_id, _, row = _asset(result, asset_id)
    needs = result.needs
    cases = list(result.horizon.cases)
    fig = Figure(figsize=(11, 4.3), dpi=DPI, layout="constrained")
    left, right = fig.subplots(1, 2)
    for case in cases:
        rows = needs[(needs.case == case)]
        one = rows[rows.asset_id == asset_id].sort_values("year")
        style = _case_style(case, cases)
        width = 3.2 - 1.6 * cases.index(case) / max(1, len(cases) - 1)  # overlaps stay visible
        left.step(
            one.year,
            one.need_by_year_probability * 100,
            where="mid",
            lw=width,
            label=case_label(result, case),
            **style,
        )
        total = rows.groupby("year").need_by_year_probability.sum()
        right.step(
            total.index,
            total.to_numpy(),
            where="mid",
            lw=width,
            label=case_label(result, case),
            **style,
        )
    confidence = result.config.horizon.confidence
    left.axhline(50, color="0.3", ls=":", lw=0.9, label="P50")
    left.axhline(confidence * 100, color="0.3", ls="-.", lw=0.9, label=f"{confidence:.0%}")
    left.set_ylim(-3, 103)
    left.set_ylabel("draws with a need by that year [%]")
    left.set_title(f"{row['name']}: probability of need by year")
    right.set_ylabel("expected assets needing an upgrade [-]")
    right.set_ylim(bottom=0)
    right.set_title(f"all {len(result.feeder.assets)} monitored assets")
    draws = int(result.horizon.need.shape[1])
    for ax in (left, right):
        ax.set_xlabel("planning year")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    left.legend(loc="lower right")
    fig.suptitle(
        f"{result.feeder.name} · probability of need, {draws} draw{'s' * (draws != 1)} per year"
    )
    return fig


#: Ratepayer cost components of :func:`gridplan.planning.valuation.program_economics` and the
#: flag that says whether each counts as a ratepayer cost (``None``: always).
_COST_PARTS = (
    ("upfront_incentives_pv_usd", "upfront incentives", None),
    ("performance_payments_pv_usd", "performance payments", None),
    ("event_payments_pv_usd", "event payments", "event_payments_in_ratepayer_cost"),
    ("capacity_payments_pv_usd", "capacity payments", "capacity_payments_in_ratepayer_cost"),
)


def waterfall_steps(economics_row: pd.Series) -> list[tuple[str, float]]:
    """Steps of the deferral value waterfall of one V2G case [USD, present worth].

    ``[("gross deferral value", v), (<cost>, −c), …, ("net benefit", n)]``; only the cost
    components counted as ratepayer costs, and only when the row has program columns
    (without them the net is the gross value).
    """
    gross = float(economics_row.get("deferral_value_usd", np.nan))
    steps = [("gross deferral value", gross)]
    if "ratepayer_cost_pv_usd" not in economics_row.index:
        steps.append(("net (no program costs given)", gross))
        return steps
    counted = 0.0
    for column, label, flag in _COST_PARTS:
        value = float(economics_row.get(column, 0.0) or 0.0)
        if flag is not None and not bool(economics_row.get(flag, False)):
            continue
        if value != 0.0:
            steps.append((label, -value))
            counted += value
    total = float(economics_row.ratepayer_cost_pv_usd)
    if abs(total - counted) > 1e-6 * max(1.0, abs(total)):
        steps.append(("other program costs", -(total - counted)))
    steps.append(("ratepayer net benefit", float(economics_row.ratepayer_net_benefit_pv_usd)))
    return steps


def plot_deferral_waterfall(result: StudyResult) -> Figure | None:
    """Deferral value waterfall per V2G case: gross value, program costs, net benefit.

    Returns ``None`` when the result has no economics table.

    Returns
    -------
    matplotlib.figure.Figure or None
    """
    economics = result.economics
    if economics is None or economics.empty:
        return None
    cases = list(economics.index)
    fig = Figure(figsize=(max(6.5, 5.5 * len(cases)), 4.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(cases), squeeze=False)[0]
    dollar_year = result.config.valuation.dollar_year
    for ax, case in zip(axes, cases, strict=True):
        steps = waterfall_steps(economics.loc[case])
        level = 0.0
        levels = [0.0]
        for i, (_label, value) in enumerate(steps):
            final = i == len(steps) - 1
            if i == 0 or final:
                bottom = 0.0
                color = "tab:blue" if final else ("tab:green" if value >= 0 else "tab:red")
                level = value
            else:
                bottom = level
                color = "tab:red" if value < 0 else "tab:green"
                level += value
            levels.extend([bottom, bottom + value])
            ax.bar(i, value, bottom=bottom, color=color, width=0.6, edgecolor="k", lw=0.5)
            up = value >= 0
            ax.annotate(
                _usd(value),
                (i, bottom + value),
                xytext=(0, 3 if up else -3),
                textcoords="offset points",
                ha="center",
                va="bottom" if up else "top",
                fontsize=8,
            )
            if not final:
                ax.plot([i + 0.3, i + 0.7], [level, level], color="0.4", lw=0.8)
        low, high = min(levels), max(levels)
        pad = 0.14 * (high - low) if high > low else 1.0
        ax.set_ylim(low - pad, high + pad)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(steps)))
        ax.set_xticklabels([label for label, _ in steps], rotation=20, ha="right")
        ax.set_ylabel(f"present worth [{dollar_year} USD]")
        ax.yaxis.set_major_formatter(_usd_formatter())
        ax.set_title(case_label(result, str(case)))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{result.feeder.name} · deferral value and program costs, all monitored assets")
    return fig


def _usd_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: _usd(float(v)))


def parameter_label(parameter: str) -> str:
    """Readable name of a sensitivity parameter."""
    return _PARAMETER_LABELS.get(parameter, parameter.replace("_", " "))


def range_text(parameter: str, low: float, high: float) -> str:
    """Low-high range of a sensitivity parameter: rates in %, the others as multipliers."""
    if parameter in ("discount_rate", "escalation_rate"):
        return f"{low:.1%}–{high:.1%}"
    return f"×{low:g}–×{high:g}"


def headline_label(result: StudyResult) -> str:
    """What the sensitivity tornado varies: the ratepayer net benefit or the gross value."""
    economics = result.economics
    if economics is not None and "ratepayer_net_benefit_pv_usd" in economics.columns:
        return "ratepayer net benefit"
    return "gross deferral value"


def plot_sensitivity_tornado(result: StudyResult) -> Figure | None:
    """One-at-a-time sensitivity tornado of the headline value.

    Bars run from the base result to the result at each parameter's low (light) and high
    (dark) value; parameters whose range is a single point are left out. Returns ``None``
    without a sensitivity table.

    Returns
    -------
    matplotlib.figure.Figure or None
    """
    table = result.sensitivity
    if table is None or table.empty:
        return None
    table = table[table.low_value != table.high_value].copy()
    if table.empty:
        return None
    table = table.sort_values("swing", ascending=True, kind="mergesort")
    base = float(table.result_base.iloc[0])
    fig = Figure(figsize=(8.5, 1.2 + 0.55 * len(table)), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(table))
    low = table.result_low.to_numpy(dtype=float)
    high = table.result_high.to_numpy(dtype=float)
    ax.barh(y, low - base, left=base, color="tab:cyan", label="parameter at low value", height=0.6)
    ax.barh(
        y,
        high - base,
        left=base,
        color="tab:blue",
        label="parameter at high value",
        height=0.6,
        alpha=0.85,
    )
    ax.axvline(base, color="k", lw=1)
    labels = [
        f"{parameter_label(p)} ({range_text(p, lo, hi)})"
        for p, lo, hi in zip(table.parameter, table.low_value, table.high_value, strict=True)
    ]
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.xaxis.set_major_formatter(_usd_formatter())
    ax.set_xlabel(
        f"{headline_label(result)} [{result.config.valuation.dollar_year} USD]; base {_usd(base)}"
    )
    ax.set_title(f"{result.feeder.name} · sensitivity of the {headline_label(result)}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    return fig


# --------------------------------------------------------------------------- feeder map
def model_layout(net: Any, bus_xy: pd.DataFrame) -> pd.DataFrame | None:
    """The model's own schematic coordinates for every bus (e.g. OpenDSS ``BusCoords``).

    A bus without coordinates is drawn at the nearest bus (fewest branches away, lines,
    transformers and switches of any state) that has them, so a service transformer's
    secondary and its customers sit at its pole. ``None`` when no bus has coordinates.

    Returns
    -------
    pandas.DataFrame or None
        Columns ``x``, ``y`` (the model's units, no CRS), indexed by bus.
    """
    import networkx as nx
    import pandapower.topology as top

    known = bus_xy.loc[bus_xy.index.isin(net.bus.index), ["x", "y"]].astype(float)
    if known.empty:
        return None
    graph = nx.Graph(top.create_nxgraph(net, respect_switches=False, include_out_of_service=True))
    graph.add_nodes_from(net.bus.index)
    source = {int(b): int(b) for b in known.index}
    frontier = list(source)
    while frontier:  # multi-source breadth-first search from every bus with coordinates
        nxt = []
        for node in frontier:
            for nb in graph.neighbors(node):
                if nb not in source:
                    source[nb] = source[node]
                    nxt.append(nb)
        frontier = nxt
    buses = [b for b in net.bus.index if int(b) in source]
    origin = [source[int(b)] for b in buses]
    return pd.DataFrame(known.loc[origin].to_numpy(), index=pd.Index(buses), columns=["x", "y"])


def schematic_layout(net: Any) -> pd.DataFrame:
    """A schematic layout of a network from its topology (no coordinates needed).

    The network graph (lines, transformers, bus-bus switches, whatever their state) is
    spanned breadth-first from the external grid buses; each bus is drawn one row below
    its parent (``y = −depth``) and every subtree gets a horizontal band as wide as its
    leaves (a layered tree layout), so a radial feeder reads top-down from the source.
    Buses not connected to a source are laid out the same way from their lowest index.

    Parameters
    ----------
    net
        pandapower network.

    Returns
    -------
    pandas.DataFrame
        Columns ``x``, ``y`` (schematic units), indexed by bus.
    """
    import networkx as nx
    import pandapower.topology as top

    graph = nx.Graph(top.create_nxgraph(net, respect_switches=False, include_out_of_service=True))
    graph.add_nodes_from(net.bus.index)
    roots = [int(b) for b in net.ext_grid.bus if b in graph]
    placed: dict[int, tuple[float, float]] = {}
    next_x = 0.0
    pending = [*roots, *sorted(int(b) for b in graph.nodes)]
    for root in pending:
        if root in placed:
            continue
        # Breadth-first tree: parent of each bus and its children in index order.
        children: dict[int, list[int]] = {root: []}
        depth = {root: 0}
        order = [root]
        queue = [root]
        while queue:
            node = queue.pop(0)
            for nb in sorted(graph.neighbors(node)):
                if nb not in depth and nb not in placed:
                    depth[nb] = depth[node] + 1
                    children[node].append(nb)
                    children[nb] = []
                    order.append(nb)
                    queue.append(nb)
        # Leaves get consecutive x in depth-first order; parents sit over their children.
        x: dict[int, float] = {}
        stack: list[tuple[int, bool]] = [(root, False)]
        while stack:
            node, done = stack.pop()
            kids = children[node]
            if not kids:
                x[node] = next_x
                next_x += 1.0
            elif done:
                x[node] = float(np.mean([x[k] for k in kids]))
            else:
                stack.append((node, True))
                stack.extend((k, False) for k in reversed(kids))
        for node in order:
            placed[node] = (x[node], -float(depth[node]))
        next_x += 1.0  # a gap between components
    frame = pd.DataFrame.from_dict(placed, orient="index", columns=["x", "y"])
    frame.index.name = "bus"
    return frame.reindex(net.bus.index)


def map_geometry(feeder: Feeder) -> tuple[Any, Any, Any, bool]:
    """Bus points, line and transformer geometries of a feeder for maps and GIS.

    Returns
    -------
    (buses, lines, trafos, schematic)
        GeoDataFrames indexed by bus, line and transformer index (``net`` order); a
        transformer is the segment from its HV to its LV bus. ``schematic`` is ``True``
        when the feeder has no coordinates and the geometry comes from
        :func:`schematic_layout` (then the frames have no CRS).
    """
    import geopandas as gpd
    import shapely

    net = feeder.net
    crs = None
    schematic = feeder.bus_geo is None
    if schematic:
        xy = model_layout(net, feeder.bus_xy) if feeder.bus_xy is not None else None
        xy = schematic_layout(net) if xy is None else xy
        points = pd.Series(
            list(shapely.points(xy.x.to_numpy(), xy.y.to_numpy())), index=xy.index, dtype=object
        )
    else:
        crs = feeder.bus_geo.crs
        points = pd.Series(list(feeder.bus_geo.geometry), index=feeder.bus_geo.index, dtype=object)
    buses = gpd.GeoDataFrame(
        {"name": net.bus.name.reindex(points.index).to_numpy()},
        geometry=list(points),
        index=points.index,
        crs=crs,
    )

    def segment(a: int, b: int) -> Any:
        if a in points.index and b in points.index:
            return shapely.LineString([points.at[a], points.at[b]])
        return None

    given = {} if schematic or feeder.line_geo is None else dict(feeder.line_geo.geometry.items())
    line_shapes = [
        given.get(i) or segment(int(r.from_bus), int(r.to_bus)) for i, r in net.line.iterrows()
    ]
    lines = gpd.GeoDataFrame(
        {"name": net.line.name.to_numpy()}, geometry=line_shapes, index=net.line.index, crs=crs
    )
    trafo_shapes = [segment(int(r.hv_bus), int(r.lv_bus)) for _, r in net.trafo.iterrows()]
    trafos = gpd.GeoDataFrame(
        {"name": net.trafo.name.to_numpy()}, geometry=trafo_shapes, index=net.trafo.index, crs=crs
    )
    return buses, lines, trafos, schematic


def asset_points(feeder: Feeder, assets: pd.DataFrame | None = None) -> Any:
    """A representative point of each monitored asset (line or transformer midpoint).

    Returns
    -------
    geopandas.GeoSeries
        Indexed by ``asset_id``; empty geometry where the asset has no position.
    """
    import geopandas as gpd
    import shapely

    _, lines, trafos, _ = map_geometry(feeder)
    assets = feeder.assets if assets is None else assets
    shapes = []
    for _, a in assets.iterrows():
        table = lines if a.kind == "line" else trafos
        shape = table.geometry.get(int(a.element))
        shapes.append(
            None if shape is None else shapely.line_interpolate_point(shape, 0.5, normalized=True)
        )
    return gpd.GeoSeries(shapes, index=assets.index, crs=lines.crs)


def ev_legend_counts(most: int) -> list[int]:
    """EV counts for the marker-size legend: 0, a round middle value and the largest round
    value up to ``most`` (1, 2, 5, 10, 20, 50, …)."""
    steps = [m * 10**e for e in range(7) for m in (1, 2, 5)]
    fitting = [n for n in steps if n <= max(1, most)]
    top = fitting[-1]
    middle = [n for n in fitting if n * 4 <= top][-1:] if top >= 4 else []
    return [0, *middle, top]


#: Colour map of asset loading on the feeder map.
_LOAD_CMAP = "RdYlBu_r"


@dataclass(frozen=True)
class _FeederMap:
    """What every panel of a feeder map shares: geometry, colour scales, EVs per bus.

    ``buses``, ``lines`` and ``trafos`` are the drawn geometries (:func:`map_geometry`; lines
    and transformers without a position left out), ``trafo_mid`` the transformers' midpoints,
    ``points`` each asset's point (:func:`asset_points`). ``limit_pct`` [%] is the median
    planning limit, the centre of the loading scale ``load_norm``; ``vm_norm`` is the bus
    voltage scale [pu]; ``ev_count`` the EVs per bus (median draw).
    """

    buses: Any
    lines: Any
    trafos: Any
    trafo_mid: np.ndarray
    points: Any
    schematic: bool
    assets: pd.DataFrame
    bus_index: pd.Index
    voltages: Mapping[str, np.ndarray]
    has_voltages: bool
    limit_pct: float
    load_norm: Any
    vm_norm: Any
    ev_count: pd.Series
    critical: str

    @property
    def most_evs(self) -> int:
        """The most EVs at one bus (at least 1) [-]."""
        return max(1, int(self.ev_count.max()))

    def marker_area(self, n: Any) -> Any:
        """Marker area [pt²] of a bus with ``n`` EVs: 8 for none, 160 for the most."""
        return 8.0 + 152.0 * np.sqrt(np.asarray(n, dtype=float) / self.most_evs)

    @property
    def centre(self) -> tuple[float, float]:
        """Mean position of the buses (x, y)."""
        x = self.buses.geometry.x.to_numpy()
        y = self.buses.geometry.y.to_numpy()
        return float(np.nanmean(x)), float(np.nanmean(y))


def _map_scales(
    result: StudyResult, shown: Sequence[str], voltages: Mapping[str, np.ndarray]
) -> tuple[float, Any, Any, bool]:
    """Median planning limit [%], loading and voltage colour scales, and whether any shown
    case has bus voltages."""
    from matplotlib.colors import Normalize, TwoSlopeNorm

    assets = result.assets
    limit = float(np.nanmedian(assets.limit_pct)) if len(assets) else 100.0
    peak_max = max(float(np.nanmax(assets[f"peak_loading_pct_{c}"], initial=0.0)) for c in shown)
    load_norm = TwoSlopeNorm(vmin=0.0, vcenter=limit, vmax=max(peak_max, limit * 1.05))
    vm_values = [np.asarray(voltages[c], dtype=float) for c in shown if c in voltages]
    vm_all = np.concatenate(vm_values) if vm_values else np.array([])
    vm_all = vm_all[np.isfinite(vm_all)]
    criteria = result.config.criteria
    vm_norm = Normalize(
        vmin=min(float(vm_all.min()), criteria.vm_min_pu) if vm_all.size else criteria.vm_min_pu,
        vmax=max(float(vm_all.max()), 1.0) if vm_all.size else criteria.vm_max_pu,
    )
    return limit, load_norm, vm_norm, bool(vm_values)


def _feeder_map_data(
    result: StudyResult, shown: Sequence[str], bus_min_vm_pu: Mapping[str, np.ndarray] | None
) -> _FeederMap:
    """Geometry, scales and EV counts of the feeder map of ``result``."""
    import shapely

    feeder = result.feeder
    buses, lines, trafos, schematic = map_geometry(feeder)
    if bus_min_vm_pu is None:
        bus_min_vm_pu = getattr(result, "bus_min_vm_pu", None)
    voltages: Mapping[str, np.ndarray] = bus_min_vm_pu or {}
    limit, load_norm, vm_norm, has_voltages = _map_scales(result, shown, voltages)
    ev_count = (
        pd.Series(np.asarray(result.fleet.bus)).value_counts().reindex(buses.index, fill_value=0)
    )
    drawn_trafos = trafos[trafos.geometry.notna()]
    return _FeederMap(
        buses=buses,
        lines=lines[lines.geometry.notna()],
        trafos=drawn_trafos,
        trafo_mid=shapely.line_interpolate_point(
            drawn_trafos.geometry.to_numpy(), 0.5, normalized=True
        ),
        points=asset_points(feeder),
        schematic=schematic,
        assets=result.assets,
        bus_index=feeder.net.bus.index,
        voltages=voltages,
        has_voltages=has_voltages,
        limit_pct=limit,
        load_norm=load_norm,
        vm_norm=vm_norm,
        ev_count=ev_count,
        critical=result.summary.critical_asset.asset_id,
    )


def _panel_height(m: _FeederMap, panel_w: float) -> float:
    """Height of one map panel [in]: the feeder's aspect (geographic) or a fixed height."""
    if m.schematic:
        return 5.5
    bx, by = m.buses.geometry.x.to_numpy(), m.buses.geometry.y.to_numpy()
    dx = float(np.nanmax(bx) - np.nanmin(bx)) * np.cos(np.radians(m.centre[1]))
    dy = float(np.nanmax(by) - np.nanmin(by))
    return float(np.clip(panel_w * dy / dx, 3.0, 9.0)) if dx > 0 else panel_w


def _crs_axis_labels(ax: Any, crs: Any) -> None:
    """Axis labels named by the CRS (``x``/``y`` without one), in a small font, where the
    axes have none yet -- as ``GeoDataFrame.plot`` labels them (the map's own labels
    replace the text later; the font size stays)."""
    if crs:
        x_label = f"{crs.axis_info[0].name} [{crs.axis_info[0].unit_name}]"
        y_label = f"{crs.axis_info[1].name} [{crs.axis_info[1].unit_name}]"
        if crs.axis_info[0].direction == "north":
            x_label, y_label = y_label, x_label
    else:
        x_label, y_label = "x", "y"
    if ax.get_xlabel() == "":
        ax.set_xlabel(x_label, fontsize="small")
    if ax.get_ylabel() == "":
        ax.set_ylabel(y_label, fontsize="small")


def _draw_geo_lines(ax: Any, frame: Any, values: np.ndarray | None = None, **style: Any) -> None:
    """Draw the line geometries of a GeoDataFrame on ``ax`` as one line collection.

    Draws what ``frame.plot(ax=ax, color=..., **style)`` (``values`` ``None``) or
    ``frame.plot(ax=ax, column=..., cmap=..., norm=..., **style)`` draws -- CRS axis labels,
    the aspect of a geographic CRS (1 / cos of the mean latitude) or equal axes,
    normalized geometry, multi-part lines split -- on the Figure API alone (GeoPandas'
    plotting imports matplotlib's state-machine interface, so it is not used).

    Parameters
    ----------
    ax
        Axes to draw on.
    frame
        GeoDataFrame of line geometries (missing and empty ones are skipped).
    values
        One value per row, mapped to colours by ``cmap`` and ``norm`` (in ``style``).
    **style
        Keywords of :class:`matplotlib.collections.LineCollection` (``color``,
        ``linewidth``, ``zorder``, ``norm``) and ``cmap``.
    """
    import shapely
    from matplotlib.collections import LineCollection

    _crs_axis_labels(ax, frame.crs)
    geoms = shapely.normalize(np.asarray(frame.geometry.array, dtype=object))
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if values is None and not present.any():
        return
    if frame.crs and frame.crs.is_geographic:
        bounds = frame.total_bounds
        ax.set_aspect(1 / np.cos(np.mean([bounds[1], bounds[3]]) * np.pi / 180))
    else:
        ax.set_aspect("equal")
    kinds = shapely.get_type_id(geoms)
    lines = present & np.isin(kinds, (1, 2, 5))  # LineString, LinearRing, MultiLineString
    if values is not None:
        lines &= ~pd.isna(np.asarray(values))
    if not lines.any():
        return
    parts, part_of = shapely.get_parts(geoms[lines], return_index=True)
    cmap = style.pop("cmap", None)
    collection = LineCollection([np.array(p.coords)[:, :2] for p in parts], **style)
    if values is not None:
        collection.set_array(np.take(np.asarray(values)[lines], part_of, axis=0))
        if cmap:
            collection.set_cmap(cmap)
    ax.add_collection(collection, autolim=True)
    ax.autoscale_view()


def _draw_map_lines(ax: Any, m: _FeederMap, peak: pd.Series) -> None:
    """Lines: monitored ones coloured by peak loading (outlined), the others grey."""
    line_assets = m.assets[m.assets.kind == "line"]
    line_peak = pd.Series(
        peak[line_assets.index].to_numpy(), index=line_assets.element.astype(int).to_numpy()
    )
    loading = line_peak.reindex(m.lines.index)
    grey = m.lines[loading.isna().to_numpy()]
    coloured = m.lines[loading.notna().to_numpy()].assign(loading=loading.dropna().to_numpy())
    if len(grey):
        _draw_geo_lines(ax, grey, linewidth=1.0, zorder=1, color="0.65")
    if len(coloured):
        _draw_geo_lines(ax, coloured, linewidth=4.6, zorder=2, color="k")  # outline
        _draw_geo_lines(
            ax,
            coloured,
            coloured.loading.to_numpy(),
            cmap=_LOAD_CMAP,
            norm=m.load_norm,
            linewidth=3.0,
            zorder=2,
        )


def _draw_map_trafos(ax: Any, m: _FeederMap, peak: pd.Series) -> None:
    """Transformers: their segment and a square at the midpoint coloured by peak loading."""
    import shapely

    if not len(m.trafos):
        return
    trafo_assets = m.assets[m.assets.kind == "trafo"]
    trafo_peak = pd.Series(
        peak[trafo_assets.index].to_numpy(),
        index=trafo_assets.element.astype(int).to_numpy(),
    ).reindex(m.trafos.index)
    _draw_geo_lines(ax, m.trafos, linewidth=1.2, zorder=2, color="0.3")
    ax.scatter(
        shapely.get_x(m.trafo_mid),
        shapely.get_y(m.trafo_mid),
        c=trafo_peak.to_numpy(dtype=float),
        cmap=_LOAD_CMAP,
        norm=m.load_norm,
        marker="s",
        s=130,
        edgecolors="k",
        linewidths=0.6,
        zorder=3,
        plotnonfinite=True,
    )


def _draw_map_buses(ax: Any, m: _FeederMap, case: str) -> None:
    """Buses sized by their EVs, coloured by minimum voltage when the case has them."""
    bx, by = m.buses.geometry.x.to_numpy(), m.buses.geometry.y.to_numpy()
    area = m.marker_area(m.ev_count.to_numpy(dtype=float))
    if case not in m.voltages:
        ax.scatter(bx, by, color="white", s=area, edgecolors="k", linewidths=0.5, zorder=4)
        return
    vm = pd.Series(np.asarray(m.voltages[case], dtype=float), index=m.bus_index)
    ax.scatter(
        bx,
        by,
        c=vm.reindex(m.buses.index).to_numpy(),
        cmap="viridis",
        norm=m.vm_norm,
        s=area,
        edgecolors="k",
        linewidths=0.4,
        zorder=4,
        plotnonfinite=True,
    )


def _mark_over_limit(ax: Any, m: _FeederMap, peak: pd.Series) -> pd.Index:
    """Ring the assets whose peak is over their planning limit; return their ids."""
    over = m.assets.index[(peak > m.assets.limit_pct).to_numpy()]
    marked = m.points[over]
    marked = marked[marked.notna() & ~marked.is_empty] if len(marked) else marked
    if len(marked):
        ax.scatter(
            marked.x,
            marked.y,
            s=400,
            facecolors="none",
            edgecolors="red",
            linewidths=1.6,
            zorder=5,
        )
    return over


def _label_critical(ax: Any, m: _FeederMap, peak: pd.Series) -> None:
    """Label the critical asset with its peak loading [%], pointing away from the centre."""
    point = m.points.get(m.critical)
    if point is None or point.is_empty:
        return
    x_mid, y_mid = m.centre
    dx = -1 if point.x > x_mid else 1
    dy = -1 if point.y > y_mid else 1
    ax.annotate(
        f"critical: {m.assets.at[m.critical, 'name']}\n{peak[m.critical]:.0f} % peak",
        (point.x, point.y),
        xytext=(40 * dx, 30 * dy),
        textcoords="offset points",
        fontsize=8,
        ha="center",
        va="center",
        arrowprops={"arrowstyle": "->", "color": "k", "lw": 0.8},
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.5", "alpha": 0.9},
        zorder=6,
    )


def _style_map_axes(ax: Any, schematic: bool) -> None:
    """No ticks on a schematic layout; longitude and latitude [°] on a geographic one."""
    if schematic:
        ax.set_aspect("auto")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
    else:
        ax.ticklabel_format(useOffset=False)
        ax.set_xlabel("longitude [°]")
        ax.set_ylabel("latitude [°]")
        ax.tick_params(labelsize=7)
    ax.margins(0.06)


def _draw_map_panel(ax: Any, m: _FeederMap, case: str, label: str) -> None:
    """One panel of the feeder map: lines, transformers, buses, marks, critical asset."""
    peak = m.assets[f"peak_loading_pct_{case}"]
    _draw_map_lines(ax, m, peak)
    _draw_map_trafos(ax, m, peak)
    _draw_map_buses(ax, m, case)
    over = _mark_over_limit(ax, m, peak)
    _label_critical(ax, m, peak)
    ax.set_title(f"{label}\n{len(over)} of {len(m.assets)} monitored assets over their limit")
    _style_map_axes(ax, m.schematic)


def _map_legend_handles(m: _FeederMap) -> list[Any]:
    """Legend entries of the feeder map: line kinds, marks and bus sizes by EVs."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="0.65", lw=1.0, label="line, not monitored (no loading)"),
        Line2D([], [], color="tab:orange", lw=3.0, label="monitored line (peak loading)"),
        Line2D(
            [],
            [],
            color="0.3",
            marker="s",
            ls="",
            mfc="tab:orange",
            mec="k",
            ms=11,
            label="transformer (peak loading)",
        ),
        Line2D(
            [], [], color="red", marker="o", ls="", mfc="none", ms=20, label="over planning limit"
        ),
    ]
    if not m.has_voltages:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                mfc="white",
                mec="k",
                label="bus (per-bus voltage not in the result)",
            )
        )
    for n in ev_legend_counts(m.most_evs):
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                mfc="0.85",
                mec="k",
                ms=float(np.sqrt(m.marker_area(n))),
                label=f"bus with {n} EV{'s' * (n != 1)}",
            )
        )
    return handles


def _map_colorbars(fig: Figure, axes: Sequence[Any], m: _FeederMap, vm_min_pu: float) -> None:
    """Colour bars of peak loading [%] (limit marked) and, with voltages, of the bus
    minimum voltage [pu] (lower bound ``vm_min_pu`` marked)."""
    from matplotlib.cm import ScalarMappable

    bar = fig.colorbar(
        ScalarMappable(norm=m.load_norm, cmap=_LOAD_CMAP), ax=list(axes), shrink=0.75, pad=0.01
    )
    bar.set_label("peak loading [% of rating], median over draws")
    bar.ax.axhline(m.limit_pct, color="k", lw=1.2)
    if m.has_voltages:
        vbar = fig.colorbar(
            ScalarMappable(norm=m.vm_norm, cmap="viridis"), ax=list(axes), shrink=0.75, pad=0.01
        )
        vbar.set_label("bus minimum voltage [pu]")
        vbar.ax.axhline(vm_min_pu, color="r", lw=1.2)


def plot_feeder_map(
    result: StudyResult,
    *,
    cases: Sequence[str] = ("charging", "v2g"),
    bus_min_vm_pu: Mapping[str, np.ndarray] | None = None,
) -> Figure:
    """Feeder map, one panel per case: loading, voltage, EVs and constrained assets.

    - Monitored lines and transformers coloured by peak loading (``result.assets``,
      detail year, median over draws); lines that are not monitored have no loading and
      are drawn grey.
    - Buses coloured by their minimum voltage over the period (``bus_min_vm_pu``, default
      ``result.bus_min_vm_pu`` when the result holds it; otherwise buses are drawn
      uncoloured and the legend says so), marker size by EVs at the bus (detail year,
      median draw).
    - Assets over their planning limit in that case marked with a red ring; the critical
      asset is labelled.

    A feeder without geographic coordinates is drawn on its model's schematic coordinates
    (:func:`model_layout`) or on :func:`schematic_layout`, and the title says which.

    Returns
    -------
    matplotlib.figure.Figure
    """
    assets = result.assets
    shown = [c for c in cases if f"peak_loading_pct_{c}" in assets.columns]
    if not shown:
        shown = [c for c in result.horizon.cases if f"peak_loading_pct_{c}" in assets.columns][:1]
    m = _feeder_map_data(result, shown, bus_min_vm_pu)
    panel_w = 6.4
    panel_h = _panel_height(m, panel_w)
    fig = Figure(figsize=(panel_w * len(shown) + 1.8, panel_h + 1.9), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, case in zip(axes, shown, strict=True):
        _draw_map_panel(ax, m, case, case_label(result, case))
    fig.legend(handles=_map_legend_handles(m), loc="outside lower center", ncols=4, fontsize=8)
    _map_colorbars(fig, axes, m, result.config.criteria.vm_min_pu)
    layout = (
        "geographic, EPSG:4326"
        if not m.schematic
        else "the model's schematic coordinates (no CRS)"
        if result.feeder.bus_xy is not None
        else "schematic layout (no coordinates)"
    )
    fig.suptitle(
        f"{result.feeder.name} {result.config.year} · feeder map, {layout} · "
        f"{int(m.ev_count.sum())} EVs (the critical asset's median draw)"
    )
    return fig


# --------------------------------------------------------------------------- registry
#: Study figures in the order :func:`write_figures` writes them.
STUDY_FIGURES: dict[str, Callable[[StudyResult], Figure | None]] = {
    "loading_duration": plot_loading_duration,
    "loading_heatmap": plot_loading_heatmap,
    "peak_day": plot_peak_day,
    "need_probability": plot_need_probability,
    "deferral_waterfall": plot_deferral_waterfall,
    "sensitivity_tornado": plot_sensitivity_tornado,
    "feeder_map": plot_feeder_map,
}


# --------------------------------------------------------------------------- batch
BATCH_CAPTIONS: dict[str, str] = {
    "screen_value": (
        "Net deferral value of each feeder's finished units (one point per scenario point "
        "and draw; the bar is the mean), and the critical asset's peak loading without and "
        "with V2G."
    ),
}


def _first_column(table: pd.DataFrame, *names: str) -> str | None:
    return next((n for n in names if n in table.columns), None)


def plot_batch_screen(table: pd.DataFrame) -> Figure | None:
    """Screening figure of a batch: net value and peak loading per feeder.

    Reads ``feeder``, ``status`` and, if present, ``net_deferral_value_usd`` (else
    ``net_benefit_usd`` or ``deferral_value_usd``), ``peak_loading_pct_charging`` and
    ``peak_loading_pct_v2g``. Returns ``None`` when no unit finished.

    Returns
    -------
    matplotlib.figure.Figure or None
    """
    if "feeder" not in table.columns:
        return None
    ok = table[table.status == "ok"] if "status" in table.columns else table
    if ok.empty:
        return None
    value_col = _first_column(ok, "net_deferral_value_usd", "net_benefit_usd", "deferral_value_usd")
    feeders = list(dict.fromkeys(ok.feeder.astype(str)))
    fig = Figure(figsize=(11, 1.6 + 0.45 * len(feeders)), dpi=DPI, layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    y = {f: i for i, f in enumerate(feeders)}
    rng = np.random.default_rng(0)  # jitter only
    if value_col is not None:
        values = pd.to_numeric(ok[value_col], errors="coerce")
        ys = ok.feeder.astype(str).map(y).to_numpy(dtype=float)
        jitter = rng.uniform(-0.18, 0.18, size=len(ok))
        left.scatter(values, ys + jitter, s=14, color="tab:blue", alpha=0.7, zorder=3)
        means = values.groupby(ok.feeder.astype(str)).mean().reindex(feeders)
        left.barh(
            np.arange(len(feeders)),
            means.fillna(0).to_numpy(),
            color="tab:blue",
            alpha=0.25,
            height=0.7,
        )
        left.axvline(0, color="k", lw=0.8)
        left.xaxis.set_major_formatter(_usd_formatter())
        left.set_xlabel(f"{value_col} [USD, present worth]")
    left.set_yticks(range(len(feeders)))
    left.set_yticklabels(feeders)
    left.invert_yaxis()
    left.set_title("net deferral value per unit (bar: mean)")
    for col, color, label in (
        ("peak_loading_pct_charging", "tab:red", "without V2G"),
        ("peak_loading_pct_v2g", "tab:blue", "with V2G"),
    ):
        if col in ok.columns:
            vals = pd.to_numeric(ok[col], errors="coerce")
            ys = ok.feeder.astype(str).map(y).to_numpy(dtype=float)
            off = -0.12 if label == "without V2G" else 0.12
            right.scatter(vals, ys + off, s=14, color=color, alpha=0.7, label=label)
    right.axvline(100, color="k", ls=":", lw=1)
    right.set_xlabel("critical asset peak loading [% of rating]")
    right.set_title("critical asset peak loading per unit")
    if right.get_legend_handles_labels()[0]:
        right.legend(loc="lower right")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"screen of {len(feeders)} feeders, {len(ok)} finished units")
    return fig


def write_batch_figures(table: pd.DataFrame, out_dir: str | Path) -> list[str]:
    """Write the batch screening figure(s) as PNG and SVG; return the file names."""
    files: list[str] = []
    with _style():
        fig = plot_batch_screen(table)
    if fig is not None:
        files.extend(save_figure(fig, out_dir, "screen_value"))
    return files
