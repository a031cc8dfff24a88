"""Mixed behaviours in one case: each EV follows its own strategy.

A fleet with a charging mix (:attr:`FleetScenario.charging_mix
<gridplan.ev.fleet.FleetScenario.charging_mix>`) has customers on ``unmanaged``, ``tou``
and ``smart`` charging side by side, and, in a V2G case, V2G-enrolled EVs that follow the
V2G strategy (:func:`case_behaviours`). :func:`dispatch_mixed` dispatches such a fleet as
groups, one per strategy, and sums them into one
:class:`~gridplan.ev.results.DispatchResult`:

1. groups whose strategy does not see the grid (``unmanaged``, ``tou``, ``v2g_event``)
   first -- their power does not depend on anyone else's;
2. then the grid-aware groups in the order ``smart``, ``v2g_peak_shave``, ``v2g_optimal``,
   each planned against the base load *plus* the power of every group dispatched before it
   (its :class:`~gridplan.ev.context.DispatchContext` base load is raised by those groups'
   per-asset power over the period). A smart-charging customer fills the valleys left by
   the unmanaged and TOU customers; V2G shaves the peak they all make together.

This is the order a utility's programs act in: customers' own charging is given, managed
programs respond to it. A grid-aware group does not move the groups dispatched before it.
Warm-up steps before the period see the base load of the day after (as every dispatch
does, :func:`gridplan.ev.context.context_rows`), here including the earlier groups' power.

An enrolled EV is in the V2G group every day: on a day it opts out, overrides or loses
communications (:mod:`gridplan.ev.availability`) it charges by the V2G strategy's rule for
EVs not taking part (``unmanaged``), not by its own behaviour. A TOU or smart customer who
enrolls can therefore charge earlier on such days than in the ``charging`` case, and a
need can come earlier in some trajectories (the study states this with the mix).

With one behaviour for every EV, :func:`dispatch_mixed` is exactly
:func:`~gridplan.ev.dispatch.dispatch` with that strategy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from gridplan.core.errors import ConfigError
from gridplan.ev.availability import Availability
from gridplan.ev.context import DispatchContext, context_rows
from gridplan.ev.dispatch import dispatch
from gridplan.ev.fleet import Fleet
from gridplan.ev.options import Strategy
from gridplan.ev.results import DispatchResult

__all__ = ["GROUP_ORDER", "case_behaviours", "dispatch_mixed"]

#: Order in which the strategy groups of a mixed fleet are dispatched (see module notes).
GROUP_ORDER: tuple[Strategy, ...] = (
    Strategy.UNMANAGED,
    Strategy.TOU,
    Strategy.V2G_EVENT,
    Strategy.SMART,
    Strategy.V2G_PEAK_SHAVE,
    Strategy.V2G_OPTIMAL,
)


def case_behaviours(fleet: Fleet, v2g_strategy: str | Strategy | None) -> np.ndarray | None:
    """The strategy each EV follows in a case of a fleet with a charging mix.

    Parameters
    ----------
    fleet
        The fleet; ``fleet.charging_behaviour`` holds each EV's own behaviour.
    v2g_strategy
        The case's V2G strategy (V2G-enrolled EVs follow it), or ``None`` for a case
        without a V2G program (every EV follows its own behaviour).

    Returns
    -------
    numpy.ndarray or None
        Strategy names, shape (ev,); ``None`` when the fleet has no mix.
    """
    own = fleet.charging_behaviour
    if own is None:
        return None
    names = np.asarray(own, dtype=object).copy()
    if v2g_strategy is not None:
        names[np.asarray(fleet.v2g_enrolled, dtype=bool)] = Strategy.parse(v2g_strategy).value
    return names


def dispatch_mixed(
    fleet: Fleet,
    time_index: pd.DatetimeIndex,
    behaviours: np.ndarray,
    *,
    context: DispatchContext | None = None,
    availability: Availability | None = None,
    n_loads: int | None = None,
    **options: Any,
) -> DispatchResult:
    """Dispatch a fleet whose EVs follow different strategies.

    Parameters
    ----------
    fleet
        The EVs and their plug-in windows.
    time_index
        Steps to simulate.
    behaviours
        Strategy name (or :class:`Strategy`) of each EV, shape (ev,).
    context
        The grid context of the whole fleet; required when any EV's strategy needs it.
    availability
        Export availability of the whole fleet (``draw_availability``), or ``None``.
    n_loads
        Columns of the per-load aggregate (default: the context's, else one past the
        highest load position).
    **options
        Every other keyword of :func:`~gridplan.ev.dispatch.dispatch` (windows, rate,
        events, objective, ``keep_ev_series``, ``dtype``, ...), the same for each group.

    Returns
    -------
    DispatchResult
        The groups summed: per-EV totals and series in the fleet's EV order, per-load and
        per-asset power summed; ``strategy`` is the strategy of the most EVs (the
        exporting one if any group exports).

    Raises
    ------
    ConfigError
        ``behaviours`` not one name per EV, an unknown strategy, or a grid-aware strategy
        without a context.
    """
    names = np.asarray(behaviours, dtype=object)
    if names.shape != (fleet.n_ev,):
        raise ConfigError(
            f"behaviours must have shape ({fleet.n_ev},) (got {names.shape})", field="behaviours"
        )
    parsed = np.array([Strategy.parse(n) for n in names], dtype=object)
    if n_loads is None:
        n_loads = (
            context.n_loads
            if context is not None and context.n_loads is not None
            else int(np.max(fleet.load_pos, initial=-1)) + 1
        )
    groups = [(s, parsed == s) for s in GROUP_ORDER if (parsed == s).any()]
    if len(groups) <= 1:
        strategy = groups[0][0] if groups else Strategy.UNMANAGED
        return dispatch(
            fleet,
            time_index,
            strategy,
            context=context,
            availability=availability,
            n_loads=n_loads,
            **options,
        )
    return _dispatch_groups(fleet, time_index, groups, context, availability, n_loads, options)


def _dispatch_groups(
    fleet: Fleet,
    time_index: pd.DatetimeIndex,
    groups: list[tuple[Strategy, np.ndarray]],
    context: DispatchContext | None,
    availability: Availability | None,
    n_loads: int,
    options: dict[str, Any],
) -> DispatchResult:
    """Dispatch each group in order, raising the next groups' base by its power; merge."""
    rows = None if context is None else context_rows(context, time_index, 0)
    ev_kw = None if context is None else np.zeros((len(time_index), context.n_asset))
    parts: list[tuple[np.ndarray, DispatchResult]] = []
    for strategy, mask in groups:
        sub_context = None
        if context is not None and rows is not None and ev_kw is not None:
            sub_context = _group_context(context, mask, rows, ev_kw)
        result = dispatch(
            fleet.take(mask),
            time_index,
            strategy,
            context=sub_context,
            availability=None if availability is None else availability.take(mask),
            n_loads=n_loads,
            **options,
        )
        if sub_context is not None and ev_kw is not None and result.asset_load_kw is not None:
            ev_kw += result.asset_load_kw - sub_context.asset_base_kw[rows]
        parts.append((mask, result))
    return _merge(fleet, parts, groups, context, rows, ev_kw)


