"""Charging and V2G dispatch: EV power per step from a :class:`~gridplan.ev.fleet.Fleet`.

Strategies (:class:`Strategy`; the study config names them, unknown names list the valid
ones):

``unmanaged``
    Every EV charges at full power from arrival until it reaches its departure target.
``tou``
    Time-of-use charging: an EV charges at full power during the off-peak hours of a rate
    (default :data:`gridplan.ev.events.PGE_EV2A`, PG&E EV2-A: peak 4-9 p.m., partial-peak
    3-4 p.m. and 9 p.m.-12 a.m., so charging starts at midnight) and, outside them, only
    the power its laxity forces (the least power from which full power at every remaining
    step still reaches the target by departure), so it starts earlier when it must. Every
    EV on one rate starts at the same minute: the rate moves the peak to the off-peak start
    (a "timer peak") rather than removing it.
``smart``
    V1G valley filling. Each EV belongs to the smallest monitored asset upstream of it
    (its service transformer, else the next asset up); for each such asset and each fleet
    day the energy its arriving EVs need is water-filled into the lowest-load steps of the
    asset's load (base load plus EV charging already planned, including EVs of the previous
    day still plugged in), under the power the EVs plugged in at each step can draw.
    Assets are planned bottom-up, so a feeder head sees the plans below it. At each step the
    EVs of an asset share its planned power in proportion to the power they can draw, and an
    EV always takes at least its laxity-forced power. EVs under no monitored asset charge
    ``unmanaged``. The plan knows the day's base load and arrivals in advance (planning
    foresight). Needs a :class:`DispatchContext`.
``v2g_peak_shave``
    Enrolled EVs discharge to hold each monitored asset under its planning limit and
    recharge before departure; non-enrolled EVs charge ``unmanaged``. Order at each step:
    (1) every EV's ``unmanaged`` power is computed (for enrolled EVs from a *shadow*
    unmanaged state of charge); enrolled EVs never charge above their shadow's power
    except into headroom; (2) the excess of each asset over its limit is relieved
    bottom-up through the asset nesting (service transformers before the feeder head; an
    EV relieves every asset upstream of its bus), first by deferring enrolled EVs'
    charging, then by discharging them (down to a floor from which full-power charging
    still restores the target by departure, never below reserve), each asset sharing its
    relief among its EVs in proportion to their room; (3) enrolled EVs behind their shadow
    recharge -- laxity-forced energy first -- into the headroom under
    ``min(limit, highest unmanaged load of the asset so far in the period)``. By
    construction no monitored asset's load exceeds its ``unmanaged`` peak; the price is a
    departure shortfall when headroom stays closed until departure (reported). What
    remains over the limit is reported (:attr:`DispatchResult.asset_overload_kw`). Needs a
    :class:`DispatchContext`.
``v2g_event``
    Enrolled EVs discharge at their export limit during V2G events, never below their
    reserve and never so deep that full-power charging could not restore the departure
    target before they leave; otherwise EVs charge ``unmanaged``. Events: an
    :class:`~gridplan.ev.events.EventCalendar` (``events=``: a CSV file, or drawn within ELRP
    rules -- 4-9 p.m., May-October, at most 60 h/yr -- by
    :func:`~gridplan.ev.events.draw_event_calendar`), or, without one, every day of
    ``event_months`` between ``window_start_h`` and ``window_end_h`` (default 4-9 p.m.
    every day, the previous behaviour).
``v2g_optimal``
    The reference: one linear program per monitored asset and fleet day (HiGHS through
    :func:`scipy.optimize.linprog`), over the EVs whose smallest upstream asset it is (for
    a feeder of service transformers under a head: one program per transformer; the head
    sees their sum and is not minimized itself). Variables are each session's charging
    and discharging power and state of charge per step; constraints are the ones below
    plus the departure target (less the unavoidable shortfall when even full power cannot
    reach it); the objective is the asset's peak load (epigraph variable) or, with
    ``objective="overload"``, its energy above the planning limit; a second solve keeps
    that optimum and minimizes charge plus discharge throughput. Every EV's charging is
    scheduled (V2G export for enrolled EVs only). Assets are solved bottom-up and days in
    order; power already planned (lower assets, the previous day) is part of the load.
    EVs under no monitored asset charge ``unmanaged``; sessions arriving below reserve do
    not export. Small feeders only: every program must have at most ``max_lp_variables``
    variables (default 200,000; about 2-3 variables per EV and step), checked before any
    solve, else a :class:`~gridplan.core.errors.ConfigError` says how large it is.

Constraints enforced by every strategy (tested): power only while plugged in; charging
within the EV's charging limit (charger and vehicle, ``Fleet.charger_kw``); discharge within
the export limit (``Fleet.export_kw``, 0 for EVs not enrolled) and, per service transformer,
total export within ``transformer_export_limit_kw`` (EVs scaled down together); state of
charge within ``[0, battery]``, and never discharged below the reserve; charge and discharge
efficiencies in the energy balance; every departure's shortfall against the target
reported. An arrival takes the day's driving energy out of the battery (not below 0).

Sign: charging is positive kW (a load), V2G export negative kW. The simulation steps through
time vectorized over EVs (one set of numpy operations per step over all EVs, no per-EV
loop). Memory: per-EV series are (time, ev) arrays of ``dtype``; with
``keep_ev_series=False`` only per-load and per-asset aggregates and per-EV totals are kept
(a year at 15 min for 10,000 EVs needs about 1.4 GB per float32 series otherwise).
Steps are simulated by position, each ``step_h`` long (a local-time index with a repeated
or missing daylight-saving hour is accepted, with a warning).

Fast paths (``keep_ev_series=False``): ``unmanaged`` needs no step loop -- each EV's
sessions follow each other, and per session the state of charge at arrival, the number of
full-power steps and the last partial step are closed-form; the per-load and per-asset
series are summed from the charging intervals (exactly 0 at steps without EV power).
``v2g_peak_shave`` equals ``unmanaged`` wherever no enrolled EV is behind its shadow and no
asset above one is over its limit under unmanaged power, so its step rule runs only in
windows from such an over-limit step until the state is quiet again, started from the
closed-form state. Both give the loop's results up to round-off (about 1e-9); sessions of
one EV that overlap fall back to the loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import DTypeLike

from gridplan.core.errors import ConfigError, GridplanError
from gridplan.ev.events import PGE_EV2A, EventCalendar, TouRate, check_months, check_window
from gridplan.ev.fleet import Fleet

if TYPE_CHECKING:
    from gridplan.grid.feeders import Feeder

log = logging.getLogger(__name__)

#: Laxity and comparison tolerance on energies [kWh] and powers [kW].
_TOL = 1e-9
#: Load level [kW] standing for "no capacity" in the water-filling.
_FAR = 1e15
#: Fast paths: aggregate EV power below this [kW] is exactly 0 (a step without charging).
_SNAP_KW = 1e-9
#: Fast paths: elements (time x column) of one chunk of the aggregate series.
_CHUNK_ELEMENTS = 1 << 18
#: Fast paths: charging steps are painted into (time, column) cells when fewer than
#: (time x column) / _PAINT_COST (else a running sum over time, about that much dearer).
_PAINT_COST = 4
#: Fast paths: most distinct EV -> asset rows for the asset series by a dense product.
_MAX_SIGNATURES = 32
#: Fast paths: sessions per block of the closed form (bounds its temporaries).
_SESSION_BLOCK = 1 << 18
#: ``v2g_peak_shave`` fast path: a window starts where an asset's unmanaged load exceeds its
#: limit by more than this [kW] (the step rule acts above 1e-9; the margin covers round-off).
_WINDOW_EXCESS = 1e-9 - 1e-6


class Strategy(StrEnum):
    """Named dispatch strategies (see the module docstring for their rules)."""

    UNMANAGED = "unmanaged"
    TOU = "tou"
    SMART = "smart"
    V2G_PEAK_SHAVE = "v2g_peak_shave"
    V2G_EVENT = "v2g_event"
    V2G_OPTIMAL = "v2g_optimal"

    @classmethod
    def parse(cls, name: str | Strategy) -> Strategy:
        """Return the strategy called ``name``; unknown names list the valid ones."""
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(s.value for s in cls)
            raise ConfigError(f"unknown strategy '{name}' (expected one of: {valid})") from None

    @property
    def needs_context(self) -> bool:
        """Whether the strategy sees the grid (needs a :class:`DispatchContext`)."""
        return self in (Strategy.SMART, Strategy.V2G_PEAK_SHAVE, Strategy.V2G_OPTIMAL)

    @property
    def exports(self) -> bool:
        """Whether the strategy may discharge enrolled EVs to the grid."""
        return self in (Strategy.V2G_PEAK_SHAVE, Strategy.V2G_EVENT, Strategy.V2G_OPTIMAL)


# --------------------------------------------------------------------------- grid context
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
        base_load_kw: np.ndarray,
        time_index: pd.DatetimeIndex,
        *,
        sgen_p_kw: np.ndarray | None = None,
        asset_base_kw: np.ndarray | None = None,
    ) -> DispatchContext:
        """Build the context of ``fleet`` on ``feeder`` from base-load profiles.

        An asset's base load is the sum of the loads downstream of it (from the feeder's
        topology, :func:`gridplan.grid.feeders.downstream_buses`) less the generation downstream
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
            to the planning year, as the power flow sees it).
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
        from gridplan.grid.feeders import downstream_buses

        down = downstream_buses(feeder)
        assets = feeder.assets
        ids = [str(a) for a in assets.index]
        load_bus = np.asarray(feeder.load_bus)
        base_load = np.asarray(base_load_kw, dtype=float)
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
            load_in = np.column_stack([np.isin(load_bus, down[a]) for a in ids]).astype(float)
            base = base_load @ load_in
        if asset_base_kw is None and sgen_p_kw is not None and len(feeder.net.sgen):
            sgen_bus = feeder.net.sgen.bus.to_numpy()
            sgen = np.asarray(sgen_p_kw, dtype=float)
            if sgen.shape != (len(time_index), sgen_bus.size):
                raise ConfigError(
                    f"sgen_p_kw must have shape ({len(time_index)}, {sgen_bus.size})",
                    field="sgen_p_kw",
                )
            sgen_in = np.column_stack([np.isin(sgen_bus, down[a]) for a in ids]).astype(float)
            base = base - sgen @ sgen_in
        limit = assets.rating_kva.to_numpy(float) * assets.limit_pct.to_numpy(float) / 100.0
        ev_bus = np.asarray(fleet.bus)
        ev_assets = np.column_stack([np.isin(ev_bus, down[a]) for a in ids]).reshape(
            ev_bus.size, len(ids)
        )
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


