"""Fast paths of dispatch (``keep_ev_series=False``): ``unmanaged`` without the step loop,
and ``v2g_peak_shave`` stepping only in windows around over-limit steps.

``unmanaged`` in closed form (:func:`closed_form`): each EV's sessions follow each other,
and per session the state of charge at arrival, the number of full-power steps and the
last partial step are closed-form; its per-load and per-asset series are summed from the
charging intervals (:class:`UnmanagedSeries`), exactly 0 at steps without EV power.

``v2g_peak_shave`` (:class:`~gridplan.ev.peak_shave.PeakShavePolicy`) equals
``unmanaged`` at a step where no shaver is behind its shadow (by more than a quiet
margin) and no asset above a shaver is over its limit under unmanaged power: the shaver's
power is then ``min(shadow, full) = shadow`` and nothing is relieved or exported; the
loop may still top up a deficit below the margin at a departure step (laxity-forced, at
most 1e-9 kW), the only difference. So the step rule runs only in windows
(:class:`ShaveWindows`) from an over-limit step until every shaver is within the margin
of its shadow again, each started from the closed-form state; between windows every EV
follows its shadow. Both give the loop's results up to round-off (about 1e-9); sessions of
one EV that overlap fall back to the loop (:func:`run_fast` returns ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridplan.ev.context import GridView
from gridplan.ev.loadrows import LoadRows
from gridplan.ev.peak_shave import PeakShavePolicy
from gridplan.ev.results import DispatchResult
from gridplan.ev.sessions import Sessions
from gridplan.ev.simulation import RunSetup

__all__ = ["ClosedForm", "ShaveWindows", "UnmanagedSeries", "closed_form", "run_fast", "signatures"]

#: Aggregate EV power below this [kW] is exactly 0 (a step without charging).
_SNAP_KW = 1e-9
#: Elements (time x column) of one chunk of the aggregate series.
_CHUNK_ELEMENTS = 1 << 18
#: Charging steps are painted into (time, column) cells when fewer than
#: (time x column) / _PAINT_COST (else a running sum over time, about that much dearer).
_PAINT_COST = 4
#: Most distinct EV -> asset rows for the asset series by a dense product.
_MAX_SIGNATURES = 32
#: Sessions per block of the closed form (bounds its temporaries).
_SESSION_BLOCK = 1 << 18
#: ``v2g_peak_shave``: a window starts where an asset's unmanaged load exceeds its limit by
#: more than this [kW] (the step rule acts above 1e-9; the margin covers round-off).
_WINDOW_EXCESS_KW = 1e-9 - 1e-6


# --------------------------------------------------------------------------- closed form
@dataclass(frozen=True, eq=False)
class ClosedForm:
    """``unmanaged`` charging of every session in closed form.

    Attributes
    ----------
    full_steps
        Full-power steps from arrival (at most the session's length), per session.
    part_kw
        Power of the partial last charging step [kW] (0: none), per session.
    part_step
        That step (-1: none), per session.
    charge_kwh
        Grid energy per EV over the returned steps [kWh], (ev,).
    cells
        Charging steps from the first simulated step on (their count).
    max_length
        Longest session [steps].
    soc0_kwh, end_kwh
        State of charge after the trip and at departure [kWh], (day row, ev), when kept.
    """

    full_steps: np.ndarray
    part_kw: np.ndarray
    part_step: np.ndarray
    charge_kwh: np.ndarray
    cells: int
    max_length: int
    soc0_kwh: np.ndarray | None
    end_kwh: np.ndarray | None


def _sessions_overlap(sessions: Sessions) -> bool:
    """Whether an EV arrives before its previous session departed."""
    table = sessions.table
    # the loop takes each EV's sessions in arrival order; the recurrence in day order: the
    # same when every departure is no later than the next arrival
    grid = np.full((table.n_row, sessions.n_ev), -1, dtype=np.int32)
    grid[table.row, table.ev] = table.departure_step
    np.maximum.accumulate(grid, axis=0, out=grid)
    later = np.flatnonzero(table.row > 0)
    return bool((grid[table.row[later] - 1, table.ev[later]] > table.arrival_step[later]).any())


def _day_states(sessions: Sessions) -> tuple[np.ndarray, np.ndarray]:
    """State of charge after each day's trip and at its departure [kWh], (day row, ev).

    Per day (row), vectorized over EVs: ``soc0 = max(soc - trip, 0)``, then
    ``soc = max(soc0, min(soc0 + length × full_step_kwh, target))``; no session: trip 0,
    length 0.
    """
    table, evs = sessions.table, sessions.evs
    soc0_g = np.zeros((table.n_row, sessions.n_ev))
    soc0_g[table.row, table.ev] = table.trip_kwh
    end_g = np.zeros((table.n_row, sessions.n_ev))
    length = table.departure_step - table.arrival_step
    end_g[table.row, table.ev] = length * evs.full_step_kwh[table.ev]
    soc, target = evs.target_kwh, evs.target_kwh
    below = bool((table.trip_kwh >= 0).all())  # then soc0 <= target: the last max is moot
    for d in range(table.n_row):
        x, y = soc0_g[d], end_g[d]
        np.subtract(soc, x, out=x)
        np.maximum(x, 0.0, out=x)
        np.add(x, y, out=y)
        np.minimum(y, target, out=y)
        if not below:
            np.maximum(y, x, out=y)
        soc = y
    return soc0_g, end_g


def closed_form(
    sessions: Sessions, first: int, n_warm: int, *, keep_soc: bool
) -> ClosedForm | None:
    """``unmanaged`` charging of every session in closed form; ``None`` if sessions overlap.

    An EV's sessions follow each other: at arrival its state of charge is that at the
    previous departure less the trip (not below 0), then it charges at full power until
    the target, the last step partial, until departure. Records the departure shortfalls
    in ``sessions``.

    Parameters
    ----------
    sessions
        The sessions, at the start state.
    first
        First step whose charging cells are counted (:attr:`ClosedForm.cells`).
    n_warm
        Warm-up steps (not in :attr:`ClosedForm.charge_kwh`).
    keep_soc
        Keep the per-day states :attr:`ClosedForm.soc0_kwh` and :attr:`ClosedForm.end_kwh`.
    """
    if _sessions_overlap(sessions):
        return None
    soc0_g, end_g = _day_states(sessions)
    table, evs, n_step = sessions.table, sessions.evs, sessions.n_step
    n_s = table.ev.size
    full_steps = np.empty(n_s, np.int32)
    part_kw = np.empty(n_s)
    part_step = np.empty(n_s, np.int32)
    energy = np.zeros(sessions.n_ev)
    cells = 0
    for b0 in range(0, n_s, _SESSION_BLOCK):  # bounded temporaries for large fleets
        b = slice(b0, b0 + _SESSION_BLOCK)
        ev, row, arrival = table.ev[b], table.row[b], table.arrival_step[b]
        length = table.departure_step[b] - arrival
        soc0, end = soc0_g[row, ev], end_g[row, ev]
        full_step_kwh, charger_kw = evs.full_step_kwh[ev], evs.charger_kw[ev]
        need = np.maximum(evs.target_kwh[ev] - soc0, 0.0)
        steps = np.divide(need, full_step_kwh, out=length.astype(float), where=full_step_kwh > 0)
        full = np.minimum(np.floor(steps), length).astype(np.int32)
        part = np.maximum(need - full * full_step_kwh, 0.0) * evs.kw_per_stored_kwh
        part = np.where(full < length, np.minimum(part, charger_kw), 0.0)
        part[part < _SNAP_KW] = 0.0  # round-off of a target met by full-power steps
        full_end = arrival + full  # end of the full-power steps
        pstep = np.where(part > 0, full_end, -1).astype(np.int32)
        full_steps[b], part_kw[b], part_step[b] = full, part, pstep
        # grid energy over the returned steps; charging steps from ``first``
        returned = np.maximum(np.minimum(full_end, n_step) - np.maximum(arrival, n_warm), 0)
        energy += np.bincount(
            ev,
            charger_kw * returned + np.where(pstep >= n_warm, part, 0.0),
            minlength=sessions.n_ev,
        )
        cells += int(np.maximum(full_end - np.maximum(arrival, first), 0).sum())
        cells += int(np.count_nonzero(pstep >= first))
        inside = table.ends_inside[b]
        sessions.shortfall_kwh[table.day[b][inside], ev[inside]] = np.maximum(
            evs.target_kwh[ev[inside]] - end[inside], 0.0
        )
    return ClosedForm(
        full_steps=full_steps,
        part_kw=part_kw,
        part_step=part_step,
        charge_kwh=energy * evs.step_h,
        cells=cells,
        max_length=int((table.departure_step - table.arrival_step).max(initial=1)),
        soc0_kwh=soc0_g if keep_soc else None,
        end_kwh=end_g if keep_soc else None,
    )


# --------------------------------------------------------------------------- series
@dataclass(frozen=True, eq=False)
class _Intervals:
    """Charging of the sessions inside one chunk of steps (steps relative to the chunk)."""

    ev_full: np.ndarray  # EV of each full-power interval
    kw_full: np.ndarray  # its power [kW]
    start: np.ndarray  # first step of the interval
    stop: np.ndarray  # step after its last
    ev_part: np.ndarray  # EV of each partial step
    kw_part: np.ndarray  # its power [kW]
    part_step: np.ndarray  # the partial step


class UnmanagedSeries:
    """``unmanaged`` EV power per load and per asset over chunks of steps.

    Either the charging steps are summed into their (step, column) cells ("paint"; per
    asset through the distinct EV -> asset rows, a small dense product), or each
    session's power changes are summed over time (difference arrays), whichever has fewer
    operations.

    Parameters
    ----------
    sessions
        The sessions.
    form
        Their closed form.
    setup
        Outputs of the run (loads).
    grid
        The context along the simulated steps, or ``None`` (no asset series).
    first
        First step simulated.
    """

    def __init__(
        self,
        sessions: Sessions,
        form: ClosedForm,
        setup: RunSetup,
        grid: GridView | None,
        first: int,
    ) -> None:
        self.sessions, self.form, self.grid = sessions, form, grid
        self.load_pos, self.n_loads = setup.load_pos, setup.n_loads
        self.paint = form.cells * _PAINT_COST < (sessions.n_step - first) * setup.n_loads
        #: EV -> assets (CSR index pointer and asset columns), ``None`` without a context.
        self.incidence: tuple[np.ndarray, np.ndarray] | None = None
        self.signature_assets: np.ndarray | None = None  # (signature, asset) floats
        self.signature = np.zeros(0, np.int64)  # signature of each EV
        if grid is not None:
            ev_row, asset_col = np.nonzero(grid.context.ev_assets)
            count = np.bincount(ev_row, minlength=sessions.n_ev)
            indptr = np.concatenate([[0], np.cumsum(count)])
            self.incidence = (indptr, asset_col.astype(np.int64))
            if self.paint:
                found = signatures(grid.context.ev_assets)
                if found is not None:
                    self.signature_assets, self.signature = found

    def _intervals(self, t0: int, t1: int) -> _Intervals:
        """The charging intervals and partial steps inside steps ``[t0, t1)``."""
        table, form = self.sessions.table, self.form
        first = table.arrival_bounds[max(t0 - form.max_length + 1, 0)]
        s = table.by_arrival[first : table.arrival_bounds[t1]]  # sessions that may reach it
        arrival = table.arrival_step[s].astype(np.int64)
        start = np.maximum(arrival, t0)
        stop = np.minimum(arrival + form.full_steps[s], t1)
        full = start < stop
        pstep = form.part_step[s]
        part = (pstep >= t0) & (pstep < t1)
        s_full, s_part = s[full], s[part]
        ev_full = table.ev[s_full]
        return _Intervals(
            ev_full=ev_full,
            kw_full=self.sessions.evs.charger_kw[ev_full],
            start=start[full] - t0,
            stop=stop[full] - t0,
            ev_part=table.ev[s_part],
            kw_part=form.part_kw[s_part],
            part_step=pstep[part] - t0,
        )

    def chunk(
        self, t0: int, t1: int, asset_out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """EV power per load and per asset over steps ``[t0, t1)`` [kW], float64; exactly 0
        where no EV charges. The asset series may be written into ``asset_out`` (float64,
        (t1 - t0, asset))."""
        iv = self._intervals(t0, t1)
        n = t1 - t0
        if self.paint:
            width = iv.stop - iv.start
            ends = np.cumsum(width)
            steps = np.concatenate(
                [
                    np.arange(ends[-1] if ends.size else 0)
                    + np.repeat(iv.start - ends + width, width),
                    iv.part_step,
                ]
            )
            kw = np.concatenate([np.repeat(iv.kw_full, width), iv.kw_part])

            def cells(col: np.ndarray, n_col: int) -> np.ndarray:
                column = np.concatenate([np.repeat(col[iv.ev_full], width), col[iv.ev_part]])
                return _sum_at(steps * n_col + column, kw, n * n_col).reshape(n, n_col)

            by_load = cells(self.load_pos, self.n_loads)
            if self.incidence is None:
                return by_load, None
            if self.signature_assets is not None:
                signature_kw = cells(self.signature, self.signature_assets.shape[0])
                return by_load, np.matmul(signature_kw, self.signature_assets, out=asset_out)
        rows = np.concatenate([iv.start, iv.stop, iv.part_step, iv.part_step + 1])
        evs = np.concatenate([iv.ev_full, iv.ev_full, iv.ev_part, iv.ev_part])
        kw_diff = np.concatenate([iv.kw_full, -iv.kw_full, iv.kw_part, -iv.kw_part])
        if not self.paint:
            by_load = _accumulate(rows, self.load_pos[evs], kw_diff, n, self.n_loads)
        if self.incidence is None:
            return by_load, None
        return by_load, self._asset_running_sums(rows, evs, kw_diff, n)

    def _asset_running_sums(
        self, rows: np.ndarray, evs: np.ndarray, kw_diff: np.ndarray, n: int
    ) -> np.ndarray:
        """Per-asset series [kW], (n, asset), from the EVs' power changes at ``rows``."""
        assert self.incidence is not None and self.grid is not None
        indptr, cols = self.incidence
        first_col = indptr[evs]
        deg = indptr[evs + 1] - first_col
        ends = np.cumsum(deg)
        pick = np.arange(int(ends[-1]) if ends.size else 0) + np.repeat(first_col - ends + deg, deg)
        return _accumulate(
            np.repeat(rows, deg), cols[pick], np.repeat(kw_diff, deg), n, self.grid.n_asset
        )


def signatures(ev_assets: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
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


# --------------------------------------------------------------------------- peak shaving
class ShaveWindows:
    """``v2g_peak_shave`` over chunks of steps: the step rule in windows, unmanaged power
    elsewhere.

    Parameters
    ----------
    sessions
        The sessions.
    policy
        The peak-shaving rule (with shavers).
    grid
        The context along the simulated steps.
    form
        The sessions' closed form, with the per-day states.
    setup
        Outputs of the run.

    Attributes
    ----------
    charge_delta_kw
        Per EV, charging above its unmanaged charging in windows, summed over the returned
        steps [kW·step].
    export_kw_steps
        Per EV, export summed over the returned steps [kW·step].
    """

    def __init__(
        self,
        sessions: Sessions,
        policy: PeakShavePolicy,
        grid: GridView,
        form: ClosedForm,
        setup: RunSetup,
    ) -> None:
        self.sessions, self.policy, self.grid, self.form, self.setup = (
            sessions,
            policy,
            grid,
            form,
            setup,
        )
        n_ev, evs = sessions.n_ev, sessions.evs
        self.shaved_assets = np.flatnonzero(grid.context.ev_assets[policy.shaver_ix].any(axis=0))
        self.latest_session = np.full(n_ev, -1, dtype=np.int64)  # latest arrived, per EV
        self.arrived_before = 0  # sessions arriving before this step are in latest_session
        #: A shaver is back with its shadow within this [kWh].
        self.quiet_kwh = min(1e-7, 1e-9 * evs.charge_efficiency * evs.step_h)
        self.in_window = False
        self.charge_delta_kw = np.zeros(n_ev)
        self.export_kw_steps = np.zeros(n_ev)

    def walk(
        self,
        t0: int,
        t1: int,
        unmanaged_kw: np.ndarray,
        by_load: LoadRows,
        asset_load: np.ndarray,
    ) -> None:
        """Walk steps ``[t0, t1)``: the step rule in windows, the unmanaged asset load
        ``unmanaged_kw`` (time, asset) elsewhere (already in the outputs)."""
        n_warm, cols, policy = self.setup.n_warm, self.shaved_assets, self.policy
        over_limit = unmanaged_kw[:, cols] - self.grid.limit_kw[cols]
        over = (over_limit > _WINDOW_EXCESS_KW).any(axis=1)
        candidates = np.flatnonzero(over) + t0
        t = t0
        while t < t1:
            if self.in_window:
                quiet = self.step(t, by_load, asset_load)
                if quiet and not (t + 1 < t1 and over[t + 1 - t0]):
                    self.in_window = False
                t += 1
                continue
            j = int(np.searchsorted(candidates, t))
            c = int(candidates[j]) if j < candidates.size else t1
            lo = max(t, n_warm)
            if c > lo:  # quiet steps: unmanaged, into the running maximum
                quiet_max = unmanaged_kw[lo - t0 : c - t0].max(axis=0)
                np.maximum(policy.running_max_kw, quiet_max, out=policy.running_max_kw)
            if c < t1:
                self._start(c)
                self.in_window = True
            t = c

    def _start(self, t: int) -> None:
        """Set the state before step ``t`` from the closed form (every EV unmanaged)."""
        sessions, form = self.sessions, self.form
        table, evs = sessions.table, sessions.evs
        assert form.soc0_kwh is not None and form.end_kwh is not None
        lo, hi = table.arrival_bounds[self.arrived_before], table.arrival_bounds[t]
        if hi > lo:
            idx = table.by_arrival[lo:hi].astype(np.int64)
            np.maximum.at(self.latest_session, table.ev[idx], idx)
        self.arrived_before = t
        e = np.flatnonzero(self.latest_session >= 0)
        s = self.latest_session[e]
        k = np.minimum(t, table.departure_step[s]) - table.arrival_step[s]  # steps simulated
        row = table.row[s]
        soc = evs.target_kwh.copy()
        soc[e] = np.where(
            k <= form.full_steps[s],
            form.soc0_kwh[row, e] + k * evs.full_step_kwh[e],
            form.end_kwh[row, e],
        )
        sessions.restart(t, soc, e, s)
        self.policy.shadow_soc_kwh[:] = soc

    def step(self, t: int, by_load: LoadRows, asset_load: np.ndarray) -> bool:
        """One step of the loop (:func:`~gridplan.ev.simulation.run_loop`); returns
        whether every shaver's state of charge is then within ``quiet_kwh`` of its
        shadow's."""
        sessions, policy, setup = self.sessions, self.policy, self.setup
        ix = policy.shaver_ix
        new = sessions.arrive(t)
        if new is not None:
            policy.arrived(new)
        power = policy.power_kw(t)
        sessions.integrate(power, True, False)  # may export; not counted
        if t >= setup.n_warm:
            k = t - setup.n_warm
            power_s = power[ix]
            self.charge_delta_kw[ix] += np.maximum(power_s, 0.0) - policy.shadow_kw
            self.export_kw_steps[ix] -= np.minimum(power_s, 0.0)
            row = np.bincount(setup.load_pos, power, minlength=setup.n_loads)
            row[np.abs(row) < _SNAP_KW] = 0.0
            by_load[k] = row
            ev_kw = policy.asset_ev_kw
            assert ev_kw is not None
            ev_kw = np.where(np.abs(ev_kw) < _SNAP_KW, 0.0, ev_kw)
            asset_load[k] = self.grid.base_kw(t) + ev_kw
        sessions.depart(t)
        gap = np.abs(policy.shadow_soc_kwh[ix] - sessions.soc_kwh[ix])
        return bool(gap.max(initial=0.0) <= self.quiet_kwh)


# --------------------------------------------------------------------------- the run
def run_fast(
    setup: RunSetup,
    sessions: Sessions,
    grid: GridView | None,
    policy: PeakShavePolicy | None,
) -> DispatchResult | None:
    """``unmanaged`` (``policy=None``) or ``v2g_peak_shave`` without the step loop.

    Returns ``None`` (use :func:`~gridplan.ev.simulation.run_loop`) when an EV's sessions
    overlap.
    """
    shave = policy is not None and bool(policy.shaver_ix.size)
    first = 0 if shave else setup.n_warm  # steps simulated (windows: warm-up too)
    form = closed_form(sessions, first, setup.n_warm, keep_soc=shave)
    if form is None:
        return None
    n_step, n_warm = sessions.n_step, setup.n_warm
    n_out = n_step - n_warm
    by_load = setup.load_rows(n_out)
    asset_load = np.empty((n_out, grid.n_asset), setup.dtype) if grid is not None else None
    series = UnmanagedSeries(sessions, form, setup, grid, first)
    windows = None
    if shave:
        assert policy is not None and grid is not None
        windows = ShaveWindows(sessions, policy, grid, form, setup)
    # chunks of time: small enough for the cache, long against a session (a session is
    # read by every chunk it overlaps)
    n_col = setup.n_loads + (grid.n_asset if grid is not None else 0)
    chunk = max(64, _CHUNK_ELEMENTS // max(n_col, 1), 2 * form.max_length)
    r0 = _first_base_row(grid)  # base load rows by slicing
    for t0 in range(first, n_step, chunk):
        t1 = min(t0 + chunk, n_step)
        w0 = min(max(t0, n_warm), t1)  # the chunk's returned steps: [w0, t1)
        out = slice(max(w0 - n_warm, 0), max(t1 - n_warm, 0))
        # EV power per asset straight into the result when it is float64
        direct = asset_load is not None and asset_load.dtype == np.float64
        direct = direct and windows is None and w0 == t0
        load_kw, ev_kw = series.chunk(
            t0, t1, asset_load[out] if direct and asset_load is not None else None
        )
        by_load[out] = load_kw[w0 - t0 :]
        if asset_load is None:
            continue
        assert grid is not None and ev_kw is not None
        base = grid.context.asset_base_kw
        base_kw = base[r0 + t0 : r0 + t1] if r0 >= 0 else base[grid.rows[t0:t1]]
        if windows is not None:
            unmanaged_kw = base_kw + ev_kw
            asset_load[out] = unmanaged_kw[w0 - t0 :]
            windows.walk(t0, t1, unmanaged_kw, by_load, asset_load)
        else:
            np.add(base_kw, ev_kw, out=ev_kw)
            if ev_kw.base is not asset_load:  # not written in place
                asset_load[out] = ev_kw[w0 - t0 :]
    step_h = sessions.evs.step_h
    charge_delta_kw = np.zeros(sessions.n_ev) if windows is None else windows.charge_delta_kw
    export_kw_steps = np.zeros(sessions.n_ev) if windows is None else windows.export_kw_steps
    charge_kwh = form.charge_kwh + charge_delta_kw * step_h
    return setup.result(sessions, grid, charge_kwh, export_kw_steps * step_h, by_load, asset_load)


def _first_base_row(grid: GridView | None) -> int:
    """``r0`` when the base load rows of the simulated steps are ``r0 + t`` (a slice), else -1."""
    if grid is None or not grid.rows.size or not (np.diff(grid.rows) == 1).all():
        return -1
    return int(grid.rows[0])
