"""What grid-aware dispatch sees: :class:`DispatchContext` (monitored assets, their base
load and limits, the EVs below each) and :class:`GridView`, the context aligned with the
simulated steps."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gridplan.core.errors import ConfigError
from gridplan.ev.fleet import Fleet
from gridplan.ev.nesting import AssetNesting
from gridplan.grid.profiles import ProfileMatrix
from gridplan.grid.topology import downstream_buses, downstream_of

if TYPE_CHECKING:
    from gridplan.grid.feeders import Feeder

__all__ = ["DispatchContext", "GridView", "context_rows"]


@dataclass(frozen=True, eq=False)
class DispatchContext:
    """What grid-aware strategies see: monitored assets, their base load, limits, EVs below.

    Attributes
    ----------
    asset_ids
        Monitored asset ids, shape (asset,).
    time_index
        Stamps of ``asset_base_kw`` rows (fixed step; must cover the dispatch period; steps
        of the warm-up before it take the base load one or more days later).
    asset_base_kw
        Load through each asset without EVs [kW], shape (time, asset) (float64, or float32
        to halve memory); compared in kW against the kVA limit (unity power factor
        assumed, losses ignored).
    asset_limit_kw
        Planning limit of each asset [kW] (``rating_kva × limit_pct / 100``), (asset,).
    ev_assets
        Whether each EV is downstream of each asset (its discharge relieves the asset),
        shape (ev, asset), bool. Assets nest (a feeder head above service transformers).
    export_group
        Service-transformer group of each EV for the transformer export limit, (ev,) ints;
        ``None``: EVs at one bus form a group.
    n_loads
        Number of loads of the feeder (columns of the per-load aggregate).

    Raises
    ------
    ConfigError
        On inconsistent shapes, non-finite base loads, or limits that are not positive.
    """

    asset_ids: tuple[str, ...]
    time_index: pd.DatetimeIndex
    asset_base_kw: np.ndarray
    asset_limit_kw: np.ndarray
    ev_assets: np.ndarray
    export_group: np.ndarray | None = None
    n_loads: int | None = None

    def __post_init__(self) -> None:
        n_asset = len(self.asset_ids)
        base = np.asarray(self.asset_base_kw)
        if base.dtype not in (np.float32, np.float64):
            base = base.astype(float)
        limit = np.asarray(self.asset_limit_kw, dtype=float)
        ev_assets = np.asarray(self.ev_assets, dtype=bool)
        if ev_assets.ndim != 2 or ev_assets.shape[1] != n_asset:
            raise ConfigError(
                f"ev_assets must have shape (ev, {n_asset}) (got {ev_assets.shape})",
                field="ev_assets",
            )
        if base.shape != (len(self.time_index), n_asset):
            raise ConfigError(
                f"asset_base_kw must have shape ({len(self.time_index)}, {n_asset}) "
                f"(got {base.shape})",
                field="asset_base_kw",
            )
        if not np.isfinite(base).all():
            raise ConfigError("asset_base_kw holds NaN or inf (expected kW)", field="asset_base_kw")
        if limit.shape != (n_asset,) or not (np.isfinite(limit) & (limit > 0)).all():
            raise ConfigError(
                f"asset_limit_kw must be {n_asset} positive finite values [kW]",
                field="asset_limit_kw",
            )
        if self.export_group is not None:
            group = np.asarray(self.export_group)
            if group.shape != (ev_assets.shape[0],):
                raise ConfigError(
                    f"export_group must have shape ({ev_assets.shape[0]},)", field="export_group"
                )
            object.__setattr__(self, "export_group", group.astype(np.int64))
        object.__setattr__(self, "asset_ids", tuple(str(a) for a in self.asset_ids))
        object.__setattr__(self, "time_index", pd.DatetimeIndex(self.time_index))
        object.__setattr__(self, "asset_base_kw", base)
        object.__setattr__(self, "asset_limit_kw", limit)
        object.__setattr__(self, "ev_assets", ev_assets)

    @property
    def n_asset(self) -> int:
        """Number of monitored assets."""
        return len(self.asset_ids)

    @classmethod
    def from_feeder(
        cls,
        feeder: Feeder,
        fleet: Fleet,
        base_load_kw: np.ndarray | ProfileMatrix,
        time_index: pd.DatetimeIndex,
        *,
        sgen_p_kw: np.ndarray | ProfileMatrix | None = None,
        asset_base_kw: np.ndarray | None = None,
    ) -> DispatchContext:
        """Build the context of ``fleet`` on ``feeder`` from base-load profiles.

        An asset's base load is the sum of the loads downstream of it (from the feeder's
        topology, :func:`gridplan.grid.topology.downstream_buses`) less the generation downstream
        of it when ``sgen_p_kw`` is given; its limit is ``rating_kva × limit_pct / 100``.
        An EV's export group is the smallest monitored transformer upstream of it (EVs
        under none group by bus).

        Parameters
        ----------
        feeder
            The feeder (network, monitored assets).
        fleet
            The EVs (their buses).
        base_load_kw
            Base load per load [kW], shape (time, load) in ``net.load.index`` order (grown
            to the planning year, as the power flow sees it): an array or a
            :class:`~gridplan.grid.profiles.ProfileMatrix` (summed per asset through its
            factors, never expanded).
        time_index
            Stamps of ``base_load_kw`` rows.
        sgen_p_kw
            Generation per static generator [kW], shape (time, sgen), optional.
        asset_base_kw
            The assets' base load [kW], shape (time, asset), as a previous call computed it
            from the same ``base_load_kw`` and ``sgen_p_kw`` (a study reuses it for every
            draw of a year); skips that computation.

        Returns
        -------
        DispatchContext
        """
        down = downstream_buses(feeder)
        assets = feeder.assets
        ids = [str(a) for a in assets.index]
        load_bus = np.asarray(feeder.load_bus)
        base_load = ProfileMatrix.of(base_load_kw)
        if base_load.shape != (len(time_index), load_bus.size):
            raise ConfigError(
                f"base_load_kw must have shape ({len(time_index)}, {load_bus.size}) "
                f"(time, load); got {base_load.shape}",
                field="base_load_kw",
            )
        if asset_base_kw is not None:
            base = np.asarray(asset_base_kw, dtype=float)
            if base.shape != (len(time_index), len(ids)):
                raise ConfigError(
                    f"asset_base_kw must have shape ({len(time_index)}, {len(ids)}) "
                    f"(time, asset); got {base.shape}",
                    field="asset_base_kw",
                )
        else:
            load_in = downstream_of(down, ids, load_bus).astype(float)
            base = base_load.matmul(load_in)
        if asset_base_kw is None and sgen_p_kw is not None and len(feeder.net.sgen):
            sgen_bus = feeder.net.sgen.bus.to_numpy()
            sgen = ProfileMatrix.of(sgen_p_kw)
            if sgen.shape != (len(time_index), sgen_bus.size):
                raise ConfigError(
                    f"sgen_p_kw must have shape ({len(time_index)}, {sgen_bus.size})",
                    field="sgen_p_kw",
                )
            sgen_in = downstream_of(down, ids, sgen_bus).astype(float)
            base = base - sgen.matmul(sgen_in)
        limit = assets.rating_kva.to_numpy(float) * assets.limit_pct.to_numpy(float) / 100.0
        ev_bus = np.asarray(fleet.bus)
        ev_assets = downstream_of(down, ids, ev_bus)
        # export group: smallest monitored transformer upstream, else the bus
        is_trafo = (assets.kind == "trafo").to_numpy()
        size = np.array([down[a].size for a in ids])
        group = np.full(ev_bus.size, -1, dtype=np.int64)
        best = np.full(ev_bus.size, np.iinfo(np.int64).max)
        for k in np.flatnonzero(is_trafo):
            better = ev_assets[:, k] & (size[k] < best)
            group[better], best[better] = k, size[k]
        no_trafo = group < 0
        if no_trafo.any():
            group[no_trafo] = len(ids) + np.unique(ev_bus[no_trafo], return_inverse=True)[1]
        return cls(
            asset_ids=tuple(ids),
            time_index=pd.DatetimeIndex(time_index),
            asset_base_kw=base,
            asset_limit_kw=limit,
            ev_assets=ev_assets,
            export_group=group,
            n_loads=int(load_bus.size),
        )


def context_rows(context: DispatchContext, sim: pd.DatetimeIndex, n_warm: int) -> np.ndarray:
    """Row of ``context.asset_base_kw`` for each simulated step.

    The period must appear in ``context.time_index`` as a contiguous run of stamps (so
    profiles with a repeated daylight-saving hour align by position) or, for a unique
    index, stamp by stamp. Warm-up steps before the context's first row take the row one
    or more days later.
    """
    n_t = len(sim)
    period = sim[n_warm:]
    stamps = context.time_index.values
    steps_per_day = max(1, round(pd.Timedelta(days=1) / (sim[1] - sim[0])))
    hits = np.flatnonzero(stamps == period.values[0])
    if (
        hits.size
        and hits[0] + len(period) <= stamps.size
        and (stamps[hits[0] : hits[0] + len(period)] == period.values).all()
    ):
        pos = hits[0] - n_warm + np.arange(n_t)
    else:
        if not context.time_index.is_unique:
            raise ConfigError(
                "the dispatch period is not a contiguous run of the context's time stamps "
                "(expected the context's time_index to contain the period)",
                field="context.time_index",
            )
        pos = context.time_index.get_indexer(sim)
        missing = np.flatnonzero(pos[n_warm:] < 0)
        if missing.size:
            raise ConfigError(
                f"the context's base load does not cover {period[int(missing[0])]} (expected "
                "a time_index that covers the dispatch period)",
                field="context.time_index",
            )
        for k in range(1, 8):
            gap = np.flatnonzero(pos < 0)
            if not gap.size:
                break
            pos[gap] = context.time_index.get_indexer(sim[gap] + pd.Timedelta(days=k))
        if (pos < 0).any():
            raise ConfigError(
                "the context's base load does not cover the warm-up days",
                field="context.time_index",
            )
    low = pos < 0
    pos[low] += steps_per_day * np.ceil(-pos[low] / steps_per_day).astype(np.int64)
    if (pos >= stamps.size).any():
        raise ConfigError(
            "the context's base load does not cover the warm-up days", field="context.time_index"
        )
    return pos


class GridView:
    """The context as the simulation steps through it.

    Parameters
    ----------
    context
        The dispatch context.
    sim
        The simulated steps (warm-up included).
    n_warm
        Warm-up steps before the period.
    """

    def __init__(self, context: DispatchContext, sim: pd.DatetimeIndex, n_warm: int) -> None:
        self.context = context
        #: Row of ``context.asset_base_kw`` for each simulated step.
        self.rows = context_rows(context, sim, n_warm)
        #: Planning limit of each asset [kW], (asset,).
        self.limit_kw = context.asset_limit_kw
        self.n_asset = context.n_asset

    @cached_property
    def nesting(self) -> AssetNesting:
        """Nesting of the monitored assets over the EVs (built on first use)."""
        return AssetNesting(self.context.ev_assets)

    def base_kw(self, t: int) -> np.ndarray:
        """Base load through each asset at simulated step ``t`` [kW], (asset,)."""
        return self.context.asset_base_kw[self.rows[t]]
