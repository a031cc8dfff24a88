"""Solve a whole time series: parameters, chunks of steps, worker threads, public calls.

:func:`solve_timeseries` and :func:`iter_timeseries` validate everything first
(:func:`prepare`: parameters, the compiled network, the output selection, the inputs),
then cut the steps into chunks of ``chunk_size`` rows. Each chunk is solved on its own
(:func:`solve_chunk`: node injections, fixed-point iteration, results), on ``threads``
worker threads (numpy, BLAS and SuperLU release the GIL), with BLAS limited to one thread
while any chunk is in flight.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridplan.core.errors import ConfigError
from gridplan.powerflow.inputs import Input, LoadPlan, chunk_load, load_plan, read_inputs
from gridplan.powerflow.iteration import iterate
from gridplan.powerflow.model import CompiledNetwork, compile_network
from gridplan.powerflow.results import (
    FlowResult,
    Selection,
    empty_result,
    selection,
    step_rows,
    write_results,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Plan",
    "iter_timeseries",
    "prepare",
    "solve_chunk",
    "solve_timeseries",
]

#: Default number of time steps solved together (memory per chunk is roughly
#: ``chunk_size × (buses + branches) × 100 B``).
DEFAULT_CHUNK_SIZE = 512


def _check_params(max_iter: int, tol_pu: float, chunk_size: int, threads: int) -> None:
    if not (isinstance(max_iter, int | np.integer) and max_iter >= 1):
        raise ConfigError(f"expected an integer >= 1, got {max_iter!r}", field="max_iter")
    if not (np.isfinite(tol_pu) and tol_pu > 0):
        raise ConfigError(f"expected a positive tolerance [pu], got {tol_pu!r}", field="tol_pu")
    if not (isinstance(chunk_size, int | np.integer) and chunk_size >= 1):
        raise ConfigError(f"expected an integer >= 1, got {chunk_size!r}", field="chunk_size")
    if not (isinstance(threads, int | np.integer) and threads >= 1):
        raise ConfigError(f"expected an integer >= 1, got {threads!r}", field="threads")


@dataclass(frozen=True)
class Plan:
    """Everything a chunk needs besides its rows: fixed for one call."""

    cn: CompiledNetwork
    inputs: list[Input]
    loads: LoadPlan
    sel: Selection
    max_iter: int
    tol_pu: float


#: Largest working set of one pass over a chunk [bytes]: a chunk whose (steps × nodes)
#: complex arrays would be larger is solved in sub-chunks of this size, so that the
#: injections, voltages and currents of a pass stay in the CPU caches and are not
#: allocated (page-faulted) afresh for every chunk. At 2 MiB a 9,105-node grid is solved
#: 14 steps at a time; SimBench grids up to ~250 nodes keep the whole 512-step chunk.
PASS_BYTES = 2 << 20


def _solve_rows(plan: Plan, start: int, stop: int, rows: FlowResult) -> None:
    """Solve input rows ``start:stop`` into the result rows ``rows`` (same length)."""
    cn = plan.cn
    n_l = int(cn.nonslack.size)
    m = stop - start
    sc = chunk_load(plan.loads, plan.inputs, n_l, start, stop)
    v = np.empty((m, cn.n_nodes), dtype=np.complex128)
    v[:, :n_l] = np.nan
    v[:, n_l:] = cn.v_slack
    cur = np.empty((m, n_l), dtype=np.complex128)
    conv, iters = iterate(cn, sc, plan.max_iter, plan.tol_pu, v, cur)
    with np.errstate(all="ignore"):  # unconverged steps compute garbage, then are NaN
        write_results(cn, plan.sel, v, cur, conv, iters, rows)


def solve_chunk(plan: Plan, steps: slice, out: FlowResult | None) -> FlowResult:
    """Solve the steps ``steps``; results go into ``out`` (full-length) when given."""
    m = steps.stop - steps.start
    rows = empty_result(plan.cn, m, plan.sel) if out is None else step_rows(out, steps)
    per_pass = max(1, PASS_BYTES // (16 * max(plan.cn.n_nodes, 1)))
    for a in range(0, m, per_pass):
        b = min(a + per_pass, m)
        sub = rows if (a, b) == (0, m) else step_rows(rows, slice(a, b))
        _solve_rows(plan, steps.start + a, steps.start + b, sub)
    return rows


def prepare(
    net: Any,
    load_p_kw: Any,
    load_q_kvar: Any,
    sgen_p_kw: Any,
    sgen_q_kvar: Any,
    max_iter: int,
    tol_pu: float,
    chunk_size: int,
    threads: int,
    lines: Any,
    trafos: Any,
    buses: Any = None,
) -> tuple[Plan, int]:
    """Validate everything and build the call's :class:`Plan` (before any solving)."""
    _check_params(max_iter, tol_pu, chunk_size, threads)
    cn = net if isinstance(net, CompiledNetwork) else compile_network(net)
    sel = selection(cn, lines, trafos, buses)
    n_steps, inputs = read_inputs(cn, load_p_kw, load_q_kvar, sgen_p_kw, sgen_q_kvar)
    for inp in inputs:
        inp.check_all()
    plan = Plan(
        cn=cn,
        inputs=inputs,
        loads=load_plan(cn, inputs),
        sel=sel,
        max_iter=int(max_iter),
        tol_pu=float(tol_pu),
    )
    return plan, n_steps


