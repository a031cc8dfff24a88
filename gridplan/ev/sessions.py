"""Plug-in sessions and the EVs' state through a dispatch run.

:class:`Sessions` owns what every strategy shares: arrivals (the day's trip leaves the
battery), departures (the shortfall against the target is recorded), the plug-in state,
the state of charge and its integration from one step's power, and the powers every rule
is built from (full power toward the target, laxity-forced power, the largest export).
:class:`ExportCap` holds the per-transformer export limit.

With an :class:`~gridplan.ev.availability.Availability`, each session's export limit is
the EV's times the session's (day, EV) export factor, and its export energy is capped
(grid side): :meth:`Sessions.export_limit_kw` is the limit at the current step, 0 once
the cap is spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from gridplan.ev.availability import Availability
from gridplan.ev.fleet import Fleet

__all__ = ["EvParameters", "ExportCap", "SessionTable", "Sessions"]


@dataclass(frozen=True, eq=False)
class EvParameters:
    """Per-EV limits and efficiencies for one step length, arrays of shape (ev,).

    Attributes
    ----------
    step_h
        Step length [h].
    charge_efficiency, discharge_efficiency
        Grid-to-battery and battery-to-grid efficiencies [-].
    charger_kw
        Charging limit [kW].
    target_kwh, reserve_kwh, battery_kwh
        Departure target, V2G reserve and usable capacity [kWh].
    export_kw
        Export limit [kW], 0 for EVs not enrolled.
    enrolled
        Enrolled in V2G: managed by the V2G strategies (charging deferred, export up to
        ``export_kw``; with an export limit of 0 the management alone, i.e. V1G).
    full_step_kwh
        Battery energy one full-power step adds [kWh] (``charger_kw × η_c × step_h``).
    kw_per_stored_kwh
        Grid power that stores 1 kWh in the battery over one step [kW/kWh]
        (``1 / (η_c × step_h)``).
    stored_kwh_per_kw
        Battery energy one step of 1 kW charging stores [kWh/kW] (``η_c × step_h``).
    drawn_kwh_per_kw
        Battery energy one step of 1 kW export draws [kWh/kW] (``step_h / η_d``).
    """

    step_h: float
    charge_efficiency: float
    discharge_efficiency: float
    charger_kw: np.ndarray
    target_kwh: np.ndarray
    reserve_kwh: np.ndarray
    battery_kwh: np.ndarray
    export_kw: np.ndarray
    enrolled: np.ndarray
    full_step_kwh: np.ndarray
    kw_per_stored_kwh: float
    stored_kwh_per_kw: float
    drawn_kwh_per_kw: float

    @classmethod
    def from_fleet(cls, fleet: Fleet, step_h: float) -> EvParameters:
        """The parameters of ``fleet``'s EVs for steps of ``step_h`` hours."""
        eta_c = float(fleet.charge_efficiency)
        eta_d = float(fleet.discharge_efficiency)
        charger_kw = np.asarray(fleet.charger_kw, dtype=float)
        enrolled = np.asarray(fleet.v2g_enrolled, dtype=bool)
        export_kw = np.where(enrolled, np.asarray(fleet.export_kw, dtype=float), 0.0)
        return cls(
            step_h=step_h,
            charge_efficiency=eta_c,
            discharge_efficiency=eta_d,
            charger_kw=charger_kw,
            target_kwh=np.asarray(fleet.target_kwh, dtype=float),
            reserve_kwh=np.asarray(fleet.reserve_kwh, dtype=float),
            battery_kwh=np.asarray(fleet.battery_kwh, dtype=float),
            export_kw=export_kw,
            enrolled=enrolled,  # managed even without export capability (V1G)
            full_step_kwh=charger_kw * eta_c * step_h,
            kw_per_stored_kwh=1.0 / (eta_c * step_h),
            stored_kwh_per_kw=eta_c * step_h,
            drawn_kwh_per_kw=step_h / eta_d,
        )