@dataclass(frozen=True)
class _Level:
    """EVs under the assets of one nesting level (assets of a level never share an EV)."""

    ev: np.ndarray  # EV indices under an asset of this level
    asset: np.ndarray  # that asset, per EV in ``ev``


class _Topology:
    """Nesting of the monitored assets over the EVs, for allocation bottom-up/top-down."""

    def __init__(self, ev_assets: np.ndarray) -> None:
        n_ev, n_asset = ev_assets.shape
        self.n_asset = n_asset
        inc = sp.csr_matrix(ev_assets.astype(float))
        self.a_t = inc.T.tocsr()  # (asset, ev): asset load from EV power
        count = np.asarray(ev_assets.sum(axis=0)).ravel()
        overlap = (self.a_t @ inc).toarray() > 0  # assets sharing an EV
        order = np.lexsort((np.arange(n_asset), count))
        level = np.full(n_asset, -1)
        for a in order:
            if count[a] == 0:
                continue
            level[a] = 1 + int(level[overlap[a] & (level >= 0)].max(initial=-1))
        self.asset_level = level
        self.levels: list[_Level] = []
        for lv in range(int(level.max(initial=-1)) + 1):
            cols = np.flatnonzero(level == lv)
            sub = ev_assets[:, cols]
            has = sub.any(axis=1)
            self.levels.append(_Level(np.flatnonzero(has), cols[np.argmax(sub[has], axis=1)]))
        # leaf: the smallest asset above each EV (first level that holds it)
        self.leaf = np.full(n_ev, -1, dtype=np.int64)
        for lvl in reversed(self.levels):
            self.leaf[lvl.ev] = lvl.asset
        # ancestors: asset a's EVs all lie under asset b
        contain = (self.a_t @ inc).toarray()
        self.ancestors = (contain >= count[:, None] - 0.5) & (count[:, None] > 0)
        # nested assets: an EV's assets are its leaf and the leaf's ancestors, so asset
        # loads follow from per-leaf sums (cheaper than the full EV x asset product)
        self.leaf_ext = np.where(self.leaf >= 0, self.leaf, n_asset)
        has = self.leaf >= 0
        self.nested = bool(
            (ev_assets[has] == self.ancestors[self.leaf[has]]).all() and not ev_assets[~has].any()
        )
        self.leaf_up = sp.csr_matrix(self.ancestors.T.astype(float))  # (asset, leaf)

    def asset_power(self, p: np.ndarray) -> np.ndarray:
        """EV power through each asset [kW], (asset,), from per-EV power ``p`` [kW]."""
        if self.nested:
            per_leaf = np.bincount(self.leaf_ext, p, minlength=self.n_asset + 1)[: self.n_asset]
            return np.asarray(self.leaf_up @ per_leaf)
        return np.asarray(self.a_t @ p)

    def levels_for(self, ix: np.ndarray) -> list[np.ndarray]:
        """Per level, the asset above each EV of ``ix`` (-1: none), bottom-up."""
        out = []
        for lvl in self.levels:
            amap = np.full(self.leaf.size, -1, dtype=np.int64)
            amap[lvl.ev] = lvl.asset
            out.append(amap[ix])
        return out


def _relieve(
    levels: list[np.ndarray], n_asset: int, excess: np.ndarray, flex: np.ndarray
) -> np.ndarray:
    """Per-EV relief [kW] covering each asset's ``excess`` [kW] bottom-up, within ``flex``.

    Level by level from the smallest assets up, each asset asks its EVs for the excess not
    yet covered by relief below it, in proportion to their remaining room. ``levels`` maps
    each EV to its asset at each level (-1: none).
    """
    delta = np.zeros_like(flex)
    nz = np.flatnonzero(flex > _TOL)
    if not nz.size:
        return delta
    f = flex[nz]
    d = np.zeros(nz.size)
    for amap in levels:
        a = amap[nz]
        m = a >= 0
        if not m.any():
            continue
        am = a[m]
        if excess[am].max() <= 0:
            continue
        dm, fm = d[m], f[m]
        provided = np.bincount(am, dm, minlength=n_asset)
        room = np.bincount(am, fm - dm, minlength=n_asset)
        short = np.maximum(excess - provided, 0.0)
        ratio = np.divide(short, room, out=np.zeros(n_asset), where=room > _TOL)
        np.minimum(ratio, 1.0, out=ratio)
        d[m] = dm + ratio[am] * (fm - dm)
    delta[nz] = d
    return delta


def _fit(
    levels: list[np.ndarray], n_asset: int, want: np.ndarray, headroom: np.ndarray
) -> np.ndarray:
    """Scale ``want`` [kW] down so that no asset takes more than its ``headroom`` [kW]."""
    out = np.zeros_like(want)
    nz = np.flatnonzero(want > 0)
    if not nz.size:
        return out
    x = want[nz]
    room = np.maximum(headroom, 0.0)
    for amap in reversed(levels):
        a = amap[nz]
        m = a >= 0
        if not m.any():
            continue
        am = a[m]
        total = np.bincount(am, x[m], minlength=n_asset)
        over = total > room
        if not over.any():
            continue
        ratio = np.divide(room, total, out=np.ones(n_asset), where=over)
        x[m] *= ratio[am]
    out[nz] = x
    return out


# --------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class DispatchResult:
    """EV power, state of charge and their aggregates over a period.

    Attributes
    ----------
    time_index
        Start of each step, fixed step ``step_h``.
    step_h
        Step length [h].
    strategy
        The strategy dispatched.
    departure_shortfall_kwh
        Energy missing from the departure target at each departure in the simulation
        [kWh], shape (day, ev); NaN for sessions that do not end inside it.
    ev_charge_kwh, ev_export_kwh
        Grid energy drawn and exported (positive) per EV over the period [kWh], (ev,).
    battery_kwh
        Battery capacity per EV [kWh], (ev,) (for equivalent full cycles).
    charge_efficiency, discharge_efficiency
        Efficiencies used [-].
    power_by_load_kw
        EV power summed onto each home load [kW], shape (time, load).
    asset_ids
        Monitored assets (empty without a context).
    asset_load_kw
        Base load plus EV power through each asset [kW], (time, asset), or ``None``.
    asset_limit_kw
        Planning limit per asset [kW], (asset,), or ``None``.
    ev_assets
        EV x asset incidence of the context, or ``None``.
    ev_power_kw, ev_soc_kwh, ev_plugged
        Per-EV series, (time, ev), or ``None`` when not kept (``keep_ev_series=False``);
        read them through :attr:`power_kw`, :attr:`soc_kwh`, :attr:`plugged`.
    """

    time_index: pd.DatetimeIndex
    step_h: float
    strategy: Strategy
    departure_shortfall_kwh: np.ndarray
    ev_charge_kwh: np.ndarray
    ev_export_kwh: np.ndarray
    battery_kwh: np.ndarray
    charge_efficiency: float
    discharge_efficiency: float
    power_by_load_kw: np.ndarray
    asset_ids: tuple[str, ...] = ()
    asset_load_kw: np.ndarray | None = None
    asset_limit_kw: np.ndarray | None = None
    ev_assets: np.ndarray | None = field(default=None, repr=False)
    ev_power_kw: np.ndarray | None = field(default=None, repr=False)
    ev_soc_kwh: np.ndarray | None = field(default=None, repr=False)
    ev_plugged: np.ndarray | None = field(default=None, repr=False)

    def _series(self, value: np.ndarray | None, name: str) -> np.ndarray:
        if value is None:
            raise GridplanError(
                f"per-EV series '{name}' was not kept (dispatch(..., keep_ev_series=False)); "
                "use power_by_load_kw, asset_load_kw or the per-EV totals"
            )
        return value

    @property
    def power_kw(self) -> np.ndarray:
        """Grid-side EV power [kW], (time, ev); charging positive, V2G export negative."""
        return self._series(self.ev_power_kw, "power_kw")

    @property
    def soc_kwh(self) -> np.ndarray:
        """Battery energy at the end of each step [kWh], (time, ev)."""
        return self._series(self.ev_soc_kwh, "soc_kwh")

    @property
    def plugged(self) -> np.ndarray:
        """Whether each EV is plugged in during each step, (time, ev)."""
        return self._series(self.ev_plugged, "plugged")

    @property
    def charge_kwh(self) -> np.ndarray:
        """Grid energy drawn per EV [kWh], shape (ev,)."""
        return self.ev_charge_kwh

    @property
    def export_kwh(self) -> np.ndarray:
        """Grid energy exported per EV [kWh] (positive number), shape (ev,)."""
        return self.ev_export_kwh

    @property
    def unmet_kwh(self) -> np.ndarray:
        """Departure shortfall summed per EV [kWh], shape (ev,)."""
        return np.nansum(self.departure_shortfall_kwh, axis=0)

    @property
    def equivalent_full_cycles(self) -> np.ndarray:
        """Battery energy charged divided by capacity [-], shape (ev,)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.ev_charge_kwh * self.charge_efficiency / self.battery_kwh

    @property
    def v2g_cycles(self) -> np.ndarray:
        """Battery energy discharged for export divided by capacity [-], shape (ev,)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.ev_export_kwh / self.discharge_efficiency / self.battery_kwh

    @property
    def asset_overload_kw(self) -> np.ndarray:
        """Load above each asset's planning limit [kW], (time, asset) (0 when under)."""
        if self.asset_load_kw is None or self.asset_limit_kw is None:
            raise GridplanError("no asset loads: dispatch was run without a DispatchContext")
        return np.maximum(self.asset_load_kw - self.asset_limit_kw, 0.0)

    def ev_totals(self) -> pd.DataFrame:
        """Per-EV totals: ``charge_kwh``, ``export_kwh`` (grid side, positive),
        ``equivalent_full_cycles``, ``v2g_cycles`` [-] and ``unmet_kwh``, indexed by EV."""
        return pd.DataFrame(
            {
                "charge_kwh": self.ev_charge_kwh,
                "export_kwh": self.ev_export_kwh,
                "equivalent_full_cycles": self.equivalent_full_cycles,
                "v2g_cycles": self.v2g_cycles,
                "unmet_kwh": self.unmet_kwh,
            },
            index=pd.RangeIndex(self.ev_charge_kwh.size, name="ev"),
        )

    def asset_totals(self) -> pd.DataFrame:
        """Per-asset totals over the EVs downstream and the asset's load, by ``asset_id``.

        Columns: ``evs``, ``charge_kwh``, ``export_kwh``, ``unmet_kwh``,
        ``equivalent_full_cycles`` (sum over the EVs), ``peak_kw``, ``limit_kw``,
        ``overload_kwh`` (energy above the limit) and ``max_overload_kw``.
        """
        if self.ev_assets is None or self.asset_load_kw is None or self.asset_limit_kw is None:
            raise GridplanError("no asset totals: dispatch was run without a DispatchContext")
        inc = self.ev_assets.astype(float)
        over = self.asset_overload_kw
        return pd.DataFrame(
            {
                "evs": self.ev_assets.sum(axis=0),
                "charge_kwh": self.ev_charge_kwh @ inc,
                "export_kwh": self.ev_export_kwh @ inc,
                "unmet_kwh": self.unmet_kwh @ inc,
                "equivalent_full_cycles": np.nan_to_num(self.equivalent_full_cycles) @ inc,
                "peak_kw": self.asset_load_kw.max(axis=0, initial=-np.inf),
                "limit_kw": self.asset_limit_kw,
                "overload_kwh": over.sum(axis=0) * self.step_h,
                "max_overload_kw": over.max(axis=0, initial=0.0),
            },
            index=pd.Index(self.asset_ids, name="asset_id"),
        )


