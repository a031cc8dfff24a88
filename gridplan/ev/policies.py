"""Dispatch policies: one per strategy, each the rule for every EV's power at a step.

A policy gets what it needs in its constructor and reads the EVs' state from a
:class:`~gridplan.ev.sessions.Sessions`; the step loop
(:func:`gridplan.ev.simulation.run_loop`) asks it for each step's power and the sessions
integrate it. This module holds the grid-blind rules (``unmanaged``, ``tou``,
``v2g_event``); the grid-aware ones are in :mod:`gridplan.ev.smart`,
:mod:`gridplan.ev.peak_shave` and :mod:`gridplan.ev.optimal`.
"""

from __future__ import annotations

import numpy as np

from gridplan.ev.options import TOLERANCE
from gridplan.ev.sessions import ExportCap, Sessions

__all__ = ["EventPolicy", "Policy", "TouPolicy", "UnmanagedPolicy"]


class Policy:
    """The power of every EV at one step, from the state of ``sessions``.

    Attributes
    ----------
    sessions
        The sessions and the EVs' state.
    asset_ev_kw
        EV power through each monitored asset at the last step [kW], (asset,), when the
        rule computes it anyway (else ``None``: the loop computes it).
    """

    asset_ev_kw: np.ndarray | None = None

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def arrived(self, sessions: np.ndarray) -> None:
        """Sessions ``sessions`` plugged in at this step (after :meth:`Sessions.arrive`)."""

    def power_kw(self, t: int) -> np.ndarray:
        """Grid-side power of every EV at step ``t`` [kW], (ev,); export negative."""
        raise NotImplementedError


class UnmanagedPolicy(Policy):
    """``unmanaged``: every EV charges at full power until it reaches its target."""

    def power_kw(self, t: int) -> np.ndarray:
        return self.sessions.full_power_kw()


class TouPolicy(Policy):
    """``tou``: full power in the rate's off-peak hours, else the laxity-forced power.

    Parameters
    ----------
    sessions
        The sessions.
    off_peak
        Whether each simulated step is off-peak, (step,) bool.
    """

    def __init__(self, sessions: Sessions, off_peak: np.ndarray) -> None:
        super().__init__(sessions)
        self.off_peak = off_peak

    def power_kw(self, t: int) -> np.ndarray:
        full_kw = self.sessions.full_power_kw()
        return full_kw if self.off_peak[t] else self.sessions.must_power_kw(t)


class EventPolicy(Policy):
    """``v2g_event``: enrolled EVs export at their limit during events, else ``unmanaged``.

    An enrolled EV exports the most that keeps its reserve and full-power recharge by
    departure; with no room left it takes its laxity-forced power. With an availability,
    an EV not taking part at the step (:meth:`Sessions.taking_part`: opted out, cut off,
    or its override cap spent) charges ``unmanaged``.

    Parameters
    ----------
    sessions
        The sessions.
    event_active
        Whether each simulated step is inside an event, (step,) bool.
    export_cap
        The per-transformer export limit.
    """

    def __init__(self, sessions: Sessions, event_active: np.ndarray, export_cap: ExportCap):
        super().__init__(sessions)
        self.event_active = event_active
        self.export_cap = export_cap

    def power_kw(self, t: int) -> np.ndarray:
        sessions = self.sessions
        full_kw = sessions.full_power_kw()
        if not self.event_active[t]:
            return full_kw
        v2g = sessions.plugged & sessions.evs.enrolled
        if sessions.limited:
            v2g &= sessions.taking_part()
        if not v2g.any():
            return full_kw
        discharge_kw = sessions.discharge_max_kw(t)
        must_kw = sessions.must_power_kw(t)
        power = np.where(v2g, np.where(discharge_kw > TOLERANCE, -discharge_kw, must_kw), full_kw)
        return self.export_cap.clamp(power)