def iter_timeseries(
    net: Any,
    load_p_kw: Any,
    load_q_kvar: Any = None,
    sgen_p_kw: Any = None,
    sgen_q_kvar: Any = None,
    *,
    max_iter: int = 100,
    tol_pu: float = 1e-8,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int = 1,
    lines: Any = None,
    trafos: Any = None,
    buses: Any = None,
) -> Iterator[tuple[slice, FlowResult]]:
    """Solve a time series chunk by chunk, yielding each chunk's results in order.

    Same parameters and solution as :func:`solve_timeseries`, but memory stays bounded by
    ``chunk_size × threads`` whatever the number of steps: the inputs may be any
    row-sliceable arrays (``numpy.memmap``, HDF5/zarr datasets, or any object with
    ``shape`` and ``__getitem__(slice)``), read one chunk at a time, and the caller
    reduces each chunk (e.g. annual maxima per Monte Carlo draw) before it is discarded.
    In-memory numpy inputs are validated before the first chunk; other inputs chunk by
    chunk (a non-finite value then raises :class:`~gridplan.core.errors.ConfigError` when its
    chunk is reached).

    Yields
    ------
    steps : slice
        The rows of the inputs this chunk covers.
    result : FlowResult
        Results for those rows.
    """
    plan, n_steps = prepare(
        net, load_p_kw, load_q_kvar, sgen_p_kw, sgen_q_kvar,
        max_iter, tol_pu, chunk_size, threads, lines, trafos, buses,
    )  # fmt: skip
    yield from _run(plan, n_steps, chunk_size, threads)


class _OneBlasThread:
    """Context manager: BLAS limited to one thread while any chunk is being solved.

    The products here are small (non-slack buses × chunk): multi-threaded BLAS only adds
    synchronisation, and on a loaded machine it made a year on a 44-bus grid about 9x
    slower (3.2 s instead of 0.36 s, measured). Parallelism comes from ``threads`` (chunks
    on worker threads) instead.

    BLAS thread limits are process-wide, so the limit is reference counted over all
    chunks in flight (on any thread, in any call): the first one to enter sets it, the
    last one to leave restores the original limits. The ``threadpoolctl`` controller is
    built once: ``threadpool_limits`` rescans ``/proc`` and the loaded libraries on every
    call (~1 ms; it was a third of the time of a year on a 44-bus grid).
    """

    _lock = threading.Lock()
    _depth = 0
    _controller: Any = None
    _limiter: Any = None

    def __enter__(self) -> None:
        cls = type(self)
        with cls._lock:
            if cls._depth == 0:
                if cls._controller is None:
                    from threadpoolctl import ThreadpoolController

                    cls._controller = ThreadpoolController()
                cls._limiter = cls._controller.limit(limits=1, user_api="blas")
            cls._depth += 1

    def __exit__(self, *exc: object) -> None:
        cls = type(self)
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0:
                limiter, cls._limiter = cls._limiter, None
                limiter.restore_original_limits()


def _solve_chunk_one_blas_thread(plan: Plan, steps: slice, out: FlowResult | None) -> FlowResult:
    """:func:`solve_chunk` with BLAS limited to one thread (see :class:`_OneBlasThread`)."""
    with _OneBlasThread():
        return solve_chunk(plan, steps, out)


def _run(
    plan: Plan,
    n_steps: int,
    chunk_size: int,
    threads: int,
    out: FlowResult | None = None,
) -> Iterator[tuple[slice, FlowResult]]:
    """Solve the chunks in order, on ``threads`` worker threads.

    With ``out`` (a full-length result) every chunk writes into its rows of ``out``;
    otherwise each chunk gets its own arrays.
    """
    chunks = [slice(a, min(a + chunk_size, n_steps)) for a in range(0, n_steps, chunk_size)]
    if threads == 1 or len(chunks) == 1:
        for steps in chunks:
            yield steps, _solve_chunk_one_blas_thread(plan, steps, out)
        return
    # numpy and scipy release the GIL in their loops, so chunks solve in parallel; a
    # bounded queue of submitted chunks keeps memory at two chunks per thread.
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque[tuple[slice, Future[FlowResult]]] = deque()
        for steps in chunks:
            future = pool.submit(_solve_chunk_one_blas_thread, plan, steps, out)
            pending.append((steps, future))
            if len(pending) >= 2 * threads:
                done_steps, done = pending.popleft()
                yield done_steps, done.result()
        while pending:
            done_steps, done = pending.popleft()
            yield done_steps, done.result()