def load_power_kw(power_kw: np.ndarray, fleet: Fleet, n_loads: int) -> np.ndarray:
    """Sum EV power onto their home loads: (time, ev) -> (time, load) [kW]."""
    n_ev = fleet.n_ev
    if n_ev == 0:
        return np.zeros((power_kw.shape[0], n_loads))
    return np.asarray((_load_incidence(fleet, n_loads) @ power_kw.T).T)


def _load_incidence(fleet: Fleet, n_loads: int) -> sp.csr_matrix:
    """(load, ev) incidence: which load each EV is at."""
    n_ev = fleet.n_ev
    return sp.csr_matrix(
        (np.ones(n_ev), (np.asarray(fleet.load_pos), np.arange(n_ev))), shape=(n_loads, n_ev)
    )


# --------------------------------------------------------------------------- validation
def _check_fleet(fleet: Fleet) -> None:
    """Raise :class:`ConfigError` on fleet values no strategy can honour."""
    n = fleet.n_ev
    for name in ("battery_kwh", "charger_kw", "export_kw", "reserve_kwh", "target_kwh"):
        value = np.asarray(getattr(fleet, name), dtype=float)
        if value.shape != (n,):
            raise ConfigError(f"must have shape ({n},) (got {value.shape})", field=name)
        if not np.isfinite(value).all():
            raise ConfigError("holds NaN or inf", field=name)
        if (value < 0).any():
            i = int(np.flatnonzero(value < 0)[0])
            raise ConfigError(
                f"EV {i}: {value[i]:g} is below zero (expected >= 0)", field=f"fleet.{name}"
            )
    if (fleet.target_kwh > fleet.battery_kwh + 1e-9).any() or (
        fleet.reserve_kwh > fleet.target_kwh + 1e-9
    ).any():
        raise ConfigError(
            "expected reserve_kwh <= target_kwh <= battery_kwh for every EV", field="fleet"
        )
    for name in ("charge_efficiency", "discharge_efficiency"):
        eta = float(getattr(fleet, name))
        if not 0 < eta <= 1:
            raise ConfigError(f"{eta:g} is not in (0, 1]", field=f"fleet.{name}")


def _export_limit(fleet: Fleet, override: float | None) -> float:
    value = (
        float(getattr(fleet, "transformer_export_limit_kw", np.inf))
        if override is None
        else float(override)
    )
    if np.isnan(value) or value < 0:
        raise ConfigError(
            f"transformer export limit {value:g} kW is below zero (expected >= 0, inf for none)",
            field="transformer_export_limit_kw",
        )
    return value


def _context_rows(context: DispatchContext, sim: pd.DatetimeIndex, n_warm: int) -> np.ndarray:
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


# --------------------------------------------------------------------------- dispatch
def dispatch(
    fleet: Fleet,
    time_index: pd.DatetimeIndex,
    strategy: Strategy | str = Strategy.UNMANAGED,
    *,
    window_start_h: float = 16.0,
    window_end_h: float = 21.0,
    event_months: tuple[int, ...] = tuple(range(1, 13)),
    warmup_h: float = 24.0,
    context: DispatchContext | None = None,
    rate: TouRate | None = None,
    events: EventCalendar | None = None,
    transformer_export_limit_kw: float | None = None,
    objective: Literal["peak", "overload"] = "peak",
    max_lp_variables: int = 200_000,
    keep_ev_series: bool = True,
    dtype: DTypeLike = np.float64,
    n_loads: int | None = None,
    _fast_path: bool = True,
) -> DispatchResult:
    """Simulate EV charging (and V2G export) over ``time_index``.

    Sessions are the fleet's daily plug-in windows; at each arrival the day's driving
    energy leaves the battery. The simulation starts ``warmup_h`` before the period (within
    the fleet's days) with every EV at its departure target, so that EVs plugged in at the
    period's start carry a realistic state of charge; the warm-up is not returned.

    Parameters
    ----------
    fleet
        The EVs and their daily plug-in windows.
    time_index
        Steps to simulate (fixed step, inside the fleet's days).
    strategy
        A :class:`Strategy` or its name (see the module docstring for the rules).
    window_start_h, window_end_h
        ``v2g_event`` without ``events``: event window, hours of the day [h]; default
        16-21, the ELRP event window 4-9 pm (CPUC Emergency Load Reduction Program).
    event_months
        ``v2g_event`` without ``events``: months with events; default all (ELRP runs
        May-October; pass ``events`` for an ELRP calendar).
    warmup_h
        Simulated time before the period [h], discarded.
    context
        Monitored assets, base load, limits and EVs downstream
        (:meth:`DispatchContext.from_feeder`); required by ``smart``, ``v2g_peak_shave``
        and ``v2g_optimal``; with any strategy it adds per-asset loads to the result.
    rate
        ``tou``: the time-of-use rate; default :data:`gridplan.ev.events.PGE_EV2A`.
    events
        ``v2g_event``: the event calendar (:class:`~gridplan.ev.events.EventCalendar`);
        default every day of ``event_months``, ``window_start_h``-``window_end_h``.
    transformer_export_limit_kw
        Limit on total V2G export behind one service transformer [kW] (``inf``: none);
        default ``fleet.transformer_export_limit_kw`` when the fleet has it, else none.
        Transformer groups come from ``context.export_group``; without a context the EVs
        at one bus form a group.
    objective
        ``v2g_optimal``: minimize the asset's ``"peak"`` load or its ``"overload"`` energy.
    max_lp_variables
        ``v2g_optimal``: largest linear program allowed (variables).
    keep_ev_series
        Keep the (time, ev) series of power, state of charge and plug-in state; ``False``
        keeps only aggregates and per-EV totals (bounded memory for large fleets).
    dtype
        Float type of the kept series and aggregates (``numpy.float32`` halves memory);
        the simulation itself runs in float64.
    n_loads
        Columns of :attr:`DispatchResult.power_by_load_kw`; default ``context.n_loads``,
        else one past the highest ``fleet.load_pos``.
    _fast_path
        With ``keep_ev_series=False``, ``unmanaged`` and ``v2g_peak_shave`` skip the step
        loop (same results up to round-off, see :meth:`_Engine.run_fast`); ``False``
        forces the loop (for tests and benchmarks).

    Returns
    -------
    DispatchResult

    Raises
    ------
    ConfigError
        Unknown strategy, a grid-aware strategy without a context, bad windows, months or
        objective, an export limit below zero, inconsistent fleet values, a context that
        does not match the fleet or period, or a linear program above ``max_lp_variables``.
    """
    strategy = Strategy.parse(strategy)
    if len(time_index) < 2:
        raise ConfigError("dispatch needs at least two time steps", field="time_index")
    steps = np.diff(np.asarray(time_index.asi8))
    if (steps != steps[0]).any():
        # e.g. local-time profiles with a daylight-saving gap or repeated hour: steps are
        # simulated by position, each ``step_h`` long
        log.warning("time_index steps are not all equal; dispatch treats steps by position")
    check_window(window_start_h, window_end_h, field="window_start_h/window_end_h")
    check_months(event_months, field="event_months")
    if objective not in ("peak", "overload"):
        raise ConfigError(
            f"unknown objective '{objective}' (expected one of: peak, overload)",
            field="objective",
        )
    _check_fleet(fleet)
    export_limit = _export_limit(fleet, transformer_export_limit_kw)
    if strategy.needs_context and context is None:
        raise ConfigError(
            f"strategy '{strategy.value}' needs the grid: pass "
            "context=DispatchContext.from_feeder(feeder, fleet, base_load_kw, time_index)",
            field="context",
        )
    if context is not None and context.ev_assets.shape[0] != fleet.n_ev:
        raise ConfigError(
            f"the context has {context.ev_assets.shape[0]} EVs, the fleet {fleet.n_ev} "
            "(expected a context built for this fleet)",
            field="context",
        )

    step = time_index[1] - time_index[0]
    step_h = float(step / pd.Timedelta(hours=1))
    n_warm = int(max(0.0, warmup_h) / step_h)
    if len(fleet.days):
        n_warm = min(n_warm, max(0, int((time_index[0] - fleet.days[0]) / step)))
    period = time_index
    sim = time_index
    if n_warm:
        sim = pd.DatetimeIndex(
            pd.date_range(time_index[0] - n_warm * step, periods=len(period) + n_warm, freq=step),
            name=period.name,
        )
    if context is not None and len(context.time_index) > 1:
        ctx_step = context.time_index[1] - context.time_index[0]
        if ctx_step != step:
            raise ConfigError(
                f"the context's step {ctx_step} differs from the dispatch step {step}",
                field="context.time_index",
            )
    if n_loads is None:
        if context is not None and context.n_loads is not None:
            n_loads = context.n_loads
        else:
            n_loads = int(np.max(fleet.load_pos, initial=-1)) + 1
    engine = _Engine(
        fleet,
        sim,
        n_warm,
        step_h,
        strategy,
        context=context,
        export_limit=export_limit,
        keep=keep_ev_series,
        dtype=np.dtype(dtype),
        n_loads=int(n_loads),
    )
    if strategy is Strategy.TOU:
        engine.off_peak = (rate if rate is not None else PGE_EV2A).off_peak(sim)
    elif strategy is Strategy.V2G_EVENT:
        calendar = events
        if calendar is None:
            calendar = EventCalendar.every_day(sim, window_start_h, window_end_h, event_months)
        engine.event = calendar.active(sim)
    elif strategy is Strategy.V2G_OPTIMAL:
        engine.plan_optimal(objective, max_lp_variables)
    if (
        _fast_path
        and not keep_ev_series
        and strategy in (Strategy.UNMANAGED, Strategy.V2G_PEAK_SHAVE)
    ):
        result = engine.run_fast(period)
        if result is not None:
            return result
    return engine.run(period)


