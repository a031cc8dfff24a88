"""``v2g_peak_shave`` dispatch: enrolled EVs hold each monitored asset under its limit.

At each step: (1) every EV's ``unmanaged`` power (for enrolled EVs, the *shaver*s, from a
shadow unmanaged state of charge); (2) each asset's excess over its limit relieved
bottom-up, first by deferring shavers' charging, then by discharging them (down to the
floor from which full power still restores the target by departure, never below the
reserve); (3) shavers behind their shadow recharge, laxity-forced energy first, into the
headroom under ``min(limit, highest unmanaged load of the asset so far)``.
The closed-form fast path of this rule is :mod:`gridplan.ev.fastpath`.

With an availability (:class:`~gridplan.ev.availability.Availability`), a shaver exports
within its session's export limit (:meth:`Sessions.export_limit_kw`: factor and remaining
cap); a shaver not taking part at the step (:meth:`Sessions.taking_part`: opted out,
cut off, or its override cap spent) is neither deferred nor discharged: it follows its
shadow (``unmanaged``), and catches up a deficit from earlier relief into the headroom
as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridplan.ev.context import GridView
from gridplan.ev.nesting import fit_into_headroom, relieve
from gridplan.ev.policies import Policy
from gridplan.ev.sessions import ExportCap, Sessions

__all__ = ["PeakShavePolicy"]

#: A shaver is behind its shadow when its state of charge is lower by more than this [kWh].
_BEHIND_KWH = 1e-7
#: Excess over a limit that the rule relieves [kW].
_EXCESS_KW = 1e-9


@dataclass(eq=False, slots=True)
class _ShaverStep:
    """The shavers' quantities at one step, arrays over shavers (kW unless named)."""

    full_kw: np.ndarray  # full power toward the target
    plugged: np.ndarray  # 1.0 plugged in, 0.0 not
    soc_kwh: np.ndarray
    shadow_soc_kwh: np.ndarray
    later_kwh: np.ndarray  # battery energy full power adds after this step until departure
    must_kw: np.ndarray  # laxity-forced power
    shadow_kw: np.ndarray  # the shadow's unmanaged power
    behind: np.ndarray  # bool: behind the shadow
    power_kw: np.ndarray  # the power decided so far