def _group_context(
    context: DispatchContext, mask: np.ndarray, rows: np.ndarray, ev_kw: np.ndarray
) -> DispatchContext:
    """The context of one group: its EVs, and the base load raised by earlier groups."""
    base = np.array(context.asset_base_kw, dtype=float)  # a copy: the context is shared
    if ev_kw.any():
        np.add.at(base, rows, ev_kw)
    return dataclasses.replace(
        context,
        asset_base_kw=base,
        ev_assets=context.ev_assets[mask],
        export_group=None if context.export_group is None else context.export_group[mask],
    )


def _scatter(parts: list[tuple[np.ndarray, DispatchResult]], name: str, n_ev: int) -> np.ndarray:
    """Per-EV values (last axis EV) of the groups put back in the fleet's EV order."""
    first = np.asarray(getattr(parts[0][1], name))
    out = np.full((*first.shape[:-1], n_ev), np.nan if first.dtype.kind == "f" else 0, first.dtype)
    for mask, result in parts:
        out[..., mask] = getattr(result, name)
    return out


def _merge(
    fleet: Fleet,
    parts: list[tuple[np.ndarray, DispatchResult]],
    groups: list[tuple[Strategy, np.ndarray]],
    context: DispatchContext | None,
    rows: np.ndarray | None,
    ev_kw: np.ndarray | None,
) -> DispatchResult:
    """One result of the groups' results (see :func:`dispatch_mixed`)."""
    first = parts[0][1]
    n_ev = fleet.n_ev
    exporting = [s for s, _ in groups if s.exports]
    label = exporting[0] if exporting else max(groups, key=lambda g: int(g[1].sum()))[0]
    series: dict[str, Any] = {}
    if all(r.ev_power_kw is not None for _, r in parts):
        series = {
            name: _scatter(parts, name, n_ev)
            for name in ("ev_power_kw", "ev_soc_kwh", "ev_plugged")
        }
    asset: dict[str, Any] = {}
    if context is not None and rows is not None and ev_kw is not None:
        load = context.asset_base_kw[rows].astype(float) + ev_kw
        asset = {
            "asset_ids": context.asset_ids,
            "asset_load_kw": load.astype(first.load_power_kw.dtype, copy=False),
            "asset_limit_kw": context.asset_limit_kw,
            "ev_assets": context.ev_assets,
        }
    return DispatchResult(
        time_index=first.time_index,
        step_h=first.step_h,
        strategy=label,
        departure_shortfall_kwh=_scatter(parts, "departure_shortfall_kwh", n_ev),
        ev_charge_kwh=_scatter(parts, "ev_charge_kwh", n_ev),
        ev_export_kwh=_scatter(parts, "ev_export_kwh", n_ev),
        battery_kwh=np.asarray(fleet.battery_kwh, dtype=float),
        charge_efficiency=first.charge_efficiency,
        discharge_efficiency=first.discharge_efficiency,
        load_power_kw=sum(r.load_power_kw for _, r in parts[1:]) + first.load_power_kw,
        load_columns=first.load_columns,
        n_loads=first.n_loads,
        **asset,
        **series,
    )