@dataclass(frozen=True, eq=False)
class SessionTable:
    """The (day, EV) plug-in sessions that overlap the simulated steps, one entry each.

    Steps count from the first simulated step; arrival and departure steps are clipped to
    ``[0, n_step]`` (``departure_unclipped`` keeps a departure after the last step).

    Attributes
    ----------
    n_step
        Simulated steps.
    n_row
        Fleet days that may hold such a session (rows of per-day grids).
    day, ev, row
        Fleet day, EV and row (day among the ``n_row``) of each session, int32.
    arrival_step, departure_step
        First step plugged in, and the step after the last one (clipped), int32.
    departure_unclipped
        Departure step, possibly past ``n_step``, int32.
    trip_kwh
        Energy driven before the arrival [kWh].
    ends_inside
        Whether the session departs within the simulation (its shortfall is reported).
    by_arrival, arrival_bounds
        Sessions in arrival order; those arriving at step ``t`` are
        ``by_arrival[arrival_bounds[t]:arrival_bounds[t + 1]]``.
    by_departure, departure_bounds
        Sessions in departure order; those leaving after step ``t`` are
        ``by_departure[departure_bounds[t + 1]:departure_bounds[t + 2]]``.
    """

    n_step: int
    n_row: int
    day: np.ndarray
    ev: np.ndarray
    row: np.ndarray
    arrival_step: np.ndarray
    departure_step: np.ndarray
    departure_unclipped: np.ndarray
    trip_kwh: np.ndarray
    ends_inside: np.ndarray
    by_arrival: np.ndarray
    arrival_bounds: np.ndarray
    by_departure: np.ndarray
    departure_bounds: np.ndarray

    @classmethod
    def from_fleet(
        cls, fleet: Fleet, start: pd.Timestamp, n_step: int, step_h: float
    ) -> SessionTable:
        """The sessions of ``fleet`` over ``n_step`` steps of ``step_h`` hours from ``start``.

        A stamp inside a step counts from the next step (arrival and departure alike).
        """
        day_offset_h = np.asarray((fleet.days - start) / pd.Timedelta(hours=1), dtype=float)
        # only days whose sessions can overlap the simulation (departure < 48 h after midnight)
        near = np.flatnonzero((day_offset_h > -72.0) & (day_offset_h < n_step * step_h + 24.0))
        offset = day_offset_h[near][:, None]
        arrival_h = np.asarray(fleet.arrival_h)[near]
        departure_h = np.asarray(fleet.departure_h)[near]
        arrival = np.ceil((offset + arrival_h) / step_h - 1e-9).astype(np.int64)
        departure = np.ceil((offset + departure_h) / step_h - 1e-9).astype(np.int64)
        valid = (departure > 0) & (arrival < n_step) & (departure > arrival)
        row, ev = np.nonzero(valid)
        i32 = np.int32  # session arrays: 4 bytes per entry (a year of 10,000 EVs: 3.7M)
        day = near[row].astype(i32)
        arrival_step = np.clip(arrival[row, ev], 0, n_step).astype(i32)
        departure_unclipped = departure[row, ev].astype(i32)
        del arrival, departure, valid
        departure_step = np.clip(departure_unclipped, 0, n_step).astype(i32)
        ev = ev.astype(i32)
        return cls(
            n_step=n_step,
            n_row=int(near.size),
            day=day,
            ev=ev,
            row=row.astype(i32),
            arrival_step=arrival_step,
            departure_step=departure_step,
            departure_unclipped=departure_unclipped,
            trip_kwh=np.asarray(fleet.trip_kwh, dtype=float)[day, ev],
            ends_inside=departure_unclipped <= n_step,
            by_arrival=np.argsort(arrival_step, kind="stable").astype(i32),
            arrival_bounds=np.concatenate(
                [[0], np.cumsum(np.bincount(arrival_step, minlength=n_step))]
            ),
            by_departure=np.argsort(departure_step, kind="stable").astype(i32),
            departure_bounds=np.concatenate(
                [[0], np.cumsum(np.bincount(departure_step, minlength=n_step + 1))]
            ),
        )


