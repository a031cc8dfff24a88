"""Benchmark: time-series power flow with ``gridplan.powerflow.solver.solve_timeseries``.

Issue 5 targets, measured in one process on the same machine:

* a full SimBench year (35,136 quarter-hours) on ``1-LV-semiurb4--0-sw`` and
  ``1-MV-semiurb--0-sw``, against (a) ``pandapower.timeseries.run_timeseries`` with
  ``ConstControl`` / ``DFData`` on one week (672 steps) of the same series — target ≥ 1000×
  faster per step — and (b) power-grid-model's batch power flow on the same year at the
  same thread count — target: no slower. pandapower runs twice: in its recommended
  configuration with numba (JIT compiled before timing; the headline comparison when it
  is the faster one) and with ``numba=False`` passed through ``run_timeseries`` to
  ``runpp``;
* gridplan runs with its numba kernels (:mod:`gridplan.powerflow.kernels`, the default) and, at
  1 thread, on their numpy twins: the like-for-like partner of pandapower without numba;
* accuracy: max |Δvm| against pandapower on the week (run_timeseries results);
* memory: a year × 100 Monte Carlo draws on a ~200-bus feeder, stacked along time and
  solved chunk by chunk (``--mode draws``, run in a fresh process for a clean peak RSS);
* ``--mode method``: time of one ``Z_LL`` application, dense vs sparse LU vs block form, by
  grid size, next to the cost the ``method="auto"`` model estimates.

Run ``python benchmarks/bench_powerflow.py`` (all modes, ~10 min); the result is written
to ``benchmarks/results/powerflow.md``. ``--quick`` shortens everything for a smoke run.
Needs the ``bench`` extra (power-grid-model, psutil); power-grid-model-io is used
for the net conversion when installed.

BLAS runs single-threaded (set below, before numpy loads): the solver's own ``threads``
parameter parallelises over chunks, so "2 threads" means 2 threads in total for gridplan,
as ``threading=2`` does for power-grid-model.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import copy
import gc
import importlib.metadata
import importlib.util
import json
import logging
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info

from gridplan.powerflow import kernels as _kernels
from gridplan.powerflow.solver import (
    CompiledNetwork,
    compile_network,
    iter_timeseries,
    solve_timeseries,
)

RESULTS = Path(__file__).resolve().parent / "results" / "powerflow.md"
YEAR_GRIDS = ("1-LV-semiurb4--0-sw", "1-MV-semiurb--0-sw")
DRAWS_GRID = "1-MVLV-urban-6.305-0-sw"  # 202 buses: MV ring + one LV grid
WEEK = 672

logging.getLogger("pandapower").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """Absolute SimBench series [kW, kvar], (time, element)."""

    load_p_kw: np.ndarray
    load_q_kvar: np.ndarray
    sgen_p_kw: np.ndarray


def simbench_case(code: str) -> tuple[Any, Series]:
    import simbench

    net = simbench.get_simbench_net(code)
    prof = simbench.get_absolute_values(net, profiles_instead_of_study_cases=True)
    series = Series(
        load_p_kw=np.ascontiguousarray(prof[("load", "p_mw")].to_numpy() * 1e3),
        load_q_kvar=np.ascontiguousarray(prof[("load", "q_mvar")].to_numpy() * 1e3),
        sgen_p_kw=np.ascontiguousarray(prof[("sgen", "p_mw")].to_numpy() * 1e3),
    )
    net.load["scaling"] = 1.0
    net.sgen["scaling"] = 1.0
    return net, series


def peak_week(series: Series) -> slice:
    """The 672 steps starting at the day of the highest total load."""
    n = series.load_p_kw.shape[0]
    peak = int(series.load_p_kw.sum(axis=1).argmax())
    start = min(max(0, peak - peak % 96 - 3 * 96), n - WEEK)
    return slice(start, start + WEEK)


class PeakRss:
    """Peak resident set size [bytes] of this process while the block runs (psutil)."""

    def __init__(self, interval_s: float = 0.005) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval_s
        self.base = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> PeakRss:
        gc.collect()
        self.base = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def increase_mb(self) -> float:
        """Peak minus RSS at entry [MB]."""
        return (self.peak - self.base) / 1e6


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Minimum wall time [s] over ``repeats`` runs (the machine may be shared) and a result."""
    best, out = np.inf, None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def warm_cpu_of(fn: Callable[[], Any], repeats: int) -> float:
    """Minimum CPU time [s] of back-to-back calls with warm caches (no ``gc.collect()``
    in between: it walks every Python object and evicts the small working set of a
    stage, which inside the solver is always warm)."""
    fn()
    best = np.inf
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def thread_scaling(fn: Callable[[], Any], repeats: int) -> float:
    """Speed-up of ``repeats`` calls of ``fn`` on each of 2 threads vs the same work serially."""

    def work() -> None:
        for _ in range(repeats):
            fn()

    t0 = time.perf_counter()
    work()
    work()
    serial = time.perf_counter() - t0
    pool = [threading.Thread(target=work) for _ in range(2)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return serial / (time.perf_counter() - t0)


def thread_scaling_control() -> float:
    """Speed-up of a GIL-free numpy loop on 2 threads vs 1: how many cores are really free."""
    a = np.random.default_rng(0).standard_normal((1000, 1000))
    return thread_scaling(partial(np.sin, a), 30)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------------------
# pandapower run_timeseries
# --------------------------------------------------------------------------------------


def run_pandapower_week(
    net: Any, series: Series, week: slice, **runpp_kwargs: Any
) -> tuple[float, dict[str, Any]]:
    """``run_timeseries`` with ConstControl/DFData over the week; seconds and results.

    ``runpp_kwargs`` go through ``run_timeseries`` to every ``runpp`` (e.g. ``numba=False``).
    """
    import pandas as pd
    from pandapower.control import ConstControl
    from pandapower.timeseries import DFData, OutputWriter, run_timeseries

    net = copy.deepcopy(net)
    steps = range(week.stop - week.start)

    def frame(a: np.ndarray, index: Any) -> pd.DataFrame:
        return pd.DataFrame(a[week] / 1e3, columns=index)

    for table, col, arr in (
        ("load", "p_mw", series.load_p_kw),
        ("load", "q_mvar", series.load_q_kvar),
        ("sgen", "p_mw", series.sgen_p_kw),
    ):
        idx = net[table].index
        ConstControl(
            net, table, col, element_index=idx, data_source=DFData(frame(arr, idx)),
            profile_name=idx,
        )  # fmt: skip
    ow = OutputWriter(net, steps, output_path=None)
    ow.log_variable("res_bus", "vm_pu")
    ow.log_variable("res_line", "loading_percent")
    ow.log_variable("res_trafo", "loading_percent")
    t0, c0 = time.perf_counter(), time.process_time()
    run_timeseries(net, time_steps=steps, verbose=False, **runpp_kwargs)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = ow.output
    return seconds, {
        "cpu_s": cpu,
        "numba_used": bool(net._options.get("numba", False)),
        "vm_pu": out["res_bus.vm_pu"].to_numpy(),
        "line_loading_pct": out["res_line.loading_percent"].to_numpy(),
        "trafo_loading_pct": out["res_trafo.loading_percent"].to_numpy(),
    }


# --------------------------------------------------------------------------------------
# power-grid-model
# --------------------------------------------------------------------------------------


def pgm_model(net: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """power-grid-model of the net via power_grid_model_io's PandaPowerConverter."""
    from power_grid_model import PowerGridModel
    from power_grid_model_io.converters import PandaPowerConverter

    net = copy.deepcopy(net)
    # SimBench leaves trafo vector_group empty (the converter needs it): take the clock
    # number from shift_degree, which is what pandapower uses for the phase shift.
    for i in net.trafo.index:
        clock = round(float(net.trafo.at[i, "shift_degree"]) / 30.0) % 12
        # an odd clock needs a delta winding, an even one (e.g. the EPRI feeders' 0) not
        net.trafo.at[i, "vector_group"] = f"Dyn{clock}" if clock % 2 else f"YNyn{clock}"
    conv = PandaPowerConverter()
    data, _ = conv.load_input_data(net, make_extra_info=False)
    no_sgen = np.zeros(0, dtype=np.int32)  # the converter has no ids for an empty table
    ids = {
        "load": conv._get_pgm_ids("load", net.load.index, name="const_power").to_numpy(),
        "sgen": conv._get_pgm_ids("sgen", net.sgen.index).to_numpy() if len(net.sgen) else no_sgen,
        "bus": conv._get_pgm_ids("bus", net.bus.index).to_numpy(),
        "node_order": np.asarray(data["node"]["id"]),
    }
    return PowerGridModel(data), ids


def pgm_update(ids: dict[str, np.ndarray], series: Series, steps: slice) -> dict[str, Any]:
    from power_grid_model import ComponentType, DatasetType, initialize_array

    n = steps.stop - steps.start
    load = initialize_array(DatasetType.update, ComponentType.sym_load, (n, ids["load"].size))
    load["id"] = ids["load"]
    load["p_specified"] = series.load_p_kw[steps] * 1e3
    load["q_specified"] = series.load_q_kvar[steps] * 1e3
    if not ids["sgen"].size:
        return {ComponentType.sym_load: load}
    gen = initialize_array(DatasetType.update, ComponentType.sym_gen, (n, ids["sgen"].size))
    gen["id"] = ids["sgen"]
    gen["p_specified"] = series.sgen_p_kw[steps] * 1e3
    return {ComponentType.sym_load: load, ComponentType.sym_gen: gen}


def pgm_solve(model: Any, update: dict[str, Any], threading_: int, method: str) -> Any:
    from power_grid_model import CalculationMethod, ComponentType

    return model.calculate_power_flow(
        update_data=update,
        threading=threading_,
        error_tolerance=1e-8,
        max_iterations=30,
        calculation_method=getattr(CalculationMethod, method),
        output_component_types={
            ComponentType.node: ["u_pu"],
            ComponentType.line: ["loading"],
            ComponentType.transformer: ["loading"],
        },
    )


def pgm_vm(out: Any, ids: dict[str, np.ndarray]) -> np.ndarray:
    from power_grid_model import ComponentType

    pos = {int(v): k for k, v in enumerate(ids["node_order"])}
    cols = [pos[int(i)] for i in ids["bus"]]
    return np.asarray(out[ComponentType.node]["u_pu"])[:, cols]


# --------------------------------------------------------------------------------------
# modes
# --------------------------------------------------------------------------------------


class OursTimer:
    """gridplan's solve of a series, timed: the best wall and CPU times over calls [s].

    Each call solves the series once on 1 thread (wall and CPU time), once on 2 threads
    (wall time) and once on 1 thread on the numpy twins of the kernels (CPU time), with a
    ``gc.collect()`` before each. ``solve`` and ``numba_disabled`` default to gridplan's;
    any pair with the same interface can be timed (e.g. an older version of the solver,
    side by side in one process).
    """

    def __init__(
        self,
        cn: Any,
        args: tuple[np.ndarray, ...],
        solve: Callable[..., Any] = solve_timeseries,
        numba_disabled: Callable[[], Any] = _kernels.numba_disabled,
    ) -> None:
        self.cn = cn
        self.args = args
        self.solve = solve
        self.numba_disabled = numba_disabled
        self.best = {"1t": np.inf, "1t_cpu": np.inf, "2t": np.inf, "1t_numpy_cpu": np.inf}

    def __call__(self) -> Any:
        """One round of the three timings; returns the 1-thread result."""
        best, cn, args = self.best, self.cn, self.args
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        out = self.solve(cn, *args)
        best["1t"] = min(best["1t"], time.perf_counter() - t0)
        best["1t_cpu"] = min(best["1t_cpu"], time.process_time() - c0)
        gc.collect()
        t0 = time.perf_counter()
        self.solve(cn, *args, threads=2)
        best["2t"] = min(best["2t"], time.perf_counter() - t0)
        gc.collect()
        with self.numba_disabled():  # the same solve on the numpy twins of the kernels
            c0 = time.process_time()
            self.solve(cn, *args)
            best["1t_numpy_cpu"] = min(best["1t_numpy_cpu"], time.process_time() - c0)
        return out

    def per_step_ms(self, n_steps: int) -> dict[str, float]:
        """The best times per step [ms] under the record's keys."""
        return {
            "ours_1t_ms": self.best["1t"] / n_steps * 1e3,
            "ours_1t_cpu_ms": self.best["1t_cpu"] / n_steps * 1e3,
            "ours_2t_ms": self.best["2t"] / n_steps * 1e3,
            "ours_numpy_1t_cpu_ms": self.best["1t_numpy_cpu"] / n_steps * 1e3,
        }


def _compile_timed(net: Any, rec: dict[str, Any]) -> CompiledNetwork:
    """``compile_network(net)``, with its time, nodes, method and blocks into ``rec``."""
    t0 = time.perf_counter()
    cn = compile_network(net)
    rec["compile_s"] = time.perf_counter() - t0
    rec["nodes"] = cn.n_nodes
    rec["method"] = cn.method
    if cn.blocks is not None:
        sizes = [b - a for a, b, _ in cn.blocks.blocks]
        rec["blocks"] = (
            f"{len(sizes)} blocks of ≤ {max(sizes)} nodes, {cn.blocks.n_sep} separator nodes"
        )
    return cn


def _ours_details(
    rec: dict[str, Any],
    net: Any,
    cn: CompiledNetwork,
    series: Series,
    args: tuple[np.ndarray, ...],
    res: Any,
    repeats: int,
) -> None:
    """Subset timing, iterations, memory, stage breakdown and thread scaling of gridplan."""
    n_steps = args[0].shape[0]
    few = {"lines": net.line.index[:2].tolist(), "trafos": net.trafo.index[:1].tolist()}
    sec, _ = best_of(partial(solve_timeseries, cn, *args, **few), repeats)
    rec["ours_subset_1t_ms"] = sec / n_steps * 1e3
    assert res.converged.all(), "gridplan: unconverged steps in the benchmark year"
    rec["iterations_mean"] = float(res.iterations.mean())
    rec["iterations_max"] = int(res.iterations.max())
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    solve_timeseries(cn, *args)
    rec["ours_tracemalloc_mb"] = (tracemalloc.get_traced_memory()[1] - base) / 1e6
    tracemalloc.stop()
    rec["breakdown_us"] = breakdown(cn, series)
    if cn.lu is not None:  # scipy's SuperLU solve on 2 threads, next to the numpy control
        rhs = np.ones((cn.nonslack.size, 512), dtype=np.complex128, order="F")
        rec["splu_thread_scaling"] = thread_scaling(partial(cn.lu.solve, rhs), 200)
        rec["numpy_thread_scaling"] = thread_scaling_control()
    rec["result_mb"] = (
        sum(
            getattr(res, f).nbytes
            for f in ("vm_pu", "va_degree", "line_loading_pct", "line_i_ka", "trafo_loading_pct")
        )
        / 1e6
    )


def _pandapower_weeks(
    rec: dict[str, Any], net: Any, series: Series, week: slice, quick: bool, ours: OursTimer
) -> dict[str, Any]:
    """pandapower run_timeseries on the peak week: with numba (pandapower's recommended
    configuration; a short run first so that JIT compilation is not timed) and without,
    with one round of gridplan's timings after each run. Returns the last run's results."""
    rec["pp_steps"] = week.stop - week.start
    pp_out: dict[str, Any] = {}
    for label, kwargs in (("numba", {}), ("no_numba", {"numba": False})):
        if label == "numba" and importlib.util.find_spec("numba") is None:
            rec["pp_numba"] = "numba not installed"
            continue
        run_pandapower_week(net, series, slice(week.start, week.start + 24), **kwargs)
        best_s, best_cpu = np.inf, np.inf
        for _ in range(1 if quick else 3):
            sec, out = run_pandapower_week(net, series, week, **kwargs)
            best_s, best_cpu = min(best_s, sec), min(best_cpu, out["cpu_s"])
            ours()
        rec[f"pp_{label}_ms"] = best_s / rec["pp_steps"] * 1e3
        rec[f"pp_{label}_cpu_ms"] = best_cpu / rec["pp_steps"] * 1e3
        rec[f"pp_{label}_numba_used"] = out["numba_used"]
        pp_out = out
    # the headline: the faster pandapower configuration (the stricter comparison)
    fastest = min(
        (k for k in ("numba", "no_numba") if f"pp_{k}_ms" in rec),
        key=lambda k: rec[f"pp_{k}_cpu_ms"],
    )
    rec["pp_fastest"] = fastest
    rec["pp_ms"] = rec[f"pp_{fastest}_ms"]
    rec["pp_cpu_ms"] = rec[f"pp_{fastest}_cpu_ms"]
    return pp_out


def _pgm_year(
    rec: dict[str, Any],
    net: Any,
    series: Series,
    year: slice,
    week: slice,
    repeats: int,
    pp_out: dict[str, Any],
) -> None:
    """power-grid-model batch on the same year (when installed), and its accuracy."""
    n_steps = year.stop - year.start
    if importlib.util.find_spec("power_grid_model") is None:
        rec["pgm"] = "power-grid-model not installed"
        return
    if importlib.util.find_spec("power_grid_model_io") is None:
        rec["pgm"] = "power_grid_model_io not installed (needed to convert the net)"
        return
    try:
        model, ids = pgm_model(net)
        update = pgm_update(ids, series, year)
        for method in ("newton_raphson", "iterative_current"):
            with PeakRss() as rss:  # first call: allocator pools not yet warm
                pgm_solve(model, update, 2, method)
            rec[f"pgm_{method}_rss_mb"] = rss.increase_mb
            for thr, label in ((-1, 1), (2, 2)):
                sec, _ = best_of(partial(pgm_solve, model, update, thr, method), repeats)
                rec[f"pgm_{method}_{label}t_ms"] = sec / n_steps * 1e3
        week_out = pgm_solve(model, pgm_update(ids, series, week), -1, "newton_raphson")
        rec["pgm_dvm_vs_pp"] = float(np.nanmax(np.abs(pgm_vm(week_out, ids) - pp_out["vm_pu"])))
        rec["pgm"] = "ok"
    except Exception as exc:  # record why, do not lose the other results
        rec["pgm"] = f"failed: {type(exc).__name__}: {exc}"


def bench_year(code: str, quick: bool) -> dict[str, Any]:
    """The full year on one SimBench grid: gridplan against pandapower and
    power-grid-model (see the module docstring)."""
    net, series = simbench_case(code)
    n_steps = series.load_p_kw.shape[0] if not quick else 4 * WEEK
    year = slice(0, n_steps)
    week = peak_week(series) if not quick else slice(0, 96)
    args = (series.load_p_kw[year], series.load_q_kvar[year], series.sgen_p_kw[year])
    rec: dict[str, Any] = {"grid": code, "buses": len(net.bus), "steps": n_steps}
    rec["loadavg_start"] = loadavg()
    rec["thread_scaling_control"] = thread_scaling_control()
    cn = _compile_timed(net, rec)
    repeats = 5 if not quick else 1
    with PeakRss() as rss:  # first call: allocator pools not yet warm
        res = solve_timeseries(cn, *args, threads=2)
    rec["ours_rss_mb"] = rss.increase_mb
    # gridplan's year: minima over runs before and between the pandapower runs, so that
    # both sides get the quiet moments of a shared machine (see _pandapower_weeks)
    ours = OursTimer(cn, args)
    rec["kernels"] = "numba" if _kernels.enabled() else "numpy (numba not available)"
    for _ in range(repeats):
        res = ours()
    _ours_details(rec, net, cn, series, args, res, repeats)
    pp_out = _pandapower_weeks(rec, net, series, week, quick, ours)
    rec.update(ours.per_step_ms(n_steps))
    ours_week = solve_timeseries(
        cn, series.load_p_kw[week], series.load_q_kvar[week], series.sgen_p_kw[week]
    )
    rec["dvm_vs_pp"] = float(np.nanmax(np.abs(ours_week.vm_pu - pp_out["vm_pu"])))
    rec["dline_vs_pp"] = float(
        np.nanmax(np.abs(ours_week.line_loading_pct - pp_out["line_loading_pct"]))
    )
    rec["dtrafo_vs_pp"] = float(
        np.nanmax(np.abs(ours_week.trafo_loading_pct - pp_out["trafo_loading_pct"]))
    )
    _pgm_year(rec, net, series, year, week, repeats, pp_out)
    rec["loadavg_end"] = loadavg()
    return rec


def bench_gridplan(code: str, quick: bool, repeats: int = 11) -> dict[str, Any]:
    """gridplan's own year solve only (no pandapower, no power-grid-model): the best of
    ``repeats`` rounds of :class:`OursTimer`, e.g. to time a change of the solver."""
    net, series = simbench_case(code)
    n_steps = series.load_p_kw.shape[0] if not quick else 4 * WEEK
    args = (series.load_p_kw[:n_steps], series.load_q_kvar[:n_steps], series.sgen_p_kw[:n_steps])
    rec: dict[str, Any] = {"grid": code, "buses": len(net.bus), "steps": n_steps}
    rec["loadavg_start"] = loadavg()
    rec["thread_scaling_control"] = thread_scaling_control()
    cn = _compile_timed(net, rec)
    solve_timeseries(cn, *args, threads=2)  # first call: allocator pools not yet warm
    ours = OursTimer(cn, args)
    rec["kernels"] = "numba" if _kernels.enabled() else "numpy (numba not available)"
    for _ in range(repeats if not quick else 1):
        res = ours()
    assert res.converged.all(), "gridplan: unconverged steps in the benchmark year"
    rec.update(ours.per_step_ms(n_steps))
    rec["iterations_mean"] = float(res.iterations.mean())
    rec["loadavg_end"] = loadavg()
    return rec


def gridplan_line(rec: dict[str, Any]) -> str:
    """One line of ``--mode gridplan`` output: µs per step."""
    return (
        f"{rec['grid']}: {rec['steps']} steps, Z_LL {rec['method']}; µs per step: "
        f"1 thread {rec['ours_1t_ms'] * 1e3:.2f} (CPU {rec['ours_1t_cpu_ms'] * 1e3:.2f}), "
        f"2 threads {rec['ours_2t_ms'] * 1e3:.2f}, "
        f"numpy kernels 1 thread CPU {rec['ours_numpy_1t_cpu_ms'] * 1e3:.2f}"
    )


def breakdown(cn: CompiledNetwork, series: Series, m: int = 512) -> dict[str, float]:
    """CPU µs per step of each stage on one chunk of ``m`` steps (1 thread)."""
    from gridplan.powerflow import inputs, iteration, results, solve

    rows = slice(10_000, 10_000 + m)
    plan, _ = solve.prepare(
        cn, series.load_p_kw[rows], series.load_q_kvar[rows], series.sgen_p_kw[rows], None,
        100, 1e-8, m, 1, None, None,
    )  # fmt: skip
    n_l = int(cn.nonslack.size)
    sc = inputs.chunk_load(plan.loads, plan.inputs, n_l, 0, m)
    v = np.full((m, cn.n_nodes), np.nan, dtype=np.complex128)
    v[:, n_l:] = cn.v_slack
    cur = np.empty((m, n_l), dtype=np.complex128)
    conv, iters = iteration.iterate(cn, sc, 100, 1e-8, v, cur)
    out = results.empty_result(cn, m, plan.sel)
    cur_z = np.ones((m, n_l + (1 if cn.zt_w is not None else 0)), dtype=np.complex128)
    t_buf = np.ones((m, cn.blocks.n_sep + 1), dtype=np.complex128) if cn.blocks else None
    v_z = np.empty((m, n_l), dtype=np.complex128)
    per_step: dict[str, Callable[[], Any]] = {
        "whole chunk": partial(solve.solve_chunk, plan, slice(0, m), None),
        "node injections": partial(inputs.chunk_load, plan.loads, plan.inputs, n_l, 0, m),
        "fixed-point iteration": partial(
            iteration.iterate, cn, sc, 100, 1e-8, v.copy(), cur.copy()
        ),
        "of which one Z_LL application": partial(iteration.apply_z, cn, cur_z, v_z, t_buf),
        "results (buses, branches, losses)": partial(
            results.write_results, cn, plan.sel, v, cur, conv, iters, out
        ),
    }
    res = {name: warm_cpu_of(fn, 30) / m * 1e6 for name, fn in per_step.items()}
    res["iterations"] = float(iters.mean())
    return res


class StackedDraws:
    """``draws`` Monte Carlo variants of a (time, element) series, stacked along time.

    Row ``d · T + t`` is ``base[t] · factor[d]`` (a per-draw, per-load scaling, e.g. a
    different EV uptake); rows are generated when sliced, so the (draws · T, element)
    array never exists in memory — what a caller would do with ``numpy.memmap`` or zarr.
    """

    def __init__(self, base: np.ndarray, factor: np.ndarray) -> None:
        self.base = base
        self.factor = factor
        self.shape = (factor.shape[0] * base.shape[0], base.shape[1])

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        t = np.arange(start, stop)
        d, t = np.divmod(t, self.base.shape[0])
        return self.base[t] * self.factor[d]


class RepeatedRows(StackedDraws):
    """The same series in every draw."""

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        return self.base[np.arange(start, stop) % self.base.shape[0]]


def bench_draws(code: str, draws: int, threads: int, quick: bool) -> dict[str, Any]:
    """Year × draws stacked along time, solved chunk by chunk, reduced to per-draw maxima."""
    net, series = simbench_case(code)
    n_t = series.load_p_kw.shape[0] if not quick else 2 * WEEK
    rng = np.random.default_rng(20240505)
    factor = rng.lognormal(0.0, 0.25, (draws, len(net.load))) * rng.uniform(1.0, 1.5, (draws, 1))
    load_p = StackedDraws(series.load_p_kw[:n_t], factor)
    load_q = StackedDraws(series.load_q_kvar[:n_t], factor)
    sgen_p = RepeatedRows(series.sgen_p_kw[:n_t], np.ones((draws, 1)))
    cn: CompiledNetwork = compile_network(net)
    max_line = np.full((draws, len(net.line)), -np.inf)
    max_trafo = np.full((draws, len(net.trafo)), -np.inf)
    min_vm = np.full((draws, len(net.bus)), np.inf)
    unconverged = 0
    with PeakRss() as rss:
        t0 = time.perf_counter()
        chunks: Iterator[Any] = iter_timeseries(
            cn, load_p, load_q, sgen_p, chunk_size=512, threads=threads
        )
        for steps, res in chunks:
            d = np.arange(steps.start, steps.stop) // n_t
            unconverged += int((~res.converged).sum())
            for draw in np.unique(d):
                rows = d == draw
                max_line[draw] = np.fmax(max_line[draw], np.nanmax(res.line_loading_pct[rows], 0))
                max_trafo[draw] = np.fmax(
                    max_trafo[draw], np.nanmax(res.trafo_loading_pct[rows], 0)
                )
                min_vm[draw] = np.fmin(min_vm[draw], np.nanmin(res.vm_pu[rows], 0))
        seconds = time.perf_counter() - t0
    import resource

    n_total = draws * n_t
    per_step_out = 8 * (2 * len(net.bus) + 2 * len(net.line) + len(net.trafo) + 3)
    per_step_in = 8 * (2 * len(net.load) + len(net.sgen))
    return {
        "grid": code,
        "buses": len(net.bus),
        "loads": len(net.load),
        "sgens": len(net.sgen),
        "lines": len(net.line),
        "draws": draws,
        "steps": n_total,
        "threads": threads,
        "seconds": seconds,
        "ms_per_step": seconds / n_total * 1e3,
        "unconverged": unconverged,
        "rss_increase_mb": rss.increase_mb,
        "peak_rss_mb": rss.peak / 1e6,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3,
        "one_shot_inputs_gb": n_total * per_step_in / 1e9,
        "one_shot_results_gb": n_total * per_step_out / 1e9,
        "worst_line_loading_pct": float(np.nanmax(max_line)),
        "worst_min_vm_pu": float(np.nanmin(min_vm)),
    }


def bench_method(quick: bool) -> list[dict[str, Any]]:
    """One application of Z_LL to 512 current columns per method, by grid size, and the
    costs ``method="auto"`` estimates (in dense multiply-adds per column)."""
    import simbench

    from gridplan.powerflow import blocks, iteration, zll

    codes = [
        "1-LV-rural1--0-sw",
        "1-LV-semiurb4--0-sw",
        "1-LV-urban6--0-sw",
        "1-MV-rural--0-sw",
        "1-MV-semiurb--0-sw",
        "1-MV-urban--0-sw",
        "1-MVLV-urban-6.305-0-sw",
        "1-MVLV-semiurb-5.220-0-sw",
        "1-HVMV-mixed-1.105-0-sw",
    ]
    if not quick:
        codes += ["1-MVLV-rural-all-0-sw", "1-MVLV-semiurb-all-0-sw"]
    rows = []
    m = 512
    for code in codes:
        net = simbench.get_simbench_net(code)
        row: dict[str, Any] = {"grid": code, "auto": compile_network(net).method}
        for method in ("dense", "sparse", "block"):
            n_bus = len(net.bus)
            if (method == "dense" and n_bus > 3000) or (
                method == "block" and n_bus > zll.BLOCK_MAX_NODES
            ):
                row[method] = None
                continue
            cn = compile_network(net, method=method)
            n_l = int(cn.nonslack.size)
            row["nonslack"] = n_l
            rng = np.random.default_rng(0)
            cur = np.ones((m, n_l + (1 if cn.zt_w is not None else 0)), dtype=np.complex128)
            cur[:, :n_l] = rng.standard_normal((m, n_l))
            out = np.empty((m, n_l), dtype=np.complex128)
            t_buf = np.ones((m, cn.blocks.n_sep + 1), dtype=np.complex128) if cn.blocks else None
            row[method] = (
                warm_cpu_of(partial(iteration.apply_z, cn, cur, out, t_buf), 100) / m * 1e6
            )
            if method == "sparse":
                row["cost_sparse"] = zll.COST_SPARSE_PER_NNZ * float(cn.lu.L.nnz + cn.lu.U.nnz)
            if method == "block" and cn.blocks is not None:
                sizes = [b - a for a, b, _ in cn.blocks.blocks]
                row["cost_block"] = blocks.block_cost(sizes, cn.blocks.n_sep, n_l)
                row["blocks"] = f"{len(sizes)} ≤ {max(sizes)}, {cn.blocks.n_sep} sep."
        row["cost_dense"] = float(row["nonslack"]) ** 2
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or den <= 0 else num / den


def _met(x: float | None, target: float) -> str:
    if x is None:
        return "n/a"
    return "met" if x >= target else "**not met**"


def _best_pgm(r: dict[str, Any], threads: int) -> float | None:
    return min(
        (r[k] for k in r if k.startswith("pgm_") and k.endswith(f"_{threads}t_ms")), default=None
    )


def _us(x: Any) -> str:
    return f"{x * 1e3:.1f}" if isinstance(x, int | float) else "–"


def _ms(x: Any) -> str:
    return f"{x:.2f}" if isinstance(x, int | float) else "–"


def _cell(x: Any) -> str:
    return f"{x:.2f}" if isinstance(x, int | float) else "–"


def _report_head(years: list[dict[str, Any]]) -> list[str]:
    """Machine, method of the comparison and the table of times per step."""
    info = machine_info()
    for dist in ("power-grid-model", "power-grid-model-io", "simbench", "numba"):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = "not installed"
    info["BLAS threads"] = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    lines = [
        "# Power-flow benchmark (`benchmarks/bench_powerflow.py`)",
        "",
        "Generated by `python benchmarks/bench_powerflow.py`; do not edit by hand.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "The machine is shared with other jobs (load average and a GIL-free 2-thread control",
        "loop are listed per grid). pandapower `run_timeseries` (ConstControl + DFData,",
        "OutputWriter logging bus voltages and line / trafo loadings): best of 3 runs over the",
        "peak-load week (672 steps), once with numba (JIT-compiled by a short run before",
        "timing) and once with `numba=False` passed through `run_timeseries` to `runpp`.",
        "gridplan: best of 11 runs of the whole year (1 and 2 threads; CPU time of the",
        "1-thread runs), 5 before and one after each pandapower run, so that both sides get",
        "the quiet moments of the machine; its element-wise kernels compiled with numba",
        f"(kernels used: {years[0].get('kernels', 'n/a') if years else 'n/a'}), and, as the",
        "like-for-like partner of pandapower without numba, the same 1-thread solve on their",
        "numpy twins (`gridplan.powerflow.kernels.numba_disabled`). power-grid-model: best of 5.",
        "",
        "## Year (35,136 steps): time per step",
        "",
        "| grid | buses | gridplan 1 / 2 thr [µs] | gridplan without numba, 1 thr [µs] "
        "| pandapower with numba [ms] "
        "| pandapower without numba [ms] | pgm NR 1 / 2 thr [µs] "
        "| pgm iterative-current 1 / 2 thr [µs] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in years:
        lines.append(
            f"| {r['grid']} | {r['buses']} | {_us(r['ours_1t_ms'])} / {_us(r['ours_2t_ms'])} "
            f"| {_us(r.get('ours_numpy_1t_cpu_ms'))} | {_ms(r.get('pp_numba_ms'))} "
            f"| {_ms(r.get('pp_no_numba_ms'))} "
            f"| {_us(r.get('pgm_newton_raphson_1t_ms'))} / "
            f"{_us(r.get('pgm_newton_raphson_2t_ms'))} "
            f"| {_us(r.get('pgm_iterative_current_1t_ms'))} / "
            f"{_us(r.get('pgm_iterative_current_2t_ms'))} |"
        )
    return lines


def _report_targets(years: list[dict[str, Any]]) -> list[str]:
    """The targets table: speed-ups against pandapower and power-grid-model."""
    lines = [
        "",
        "## Targets",
        "",
        "≥ 1000× faster per step than pandapower's `run_timeseries`, and no slower than",
        "power-grid-model's batch power flow at the same thread count. At 1 thread the",
        "speed-up is judged on CPU time (what each run costs, whatever else the machine runs;",
        "wall time alongside); at 2 threads on wall time.",
        "",
        "| grid | pandapower | 1 thread: CPU (wall) | 1 thread target | 2 threads: wall "
        "| 2 threads target |",
        "|---|---|---|---|---|---|",
    ]
    for r in years:
        for label, name in (("numba", "with numba"), ("no_numba", "without numba")):
            if f"pp_{label}_ms" not in r:
                lines.append(f"| {r['grid']} | {name} | {r.get('pp_numba', 'n/a')} | | | |")
                continue
            cpu = _ratio(r[f"pp_{label}_cpu_ms"], r["ours_1t_cpu_ms"])
            wall1 = _ratio(r[f"pp_{label}_ms"], r["ours_1t_ms"])
            wall2 = _ratio(r[f"pp_{label}_ms"], r["ours_2t_ms"])
            lines.append(
                f"| {r['grid']} | {name}{' (headline)' if r['pp_fastest'] == label else ''} "
                f"| {cpu:.0f}× ({wall1:.0f}×) | {_met(cpu, 1000)} | {wall2:.0f}× "
                f"| {_met(wall2, 1000)} |"
            )
        if "pp_no_numba_cpu_ms" in r and "ours_numpy_1t_cpu_ms" in r:
            both = _ratio(r["pp_no_numba_cpu_ms"], r["ours_numpy_1t_cpu_ms"])
            lines.append(
                f"| {r['grid']} | both without numba (gridplan's numpy kernels) "
                f"| {both:.0f}× | {_met(both, 1000)} | | |"
            )
        for thr in (1, 2):
            pgm = _best_pgm(r, thr)
            ratio = _ratio(pgm, r[f"ours_{thr}t_ms"])
            lines.append(
                f"| {r['grid']} | vs fastest power-grid-model method, {thr} thread"
                f"{'s' if thr > 1 else ''} | {ratio:.2f}× faster | {_met(ratio, 1.0)} | | |"
                if ratio is not None
                else f"| {r['grid']} | power-grid-model | {r.get('pgm', 'n/a')} | | | |"
            )
    lines += [
        "",
        "2-thread runs need a second free core to be faster than 1-thread runs: during "
        + "; ".join(
            f"{r['grid']} a GIL-free numpy loop ran {r['thread_scaling_control']:.2f}× faster "
            "on 2 threads than on 1"
            for r in years
        )
        + " (2.0 = two free cores).",
        "",
    ]
    return lines


def _report_not_met(r: dict[str, Any]) -> list[str]:
    """Where one grid misses the 1000× target against pandapower: what the time goes to."""
    headline = r["pp_fastest"]
    name = "with" if headline == "numba" else "without"
    need_us = r[f"pp_{headline}_cpu_ms"]  # pandapower ms per step = µs budget for 1000×
    have_us = r["ours_1t_cpu_ms"] * 1e3
    wall2 = _ratio(r[f"pp_{headline}_ms"], r["ours_2t_ms"])
    failed = []
    if have_us > need_us:
        failed.append(f"1 thread ({need_us / have_us * 1000:.0f}×)")
    if wall2 is None or wall2 < 1000:
        failed.append(f"2 threads ({wall2 or 0:.0f}×)")
    if not failed:
        return []
    b = r["breakdown_us"]
    lines = [
        f"**{r['grid']}: ≥ 1000× vs pandapower {name} numba not met at "
        f"{' and '.join(failed)}.** 1000× needs ≤ {need_us:.1f} µs of CPU per step "
        f"(pandapower {name} numba: {need_us:.2f} ms of CPU per step in this run); "
        f"gridplan spends {have_us:.1f} µs (kernels: {r.get('kernels', 'n/a')}). By stage "
        f"(one 512-step chunk): node injections {b['node injections']:.2f}, fixed-point "
        f"iteration {b['fixed-point iteration']:.2f} ({b['iterations']:.2f} iterations; each "
        f"one Z_LL application of {b['of which one Z_LL application']:.2f} plus one pass "
        "for the currents conj(S)/conj(V) and one for the change max|ΔV|), results "
        f"{b['results (buses, branches, losses)']:.2f} (the angle arctan2, ~2 ns per bus, "
        "and the branch currents), plus first-touch page faults of the "
        f"{r['result_mb']:.0f} MB of results and Python overhead per chunk. The iteration "
        "count is set by the tolerance (1e-8 pu; each iteration gains a factor 20–50).",
        "",
    ]
    if wall2 is None or wall2 < 1000:
        lines += [
            f"At 2 threads the wall time depends on a second free core: during this grid a "
            f"GIL-free numpy loop ran {r['thread_scaling_control']:.2f}× faster on 2 threads "
            f"than on 1 (2.0 = two free cores; load average {r['loadavg_start']} at the "
            "start).",
            "",
        ]
    return lines


def _report_details(r: dict[str, Any]) -> list[str]:
    """The details of one grid's year."""
    b = r["breakdown_us"]
    lines = [
        f"### {r['grid']}",
        "",
        f"- buses {r['buses']}, internal nodes {r['nodes']}, Z_LL method `{r['method']}`"
        + (f" ({r['blocks']})" if r.get("blocks") else "")
        + f", compile {r['compile_s'] * 1e3:.0f} ms",
        f"- year {r['steps']} steps: {r['ours_1t_ms'] * r['steps'] / 1e3:.3f} s on 1 thread "
        f"({r['ours_1t_cpu_ms'] * 1e3:.2f} µs CPU per step), "
        f"{r['ours_2t_ms'] * r['steps'] / 1e3:.3f} s on 2 threads",
        f"- fixed-point iterations per step: mean {r['iterations_mean']:.2f}, "
        f"max {r['iterations_max']}",
        f"- pandapower run_timeseries per step: with numba {_ms(r.get('pp_numba_ms'))} ms wall "
        f"/ {_ms(r.get('pp_numba_cpu_ms'))} ms CPU (numba used: "
        f"{r.get('pp_numba_numba_used', 'n/a')}); without numba "
        f"{_ms(r.get('pp_no_numba_ms'))} ms / {_ms(r.get('pp_no_numba_cpu_ms'))} ms "
        f"(numba used: {r.get('pp_no_numba_numba_used', 'n/a')})",
        f"- only 3 monitored branches (`lines=`, `trafos=`): "
        f"{r['ours_subset_1t_ms'] * 1e3:.2f} µs per step on 1 thread",
        f"- peak memory of the year solve: +{r['ours_rss_mb']:.0f} MB RSS (2 threads), "
        f"tracemalloc peak {r['ours_tracemalloc_mb']:.0f} MB, of which results "
        f"{r['result_mb']:.0f} MB",
    ]
    if "pgm_newton_raphson_rss_mb" in r:
        lines.append(
            f"- power-grid-model year (node/line/trafo outputs only): "
            f"+{r['pgm_newton_raphson_rss_mb']:.0f} MB RSS (NR), "
            f"+{r['pgm_iterative_current_rss_mb']:.0f} MB (iterative current)"
        )
    lines += [
        f"- accuracy vs pandapower on the {r['pp_steps']}-step week: max |Δvm| "
        f"{r['dvm_vs_pp']:.1e} pu, max |Δ line loading| {r['dline_vs_pp']:.1e} pp, "
        f"max |Δ trafo loading| {r['dtrafo_vs_pp']:.1e} pp",
    ]
    if "pgm_dvm_vs_pp" in r:
        lines.append(
            f"- power-grid-model (NR, converted with power_grid_model_io) vs pandapower: "
            f"max |Δvm| {r['pgm_dvm_vs_pp']:.1e} pu (its own model of the net)"
        )
    lines.append(
        "- CPU µs per step by stage (one 512-step chunk, 1 thread, warm caches): "
        + ", ".join(f"{k} {v:.2f}" for k, v in b.items() if k != "iterations")
        + f" (× {b['iterations']:.2f} iterations)"
    )
    lines += [
        f"- load average start / end: {r['loadavg_start']} / {r['loadavg_end']}; "
        f"a GIL-free numpy loop ran {r['thread_scaling_control']:.2f}× faster on 2 threads "
        "than on 1 (2.0 = two free cores)",
        "",
    ]
    return lines


def _report_draws(d: dict[str, Any]) -> list[str]:
    """The year × draws run: time and peak memory."""
    return [
        "## Year × draws, stacked along time, solved in chunks",
        "",
        f"- grid {d['grid']}: {d['buses']} buses, {d['loads']} loads, {d['sgens']} sgens, "
        f"{d['lines']} lines",
        f"- {d['draws']} draws × year = {d['steps']:,} steps, `iter_timeseries` with "
        f"chunk_size 512, {d['threads']} threads, reduced per draw to annual max loading "
        f"and min voltage as chunks arrive",
        f"- time {d['seconds']:.0f} s ({d['ms_per_step'] * 1e3:.1f} µs/step), "
        f"unconverged steps {d['unconverged']}",
        f"- **peak RSS of the process {d['peak_rss_mb']:.0f} MB** (increase during the "
        f"solve {d['rss_increase_mb']:.0f} MB; ru_maxrss {d['ru_maxrss_mb']:.0f} MB) "
        "— target < 4 GiB",
        f"- for comparison, materialising the same run in one `solve_timeseries` call would "
        f"need {d['one_shot_inputs_gb']:.1f} GB of float64 inputs and "
        f"{d['one_shot_results_gb']:.1f} GB of results: stacked draws go through "
        f"`iter_timeseries` (or a loop over draws with one `compile_network`)",
        f"- worst line loading over all draws {d['worst_line_loading_pct']:.1f} %, "
        f"lowest voltage {d['worst_min_vm_pu']:.4f} pu",
        "",
    ]


def _report_method(method: list[Any]) -> list[str]:
    """The Z_LL application table by method and grid."""
    lines = [
        "## Z_LL application: CPU µs per step column (512 columns, 1 thread, best of 100)",
        "",
        "Estimated costs are those `method='auto'` compares (dense multiply-adds per "
        "column); auto also only considers dense up to "
        "`DENSE_MAX_BUSES` and block up to `BLOCK_MAX_NODES` non-slack nodes.",
        "",
        "| grid | non-slack nodes | auto picks | dense | sparse LU | block (blocks ≤ size, "
        "separators) | estimated dense / sparse / block |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in method:
        est = " / ".join(
            f"{row[k]:.0f}" if isinstance(row.get(k), int | float) else "–"
            for k in ("cost_dense", "cost_sparse", "cost_block")
        )
        lines.append(
            f"| {row['grid']} | {row['nonslack']} | {row['auto']} | {_cell(row.get('dense'))} "
            f"| {_cell(row.get('sparse'))} | {_cell(row.get('block'))} "
            f"({row.get('blocks', '–')}) | {est} |"
        )
    lines.append("")
    return lines


def report(years: list[dict[str, Any]], draws: dict[str, Any] | None, method: list[Any]) -> str:
    """The markdown of ``benchmarks/results/powerflow.md`` from the records of a run."""
    lines = _report_head(years) + _report_targets(years)
    for r in years:
        lines += _report_not_met(r)
    lines += ["## Details", ""]
    for r in years:
        lines += _report_details(r)
    if draws:
        lines += _report_draws(draws)
    if method:
        lines += _report_method(method)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode",
        choices=["all", "year", "draws", "method", "gridplan", "sizes"],
        default="all",
        help="all (default; writes the results file), year (gridplan vs pandapower and "
        "power-grid-model on the SimBench years), draws (year x draws memory), method "
        "(Z_LL forms), gridplan (gridplan's own year solve only, best of 11: µs per step "
        "for timing a change of the solver; nothing written), sizes (issue 21: µs per step "
        "and per bus by grid size, gridplan vs power-grid-model vs pandapower, stages and a "
        "year in bounded memory on the 9,099-bus grid; replaces its section of the results "
        "file)",
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the raw record as JSON")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args()

    if args.mode == "draws" and args.json:  # child process of --mode all
        print(json.dumps(bench_draws(DRAWS_GRID, args.draws, 2, args.quick)))
        return

    if args.mode == "sizes":
        import bench_powerflow_sizes

        section = bench_powerflow_sizes.run(args.quick)
        if not args.no_write and not args.quick:
            bench_powerflow_sizes.write_section(RESULTS, section)
            print(f"wrote the size series into {RESULTS}")
        else:
            print(section)
        return

    if args.mode == "gridplan":
        for code in YEAR_GRIDS:
            rec = bench_gridplan(code, args.quick)
            print(json.dumps(rec) if args.json else gridplan_line(rec), flush=True)
        return

    years: list[dict[str, Any]] = []
    draws: dict[str, Any] | None = None
    method: list[Any] = []
    if args.mode in ("all", "year"):
        for code in YEAR_GRIDS:
            rec = bench_year(code, args.quick)
            print(json.dumps(rec), flush=True)
            years.append(rec)
    if args.mode in ("all", "draws"):
        # fresh process: its peak RSS is the draws run alone
        cmd = [sys.executable, __file__, "--mode", "draws", "--json", "--draws", str(args.draws)]
        if args.quick:
            cmd.append("--quick")
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        draws = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(draws), flush=True)
    if args.mode in ("all", "method"):
        method = bench_method(args.quick)
        print(json.dumps(method), flush=True)
    if not args.no_write and args.mode == "all":
        import bench_powerflow_sizes

        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        sizes = bench_powerflow_sizes.existing_section(RESULTS)  # kept: --mode sizes makes it
        RESULTS.write_text(
            report(years, draws, method) + ("\n" + sizes if sizes else ""), encoding="utf-8"
        )
        print(f"wrote {RESULTS}")
    elif not args.no_write:
        print("(results file is written by --mode all only)")


if __name__ == "__main__":
    main()
