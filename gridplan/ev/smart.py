"""``smart`` dispatch: V1G valley filling per monitored asset and fleet day.

Each EV belongs to the smallest monitored asset upstream of it; at the first arrival of a
fleet day, the energy that day's sessions need is water-filled (:func:`water_fill`) into
the lowest-load steps of each asset (base load plus charging already planned), under the
power the plugged-in EVs can draw; assets are planned bottom-up. At each step the EVs of
an asset share its planned power in proportion to their full power, never below their
laxity-forced power.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from gridplan.ev.context import GridView
from gridplan.ev.options import TOLERANCE
from gridplan.ev.policies import Policy
from gridplan.ev.sessions import Sessions

__all__ = ["SmartPolicy", "water_fill"]

#: Load level [kW] standing for "no capacity" in the water-filling.
_FAR_KW = 1e15


class SmartPolicy(Policy):
    """``smart``: charging of each fleet day planned into each asset's valleys.

    Parameters
    ----------
    sessions
        The sessions.
    grid
        The context along the simulated steps.
    """

    def __init__(self, sessions: Sessions, grid: GridView) -> None:
        super().__init__(sessions)
        self.grid = grid
        nesting = grid.nesting
        table = sessions.table
        leaf = nesting.leaf
        # planning days: sessions of fleet day d are planned at their first arrival
        planned_sessions = np.flatnonzero(leaf[table.ev] >= 0)
        self.day_sessions: list[np.ndarray] = []
        self.day_plan_step: list[int] = []
        if planned_sessions.size:
            days = table.day[planned_sessions]
            order = np.argsort(days, kind="stable")
            planned_sessions, days = planned_sessions[order], days[order]
            cuts = np.flatnonzero(np.diff(days)) + 1
            for chunk in np.split(planned_sessions, cuts):
                self.day_sessions.append(chunk)
                self.day_plan_step.append(int(table.arrival_step[chunk].min()))
        span = max(
            (
                int(table.departure_step[c].max()) - at
                for c, at in zip(self.day_sessions, self.day_plan_step, strict=True)
            ),
            default=1,
        )
        #: Rows of the ring buffers of planned power (step ``t`` at row ``t % ring``).
        self.ring = max(span, 1) + 1
        n_asset = nesting.n_asset
        self.allowed_kw = np.zeros((self.ring, n_asset))  # EV power planned at each leaf asset
        self.planned_kw = np.zeros((self.ring, n_asset))  # EV power planned through each asset
        self.predicted_soc_kwh = sessions.evs.target_kwh.copy()
        self.next_day = 0
        grouped_leaf = leaf[leaf >= 0]
        self.levels = sorted({int(nesting.asset_level[a]) for a in np.unique(grouped_leaf)})
        self._ancestors = sp.csr_matrix(nesting.ancestors.astype(float))
        self._share = np.ones(n_asset + 1)  # column n_asset: EVs under no asset (share 1)

    def plan_day(self, day_sessions: np.ndarray, w0: int) -> None:
        """Water-fill the energy of one fleet day's sessions into each asset's valleys,
        from step ``w0`` on."""
        sessions, grid = self.sessions, self.grid
        evs, table, nesting = sessions.evs, sessions.table, grid.nesting
        ring = self.ring
        ev = table.ev[day_sessions]
        arrival, departure = table.arrival_step[day_sessions], table.departure_step[day_sessions]
        leaf = nesting.leaf[ev]
        soc0 = np.maximum(self.predicted_soc_kwh[ev] - table.trip_kwh[day_sessions], 0.0)
        need_kwh = np.maximum(evs.target_kwh[ev] - soc0, 0.0)
        deliver_kwh = np.minimum(need_kwh, (departure - arrival) * evs.full_step_kwh[ev])
        self.predicted_soc_kwh[ev] = soc0 + deliver_kwh
        w1 = int(departure.max())
        width = w1 - w0
        if width <= 0:
            return
        n_asset = nesting.n_asset
        cap_kw = np.zeros((width + 1, n_asset))
        np.add.at(cap_kw, (arrival - w0, leaf), evs.charger_kw[ev])
        np.add.at(cap_kw, (departure - w0, leaf), -evs.charger_kw[ev])
        cap_kw = np.cumsum(cap_kw[:-1], axis=0)
        grid_kwh = np.bincount(leaf, deliver_kwh / evs.charge_efficiency, minlength=n_asset)
        rows = np.arange(w0, w1) % ring
        base_kw = grid.context.asset_base_kw[grid.rows[w0:w1]]
        present = np.unique(leaf)
        for level in self.levels:
            cols = present[nesting.asset_level[present] == level]
            if not cols.size:
                continue
            load_kw = base_kw[:, cols] + self.planned_kw[rows[:, None], cols[None, :]]
            power = water_fill(load_kw, cap_kw[:, cols], grid_kwh[cols] / evs.step_h)
            self.allowed_kw[rows[:, None], cols[None, :]] += power
            self.planned_kw[rows] += np.asarray((self._ancestors[cols].T @ power.T).T)

    def power_kw(self, t: int) -> np.ndarray:
        while self.next_day < len(self.day_plan_step) and self.day_plan_step[self.next_day] <= t:
            self.plan_day(self.day_sessions[self.next_day], t)
            self.next_day += 1
        sessions, nesting = self.sessions, self.grid.nesting
        full_kw = sessions.full_power_kw()
        must_kw = sessions.must_power_kw(t)
        r = t % self.ring
        allowed_kw = self.allowed_kw[r]
        n_asset = nesting.n_asset
        leaf_column = nesting.leaf_column
        want_kw = np.bincount(leaf_column, full_kw, minlength=n_asset + 1)[:n_asset]
        share = self._share
        share[:n_asset] = 0.0
        np.divide(allowed_kw, want_kw, out=share[:n_asset], where=want_kw > TOLERANCE)
        np.minimum(share, 1.0, out=share)
        power = full_kw * share[leaf_column]
        np.maximum(power, must_kw, out=power)
        self.allowed_kw[r] = 0.0
        self.planned_kw[r] = 0.0
        return power


def water_fill(y: np.ndarray, cap: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Fill ``energy`` (power x steps) into the valleys of ``y`` under per-step caps.

    For each column, find the level ``L`` with ``sum_t min(max(L - y_t, 0), cap_t) = energy``
    (or the most the caps allow) and return ``min(max(L - y, 0), cap)``, the shape of ``y``
    (time, column). Exact: the fill is piecewise linear in ``L``, its slope rising by one at
    each ``y_t`` and falling by one at each ``y_t + cap_t``.

    Parameters
    ----------
    y
        Load [kW], (time, column).
    cap
        Most power each step can take [kW], (time, column).
    energy
        Energy to fill per column, as power times steps [kW·step], (column,).

    Returns
    -------
    numpy.ndarray
        The filled power [kW], (time, column).
    """
    width, n = y.shape
    if width == 0 or n == 0:
        return np.zeros_like(y)
    cap_t = np.maximum(cap, 0.0).T  # (column, time)
    yy = np.where(cap_t > 0, y.T, _FAR_KW)  # steps without capacity sit far above every level
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