# --------------------------------------------------------------------------- the engine
class _Engine:
    """Step-by-step simulation of one fleet under one strategy (vectorized over EVs)."""

    def __init__(
        self,
        fleet: Fleet,
        sim: pd.DatetimeIndex,
        n_warm: int,
        step_h: float,
        strategy: Strategy,
        *,
        context: DispatchContext | None,
        export_limit: float,
        keep: bool,
        dtype: np.dtype,
        n_loads: int,
    ) -> None:
        self.fleet = fleet
        self.sim = sim
        self.n_t = n_t = len(sim)
        self.n_ev = n_ev = fleet.n_ev
        self.n_warm = n_warm
        self.dt = step_h
        self.strategy = strategy
        self.context = context
        self.keep = keep
        self.dtype = dtype
        self.n_loads = n_loads
        self.eta_c = float(fleet.charge_efficiency)
        self.eta_d = float(fleet.discharge_efficiency)
        self.inv_c = 1.0 / (self.eta_c * step_h)
        self.charger = np.asarray(fleet.charger_kw, dtype=float)
        self.target = np.asarray(fleet.target_kwh, dtype=float)
        self.reserve = np.asarray(fleet.reserve_kwh, dtype=float)
        self.battery = np.asarray(fleet.battery_kwh, dtype=float)
        enrolled = np.asarray(fleet.v2g_enrolled, dtype=bool)
        self.export = np.where(enrolled, np.asarray(fleet.export_kw, dtype=float), 0.0)
        self.enrolled = enrolled & (self.export > 0)
        self.ps = self.charger * self.eta_c * step_h  # battery kWh of one full-power step

        # sessions: (day, ev) plug-in windows overlapping the simulation
        t0 = sim[0]
        day_offset_h = np.asarray((fleet.days - t0) / pd.Timedelta(hours=1), dtype=float)
        # only days whose sessions can overlap the simulation (departure < 48 h after midnight)
        near = np.flatnonzero((day_offset_h > -72.0) & (day_offset_h < n_t * step_h + 24.0))
        offset = day_offset_h[near][:, None]
        arr_h = np.asarray(fleet.arrival_h)[near]
        dep_h = np.asarray(fleet.departure_h)[near]
        arr = np.ceil((offset + arr_h) / step_h - 1e-9).astype(np.int64)
        dep = np.ceil((offset + dep_h) / step_h - 1e-9).astype(np.int64)
        valid = (dep > 0) & (arr < n_t) & (dep > arr)
        row_idx, ev_idx = np.nonzero(valid)
        i32 = np.int32  # session arrays: 4 bytes per entry (a year of 10,000 EVs: 3.7M)
        self.s_day, self.s_ev = near[row_idx].astype(i32), ev_idx.astype(i32)
        self.s_row, self.n_row = row_idx.astype(i32), int(near.size)  # row: day among ``near``
        self.s_arr = np.clip(arr[row_idx, ev_idx], 0, n_t).astype(i32)
        self.s_dep_true = dep[row_idx, ev_idx].astype(i32)
        del row_idx, ev_idx
        self.s_dep = np.clip(self.s_dep_true, 0, n_t).astype(i32)
        self.s_trip = np.asarray(fleet.trip_kwh, dtype=float)[self.s_day, self.s_ev]
        del arr, dep, valid
        self.s_inside = self.s_dep_true <= n_t
        self.order_arr = np.argsort(self.s_arr, kind="stable").astype(i32)
        # sessions arriving before step t: order_arr[:arr_bounds[t]] (departing: order_dep)
        self.arr_bounds = np.concatenate([[0], np.cumsum(np.bincount(self.s_arr, minlength=n_t))])
        self.order_dep = np.argsort(self.s_dep, kind="stable").astype(i32)
        self.dep_bounds = np.concatenate(
            [[0], np.cumsum(np.bincount(self.s_dep, minlength=n_t + 1))]
        )
        self.shortfall = np.full(np.shape(fleet.arrival_h), np.nan)

        # state
        self.soc = self.target.copy()
        self.on = np.zeros(n_ev, dtype=bool)
        self.onf = np.zeros(n_ev)
        self.dep = np.zeros(n_ev)  # departure step of the current session (unclipped)
        self._need = np.empty(n_ev)
        self._pf = np.empty(n_ev)
        self._pm = np.empty(n_ev)
        self._tmp = np.empty(n_ev)

        # export groups (service transformers)
        self.export_limit = export_limit
        if context is not None and context.export_group is not None:
            raw = context.export_group
        else:
            raw = np.asarray(fleet.bus)
        self.group = (
            np.unique(raw, return_inverse=True)[1].astype(np.int64)
            if n_ev
            else np.zeros(0, np.int64)
        )
        self.n_group = int(self.group.max(initial=-1)) + 1

        # grid context
        self._topo: _Topology | None = None  # built on first use (see ``topo``)
        self.rows: np.ndarray | None = None
        if context is not None:
            self.rows = _context_rows(context, sim, n_warm)
            self.limit = context.asset_limit_kw
        # strategy inputs set by dispatch()
        self.off_peak: np.ndarray | None = None
        self.event: np.ndarray | None = None
        self.plan: np.ndarray | None = None
        self.free: np.ndarray | None = None
        self.asset_ev_kw: np.ndarray | None = None  # EV power per asset, if a step knows it

    # ----------------------------------------------------------------------- building blocks
    @property
    def topo(self) -> _Topology | None:
        """Nesting of the context's assets over the EVs (``None`` without a context)."""
        if self._topo is None and self.context is not None:
            self._topo = _Topology(self.context.ev_assets)
        return self._topo

    def base(self, t: int) -> np.ndarray:
        assert self.context is not None and self.rows is not None
        return self.context.asset_base_kw[self.rows[t]]

    def p_full(self) -> np.ndarray:
        """Power that charges toward the target as fast as possible [kW]."""
        raw, pf = self._need, self._pf
        np.subtract(self.target, self.soc, out=raw)
        raw *= self.inv_c  # power that would meet the target within this step
        np.minimum(raw, self.charger, out=pf)
        np.maximum(pf, 0.0, out=pf)
        pf *= self.onf
        return pf

    def p_must(self, t: int) -> np.ndarray:
        """Least power from which full power at every later step still meets the target.

        Call after :meth:`p_full` (uses the need it computed).
        """
        pm = self._pm
        np.subtract(self.dep, t + 1.0, out=pm)
        np.maximum(pm, 0.0, out=pm)
        pm *= self.charger  # full power over the later steps, in units of this step
        np.subtract(self._need, pm, out=pm)
        np.minimum(pm, self.charger, out=pm)
        np.maximum(pm, 0.0, out=pm)
        pm *= self.onf
        return pm

    def discharge_max(self, t: int, soc: np.ndarray | None = None) -> np.ndarray:
        """Largest export [kW] that keeps the reserve and full-power recharge by departure."""
        soc = self.soc if soc is None else soc
        floor = np.maximum(self.reserve, self.target - np.maximum(self.dep - t - 1.0, 0) * self.ps)
        room = np.maximum(soc - floor, 0.0)
        return np.minimum(self.export, room * self.eta_d / self.dt) * self.onf

    def clamp_export(self, p: np.ndarray) -> np.ndarray:
        """Scale exports so that each service transformer's total stays within its limit."""
        if not np.isfinite(self.export_limit) or self.n_ev == 0:
            return p
        out = np.maximum(-p, 0.0)
        if not out.any():
            return p
        total = np.bincount(self.group, out, minlength=self.n_group)
        over = total > self.export_limit
        if not over.any():
            return p
        scale = np.where(over, self.export_limit / np.where(over, total, 1.0), 1.0)
        return np.where(p < 0, p * scale[self.group], p)

    # ----------------------------------------------------------------------- strategies
    def step_unmanaged(self, t: int) -> np.ndarray:
        return self.p_full()

    def step_tou(self, t: int) -> np.ndarray:
        assert self.off_peak is not None
        pf = self.p_full()
        return pf if self.off_peak[t] else self.p_must(t)

    def step_v2g_event(self, t: int) -> np.ndarray:
        assert self.event is not None
        pf = self.p_full()
        if not self.event[t]:
            return pf
        v2g = self.on & self.enrolled
        if not v2g.any():
            return pf
        p_dis = self.discharge_max(t)
        p_must = self.p_must(t)
        p = np.where(v2g, np.where(p_dis > _TOL, -p_dis, p_must), pf)
        return self.clamp_export(p)

    # smart ------------------------------------------------------------------
    def setup_smart(self) -> None:
        assert self.topo is not None
        topo = self.topo
        leaf = topo.leaf
        self.grouped = np.flatnonzero(leaf >= 0)
        self.grouped_leaf = leaf[self.grouped]
        self.free = leaf < 0
        # planning days: sessions of fleet day d are planned at their first arrival
        sess = np.flatnonzero(leaf[self.s_ev] >= 0)
        self.smart_days: list[np.ndarray] = []
        self.smart_plan_at: list[int] = []
        if sess.size:
            days = self.s_day[sess]
            order = np.argsort(days, kind="stable")
            sess, days = sess[order], days[order]
            cuts = np.flatnonzero(np.diff(days)) + 1
            for chunk in np.split(sess, cuts):
                self.smart_days.append(chunk)
                self.smart_plan_at.append(int(self.s_arr[chunk].min()))
        span = max(
            (
                int(self.s_dep[c].max()) - at
                for c, at in zip(self.smart_days, self.smart_plan_at, strict=True)
            ),
            default=1,
        )
        self.ring = max(span, 1) + 1
        n_asset = topo.n_asset
        self.allowed = np.zeros((self.ring, n_asset))
        self.planned = np.zeros((self.ring, n_asset))
        self.pred_soc = self.target.copy()
        self.next_day = 0
        self.group_levels = sorted({int(topo.asset_level[a]) for a in np.unique(self.grouped_leaf)})
        self.anc = sp.csr_matrix(topo.ancestors.astype(float))
        self.leaf_ext = np.where(leaf >= 0, leaf, n_asset)  # n_asset: share 1 (unmanaged)
        self.share = np.ones(n_asset + 1)

    def plan_smart_day(self, sess: np.ndarray, w0: int) -> None:
        """Water-fill the energy of one fleet day's sessions into each asset's valleys."""
        assert self.topo is not None
        topo, dt, ring = self.topo, self.dt, self.ring
        ev = self.s_ev[sess]
        arr, dep = self.s_arr[sess], self.s_dep[sess]
        g = topo.leaf[ev]
        soc0 = np.maximum(self.pred_soc[ev] - self.s_trip[sess], 0.0)
        need = np.maximum(self.target[ev] - soc0, 0.0)
        deliver = np.minimum(need, (dep - arr) * self.ps[ev])
        self.pred_soc[ev] = soc0 + deliver
        w1 = int(dep.max())
        width = w1 - w0
        if width <= 0:
            return
        n_asset = topo.n_asset
        cap = np.zeros((width + 1, n_asset))
        np.add.at(cap, (arr - w0, g), self.charger[ev])
        np.add.at(cap, (dep - w0, g), -self.charger[ev])
        cap = np.cumsum(cap[:-1], axis=0)
        energy = np.bincount(g, deliver / self.eta_c, minlength=n_asset)  # grid kWh
        rows = np.arange(w0, w1) % ring
        assert self.rows is not None and self.context is not None
        base = self.context.asset_base_kw[self.rows[w0:w1]]
        present = np.unique(g)
        for lv in self.group_levels:
            cols = present[topo.asset_level[present] == lv]
            if not cols.size:
                continue
            y = base[:, cols] + self.planned[rows[:, None], cols[None, :]]
            power = _water_fill(y, cap[:, cols], energy[cols] / dt)
            self.allowed[rows[:, None], cols[None, :]] += power
            self.planned[rows] += np.asarray((self.anc[cols].T @ power.T).T)

    def step_smart(self, t: int) -> np.ndarray:
        while self.next_day < len(self.smart_plan_at) and self.smart_plan_at[self.next_day] <= t:
            self.plan_smart_day(self.smart_days[self.next_day], t)
            self.next_day += 1
        assert self.topo is not None
        pf = self.p_full()
        pm = self.p_must(t)
        r = t % self.ring
        allowed = self.allowed[r]
        n_asset = self.topo.n_asset
        want = np.bincount(self.leaf_ext, pf, minlength=n_asset + 1)[:n_asset]
        share = self.share
        share[:n_asset] = 0.0
        np.divide(allowed, want, out=share[:n_asset], where=want > _TOL)
        np.minimum(share, 1.0, out=share)
        p = pf * share[self.leaf_ext]
        np.maximum(p, pm, out=p)
        self.allowed[r] = 0.0
        self.planned[r] = 0.0
        return p

    # v2g_peak_shave ------------------------------------------------------------
    def setup_peak_shave(self) -> None:
        assert self.topo is not None and self.context is not None
        below = self.context.ev_assets.any(axis=1)
        self.shave_ix = np.flatnonzero(self.enrolled & below)
        self.shave_levels = self.topo.levels_for(self.shave_ix)
        self.a_s = self.topo.a_t[:, self.shave_ix].tocsr()
        self.soc_un = self.soc.copy()
        self.running_max = np.full(self.topo.n_asset, -np.inf)

    def step_peak_shave(self, t: int) -> np.ndarray:
        assert self.topo is not None
        topo, dt, ix, a_s = self.topo, self.dt, self.shave_ix, self.a_s
        levels, n_asset = self.shave_levels, topo.n_asset
        pf = self.p_full()
        p = pf.copy()
        if not ix.size:
            return p
        pf_s, on_s = pf[ix], self.onf[ix]
        soc_s, un_s = self.soc[ix], self.soc_un[ix]
        charger_s, target_s, ps_s = self.charger[ix], self.target[ix], self.ps[ix]
        later = np.maximum(self.dep[ix] - t - 1.0, 0.0) * ps_s  # kWh full power adds later
        pm_s = np.clip((target_s - soc_s - later) * self.inv_c, 0.0, charger_s) * on_s
        # shadow unmanaged power of the shavers
        p_un_s = np.clip((target_s - un_s) * self.inv_c, 0.0, charger_s) * on_s
        p[ix] = p_un_s
        self.p_un_s = p_un_s  # the shavers' unmanaged power (the fast path's totals)
        base = self.base(t)
        ev = topo.asset_power(p)  # EV power through each asset [kW]
        if t >= self.n_warm:
            np.maximum(self.running_max, base + ev, out=self.running_max)
        behind = un_s - soc_s > 1e-7
        p_s = np.minimum(p_un_s, pf_s)
        if behind.any():
            ev = ev + a_s @ (p_s - p_un_s)
        excess = base + ev - self.limit
        relieved = np.zeros(ix.size, dtype=bool)
        if (excess > 1e-9).any() and on_s.any():
            floor = np.maximum(self.reserve[ix], target_s - later)
            dis = np.minimum(self.export[ix], np.maximum(soc_s - floor, 0.0) * self.eta_d / dt)
            dis = np.where(pm_s > 0, 0.0, dis * on_s)
            curtail = np.maximum(p_s - pm_s, 0.0)
            d1 = _relieve(levels, n_asset, np.maximum(excess, 0.0), curtail)
            excess2 = excess - a_s @ d1
            if (excess2 > 1e-9).any():
                d1 = d1 + _relieve(levels, n_asset, np.maximum(excess2, 0.0), dis)
            p_s = p_s - d1
            ev = ev - a_s @ d1
            relieved = d1 > 1e-12
        p[ix] = p_s
        if (p_s < 0).any() and np.isfinite(self.export_limit):
            clamped = self.clamp_export(p)
            if clamped is not p:
                p = clamped
                p_s = p[ix]
                ev = topo.asset_power(p)
        forced = pm_s > p_s + 1e-12
        if behind.any() or forced.any():
            cap = self.limit if t < self.n_warm else np.minimum(self.limit, self.running_max)
            head = np.maximum(cap - (base + ev), 0.0)
            if forced.any():
                x1 = _fit(levels, n_asset, np.where(forced, pm_s - p_s, 0.0), head)
                p_s = p_s + x1
                moved = a_s @ x1
                head -= moved
                ev = ev + moved
            deficit = np.maximum(un_s - soc_s, 0.0)
            catch = np.minimum(pf_s, p_un_s + deficit * self.inv_c)
            want = np.where(behind & ~relieved, np.maximum(catch - p_s, 0.0), 0.0)
            if want.any():
                x2 = _fit(levels, n_asset, want, head)
                p_s = p_s + x2
                ev = ev + a_s @ x2
            p[ix] = p_s
        self.soc_un[ix] = un_s + p_un_s * self.eta_c * dt
        self.asset_ev_kw = ev
        return p

    # v2g_optimal -------------------------------------------------------------
    def plan_optimal(self, objective: str, max_vars: int) -> None:
        """Solve the per-asset, per-day linear programs; store the plan (time, ev)."""
        assert self.topo is not None and self.context is not None and self.rows is not None
        topo = self.topo
        leaf = topo.leaf
        self.free = leaf < 0
        n_t, n_ev = self.n_t, self.n_ev
        self.plan = np.zeros((n_t, n_ev))
        sess = np.flatnonzero(leaf[self.s_ev] >= 0)
        if not sess.size:
            return
        g = leaf[self.s_ev[sess]]
        length = self.s_dep[sess] - self.s_arr[sess]
        per_step = np.where(self.enrolled[self.s_ev[sess]], 3, 2)
        key = self.s_day[sess] * topo.n_asset + g
        uniq, inv = np.unique(key, return_inverse=True)
        n_vars = np.bincount(inv, per_step * length) + 1
        if objective == "overload":
            lo = np.full(uniq.size, n_t)
            hi = np.zeros(uniq.size, dtype=np.int64)
            np.minimum.at(lo, inv, self.s_arr[sess])
            np.maximum.at(hi, inv, self.s_dep[sess])
            n_vars = n_vars + (hi - lo)
        worst = int(np.argmax(n_vars))
        if n_vars[worst] > max_vars:
            day = int(uniq[worst] // topo.n_asset)
            name = self.context.asset_ids[int(uniq[worst] % topo.n_asset)]
            raise ConfigError(
                f"v2g_optimal: the linear program of asset '{name}' on "
                f"{self.fleet.days[day]:%Y-%m-%d} has {int(n_vars[worst]):,} variables (limit "
                f"max_lp_variables={max_vars:,}); use a heuristic strategy, a shorter period or "
                "a smaller feeder, or raise the limit",
                field="max_lp_variables",
            )
        fixed_asset = np.zeros((n_t, topo.n_asset))
        fixed_export = np.zeros((n_t, max(self.n_group, 1)))
        pred_soc = self.target.copy()
        days = self.s_day[sess]
        order = np.lexsort((g, topo.asset_level[g], days))
        sess, g, days = sess[order], g[order], days[order]
        bounds = np.flatnonzero(np.diff(days * topo.n_asset + g)) + 1
        for chunk in np.split(np.arange(sess.size), bounds):
            s = sess[chunk]
            asset = int(g[chunk[0]])
            ev = self.s_ev[s]
            soc0 = np.maximum(pred_soc[ev] - self.s_trip[s], 0.0)
            power, soc_end = self._solve_lp(s, soc0, asset, objective, fixed_asset, fixed_export)
            pred_soc[ev] = soc_end
            for j, (a, b) in enumerate(zip(self.s_arr[s], self.s_dep[s], strict=True)):
                self.plan[a:b, ev[j]] = power[j]
                fixed_asset[a:b] += np.outer(power[j], topo.ancestors[asset])
                if np.isfinite(self.export_limit):
                    fixed_export[a:b, self.group[ev[j]]] += np.maximum(-power[j], 0.0)

    def _solve_lp(
        self,
        s: np.ndarray,
        soc0: np.ndarray,
        asset: int,
        objective: str,
        fixed_asset: np.ndarray,
        fixed_export: np.ndarray,
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """One asset-day program; returns each session's power and its end state of charge."""
        from scipy.optimize import linprog

        assert self.context is not None and self.rows is not None
        dt, eta_c, eta_d = self.dt, self.eta_c, self.eta_d
        ev = self.s_ev[s]
        a, b = self.s_arr[s], self.s_dep[s]
        length = b - a
        w0, w1 = int(a.min()), int(b.max())
        width = w1 - w0
        can_dis = self.enrolled[ev] & (soc0 >= self.reserve[ev] - 1e-9)
        # terminal requirement: target by departure, or the laxity floor at the period end
        beyond = np.maximum(self.s_dep_true[s] - b, 0)
        required = np.maximum(self.target[ev] - beyond * self.ps[ev], 0.0)
        required = np.minimum(required, soc0 + length * self.ps[ev])
        required = np.minimum(required, self.battery[ev])
        n_c = length
        n_d = np.where(can_dis, length, 0)
        off_c = np.concatenate([[0], np.cumsum(n_c + n_d + length)[:-1]])
        off_d = off_c + n_c
        off_s = off_d + n_d
        n_x = int((n_c + n_d + length).sum())
        iz = n_x
        n_var = n_x + 1 + (width if objective == "overload" else 0)
        lb = np.zeros(n_var)
        ub = np.full(n_var, np.inf)
        eq_r: list[np.ndarray] = []
        eq_c: list[np.ndarray] = []
        eq_v: list[np.ndarray] = []
        ub_r: list[np.ndarray] = []
        ub_c: list[np.ndarray] = []
        ub_v: list[np.ndarray] = []
        b_eq = np.zeros(int(length.sum()))
        row0 = 0
        export_rows: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for j in range(s.size):
            k = np.arange(length[j])
            ic, isoc = off_c[j] + k, off_s[j] + k
            e = ev[j]
            ub[ic] = self.charger[e]
            lb[isoc] = self.reserve[e] if can_dis[j] else 0.0
            ub[isoc] = self.battery[e]
            lb[isoc[-1]] = max(lb[isoc[-1]], required[j])
            rows = row0 + k
            eq_r += [rows, rows, rows[1:]]
            eq_c += [isoc, ic, isoc[:-1]]
            eq_v += [np.ones(k.size), np.full(k.size, -eta_c * dt), -np.ones(k.size - 1)]
            t_rel = a[j] - w0 + k
            ub_r += [t_rel]
            ub_c += [ic]
            ub_v += [np.ones(k.size)]
            if can_dis[j]:
                idis = off_d[j] + k
                ub[idis] = self.export[e]
                eq_r += [rows]
                eq_c += [idis]
                eq_v += [np.full(k.size, dt / eta_d)]
                ub_r += [t_rel]
                ub_c += [idis]
                ub_v += [-np.ones(k.size)]
                export_rows.setdefault(int(self.group[e]), []).append((t_rel, idis))
            b_eq[row0] = soc0[j]
            row0 += k.size
        steps = np.arange(width)
        y = self.context.asset_base_kw[self.rows[w0:w1], asset] + fixed_asset[w0:w1, asset]
        limit = float(self.limit[asset])
        if objective == "peak":
            lb[iz], ub[iz] = -np.inf, np.inf
            ub_r += [steps]
            ub_c += [np.full(width, iz)]
            ub_v += [-np.ones(width)]
            b_ub = -y
        else:
            lb[iz] = ub[iz] = 0.0
            io = n_x + 1 + steps
            ub_r += [steps]
            ub_c += [io]
            ub_v += [-np.ones(width)]
            b_ub = limit - y
        n_ub = width
        b_extra: list[np.ndarray] = []
        if np.isfinite(self.export_limit):
            for grp, parts in export_rows.items():
                t_rel = np.concatenate([p[0] for p in parts])
                cols = np.concatenate([p[1] for p in parts])
                ub_r += [n_ub + t_rel]
                ub_c += [cols]
                ub_v += [np.ones(cols.size)]
                b_extra.append(np.maximum(self.export_limit - fixed_export[w0:w1, grp], 0.0))
                n_ub += width
        a_eq = sp.csr_matrix(
            (np.concatenate(eq_v), (np.concatenate(eq_r), np.concatenate(eq_c))),
            shape=(b_eq.size, n_var),
        )
        a_ub = sp.csr_matrix(
            (np.concatenate(ub_v), (np.concatenate(ub_r), np.concatenate(ub_c))),
            shape=(n_ub, n_var),
        )
        b_ub_all = np.concatenate([b_ub, *b_extra])
        cost = np.zeros(n_var)
        if objective == "peak":
            cost[iz] = 1.0
        else:
            cost[n_x + 1 :] = dt
        bounds = np.column_stack([lb, ub])
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub_all, A_eq=a_eq, b_eq=b_eq, bounds=bounds)
        if res.status != 0:
            raise GridplanError(f"v2g_optimal: HiGHS failed on asset {asset}: {res.message}")
        best = float(res.fun)
        # second solve: keep the optimum, minimize throughput (no needless cycling)
        slack = 1e-7 * max(1.0, abs(best))
        cost2 = np.zeros(n_var)
        throughput = np.concatenate([off_c[j] + np.arange(n_c[j] + n_d[j]) for j in range(s.size)])
        cost2[throughput] = dt
        if objective == "peak":
            bounds[iz, 1] = best + slack
            res2 = linprog(cost2, A_ub=a_ub, b_ub=b_ub_all, A_eq=a_eq, b_eq=b_eq, bounds=bounds)
        else:
            a_ub2 = sp.vstack([a_ub, sp.csr_matrix(cost.reshape(1, -1))]).tocsr()
            b_ub2 = np.concatenate([b_ub_all, [best + slack]])
            res2 = linprog(cost2, A_ub=a_ub2, b_ub=b_ub2, A_eq=a_eq, b_eq=b_eq, bounds=bounds)
        x = res2.x if res2.status == 0 else res.x
        power = []
        soc_end = np.empty(s.size)
        for j in range(s.size):
            c = x[off_c[j] : off_c[j] + n_c[j]]
            d = x[off_d[j] : off_d[j] + n_d[j]] if n_d[j] else 0.0
            power.append(np.asarray(c - d, dtype=float))
            soc_end[j] = x[off_s[j] + length[j] - 1]
        return power, soc_end

    def step_optimal(self, t: int) -> np.ndarray:
        assert self.plan is not None and self.free is not None
        pf = self.p_full()
        p = np.where(self.free, pf, self.plan[t])
        up = np.minimum(self.charger, (self.battery - self.soc) * self.inv_c)
        down = np.minimum(
            self.export, np.maximum(self.soc - self.reserve, 0.0) * self.eta_d / self.dt
        )
        p = np.clip(p, -down, np.maximum(up, 0.0)) * self.onf
        # guard against solver round-off at departure
        p = np.where(p >= 0, np.maximum(p, self.p_must(t)), p)
        return self.clamp_export(p)

    # ----------------------------------------------------------------------- the loop
    def run(self, period: pd.DatetimeIndex) -> DispatchResult:
        n_t, n_ev, n_warm, dt = self.n_t, self.n_ev, self.n_warm, self.dt
        strategy = self.strategy
        step_fn = {
            Strategy.UNMANAGED: self.step_unmanaged,
            Strategy.TOU: self.step_tou,
            Strategy.SMART: self.step_smart,
            Strategy.V2G_PEAK_SHAVE: self.step_peak_shave,
            Strategy.V2G_EVENT: self.step_v2g_event,
            Strategy.V2G_OPTIMAL: self.step_optimal,
        }[strategy]
        if strategy is Strategy.SMART:
            self.setup_smart()
        elif strategy is Strategy.V2G_PEAK_SHAVE:
            self.setup_peak_shave()
        n_out = n_t - n_warm
        dtype = self.dtype
        power_out = np.empty((n_out, n_ev), dtype) if self.keep else None
        soc_out = np.empty((n_out, n_ev), dtype) if self.keep else None
        plugged_out = np.empty((n_out, n_ev), bool) if self.keep else None
        by_load = np.zeros((n_out, self.n_loads), dtype)
        load_pos = np.asarray(self.fleet.load_pos, dtype=np.int64)
        n_loads = self.n_loads
        asset_load = None
        topo = self.topo
        if self.context is not None:
            asset_load = np.empty((n_out, self.context.n_asset), dtype)
            base_kw, base_rows = self.context.asset_base_kw, self.rows
        charge = np.zeros(n_ev)
        export = np.zeros(n_ev)
        exports = strategy.exports
        eta_c_dt, dt_eta_d = self.eta_c * dt, dt / self.eta_d
        soc, tmp = self.soc, self._tmp
        pos_part = np.empty(n_ev)
        s_ev, s_trip = self.s_ev, self.s_trip
        order_arr, arr_bounds = self.order_arr, self.arr_bounds
        order_dep, dep_bounds = self.order_dep, self.dep_bounds
        shadow = strategy is Strategy.V2G_PEAK_SHAVE

        for t in range(n_t):
            lo, hi = arr_bounds[t], arr_bounds[t + 1]
            if hi > lo:
                idx = order_arr[lo:hi]
                e = s_ev[idx]
                soc[e] = np.maximum(soc[e] - s_trip[idx], 0.0)
                if shadow:
                    self.soc_un[e] = np.maximum(self.soc_un[e] - s_trip[idx], 0.0)
                self.on[e] = True
                self.onf[e] = 1.0
                self.dep[e] = self.s_dep_true[idx]
            p = step_fn(t)
            if exports and p.min(initial=0.0) < 0:
                np.maximum(p, 0.0, out=pos_part)
                np.multiply(pos_part, eta_c_dt, out=tmp)
                soc += tmp
                np.minimum(p, 0.0, out=tmp)
                if t >= n_warm:
                    charge += pos_part
                    export -= tmp
                tmp *= dt_eta_d
                soc += tmp
            else:
                np.multiply(p, eta_c_dt, out=tmp)
                soc += tmp
                if t >= n_warm:
                    charge += p
            if t >= n_warm:
                k = t - n_warm
                if n_ev:
                    by_load[k] = np.bincount(load_pos, p, minlength=n_loads)
                if asset_load is not None and topo is not None:
                    assert base_rows is not None
                    ev_kw = self.asset_ev_kw
                    if ev_kw is None:
                        ev_kw = topo.asset_power(p)
                    asset_load[k] = base_kw[base_rows[t]] + ev_kw
                if self.keep:
                    assert power_out is not None and soc_out is not None
                    assert plugged_out is not None
                    power_out[k] = p
                    soc_out[k] = soc
                    plugged_out[k] = self.on
            lo, hi = dep_bounds[t + 1], dep_bounds[t + 2]
            if hi > lo:
                idx = order_dep[lo:hi]
                e = s_ev[idx]
                inside = self.s_inside[idx]
                self.shortfall[self.s_day[idx[inside]], e[inside]] = np.maximum(
                    self.target[e[inside]] - soc[e[inside]], 0.0
                )
                self.on[e] = False
                self.onf[e] = 0.0
        charge *= dt
        export *= dt
        return self._result(
            period, charge, export, by_load, asset_load, power_out, soc_out, plugged_out
        )

    def _result(
        self,
        period: pd.DatetimeIndex,
        charge: np.ndarray,
        export: np.ndarray,
        by_load: np.ndarray,
        asset_load: np.ndarray | None,
        power_out: np.ndarray | None = None,
        soc_out: np.ndarray | None = None,
        plugged_out: np.ndarray | None = None,
    ) -> DispatchResult:
        """The :class:`DispatchResult` of a finished run (loop or fast path)."""
        ctx = self.context
        return DispatchResult(
            time_index=period,
            step_h=self.dt,
            strategy=self.strategy,
            departure_shortfall_kwh=self.shortfall,
            ev_charge_kwh=charge,
            ev_export_kwh=export,
            battery_kwh=self.battery,
            charge_efficiency=self.eta_c,
            discharge_efficiency=self.eta_d,
            power_by_load_kw=by_load,
            asset_ids=ctx.asset_ids if ctx is not None else (),
            asset_load_kw=asset_load,
            asset_limit_kw=ctx.asset_limit_kw if ctx is not None else None,
            ev_assets=ctx.ev_assets if ctx is not None else None,
            ev_power_kw=power_out,
            ev_soc_kwh=soc_out,
            ev_plugged=plugged_out,
        )

    # ----------------------------------------------------------------------- fast paths
    def run_fast(self, period: pd.DatetimeIndex) -> DispatchResult | None:
        """``unmanaged`` or ``v2g_peak_shave`` without the step loop (aggregates only).

        ``unmanaged`` in closed form (:meth:`_closed_form`); its per-load and per-asset
        series from the sessions' charging intervals, in chunks of time.

        ``v2g_peak_shave`` equals ``unmanaged`` at a step where no shaver is behind its
        shadow (by more than ``_quiet``) and no asset above a shaver is over its limit under
        unmanaged power: in :meth:`step_peak_shave` the shaver's power is then
        ``min(p_un, p_full) = p_un`` and nothing is relieved or exported; the loop may
        still top up a deficit below ``_quiet`` at a departure step (laxity-forced, at most
        1e-9 kW), the only difference. So the step rule runs only in windows from an
        over-limit step until every shaver is within ``_quiet`` of its shadow again, each
        started from the closed-form state; between windows every EV follows its shadow.
        The running maximum of the unmanaged load is folded in from the closed form.
        Returns ``None`` (use :meth:`run`) when an EV's sessions overlap.
        """
        shave = self.strategy is Strategy.V2G_PEAK_SHAVE
        if shave:
            self.setup_peak_shave()
            shave = bool(self.shave_ix.size)
        first = 0 if shave else self.n_warm  # steps simulated (windows: warm-up too)
        if not self._closed_form(first, keep_soc=shave):
            return None
        n_t, n_ev, n_warm, dt = self.n_t, self.n_ev, self.n_warm, self.dt
        n_out, n_loads, ctx = n_t - n_warm, self.n_loads, self.context
        by_load = np.empty((n_out, n_loads), self.dtype)
        asset_load = None
        inc: tuple[np.ndarray, np.ndarray] | None = None
        self._sig_assets: np.ndarray | None = None
        if ctx is not None:
            asset_load = np.empty((n_out, ctx.n_asset), self.dtype)
            ev_row, asset_col = np.nonzero(ctx.ev_assets)
            indptr = np.concatenate([[0], np.cumsum(np.bincount(ev_row, minlength=n_ev))])
            inc = (indptr, asset_col.astype(np.int64))
        self._load_pos = np.asarray(self.fleet.load_pos, dtype=np.int64)
        self._charge_delta = np.zeros(n_ev)
        self._export = np.zeros(n_ev)
        if shave:
            assert self.topo is not None and ctx is not None
            self._shaved = np.flatnonzero(ctx.ev_assets[self.shave_ix].any(axis=0))
            self._last = np.full(n_ev, -1, dtype=np.int64)  # latest session arrived, per EV
            self._ptr = 0  # sessions arriving before this step are in ``_last``
            self._quiet = min(1e-7, 1e-9 * self.eta_c * dt)
            self._in_window = False
        # paint the charging steps when they are few (else running sums over time)
        self._paint = self.cf_cells * _PAINT_COST < (n_t - first) * n_loads
        if self._paint and ctx is not None:
            found = _signatures(ctx.ev_assets)
            if found is not None:
                self._sig_assets, self._sig = found
        n_col = n_loads + (ctx.n_asset if ctx is not None else 0)
        # chunks of time: small enough for the cache, long against a session (a session
        # is read by every chunk it overlaps)
        chunk = max(64, _CHUNK_ELEMENTS // max(n_col, 1), 2 * self.cf_max_len)
        rows = self.rows
        r0 = -1  # rows[t] = r0 + t: base load rows by slicing
        if rows is not None and rows.size and (np.diff(rows) == 1).all():
            r0 = int(rows[0])
        for t0 in range(first, n_t, chunk):
            t1 = min(t0 + chunk, n_t)
            w0 = min(max(t0, n_warm), t1)  # the chunk's returned steps: [w0, t1)
            out = slice(max(w0 - n_warm, 0), max(t1 - n_warm, 0))
            direct = asset_load is not None and asset_load.dtype == np.float64
            direct = direct and not shave and w0 == t0  # EV power per asset into the result
            load_kw, ev_kw = self._unmanaged_chunk(
                t0, t1, inc, asset_load[out] if direct and asset_load is not None else None
            )
            by_load[out] = load_kw[w0 - t0 :]
            if asset_load is not None:
                assert ctx is not None and rows is not None and ev_kw is not None
                base = ctx.asset_base_kw
                base_kw = base[r0 + t0 : r0 + t1] if r0 >= 0 else base[rows[t0:t1]]
                if shave:
                    un = base_kw + ev_kw
                    asset_load[out] = un[w0 - t0 :]
                    self._shave_chunk(t0, t1, un, by_load, asset_load)
                else:
                    np.add(base_kw, ev_kw, out=ev_kw)
                    if ev_kw.base is not asset_load:  # not written in place
                        asset_load[out] = ev_kw[w0 - t0 :]
        charge = self.cf_charge + self._charge_delta * dt
        return self._result(period, charge, self._export * dt, by_load, asset_load)

    def _closed_form(self, first: int, keep_soc: bool) -> bool:
        """``unmanaged`` charging of every session in closed form; ``False`` if sessions overlap.

        An EV's sessions follow each other: at arrival its state of charge is that at the
        previous departure less the trip (not below 0), then it charges at full power
        (``ps`` kWh per step) until the target, the last step partial, until departure.
        Sets per session ``cf_full`` (full-power steps from arrival, at most the session's
        length), ``cf_part`` (the partial step's power [kW], 0 for none) and ``cf_pstep``
        (its step, -1 for none); per EV ``cf_charge`` (grid kWh over the returned steps);
        ``cf_cells`` (charging steps from step ``first`` on); the departure shortfalls;
        with ``keep_soc`` the (day row, EV) grids ``cf_soc0`` (after the trip) and
        ``cf_end`` (at departure).
        """
        n_ev, n_row, n_t, n_warm = self.n_ev, self.n_row, self.n_t, self.n_warm
        s_ev, s_row, s_arr = self.s_ev, self.s_row, self.s_arr
        # the loop takes each EV's sessions in arrival order; the recurrence below in day
        # order: the same when every departure is no later than the next arrival
        grid = np.full((n_row, n_ev), -1, dtype=np.int32)
        grid[s_row, s_ev] = self.s_dep
        np.maximum.accumulate(grid, axis=0, out=grid)
        later = np.flatnonzero(s_row > 0)
        if (grid[s_row[later] - 1, s_ev[later]] > s_arr[later]).any():
            return False
        del grid, later
        # per day (row), vectorized over EVs: soc0 = max(soc - trip, 0), then
        # soc = max(soc0, min(soc0 + length * ps, target)); no session: trip 0, length 0
        soc0_g = np.zeros((n_row, n_ev))
        soc0_g[s_row, s_ev] = self.s_trip
        end_g = np.zeros((n_row, n_ev))
        end_g[s_row, s_ev] = (self.s_dep - s_arr) * self.ps[s_ev]
        soc, target = self.target, self.target
        below = bool((self.s_trip >= 0).all())  # then soc0 <= target: the last max is moot
        for d in range(n_row):
            x, y = soc0_g[d], end_g[d]
            np.subtract(soc, x, out=x)
            np.maximum(x, 0.0, out=x)
            np.add(x, y, out=y)
            np.minimum(y, target, out=y)
            if not below:
                np.maximum(y, x, out=y)
            soc = y
        n_s = s_ev.size
        self.cf_full = np.empty(n_s, np.int32)
        self.cf_part = np.empty(n_s)
        self.cf_pstep = np.empty(n_s, np.int32)
        energy = np.zeros(n_ev)
        cells = 0
        for b0 in range(0, n_s, _SESSION_BLOCK):  # bounded temporaries for large fleets
            b = slice(b0, b0 + _SESSION_BLOCK)
            ev, row, arr = s_ev[b], s_row[b], s_arr[b]
            length = self.s_dep[b] - arr
            soc0, end = soc0_g[row, ev], end_g[row, ev]
            ps, charger = self.ps[ev], self.charger[ev]
            need = np.maximum(self.target[ev] - soc0, 0.0)
            steps = np.divide(need, ps, out=length.astype(float), where=ps > 0)
            full = np.minimum(np.floor(steps), length).astype(np.int32)
            part = np.maximum(need - full * ps, 0.0) * self.inv_c
            part = np.where(full < length, np.minimum(part, charger), 0.0)
            part[part < _SNAP_KW] = 0.0  # round-off of a target met by full-power steps
            fe = arr + full  # end of the full-power steps
            pstep = np.where(part > 0, fe, -1).astype(np.int32)
            self.cf_full[b], self.cf_part[b], self.cf_pstep[b] = full, part, pstep
            # grid energy over the returned steps; charging steps from ``first``
            returned = np.maximum(np.minimum(fe, n_t) - np.maximum(arr, n_warm), 0)
            energy += np.bincount(
                ev, charger * returned + np.where(pstep >= n_warm, part, 0.0), minlength=n_ev
            )
            cells += int(np.maximum(fe - np.maximum(arr, first), 0).sum())
            cells += int(np.count_nonzero(pstep >= first))
            inside = self.s_inside[b]
            self.shortfall[self.s_day[b][inside], ev[inside]] = np.maximum(
                self.target[ev[inside]] - end[inside], 0.0
            )
        self.cf_charge = energy * self.dt
        self.cf_cells = cells
        self.cf_max_len = int((self.s_dep - s_arr).max(initial=1))
        if keep_soc:
            self.cf_soc0, self.cf_end = soc0_g, end_g
        return True

    def _unmanaged_chunk(
        self,
        t0: int,
        t1: int,
        inc: tuple[np.ndarray, np.ndarray] | None,
        asset_out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``unmanaged`` EV power per load and per asset (``inc``: EV -> assets, CSR) over
        steps ``[t0, t1)`` [kW], float64; exactly 0 where no EV charges. The asset series
        may be written into ``asset_out`` (float64, (t1 - t0, asset)).

        Either the charging steps are summed into their (step, column) cells ("paint";
        per asset through the distinct EV -> asset rows, a small dense product), or
        each session's power changes are summed over time (difference arrays), whichever
        has fewer operations.
        """
        first = self.arr_bounds[max(t0 - self.cf_max_len + 1, 0)]
        s = self.order_arr[first : self.arr_bounds[t1]]  # sessions that may reach the chunk
        arr = self.s_arr[s].astype(np.int64)
        start = np.maximum(arr, t0)
        stop = np.minimum(arr + self.cf_full[s], t1)
        full = start < stop
        pstep = self.cf_pstep[s]
        part = (pstep >= t0) & (pstep < t1)
        s_f, s_p = s[full], s[part]
        ev_f, ev_p = self.s_ev[s_f], self.s_ev[s_p]
        kw_f, kw_p = self.charger[ev_f], self.cf_part[s_p]
        start, stop, pstep = start[full] - t0, stop[full] - t0, pstep[part] - t0
        n, n_loads = t1 - t0, self.n_loads
        width = stop - start
        paint = self._paint
        if paint:
            ends = np.cumsum(width)
            steps = np.concatenate(
                [
                    np.arange(ends[-1] if ends.size else 0)
                    + np.repeat(start - ends + width, width),
                    pstep,
                ]
            )
            kw = np.concatenate([np.repeat(kw_f, width), kw_p])

            def cells(col: np.ndarray, n_col: int) -> np.ndarray:
                where = steps * n_col + np.concatenate([np.repeat(col[ev_f], width), col[ev_p]])
                return _sum_at(where, kw, n * n_col).reshape(n, n_col)

            by_load = cells(self._load_pos, n_loads)
            if inc is None:
                return by_load, None
            if self._sig_assets is not None:
                sig_kw = cells(self._sig, self._sig_assets.shape[0])
                return by_load, np.matmul(sig_kw, self._sig_assets, out=asset_out)
        rows = np.concatenate([start, stop, pstep, pstep + 1])
        evs = np.concatenate([ev_f, ev_f, ev_p, ev_p])
        kw_diff = np.concatenate([kw_f, -kw_f, kw_p, -kw_p])
        if not paint:
            by_load = _accumulate(rows, self._load_pos[evs], kw_diff, n, n_loads)
        if inc is None:
            return by_load, None
        indptr, cols = inc
        first_col = indptr[evs]
        deg = indptr[evs + 1] - first_col
        ends = np.cumsum(deg)
        pick = np.arange(int(ends[-1]) if ends.size else 0) + np.repeat(first_col - ends + deg, deg)
        assert self.context is not None
        asset = _accumulate(
            np.repeat(rows, deg), cols[pick], np.repeat(kw_diff, deg), n, self.context.n_asset
        )
        return by_load, asset

    def _shave_chunk(
        self,
        t0: int,
        t1: int,
        un: np.ndarray,
        by_load: np.ndarray,
        asset_load: np.ndarray,
    ) -> None:
        """Walk ``v2g_peak_shave`` over steps ``[t0, t1)``: the step rule in windows, the
        unmanaged load ``un`` (time, asset) elsewhere (already in the outputs)."""
        n_warm = self.n_warm
        cols = self._shaved
        over = ((un[:, cols] - self.limit[cols]) > _WINDOW_EXCESS).any(axis=1)
        cand = np.flatnonzero(over) + t0
        t = t0
        while t < t1:
            if self._in_window:
                quiet = self._window_step(t, by_load, asset_load)
                if quiet and not (t + 1 < t1 and over[t + 1 - t0]):
                    self._in_window = False
                t += 1
                continue
            j = int(np.searchsorted(cand, t))
            c = int(cand[j]) if j < cand.size else t1
            lo = max(t, n_warm)
            if c > lo:  # quiet steps: unmanaged, into the running maximum
                np.maximum(self.running_max, un[lo - t0 : c - t0].max(axis=0), out=self.running_max)
            if c < t1:
                self._window_start(c)
                self._in_window = True
            t = c

    def _window_start(self, t: int) -> None:
        """Set the state before step ``t`` from the closed form (every EV unmanaged)."""
        lo, hi = self.arr_bounds[self._ptr], self.arr_bounds[t]
        if hi > lo:
            idx = self.order_arr[lo:hi].astype(np.int64)
            np.maximum.at(self._last, self.s_ev[idx], idx)
        self._ptr = t
        e = np.flatnonzero(self._last >= 0)
        s = self._last[e]
        arr, dep = self.s_arr[s], self.s_dep[s]
        k = np.minimum(t, dep) - arr  # steps of the session simulated
        row = self.s_row[s]
        soc = self.target.copy()
        soc[e] = np.where(
            k <= self.cf_full[s], self.cf_soc0[row, e] + k * self.ps[e], self.cf_end[row, e]
        )
        self.soc[:] = soc
        self.soc_un[:] = soc
        self.on[:] = False
        self.on[e] = dep > t
        self.onf[:] = self.on
        self.dep[:] = 0.0
        self.dep[e] = self.s_dep_true[s]

    def _window_step(self, t: int, by_load: np.ndarray, asset_load: np.ndarray) -> bool:
        """One step of the loop (:meth:`run`) for ``v2g_peak_shave``; returns whether every
        shaver's state of charge is then within ``_quiet`` of its shadow's."""
        assert self.context is not None and self.rows is not None
        dt, n_warm, soc, ix = self.dt, self.n_warm, self.soc, self.shave_ix
        lo, hi = self.arr_bounds[t], self.arr_bounds[t + 1]
        if hi > lo:
            idx = self.order_arr[lo:hi]
            e = self.s_ev[idx]
            soc[e] = np.maximum(soc[e] - self.s_trip[idx], 0.0)
            self.soc_un[e] = np.maximum(self.soc_un[e] - self.s_trip[idx], 0.0)
            self.on[e] = True
            self.onf[e] = 1.0
            self.dep[e] = self.s_dep_true[idx]
        p = self.step_peak_shave(t)
        if p.min(initial=0.0) < 0:
            soc += np.maximum(p, 0.0) * (self.eta_c * dt)
            soc += np.minimum(p, 0.0) * (dt / self.eta_d)
        else:
            soc += p * (self.eta_c * dt)
        if t >= n_warm:
            k = t - n_warm
            p_s = p[ix]
            self._charge_delta[ix] += np.maximum(p_s, 0.0) - self.p_un_s
            self._export[ix] -= np.minimum(p_s, 0.0)
            row = np.bincount(self._load_pos, p, minlength=self.n_loads)
            row[np.abs(row) < _SNAP_KW] = 0.0
            by_load[k] = row
            assert self.asset_ev_kw is not None
            ev = np.where(np.abs(self.asset_ev_kw) < _SNAP_KW, 0.0, self.asset_ev_kw)
            asset_load[k] = self.context.asset_base_kw[self.rows[t]] + ev
        lo, hi = self.dep_bounds[t + 1], self.dep_bounds[t + 2]
        if hi > lo:
            idx = self.order_dep[lo:hi]
            e = self.s_ev[idx]
            inside = self.s_inside[idx]
            self.shortfall[self.s_day[idx[inside]], e[inside]] = np.maximum(
                self.target[e[inside]] - soc[e[inside]], 0.0
            )
            self.on[e] = False
            self.onf[e] = 0.0
        return bool(np.abs(self.soc_un[ix] - soc[ix]).max(initial=0.0) <= self._quiet)


def _signatures(ev_assets: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The distinct rows of ``ev_assets`` as floats (signature, asset) and each EV's
    signature, (ev,); ``None`` when there are more than ``_MAX_SIGNATURES``."""
    n_ev = ev_assets.shape[0]
    if not n_ev:
        return None
    # rows hashed (bits packed into 64-bit words, a random combination modulo 2**64), then
    # checked exactly: a collision only costs the dense product
    packed = np.packbits(ev_assets, axis=1)
    words = np.zeros((n_ev, -(-packed.shape[1] // 8) * 8), dtype=np.uint8)
    words[:, : packed.shape[1]] = packed
    mix = np.random.default_rng(0).integers(1, 2**63, words.shape[1] // 8, dtype=np.uint64)
    key = words.view(np.uint64) @ mix
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    if first.size > _MAX_SIGNATURES or not (ev_assets == ev_assets[first[inverse]]).all():
        return None
    return ev_assets[first].astype(float), inverse.reshape(-1).astype(np.int64)


def _sum_at(index: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """``weights`` summed at ``index`` into ``size`` float64 cells (also when empty)."""
    out = np.bincount(index, weights, minlength=size)
    return out if out.dtype == np.float64 else out.astype(np.float64)


def _accumulate(
    rows: np.ndarray, cols: np.ndarray, kw: np.ndarray, n: int, n_col: int
) -> np.ndarray:
    """(n, n_col) series from steps of change: ``kw`` added from ``rows`` on, per column
    (a difference array summed over time); values below ``_SNAP_KW`` set to exactly 0."""
    diff = _sum_at(rows * n_col + cols, kw, (n + 1) * n_col).reshape(n + 1, n_col)
    np.cumsum(diff, axis=0, out=diff)
    out = diff[:n]
    out[np.abs(out) < _SNAP_KW] = 0.0
    return out


def _water_fill(y: np.ndarray, cap: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Fill ``energy`` (power x steps) into the valleys of ``y`` under per-step caps.

    For each column, find the level ``L`` with ``sum_t min(max(L - y_t, 0), cap_t) = energy``
    (or the most the caps allow) and return ``min(max(L - y, 0), cap)``, the shape of ``y``
    (time, column). Exact: the fill is piecewise linear in ``L``, its slope rising by one at
    each ``y_t`` and falling by one at each ``y_t + cap_t``.
    """
    width, n = y.shape
    if width == 0 or n == 0:
        return np.zeros_like(y)
    cap_t = np.maximum(cap, 0.0).T  # (column, time)
    yy = np.where(cap_t > 0, y.T, _FAR)  # steps without capacity sit far above every level
    pts = np.concatenate([yy, yy + cap_t], axis=1)
    order = np.argsort(pts, axis=1)
    pts = np.take_along_axis(pts, order, axis=1)
    run = np.cumsum(np.where(order < width, 1.0, -1.0), axis=1)  # slope right of each point
    filled = np.zeros_like(pts)  # fill at each breakpoint
    np.cumsum(run[:, :-1] * np.diff(pts, axis=1), axis=1, out=filled[:, 1:])
    rows = np.arange(n)
    want = np.minimum(np.maximum(energy, 0.0), filled[:, -1])
    k = np.clip(np.sum(filled < want[:, None], axis=1), 1, 2 * width - 1)
    f_prev, p_prev, s_prev = filled[rows, k - 1], pts[rows, k - 1], run[rows, k - 1]
    step = np.divide(want - f_prev, s_prev, out=np.zeros(n), where=s_prev > 0)
    level = np.where(want > 0, p_prev + step, -np.inf)
    return np.ascontiguousarray(np.minimum(np.maximum(level[:, None] - yy, 0.0), cap_t).T)
