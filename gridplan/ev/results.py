"""What :func:`gridplan.ev.dispatch.dispatch` returns: :class:`DispatchResult`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from gridplan.core.errors import GridplanError
from gridplan.ev.fleet import Fleet
from gridplan.ev.options import Strategy

__all__ = ["DispatchResult", "load_power_kw"]


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
    load_power_kw
        EV power summed onto home loads [kW], shape (time, column): every load, or the
        loads of ``load_columns`` only; an array, or a sparse CSR array (a big feeder's
        study keeps it so: EVs charge a few hours a day). :attr:`power_by_load_kw` gives
        every load as an array, :attr:`total_power_kw` the sum per step.
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
    load_columns
        The loads (positions in ``net.load``) the columns of ``load_power_kw`` are, when
        the dispatch was asked for those only (``dispatch(..., load_columns=...)``: a big
        feeder's study keeps the loads with EVs, not (time × every load)); ``None``: every
        load.
    n_loads
        Loads of the feeder (the width of :attr:`power_by_load_kw`); ``None``: the
        columns of ``load_power_kw``.
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
    load_power_kw: np.ndarray | sp.csr_array
    asset_ids: tuple[str, ...] = ()
    asset_load_kw: np.ndarray | None = None
    asset_limit_kw: np.ndarray | None = None
    ev_assets: np.ndarray | None = field(default=None, repr=False)
    ev_power_kw: np.ndarray | None = field(default=None, repr=False)
    ev_soc_kwh: np.ndarray | None = field(default=None, repr=False)
    ev_plugged: np.ndarray | None = field(default=None, repr=False)
    load_columns: np.ndarray | None = field(default=None, repr=False)
    n_loads: int | None = None

    @property
    def power_by_load_kw(self) -> np.ndarray:
        """EV power summed onto each home load [kW], shape (time, load): the stored
        ``load_power_kw`` itself, or spread to every load when it holds some only."""
        power = self.load_power_kw
        dense = power if isinstance(power, np.ndarray) else power.toarray()
        if self.load_columns is None:
            return dense
        width = self.n_loads if self.n_loads is not None else int(self.load_columns.max()) + 1
        out = np.zeros((dense.shape[0], width), dense.dtype)
        out[:, self.load_columns] = dense
        return out

    @property
    def total_power_kw(self) -> np.ndarray:
        """EV power of the whole fleet per step [kW], shape (time,); V2G export negative."""
        return np.asarray(self.load_power_kw.sum(axis=1), dtype=np.float64).ravel()

    def loads_power_kw(self, loads: np.ndarray) -> np.ndarray:
        """EV power at the loads ``loads`` (boolean mask over every load) [kW], (time, k):
        the columns of those loads that have EVs (all of them when every load is kept)."""
        mask = np.asarray(loads, dtype=bool)
        keep = mask if self.load_columns is None else mask[self.load_columns]
        part = self.load_power_kw[:, np.flatnonzero(keep)]
        return part if isinstance(part, np.ndarray) else part.toarray()

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