class PeakShavePolicy(Policy):
    """``v2g_peak_shave`` (see the module docstring).

    Parameters
    ----------
    sessions
        The sessions (their state of charge starts the shadow's).
    grid
        The context along the simulated steps.
    export_cap
        The per-transformer export limit.
    n_warm
        Warm-up steps: the running maximum of the unmanaged load starts after them.

    Attributes
    ----------
    shaver_ix
        Enrolled EVs under at least one monitored asset, (shaver,).
    shadow_soc_kwh
        Each EV's state of charge under ``unmanaged`` [kWh], (ev,) (shavers only used).
    shadow_kw
        The shavers' unmanaged power at the last step [kW], (shaver,).
    running_max_kw
        Highest load of each asset under unmanaged power so far in the period [kW].
    """

    def __init__(
        self, sessions: Sessions, grid: GridView, export_cap: ExportCap, n_warm: int
    ) -> None:
        super().__init__(sessions)
        self.grid = grid
        self.export_cap = export_cap
        self.n_warm = n_warm
        nesting = grid.nesting
        below = grid.context.ev_assets.any(axis=1)
        evs = sessions.evs
        self.shaver_ix = ix = np.flatnonzero(evs.enrolled & below)
        # the shavers' parameters (read at every step)
        self._charger_kw, self._target_kwh = evs.charger_kw[ix], evs.target_kwh[ix]
        self._full_step_kwh, self._reserve_kwh = evs.full_step_kwh[ix], evs.reserve_kwh[ix]
        self._export_kw = evs.export_kw[ix]
        self._levels = nesting.levels_for(self.shaver_ix)
        self._asset_from_shaver = nesting.asset_from_ev[:, self.shaver_ix].tocsr()
        self.shadow_soc_kwh = sessions.soc_kwh.copy()
        self.shadow_kw = np.zeros(self.shaver_ix.size)
        self.running_max_kw = np.full(nesting.n_asset, -np.inf)

    def arrived(self, sessions: np.ndarray) -> None:
        table = self.sessions.table
        e = table.ev[sessions]
        shadow = self.shadow_soc_kwh
        shadow[e] = np.maximum(shadow[e] - table.trip_kwh[sessions], 0.0)

    def power_kw(self, t: int) -> np.ndarray:
        sessions, grid, ix = self.sessions, self.grid, self.shaver_ix
        full_kw = sessions.full_power_kw()
        power = full_kw.copy()
        if not ix.size:
            return power
        step = self._shaver_step(t, full_kw)
        power[ix] = step.shadow_kw
        base_kw = grid.base_kw(t)
        ev_kw = grid.nesting.asset_power(power)  # EV power through each asset [kW]
        if t >= self.n_warm:
            np.maximum(self.running_max_kw, base_kw + ev_kw, out=self.running_max_kw)
        any_behind = bool(step.behind.any())
        if any_behind:
            ev_kw = ev_kw + self._asset_from_shaver @ (step.power_kw - step.shadow_kw)
        excess_kw = base_kw + ev_kw - grid.limit_kw
        relieved = np.zeros(ix.size, dtype=bool)
        if (excess_kw > _EXCESS_KW).any() and step.plugged.any():
            ev_kw, relieved = self._relieve(step, excess_kw, ev_kw)
        power[ix] = step.power_kw
        if self.export_cap.active and (step.power_kw < 0).any():
            clamped = self.export_cap.clamp(power)
            if clamped is not power:
                power = clamped
                step.power_kw = power[ix]
                ev_kw = grid.nesting.asset_power(power)
        forced = step.must_kw > step.power_kw + 1e-12
        if any_behind or forced.any():
            ev_kw = self._recharge(t, step, forced, relieved, base_kw, ev_kw)
            power[ix] = step.power_kw
        evs = sessions.evs
        self.shadow_soc_kwh[ix] = (
            step.shadow_soc_kwh + step.shadow_kw * evs.charge_efficiency * evs.step_h
        )
        self.asset_ev_kw = ev_kw
        return power

    def _shaver_step(self, t: int, full_kw: np.ndarray) -> _ShaverStep:
        """The shavers' full, laxity-forced and shadow powers at step ``t``."""
        sessions, ix = self.sessions, self.shaver_ix
        full_s, plugged_s = full_kw[ix], sessions.plugged_factor[ix]
        soc_s, shadow_soc_s = sessions.soc_kwh[ix], self.shadow_soc_kwh[ix]
        charger_s, target_s = self._charger_kw, self._target_kwh
        later_kwh = np.maximum(sessions.departure_step[ix] - t - 1.0, 0.0) * self._full_step_kwh
        per_kwh = sessions.evs.kw_per_stored_kwh
        must_kw = np.clip((target_s - soc_s - later_kwh) * per_kwh, 0.0, charger_s) * plugged_s
        shadow_kw = np.clip((target_s - shadow_soc_s) * per_kwh, 0.0, charger_s) * plugged_s
        self.shadow_kw = shadow_kw  # the shavers' unmanaged power (the fast path's totals)
        behind = shadow_soc_s - soc_s > _BEHIND_KWH
        power_kw = np.minimum(shadow_kw, full_s)
        # positional: the fields in order (one object per step)
        return _ShaverStep(
            full_s, plugged_s, soc_s, shadow_soc_s, later_kwh, must_kw, shadow_kw, behind, power_kw
        )

    def _relieve(
        self, step: _ShaverStep, excess_kw: np.ndarray, ev_kw: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Relieve each asset's excess: defer charging, then discharge; returns the EV
        power through each asset [kW] and which shavers gave relief."""
        evs = self.sessions.evs
        levels, n_asset, to_asset = self._levels, self.grid.nesting.n_asset, self._asset_from_shaver
        floor_kwh = np.maximum(self._reserve_kwh, self._target_kwh - step.later_kwh)
        room_kwh = np.maximum(step.soc_kwh - floor_kwh, 0.0)
        export_kw = self._export_kw
        if self.sessions.limited:
            export_kw = self.sessions.export_limit_kw()[self.shaver_ix]
        discharge_kw = np.minimum(export_kw, room_kwh * evs.discharge_efficiency / evs.step_h)
        discharge_kw = np.where(step.must_kw > 0, 0.0, discharge_kw * step.plugged)
        curtail_kw = np.maximum(step.power_kw - step.must_kw, 0.0)
        if self.sessions.limited:  # a shaver not taking part this step is not managed
            curtail_kw = np.where(self.sessions.taking_part()[self.shaver_ix], curtail_kw, 0.0)
        relief_kw = relieve(levels, n_asset, np.maximum(excess_kw, 0.0), curtail_kw)
        excess2_kw = excess_kw - to_asset @ relief_kw
        if (excess2_kw > _EXCESS_KW).any():
            relief_kw = relief_kw + relieve(
                levels, n_asset, np.maximum(excess2_kw, 0.0), discharge_kw
            )
        new_kw = step.power_kw - relief_kw
        low = new_kw < -discharge_kw  # round-off only: never past the discharge available
        if low.any():  # (an EV that may not export stays at 0, not at -1e-16 kW)
            relief_kw = np.where(low, step.power_kw + discharge_kw, relief_kw)
            new_kw = np.where(low, -discharge_kw, new_kw)
        step.power_kw = new_kw
        return ev_kw - to_asset @ relief_kw, relief_kw > 1e-12

    def _recharge(
        self,
        t: int,
        step: _ShaverStep,
        forced: np.ndarray,
        relieved: np.ndarray,
        base_kw: np.ndarray,
        ev_kw: np.ndarray,
    ) -> np.ndarray:
        """Laxity-forced charging, then the catch-up of shavers behind their shadow, into
        the headroom; returns the EV power through each asset [kW]."""
        limit_kw = self.grid.limit_kw
        levels, n_asset, to_asset = self._levels, self.grid.nesting.n_asset, self._asset_from_shaver
        cap_kw = limit_kw if t < self.n_warm else np.minimum(limit_kw, self.running_max_kw)
        headroom_kw = np.maximum(cap_kw - (base_kw + ev_kw), 0.0)
        if forced.any():
            want_kw = np.where(forced, step.must_kw - step.power_kw, 0.0)
            forced_kw = fit_into_headroom(levels, n_asset, want_kw, headroom_kw)
            step.power_kw = step.power_kw + forced_kw
            moved_kw = to_asset @ forced_kw
            headroom_kw -= moved_kw
            ev_kw = ev_kw + moved_kw
        deficit_kwh = np.maximum(step.shadow_soc_kwh - step.soc_kwh, 0.0)
        catch_kw = np.minimum(
            step.full_kw, step.shadow_kw + deficit_kwh * self.sessions.evs.kw_per_stored_kwh
        )
        want_kw = np.where(step.behind & ~relieved, np.maximum(catch_kw - step.power_kw, 0.0), 0.0)
        if want_kw.any():
            catch_up_kw = fit_into_headroom(levels, n_asset, want_kw, headroom_kw)
            step.power_kw = step.power_kw + catch_up_kw
            ev_kw = ev_kw + to_asset @ catch_up_kw
        return ev_kw
