"""Charging and V2G dispatch: EV power per step from a :class:`~gridplan.fleet.Fleet`.

Strategies (:class:`Strategy`):

- ``unmanaged``: every EV charges at full power from arrival until it reaches its
  departure target.
- ``v2g_event``: EVs enrolled in V2G discharge at their export limit during the event
  window (default 4-9 pm, the ELRP event window, CPUC), never below their reserve and never
  so deep that full-power charging could not restore the departure target before they
  leave; outside the window they charge as ``unmanaged``. EVs not enrolled charge as
  ``unmanaged``.

Sign: charging is positive kW (a load), V2G export negative kW. The simulation steps through
time vectorized over EVs (one numpy operation per step over all EVs, no per-EV loop).

Invariants (tested): power only while plugged in; ``|power|`` within the charger and export
limits; state of charge within ``[0, battery]`` and, for discharge, never below the reserve;
energy balance with the charge/discharge efficiencies; every departure's shortfall against
the target reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
import scipy.sparse as sp

from gridplan.errors import ConfigError
from gridplan.fleet import Fleet


class Strategy(StrEnum):
    """Named dispatch strategies."""

    UNMANAGED = "unmanaged"
    V2G_EVENT = "v2g_event"

    @classmethod
    def parse(cls, name: str | Strategy) -> Strategy:
        """Return the strategy called ``name``; unknown names list the valid ones."""
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(s.value for s in cls)
            raise ConfigError(f"unknown strategy '{name}' (expected one of: {valid})") from None


@dataclass(frozen=True, eq=False)
class DispatchResult:
    """EV power and state of charge over a period.

    Attributes
    ----------
    time_index
        Start of each step, fixed step ``step_h``.
    step_h
        Step length [h].
    power_kw
        Grid-side EV power [kW], shape (time, ev); charging positive, V2G export negative.
    soc_kwh
        Battery energy at the end of each step [kWh], shape (time, ev).
    plugged
        Whether each EV is plugged in during each step, shape (time, ev).
    departure_shortfall_kwh
        Energy missing from the departure target at each departure in the period [kWh],
        shape (day, ev); NaN for sessions that do not end inside the period.
    """

    time_index: pd.DatetimeIndex
    step_h: float
    power_kw: np.ndarray
    soc_kwh: np.ndarray
    plugged: np.ndarray
    departure_shortfall_kwh: np.ndarray

    @property
    def charge_kwh(self) -> np.ndarray:
        """Grid energy drawn per EV [kWh], shape (ev,)."""
        return np.clip(self.power_kw, 0, None).sum(axis=0) * self.step_h

    @property
    def export_kwh(self) -> np.ndarray:
        """Grid energy exported per EV [kWh] (positive number), shape (ev,)."""
        return -np.clip(self.power_kw, None, 0).sum(axis=0) * self.step_h


def load_power_kw(power_kw: np.ndarray, fleet: Fleet, n_loads: int) -> np.ndarray:
    """Sum EV power onto their home loads: (time, ev) -> (time, load) [kW]."""
    n_ev = fleet.n_ev
    if n_ev == 0:
        return np.zeros((power_kw.shape[0], n_loads))
    incidence = sp.csr_matrix(
        (np.ones(n_ev), (np.arange(n_ev), fleet.load_pos)), shape=(n_ev, n_loads)
    )
    return np.asarray((incidence.T @ power_kw.T).T)


def _session_steps(
    fleet: Fleet, time_index: pd.DatetimeIndex, step_h: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrival and departure steps of each (day, ev) session (clipped to the period), which
    sessions overlap the period, and which of those end inside it."""
    t0 = time_index[0]
    n_t = len(time_index)
    day_offset_h = np.asarray((fleet.days - t0) / pd.Timedelta(hours=1), dtype=float)[:, None]
    arr = np.ceil((day_offset_h + fleet.arrival_h) / step_h - 1e-9).astype(np.int64)
    dep = np.ceil((day_offset_h + fleet.departure_h) / step_h - 1e-9).astype(np.int64)
    valid = (dep > 0) & (arr < n_t) & (dep > arr)
    return np.clip(arr, 0, n_t), np.clip(dep, 0, n_t), valid, dep <= n_t


