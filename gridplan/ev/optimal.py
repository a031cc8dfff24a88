"""``v2g_optimal`` dispatch: one linear program per monitored asset and fleet day.

The programs (HiGHS through :func:`scipy.optimize.linprog`) are solved before the step
loop, bottom-up over the assets and in day order (power already planned is part of the
load); the :class:`OptimalPolicy` then follows the plan, within the EVs' limits.

With an availability (:class:`~gridplan.ev.availability.Availability`), a session's
discharge is bounded by the EV's export limit times the session's factor (a session
with factor 0 does not discharge: its charging is still scheduled, as for an EV not
enrolled), and a session with an override cap gets one more row: its discharge energy
(grid side) within the cap. The program knows the cap in advance (it places the capped
export at the asset's worst steps): an optimistic reading of an override.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linprog

from gridplan.core.errors import ConfigError, GridplanError
from gridplan.ev.context import GridView
from gridplan.ev.policies import Policy
from gridplan.ev.sessions import ExportCap, Sessions

__all__ = ["OptimalPolicy"]


class OptimalPolicy(Policy):
    """``v2g_optimal``: the planned power of every EV under a monitored asset.

    Parameters
    ----------
    sessions
        The sessions.
    plan_kw
        Planned power of each EV [kW], (step, ev).
    unplanned
        EVs under no monitored asset (they charge ``unmanaged``), (ev,) bool.
    export_cap
        The per-transformer export limit.
    """

    def __init__(
        self,
        sessions: Sessions,
        plan_kw: np.ndarray,
        unplanned: np.ndarray,
        export_cap: ExportCap,
    ) -> None:
        super().__init__(sessions)
        self.plan_kw = plan_kw
        self.unplanned = unplanned
        self.export_cap = export_cap

    @classmethod
    def solve(
        cls,
        sessions: Sessions,
        grid: GridView,
        export_cap: ExportCap,
        days: pd.DatetimeIndex,
        objective: str,
        max_lp_variables: int,
    ) -> OptimalPolicy:
        """Solve every asset-day program and return the policy following the plan.

        Parameters
        ----------
        sessions, grid, export_cap
            As for the policy.
        days
            The fleet's days (to name a day in errors).
        objective
            ``"peak"`` or ``"overload"``.
        max_lp_variables
            Largest program allowed [variables].

        Raises
        ------
        ConfigError
            A program above ``max_lp_variables`` (checked before any solve).
        """
        planner = _Planner(sessions, grid, export_cap, objective)
        planner.check_size(days, max_lp_variables)
        planner.plan_all()
        return cls(sessions, planner.plan_kw, grid.nesting.leaf < 0, export_cap)

    def power_kw(self, t: int) -> np.ndarray:
        sessions = self.sessions
        evs, soc = sessions.evs, sessions.soc_kwh
        full_kw = sessions.full_power_kw()
        power = np.where(self.unplanned, full_kw, self.plan_kw[t])
        up_kw = np.minimum(evs.charger_kw, (evs.battery_kwh - soc) * evs.kw_per_stored_kwh)
        down_kw = np.minimum(
            sessions.export_limit_kw(),
            np.maximum(soc - evs.reserve_kwh, 0.0) * evs.discharge_efficiency / evs.step_h,
        )
        power = np.clip(power, -down_kw, np.maximum(up_kw, 0.0)) * sessions.plugged_factor
        # guard against solver round-off at departure
        power = np.where(power >= 0, np.maximum(power, sessions.must_power_kw(t)), power)
        return self.export_cap.clamp(power)


class _Planner:
    """The asset-day programs of one run, solved in order into a plan (step, ev)."""

    def __init__(
        self, sessions: Sessions, grid: GridView, export_cap: ExportCap, objective: str
    ) -> None:
        self.sessions = sessions
        self.grid = grid
        self.export_cap = export_cap
        self.objective = objective
        table, nesting = sessions.table, grid.nesting
        self.plan_kw = np.zeros((sessions.n_step, sessions.n_ev))
        #: Sessions under a monitored asset, and that asset (their EV's leaf).
        self.planned = np.flatnonzero(nesting.leaf[table.ev] >= 0)
        self.leaf = nesting.leaf[table.ev[self.planned]]

    def check_size(self, days: pd.DatetimeIndex, max_lp_variables: int) -> None:
        """Raise :class:`ConfigError` when a program has more than ``max_lp_variables``."""
        sess, leaf = self.planned, self.leaf
        if not sess.size:
            return
        table, n_asset = self.sessions.table, self.grid.nesting.n_asset
        length = table.departure_step[sess] - table.arrival_step[sess]
        per_step = np.where(self.sessions.evs.enrolled[table.ev[sess]], 3, 2)
        key = table.day[sess] * n_asset + leaf
        uniq, inv = np.unique(key, return_inverse=True)
        n_vars = np.bincount(inv, per_step * length) + 1
        if self.objective == "overload":
            lo = np.full(uniq.size, self.sessions.n_step)
            hi = np.zeros(uniq.size, dtype=np.int64)
            np.minimum.at(lo, inv, table.arrival_step[sess])
            np.maximum.at(hi, inv, table.departure_step[sess])
            n_vars = n_vars + (hi - lo)
        worst = int(np.argmax(n_vars))
        if n_vars[worst] > max_lp_variables:
            day = int(uniq[worst] // n_asset)
            name = self.grid.context.asset_ids[int(uniq[worst] % n_asset)]
            raise ConfigError(
                f"v2g_optimal: the linear program of asset '{name}' on "
                f"{days[day]:%Y-%m-%d} has {int(n_vars[worst]):,} variables (limit "
                f"max_lp_variables={max_lp_variables:,}); use a heuristic strategy, a shorter "
                "period or a smaller feeder, or raise the limit",
                field="max_lp_variables",
            )

    def plan_all(self) -> None:
        """Solve the programs by day, then level (bottom-up), then asset."""
        sess, leaf = self.planned, self.leaf
        if not sess.size:
            return
        sessions, nesting = self.sessions, self.grid.nesting
        table, n_asset = sessions.table, nesting.n_asset
        fixed_asset_kw = np.zeros((sessions.n_step, n_asset))
        fixed_export_kw = np.zeros((sessions.n_step, max(self.export_cap.n_group, 1)))
        predicted_soc_kwh = sessions.evs.target_kwh.copy()
        days = table.day[sess]
        order = np.lexsort((leaf, nesting.asset_level[leaf], days))
        sess, leaf, days = sess[order], leaf[order], days[order]
        bounds = np.flatnonzero(np.diff(days * n_asset + leaf)) + 1
        for chunk in np.split(np.arange(sess.size), bounds):
            s = sess[chunk]
            asset = int(leaf[chunk[0]])
            ev = table.ev[s]
            soc0 = np.maximum(predicted_soc_kwh[ev] - table.trip_kwh[s], 0.0)
            program = _AssetDayProgram(sessions, s, soc0, self.objective)
            w0, w1 = program.w0, program.w0 + program.width
            load_kw = self.grid.context.asset_base_kw[self.grid.rows[w0:w1], asset]
            load_kw = load_kw + fixed_asset_kw[w0:w1, asset]
            power, soc_end = program.solve(
                asset, load_kw, float(self.grid.limit_kw[asset]), self.export_cap, fixed_export_kw
            )
            predicted_soc_kwh[ev] = soc_end
            self._fix(s, asset, power, fixed_asset_kw, fixed_export_kw)

    def _fix(
        self,
        s: np.ndarray,
        asset: int,
        power: list[np.ndarray],
        fixed_asset_kw: np.ndarray,
        fixed_export_kw: np.ndarray,
    ) -> None:
        """Write the solved sessions ``s`` into the plan and the fixed loads."""
        table, ancestors = self.sessions.table, self.grid.nesting.ancestors
        ev = table.ev[s]
        cap = self.export_cap
        for j, (a, b) in enumerate(
            zip(table.arrival_step[s], table.departure_step[s], strict=True)
        ):
            self.plan_kw[a:b, ev[j]] = power[j]
            fixed_asset_kw[a:b] += np.outer(power[j], ancestors[asset])
            if cap.active:
                fixed_export_kw[a:b, cap.group[ev[j]]] += np.maximum(-power[j], 0.0)


class _Triplets:
    """Entries (row, column, value) of a sparse matrix, gathered in order."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.values: list[np.ndarray] = []

    def add(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> None:
        self.rows.append(rows)
        self.cols.append(cols)
        self.values.append(values)

    def matrix(self, shape: tuple[int, int]) -> sp.csr_matrix:
        entries = (np.concatenate(self.rows), np.concatenate(self.cols))
        return sp.csr_matrix((np.concatenate(self.values), entries), shape=shape)


class _AssetDayProgram:
    """The linear program of one asset's sessions on one fleet day.

    Variables, per session and plugged-in step: charging power [kW], discharging power
    [kW] (sessions that may export: enrolled and arriving at or above the reserve) and
    state of charge [kWh] at the step's end; then the epigraph variable of the peak (0
    with ``objective="overload"``) and, with ``"overload"``, the load above the limit per
    step [kW]. Constraints: the energy balance, power within limits, state of charge
    within ``[reserve or 0, battery]``, the departure target (less what even full power
    cannot reach, or the laxity floor at the period end), and the per-transformer export
    limit; the objective is the asset's peak or its energy over the limit.
    """

    def __init__(
        self, sessions: Sessions, s: np.ndarray, soc0_kwh: np.ndarray, objective: str
    ) -> None:
        evs, table = sessions.evs, sessions.table
        self.sessions, self.s, self.soc0_kwh, self.objective = sessions, s, soc0_kwh, objective
        self.ev = ev = table.ev[s]
        self.arrival = table.arrival_step[s]
        self.length = length = table.departure_step[s] - self.arrival
        self.w0 = int(self.arrival.min())
        self.width = int(table.departure_step[s].max()) - self.w0
        self.can_discharge = evs.enrolled[ev] & (soc0_kwh >= evs.reserve_kwh[ev] - 1e-9)
        #: Discharge limit [kW] and export-energy cap [kWh] (inf: none) of each session.
        self.export_kw = evs.export_kw[ev]
        self.cap_kwh = np.full(s.size, np.inf)
        if sessions.limited:
            assert sessions.session_export_factor is not None
            assert sessions.session_export_cap_kwh is not None
            self.export_kw = self.export_kw * sessions.session_export_factor[s]
            self.cap_kwh = sessions.session_export_cap_kwh[s]
            self.can_discharge &= self.export_kw > 0
        # variable layout: per session its charging, discharging and state-of-charge runs
        self.n_charge = length
        self.n_discharge = np.where(self.can_discharge, length, 0)
        per_session = self.n_charge + self.n_discharge + length
        self.off_charge = np.concatenate([[0], np.cumsum(per_session)[:-1]])
        self.off_discharge = self.off_charge + self.n_charge
        self.off_soc = self.off_discharge + self.n_discharge
        self.n_x = int(per_session.sum())  # the epigraph variable's column
        self.n_var = self.n_x + 1 + (self.width if objective == "overload" else 0)
        self.lb = np.zeros(self.n_var)
        self.ub = np.full(self.n_var, np.inf)
        self.eq = _Triplets()
        self.le = _Triplets()
        self.b_eq = np.zeros(int(length.sum()))
        self.export_cols: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}

    def _required_kwh(self) -> np.ndarray:
        """State of charge each session must end with [kWh]: the target by departure, or
        the laxity floor at the period end; at most what full power reaches."""
        evs, table, ev, s = self.sessions.evs, self.sessions.table, self.ev, self.s
        beyond = np.maximum(table.departure_unclipped[s] - table.departure_step[s], 0)
        required = np.maximum(evs.target_kwh[ev] - beyond * evs.full_step_kwh[ev], 0.0)
        required = np.minimum(required, self.soc0_kwh + self.length * evs.full_step_kwh[ev])
        return np.minimum(required, evs.battery_kwh[ev])

    def _add_sessions(self, group: np.ndarray) -> None:
        """Bounds, energy balance and per-step power rows of every session."""
        evs = self.sessions.evs
        step_h, eta_c, eta_d = evs.step_h, evs.charge_efficiency, evs.discharge_efficiency
        lb, ub = self.lb, self.ub
        required = self._required_kwh()
        row0 = 0
        for j in range(self.s.size):
            k = np.arange(self.length[j])
            ic, isoc = self.off_charge[j] + k, self.off_soc[j] + k
            e = self.ev[j]
            ub[ic] = evs.charger_kw[e]
            lb[isoc] = evs.reserve_kwh[e] if self.can_discharge[j] else 0.0
            ub[isoc] = evs.battery_kwh[e]
            lb[isoc[-1]] = max(lb[isoc[-1]], required[j])
            rows = row0 + k
            self.eq.add(rows, isoc, np.ones(k.size))
            self.eq.add(rows, ic, np.full(k.size, -eta_c * step_h))
            self.eq.add(rows[1:], isoc[:-1], -np.ones(k.size - 1))
            t_rel = self.arrival[j] - self.w0 + k
            self.le.add(t_rel, ic, np.ones(k.size))
            if self.can_discharge[j]:
                idis = self.off_discharge[j] + k
                ub[idis] = self.export_kw[j]
                self.eq.add(rows, idis, np.full(k.size, step_h / eta_d))
                self.le.add(t_rel, idis, -np.ones(k.size))
                self.export_cols.setdefault(int(group[e]), []).append((t_rel, idis))
            self.b_eq[row0] = self.soc0_kwh[j]
            row0 += k.size

    def _add_asset_rows(self, load_kw: np.ndarray, limit_kw: float) -> np.ndarray:
        """Rows of the asset's load per step; returns their right-hand side [kW]."""
        steps = np.arange(self.width)
        iz = self.n_x
        if self.objective == "peak":
            self.lb[iz], self.ub[iz] = -np.inf, np.inf
            self.le.add(steps, np.full(self.width, iz), -np.ones(self.width))
            return -load_kw
        self.lb[iz] = self.ub[iz] = 0.0
        self.le.add(steps, self.n_x + 1 + steps, -np.ones(self.width))
        return limit_kw - load_kw

    def _add_export_rows(self, cap: ExportCap, fixed_export_kw: np.ndarray) -> list[np.ndarray]:
        """Rows of each export group's total per step; returns their right-hand sides."""
        b_extra: list[np.ndarray] = []
        if not cap.active:
            return b_extra
        w0, width = self.w0, self.width
        n_le = width
        for grp, parts in self.export_cols.items():
            t_rel = np.concatenate([p[0] for p in parts])
            cols = np.concatenate([p[1] for p in parts])
            self.le.add(n_le + t_rel, cols, np.ones(cols.size))
            b_extra.append(np.maximum(cap.limit_kw - fixed_export_kw[w0 : w0 + width, grp], 0.0))
            n_le += width
        return b_extra

    def _add_cap_rows(self, n_le: int) -> np.ndarray:
        """Rows from ``n_le`` on: each capped session's discharge energy (grid side)
        within its cap; returns their right-hand sides [kWh]."""
        capped = np.flatnonzero(self.can_discharge & np.isfinite(self.cap_kwh))
        step_h = self.sessions.evs.step_h
        for r, j in enumerate(capped):
            idis = self.off_discharge[j] + np.arange(self.length[j])
            self.le.add(np.full(idis.size, n_le + r), idis, np.full(idis.size, step_h))
        return self.cap_kwh[capped]

    def solve(
        self,
        asset: int,
        load_kw: np.ndarray,
        limit_kw: float,
        cap: ExportCap,
        fixed_export_kw: np.ndarray,
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Build and solve the program; each session's power [kW] and end state [kWh].

        A second solve keeps the optimum (within 1e-7 relative) and minimizes charge plus
        discharge throughput (no needless cycling).
        """
        self._add_sessions(cap.group)
        b_parts = [
            self._add_asset_rows(load_kw, limit_kw),
            *self._add_export_rows(cap, fixed_export_kw),
        ]
        b_parts.append(self._add_cap_rows(sum(b.size for b in b_parts)))
        b_le = np.concatenate(b_parts)
        a_eq = self.eq.matrix((self.b_eq.size, self.n_var))
        a_le = self.le.matrix((b_le.size, self.n_var))
        step_h = self.sessions.evs.step_h
        cost = np.zeros(self.n_var)
        if self.objective == "peak":
            cost[self.n_x] = 1.0
        else:
            cost[self.n_x + 1 :] = step_h
        bounds = np.column_stack([self.lb, self.ub])
        res = linprog(cost, A_ub=a_le, b_ub=b_le, A_eq=a_eq, b_eq=self.b_eq, bounds=bounds)
        if res.status != 0:
            raise GridplanError(f"v2g_optimal: HiGHS failed on asset {asset}: {res.message}")
        best = float(res.fun)
        slack = 1e-7 * max(1.0, abs(best))
        cost2 = np.zeros(self.n_var)
        throughput = np.concatenate(
            [
                self.off_charge[j] + np.arange(self.n_charge[j] + self.n_discharge[j])
                for j in range(self.s.size)
            ]
        )
        cost2[throughput] = step_h
        if self.objective == "peak":
            bounds[self.n_x, 1] = best + slack
        else:
            a_le = sp.vstack([a_le, sp.csr_matrix(cost.reshape(1, -1))]).tocsr()
            b_le = np.concatenate([b_le, [best + slack]])
        res2 = linprog(cost2, A_ub=a_le, b_ub=b_le, A_eq=a_eq, b_eq=self.b_eq, bounds=bounds)
        return self._powers(res2.x if res2.status == 0 else res.x)

    def _powers(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Each session's net power [kW] and its state of charge at the end [kWh]."""
        power = []
        soc_end = np.empty(self.s.size)
        for j in range(self.s.size):
            charge = x[self.off_charge[j] : self.off_charge[j] + self.n_charge[j]]
            n_d = self.n_discharge[j]
            discharge = x[self.off_discharge[j] : self.off_discharge[j] + n_d] if n_d else 0.0
            power.append(np.asarray(charge - discharge, dtype=float))
            soc_end[j] = x[self.off_soc[j] + self.length[j] - 1]
        return power, soc_end