def solve_timeseries(
    net: Any,
    load_p_kw: Any,
    load_q_kvar: Any = None,
    sgen_p_kw: Any = None,
    sgen_q_kvar: Any = None,
    *,
    max_iter: int = 100,
    tol_pu: float = 1e-8,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int = 1,
    lines: Any = None,
    trafos: Any = None,
    buses: Any = None,
) -> FlowResult:
    """Balanced AC power flow for every time step of a series on one topology.

    The net is compiled once (see :func:`compile_network`) and all steps are solved in
    vectorised chunks by a fixed-point (Z-bus) iteration. Each step converges
    independently; a step that does not reach ``tol_pu`` within ``max_iter`` iterations
    is flagged ``converged=False`` and its results are NaN (the batch does not fail).

    Parameters
    ----------
    net : pandapower.pandapowerNet or CompiledNetwork
        The network, or the result of :func:`compile_network` to reuse a compile.
    load_p_kw : array_like, shape (time, load)
        Active power of each ``net.load`` row, columns in ``net.load.index`` order [kW];
        positive = consumption. Used as given (``net.load.scaling`` is not applied);
        out-of-service loads, and loads at unsolved buses, are ignored. Monte Carlo
        draws are stacked along the time axis (``draw × time`` rows).
    load_q_kvar : array_like, shape (time, load), optional
        Reactive power of each load [kvar]; positive = inductive consumption. ``None``
        keeps the net's ``q_mvar × scaling`` for every step.
    sgen_p_kw : array_like, shape (time, sgen), optional
        Active power of each ``net.sgen`` row, ``net.sgen.index`` order [kW]; positive =
        generation. ``None`` keeps the net's ``p_mw × scaling``.
    sgen_q_kvar : array_like, shape (time, sgen), optional
        Reactive power of each sgen [kvar]; positive = injection into the grid. ``None``
        keeps the net's ``q_mvar × scaling``.
    max_iter : int, default 100
        Iteration limit per step [-].
    tol_pu : float, default 1e-8
        Convergence tolerance on the estimated error left in any complex bus voltage [pu]:
        ``dv·rho/(1-rho)`` with ``dv`` the largest voltage change of the last iteration and
        ``rho`` its ratio to the previous one (the iteration contracts linearly, by a
        factor of 20–50 per iteration on SimBench feeders). At the default the results
        agree with ``pandapower.runpp`` (1e-8 MVA mismatch) to ~1e-8 pu and ~1e-5
        percentage points of loading.
    chunk_size : int, default 512
        Steps solved together [-]. Working memory is about
        ``chunk_size × (buses + branches) × 100`` bytes per thread on top of inputs and
        results; a few hundred steps keep it in the CPU caches.
    threads : int, default 1
        Worker threads solving chunks in parallel [-]. Results do not depend on it. With
        more than one, limit BLAS to one thread (``OPENBLAS_NUM_THREADS=1`` or
        ``threadpoolctl``), otherwise BLAS threads and chunk threads compete for cores.
        numpy, BLAS and SuperLU release the GIL, so on a machine with free cores two
        threads solve a year about 1.8× faster (``benchmarks/results/powerflow.md``).
    lines : sequence of int, optional
        Labels of ``net.line.index`` to report (in this order); ``None`` reports all.
        Only the reported branches' currents are computed, so a caller that monitors a
        few assets saves time and memory. ``losses_kw`` always covers the whole network.
    trafos : sequence of int, optional
        Labels of ``net.trafo.index`` to report; ``None`` reports all.
    buses : sequence of int, optional
        Labels of ``net.bus.index`` whose voltages are reported (in this order); ``None``
        reports all. On a large feeder a study that checks a few hundred service points
        saves most of the result memory (``vm_pu`` and ``va_degree`` are
        ``time × buses × 8`` bytes each: 2.6 GB each for a year of quarter-hours on a
        9,099-bus grid).

    Returns
    -------
    FlowResult
        Memory of the results is about ``time × (2 × bus + 2 × line + trafo + 3) × 8``
        bytes (of the reported buses, lines and transformers); for very long, stacked
        or large-feeder series use :func:`iter_timeseries` and reduce each chunk.

    Raises
    ------
    UnsupportedElementError
        The net contains elements the solver does not model (see :func:`compile_network`).
    ConfigError
        Wrong input shape, non-finite input values, bad parameters, or ``lines`` /
        ``trafos`` / ``buses`` labels that are not in the net (before any solving).

    Notes
    -----
    Storage units, motors, wards and shunts stay at their values in the net for every
    step. Loads with ``const_z_*_percent`` / ``const_i_*_percent`` are voltage dependent
    exactly as in pandapower (which applies the per-bus mean of those percentages to the
    bus's net load).
    """
    plan, n_steps = prepare(
        net, load_p_kw, load_q_kvar, sgen_p_kw, sgen_q_kvar,
        max_iter, tol_pu, chunk_size, threads, lines, trafos, buses,
    )  # fmt: skip
    result = empty_result(plan.cn, n_steps, plan.sel)
    for _ in _run(plan, n_steps, chunk_size, threads, out=result):
        pass
    n_bad = int((~result.converged).sum())
    if n_bad:
        logger.warning(
            "%d of %d steps did not converge within %d iterations; their results are NaN",
            n_bad,
            n_steps,
            max_iter,
        )
    return result