def dispatch(
    fleet: Fleet,
    time_index: pd.DatetimeIndex,
    strategy: Strategy | str = Strategy.UNMANAGED,
    *,
    window_start_h: float = 16.0,
    window_end_h: float = 21.0,
    event_months: tuple[int, ...] = tuple(range(1, 13)),
    warmup_h: float = 24.0,
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
        ``"unmanaged"`` or ``"v2g_event"`` (see module docstring).
    window_start_h, window_end_h
        Event window, hours of the day [h]; default 16-21, the ELRP event window 4-9 pm
        (CPUC Emergency Load Reduction Program).
    event_months
        Months in which V2G events may be called; default all months (ELRP runs May-October;
        later work adds event calendars).
    warmup_h
        Simulated time before the period [h], discarded.

    Returns
    -------
    DispatchResult
    """
    strategy = Strategy.parse(strategy)
    if len(time_index) < 2:
        raise ConfigError("dispatch needs at least two time steps")
    if not 0 <= window_start_h < window_end_h <= 24:
        raise ConfigError(
            "event window must satisfy 0 <= start < end <= 24 "
            f"(got {window_start_h}-{window_end_h})"
        )
    step = time_index[1] - time_index[0]
    step_h = float(step / pd.Timedelta(hours=1))
    n_warm = int(max(0.0, warmup_h) / step_h)
    if len(fleet.days):
        n_warm = min(n_warm, max(0, int((time_index[0] - fleet.days[0]) / step)))
    period = time_index
    if n_warm:
        time_index = pd.DatetimeIndex(
            pd.date_range(time_index[0] - n_warm * step, periods=len(period) + n_warm, freq=step),
            name=period.name,
        )
    n_t, n_ev = len(time_index), fleet.n_ev
    arr, dep, valid, ends_inside = _session_steps(fleet, time_index, step_h)
    day_idx, ev_idx = np.nonzero(valid)
    s_arr, s_dep = arr[day_idx, ev_idx], dep[day_idx, ev_idx]

    delta = np.zeros((n_t + 1, n_ev), dtype=np.int8)
    np.add.at(delta, (s_arr, ev_idx), 1)
    np.add.at(delta, (s_dep, ev_idx), -1)
    plugged = np.cumsum(delta[:-1], axis=0, dtype=np.int8) > 0
    # Departure step of the session each EV is in (sessions of one EV do not overlap).
    dep_mark = np.zeros((n_t, n_ev), dtype=np.int32)
    dep_mark[s_arr, ev_idx] = s_dep
    dep_of = np.maximum.accumulate(dep_mark, axis=0)

    order_arr = np.argsort(s_arr, kind="stable")
    arr_bounds = np.searchsorted(s_arr[order_arr], np.arange(n_t + 1))
    trips = fleet.trip_kwh[day_idx, ev_idx]
    # Only sessions that end inside the period get a departure check.
    s_dep_check = np.where(ends_inside[day_idx, ev_idx], s_dep, n_t + 1)
    order_dep = np.argsort(s_dep_check, kind="stable")
    dep_bounds = np.searchsorted(s_dep_check[order_dep], np.arange(n_t + 2))
    shortfall = np.full(fleet.arrival_h.shape, np.nan)

    hours = np.asarray(time_index.hour + time_index.minute / 60.0, dtype=float)
    in_window = (hours >= window_start_h) & (hours < window_end_h)
    in_window &= np.isin(np.asarray(time_index.month), np.asarray(event_months))
    use_v2g = strategy is Strategy.V2G_EVENT
    enrolled = fleet.v2g_enrolled & (fleet.export_kw > 0)

    eta_c, eta_d = fleet.charge_efficiency, fleet.discharge_efficiency
    charger, export = fleet.charger_kw, fleet.export_kw
    target, reserve = fleet.target_kwh, fleet.reserve_kwh
    per_step_kwh = charger * eta_c * step_h  # battery energy one full-power step adds
    soc = target.astype(float).copy()
    power = np.zeros((n_t, n_ev))
    soc_out = np.empty((n_t, n_ev))
    for t in range(n_t):
        arriving = order_arr[arr_bounds[t] : arr_bounds[t + 1]]
        if arriving.size:
            np.subtract.at(soc, ev_idx[arriving], trips[arriving])
            np.maximum(soc, 0.0, out=soc)
        on = plugged[t]
        steps_left = np.maximum(dep_of[t] - t, 1)
        need = np.maximum(target - soc, 0.0)
        p = np.where(on, np.minimum(charger, need / (eta_c * step_h)), 0.0)
        if use_v2g and in_window[t]:
            v2g = on & enrolled
            if v2g.any():
                # Lowest SOC after this step from which full power still reaches the target.
                floor = np.maximum(reserve, target - (steps_left - 1) * per_step_kwh)
                room = np.maximum(soc - floor, 0.0)
                p_dis = np.minimum(export, room * eta_d / step_h)
                must = np.maximum(target - soc - (steps_left - 1) * per_step_kwh, 0.0)
                p_must = np.minimum(charger, must / (eta_c * step_h))
                p = np.where(v2g, np.where(p_dis > 0, -p_dis, p_must), p)
        soc += np.where(p > 0, p * eta_c, p / eta_d) * step_h
        power[t] = p
        soc_out[t] = soc
        leaving = order_dep[dep_bounds[t + 1] : dep_bounds[t + 2]]
        if leaving.size:
            e = ev_idx[leaving]
            shortfall[day_idx[leaving], e] = np.maximum(target[e] - soc[e], 0.0)
    return DispatchResult(
        time_index=period,
        step_h=step_h,
        power_kw=power[n_warm:],
        soc_kwh=soc_out[n_warm:],
        plugged=plugged[n_warm:],
        departure_shortfall_kwh=shortfall,
    )