class Sessions:
    """Plug-in state and state of charge of every EV, stepped through the sessions.

    The state starts with every EV unplugged at its departure target. Per step: call
    :meth:`arrive`, ask a policy for the power (built from :meth:`full_power_kw`,
    :meth:`must_power_kw`, :meth:`discharge_max_kw`), :meth:`integrate` it, then
    :meth:`depart`.

    Parameters
    ----------
    fleet
        The EVs and their daily plug-in windows.
    start
        Stamp of the first simulated step.
    n_step
        Simulated steps.
    step_h
        Step length [h].
    availability
        Export factor and cap per (day, EV), or ``None`` (every session at the EV's
        export limit, no cap).

    Attributes
    ----------
    evs
        The EVs' parameters (:class:`EvParameters`).
    table
        The sessions (:class:`SessionTable`).
    soc_kwh
        State of charge [kWh], (ev,) (updated in place).
    plugged
        Whether each EV is plugged in, (ev,) bool; ``plugged_factor``: the same as 1.0/0.0.
    departure_step
        Departure step of each EV's current session (unclipped), (ev,) float.
    shortfall_kwh
        Energy missing from the target at each departure inside the simulation [kWh],
        (day, ev); NaN elsewhere.
    charge_kw_steps, export_kw_steps
        Grid power drawn and exported (positive), summed over the counted steps
        [kW·step], (ev,).
    limited
        Whether an availability limits the sessions' export.
    session_export_factor, session_export_cap_kwh
        With an availability: each session's export factor [-] and export-energy cap
        [kWh] (``inf``: none), (session,); else ``None``.
    """

    def __init__(
        self,
        fleet: Fleet,
        start: pd.Timestamp,
        n_step: int,
        step_h: float,
        availability: Availability | None = None,
    ) -> None:
        self.n_ev = n_ev = fleet.n_ev
        self.n_step = n_step
        #: The fleet's days (midnights), (day,).
        self.fleet_days = fleet.days
        self.evs = evs = EvParameters.from_fleet(fleet, step_h)
        self.table = SessionTable.from_fleet(fleet, start, n_step, step_h)
        self.shortfall_kwh = np.full(np.shape(fleet.arrival_h), np.nan)
        self.soc_kwh = evs.target_kwh.copy()
        self.plugged = np.zeros(n_ev, dtype=bool)
        self.plugged_factor = np.zeros(n_ev)
        self.departure_step = np.zeros(n_ev)
        self.charge_kw_steps = np.zeros(n_ev)
        self.export_kw_steps = np.zeros(n_ev)
        self._need_kw = np.empty(n_ev)  # power that would meet the target within a step
        self._full_kw = np.empty(n_ev)
        self._must_kw = np.empty(n_ev)
        self._charge_kw = np.empty(n_ev)
        self._scratch = np.empty(n_ev)
        # the parameters the per-step methods read (one lookup each)
        self._target_kwh, self._charger_kw = evs.target_kwh, evs.charger_kw
        self._kw_per_stored_kwh = evs.kw_per_stored_kwh
        self._stored_kwh_per_kw = evs.stored_kwh_per_kw
        self._drawn_kwh_per_kw = evs.drawn_kwh_per_kw
        self._limits(availability)

    def _limits(self, availability: Availability | None) -> None:
        """The sessions' export factors and caps, and the EVs' current limits."""
        self.limited = availability is not None
        self.session_export_factor: np.ndarray | None = None
        self.session_export_cap_kwh: np.ndarray | None = None
        if availability is None:
            return
        table, n_ev = self.table, self.n_ev
        self.session_export_factor = np.asarray(availability.export_factor, dtype=float)[
            table.day, table.ev
        ]
        self.session_export_cap_kwh = np.asarray(availability.export_cap_kwh, dtype=float)[
            table.day, table.ev
        ]
        #: Export factor of each EV's current session [-], (ev,).
        self.factor_now = np.ones(n_ev)
        #: Export limit of each EV's current session [kW], (ev,).
        self.export_now_kw = self.evs.export_kw.copy()
        #: Export energy left in each EV's current session [kWh], (ev,).
        self.export_left_kwh = np.full(n_ev, np.inf)
        #: Each EV's current session (-1: none yet), (ev,).
        self.current_session = np.full(n_ev, -1, dtype=np.int64)

    def _enter(self, e: np.ndarray, idx: np.ndarray) -> None:
        """EVs ``e`` start sessions ``idx``: their export limit and cap."""
        assert self.session_export_factor is not None and self.session_export_cap_kwh is not None
        self.factor_now[e] = self.session_export_factor[idx]
        self.export_now_kw[e] = self.evs.export_kw[e] * self.factor_now[e]
        self.export_left_kwh[e] = self.session_export_cap_kwh[idx]
        self.current_session[e] = idx

    # ----------------------------------------------------------------------- the step
    # flags as lists, built on first use: cheaper to index per step than numpy scalars
    # (the fast paths never need them)
    @cached_property
    def arrivals_at(self) -> list[bool]:
        """Whether sessions arrive at each step (:meth:`arrive` has work), (step,)."""
        return (np.diff(self.table.arrival_bounds) > 0).tolist()

    @cached_property
    def departures_after(self) -> list[bool]:
        """Whether sessions leave after each step (:meth:`depart` has work), (step,)."""
        return (np.diff(self.table.departure_bounds[1:]) > 0).tolist()

    def arrive(self, t: int) -> np.ndarray | None:
        """Plug in the sessions arriving at step ``t`` (their trip leaves the battery, not
        below 0); returns them (``None``: no arrival)."""
        table = self.table
        lo, hi = table.arrival_bounds[t], table.arrival_bounds[t + 1]
        if hi <= lo:
            return None
        idx = table.by_arrival[lo:hi]
        e = table.ev[idx]
        soc = self.soc_kwh
        soc[e] = np.maximum(soc[e] - table.trip_kwh[idx], 0.0)
        self.plugged[e] = True
        self.plugged_factor[e] = 1.0
        self.departure_step[e] = table.departure_unclipped[idx]
        if self.limited:
            self._enter(e, idx)
        return idx

    def integrate(self, power_kw: np.ndarray, may_export: bool, counted: bool) -> None:
        """Add one step of ``power_kw`` (grid side; export negative) to the state of charge,
        and with ``counted`` to the charge and export totals (``may_export``: whether the
        power can be negative)."""
        soc, scratch = self.soc_kwh, self._scratch
        if may_export and power_kw.min(initial=0.0) < 0:
            charge_kw = self._charge_kw
            np.maximum(power_kw, 0.0, out=charge_kw)
            np.multiply(charge_kw, self._stored_kwh_per_kw, out=scratch)
            soc += scratch
            np.minimum(power_kw, 0.0, out=scratch)
            if counted:
                np.add(self.charge_kw_steps, charge_kw, out=self.charge_kw_steps)
                np.subtract(self.export_kw_steps, scratch, out=self.export_kw_steps)
            if self.limited:  # the session's export cap (grid side)
                left = self.export_left_kwh
                left += scratch * self.evs.step_h
                np.maximum(left, 0.0, out=left)
            scratch *= self._drawn_kwh_per_kw
            soc += scratch
        else:
            np.multiply(power_kw, self._stored_kwh_per_kw, out=scratch)
            soc += scratch
            if counted:
                np.add(self.charge_kw_steps, power_kw, out=self.charge_kw_steps)

    def depart(self, t: int) -> None:
        """Unplug the sessions leaving after step ``t``; record their shortfall."""
        table = self.table
        lo, hi = table.departure_bounds[t + 1], table.departure_bounds[t + 2]
        if hi <= lo:
            return
        idx = table.by_departure[lo:hi]
        e = table.ev[idx]
        inside = table.ends_inside[idx]
        e_in = e[inside]
        self.shortfall_kwh[table.day[idx[inside]], e_in] = np.maximum(
            self.evs.target_kwh[e_in] - self.soc_kwh[e_in], 0.0
        )
        self.plugged[e] = False
        self.plugged_factor[e] = 0.0

    def restart(self, t: int, soc_kwh: np.ndarray, ev: np.ndarray, session: np.ndarray) -> None:
        """Set the state before step ``t``: ``soc_kwh`` for every EV, and each EV of ``ev``
        in its latest session ``session`` so far (plugged in if it departs after ``t``)."""
        departure = self.table.departure_step[session]
        self.soc_kwh[:] = soc_kwh
        self.plugged[:] = False
        self.plugged[ev] = departure > t
        self.plugged_factor[:] = self.plugged
        self.departure_step[:] = 0.0
        self.departure_step[ev] = self.table.departure_unclipped[session]
        if self.limited:  # a session already entered keeps what it has exported
            new = self.current_session[ev] != session
            self._enter(ev[new], session[new])

    # ----------------------------------------------------------------------- powers [kW]
    def full_power_kw(self) -> np.ndarray:
        """Power that charges toward the target as fast as possible [kW], (ev,).

        Returns a buffer that the next call overwrites.
        """
        need, full = self._need_kw, self._full_kw
        np.subtract(self._target_kwh, self.soc_kwh, out=need)
        need *= self._kw_per_stored_kwh  # power that would meet the target within this step
        np.minimum(need, self._charger_kw, out=full)
        np.maximum(full, 0.0, out=full)
        full *= self.plugged_factor
        return full

    def must_power_kw(self, t: int) -> np.ndarray:
        """Least power from which full power at every later step still meets the target
        [kW], (ev,) (laxity-forced).

        Call after :meth:`full_power_kw` (uses the need it computed); returns a buffer
        that the next call overwrites.
        """
        charger_kw, must = self.evs.charger_kw, self._must_kw
        np.subtract(self.departure_step, t + 1.0, out=must)
        np.maximum(must, 0.0, out=must)
        must *= charger_kw  # full power over the later steps, in units of this step
        np.subtract(self._need_kw, must, out=must)
        np.minimum(must, charger_kw, out=must)
        np.maximum(must, 0.0, out=must)
        must *= self.plugged_factor
        return must

    def export_limit_kw(self) -> np.ndarray:
        """Export limit of every EV at this step [kW], (ev,): the fleet's; with an
        availability, times the session's factor and within the energy its cap has left
        (0 once spent). Do not modify the returned array."""
        if not self.limited:
            return self.evs.export_kw
        return np.minimum(self.export_now_kw, self.export_left_kwh / self.evs.step_h)

    def taking_part(self) -> np.ndarray:
        """Whether each EV takes part in the V2G rule at this step, (ev,) bool: without an
        availability every EV; with one, those whose session's factor is above 0 and
        whose export cap is not spent (an EV without export capability has nothing to
        spend: its override does not end its part)."""
        if not self.limited:
            return np.ones(self.n_ev, dtype=bool)
        spent = (self.export_left_kwh <= 1e-9) & (self.evs.export_kw > 0)
        return (self.factor_now > 0) & ~spent

    def discharge_max_kw(self, t: int) -> np.ndarray:
        """Largest export [kW], (ev,), that keeps the reserve and full-power recharge to
        the target by departure (within :meth:`export_limit_kw`)."""
        evs = self.evs
        later_kwh = np.maximum(self.departure_step - t - 1.0, 0) * evs.full_step_kwh
        floor_kwh = np.maximum(evs.reserve_kwh, evs.target_kwh - later_kwh)
        room_kwh = np.maximum(self.soc_kwh - floor_kwh, 0.0)
        export_kw = room_kwh * evs.discharge_efficiency / evs.step_h
        return np.minimum(self.export_limit_kw(), export_kw) * self.plugged_factor


