"""The step loop of dispatch: at each step the sessions plug EVs in, the policy decides
the power, the sessions integrate it and unplug the departing EVs; the outputs are
recorded from the end of the warm-up on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridplan.ev.context import GridView
from gridplan.ev.loadrows import LoadRows
from gridplan.ev.options import Strategy
from gridplan.ev.policies import Policy
from gridplan.ev.results import DispatchResult
from gridplan.ev.sessions import Sessions

__all__ = ["RunSetup", "run_loop"]


@dataclass(frozen=True, eq=False)
class RunSetup:
    """What one dispatch run returns and how.

    Attributes
    ----------
    period
        The returned steps (the simulation is ``n_warm`` steps longer).
    n_warm
        Warm-up steps simulated before the period, not returned.
    strategy
        The strategy dispatched.
    keep_ev_series
        Whether the (time, ev) series are kept.
    dtype
        Float type of the kept series and aggregates.
    n_loads
        Columns of the per-load aggregate.
    load_pos
        Column of each EV in the per-load aggregate, (ev,) int64.
    load_columns
        The loads the aggregate's columns are (``None``: every load, ``n_loads`` of them).
    total_loads
        Loads of the feeder when ``load_columns`` is given.
    sparse_loads
        Record the per-load aggregate as a sparse CSR array, block by block
        (:class:`~gridplan.ev.loadrows.LoadRows`).
    """

    period: pd.DatetimeIndex
    n_warm: int
    strategy: Strategy
    keep_ev_series: bool
    dtype: np.dtype
    n_loads: int
    load_pos: np.ndarray
    load_columns: np.ndarray | None = None
    total_loads: int | None = None
    sparse_loads: bool = False

    def load_rows(self, n_out: int) -> LoadRows:
        """The per-load aggregate's recorder for ``n_out`` returned steps."""
        return LoadRows(n_out, self.n_loads, self.dtype, sparse=self.sparse_loads)

    def result(
        self,
        sessions: Sessions,
        grid: GridView | None,
        charge_kwh: np.ndarray,
        export_kwh: np.ndarray,
        by_load: LoadRows,
        asset_load: np.ndarray | None,
        series: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> DispatchResult:
        """The :class:`DispatchResult` of a finished run (loop or fast path)."""
        ctx = grid.context if grid is not None else None
        power, soc, plugged = series if series is not None else (None, None, None)
        evs = sessions.evs
        return DispatchResult(
            time_index=self.period,
            step_h=evs.step_h,
            strategy=self.strategy,
            departure_shortfall_kwh=sessions.shortfall_kwh,
            ev_charge_kwh=charge_kwh,
            ev_export_kwh=export_kwh,
            battery_kwh=evs.battery_kwh,
            charge_efficiency=evs.charge_efficiency,
            discharge_efficiency=evs.discharge_efficiency,
            load_power_kw=by_load.finish(),
            load_columns=self.load_columns,
            n_loads=self.total_loads,
            asset_ids=ctx.asset_ids if ctx is not None else (),
            asset_load_kw=asset_load,
            asset_limit_kw=ctx.asset_limit_kw if ctx is not None else None,
            ev_assets=ctx.ev_assets if ctx is not None else None,
            ev_power_kw=power,
            ev_soc_kwh=soc,
            ev_plugged=plugged,
        )


class _Recorder:
    """The outputs of the step loop: per-load and per-asset aggregates, per-EV series."""

    def __init__(self, setup: RunSetup, sessions: Sessions, grid: GridView | None) -> None:
        n_out = sessions.n_step - setup.n_warm
        n_ev, dtype = sessions.n_ev, setup.dtype
        self.sessions = sessions
        self.load_pos, self.n_loads, self.has_evs = setup.load_pos, setup.n_loads, n_ev > 0
        self.by_load = setup.load_rows(n_out)
        self.asset_load = None
        if grid is not None:
            self.nesting = grid.nesting  # built first: its temporaries before the outputs
            self.asset_load = np.empty((n_out, grid.n_asset), dtype)
            self.base_kw, self.base_rows = grid.context.asset_base_kw, grid.rows
        self.series = None
        if setup.keep_ev_series:
            self.series = (
                np.empty((n_out, n_ev), dtype),
                np.empty((n_out, n_ev), dtype),
                np.empty((n_out, n_ev), bool),
            )

    def record(self, k: int, t: int, power_kw: np.ndarray, asset_ev_kw: np.ndarray | None) -> None:
        """Write output row ``k`` (simulated step ``t``) from the step's power [kW]; the
        EV power through each asset ``asset_ev_kw`` [kW] when the policy knows it."""
        if self.has_evs:
            self.by_load[k] = np.bincount(self.load_pos, power_kw, minlength=self.n_loads)
        if self.asset_load is not None:
            if asset_ev_kw is None:
                asset_ev_kw = self.nesting.asset_power(power_kw)
            self.asset_load[k] = self.base_kw[self.base_rows[t]] + asset_ev_kw
        if self.series is not None:
            power_out, soc_out, plugged_out = self.series
            power_out[k] = power_kw
            soc_out[k] = self.sessions.soc_kwh
            plugged_out[k] = self.sessions.plugged


def run_loop(
    setup: RunSetup, sessions: Sessions, policy: Policy, grid: GridView | None
) -> DispatchResult:
    """Simulate every step: arrivals, the policy's power, integration, departures.

    Parameters
    ----------
    setup
        The period, warm-up and outputs.
    sessions
        The sessions, at the start state.
    policy
        The strategy's rule over ``sessions``.
    grid
        The context along the simulated steps, or ``None``.

    Returns
    -------
    DispatchResult
    """
    recorder = _Recorder(setup, sessions, grid)
    n_warm, may_export = setup.n_warm, setup.strategy.exports
    arrivals_at, departures_after = sessions.arrivals_at, sessions.departures_after
    arrive, integrate, depart = sessions.arrive, sessions.integrate, sessions.depart
    arrived, power_at, record = policy.arrived, policy.power_kw, recorder.record
    for t in range(sessions.n_step):
        if arrivals_at[t]:
            new = arrive(t)
            if new is not None:
                arrived(new)
        power = power_at(t)
        counted = t >= n_warm
        integrate(power, may_export, counted)
        if counted:
            record(t - n_warm, t, power, policy.asset_ev_kw)
        if departures_after[t]:
            depart(t)
    step_h = sessions.evs.step_h
    return setup.result(
        sessions,
        grid,
        sessions.charge_kw_steps * step_h,
        sessions.export_kw_steps * step_h,
        recorder.by_load,
        recorder.asset_load,
        recorder.series,
    )