class ExportCap:
    """Limit on the total V2G export behind each service transformer.

    Parameters
    ----------
    group_ids
        Export group of each EV (any labels; EVs with one label share the limit), (ev,).
    limit_kw
        Limit per group [kW] (``inf``: none).
    """

    def __init__(self, group_ids: np.ndarray, limit_kw: float) -> None:
        n_ev = len(group_ids)
        #: Group of each EV, 0 .. n_group - 1, (ev,).
        self.group = (
            np.unique(group_ids, return_inverse=True)[1].astype(np.int64)
            if n_ev
            else np.zeros(0, np.int64)
        )
        self.n_group = int(self.group.max(initial=-1)) + 1
        self.limit_kw = limit_kw
        self.active = bool(np.isfinite(limit_kw))

    def clamp(self, power_kw: np.ndarray) -> np.ndarray:
        """Scale exports so that each group's total stays within the limit [kW], (ev,);
        returns ``power_kw`` itself when nothing changes."""
        if not self.active or self.group.size == 0:
            return power_kw
        out = np.maximum(-power_kw, 0.0)
        if not out.any():
            return power_kw
        limit = self.limit_kw
        total = np.bincount(self.group, out, minlength=self.n_group)
        over = total > limit
        if not over.any():
            return power_kw
        scale = np.where(over, limit / np.where(over, total, 1.0), 1.0)
        return np.where(power_kw < 0, power_kw * scale[self.group], power_kw)
