"""Batch throughput: units per minute with 1 and 2 Dask workers on the bundled feeders.

Runs one batch -- every bundled feeder × a 2 × 2 scenario grid (EV adoption × V2G
enrollment) × 8 fleet draws, each unit a peak-week study -- on a ``LocalCluster`` of 1
and of 2 single-threaded worker processes, ``--repeat`` times (the 1- and 2-worker runs
of a repeat back to back, their order alternating between repeats, so each pair saw
similar conditions), then once in this process without Dask. Each run starts a fresh
cluster: the feeders are loaded from their specs inside the timed run, as in a real
batch; cluster start-up (including importing gridplan in the workers) is timed apart.
The results of every run must be equal.

Usage::

    python benchmarks/bench_batch.py [--draws 8] [--repeat 5] [--out benchmarks/results/batch.md]

Target (issue 8): speed-up of 2 workers over 1 worker >= 1.8 on a 2-core machine, judged
on the median of the paired runs (the best-of figure is reported beside it). Run it on an
otherwise idle machine: the result file records the load average when it started and the
share of the CPUs other processes used while it ran.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from gridplan.batch import cluster, plan, runner, task
from gridplan.grid.feeders import bundled_feeders

TARGET = 1.8
_VOLATILE = ["duration_s", "worker", "attempts"]
_NOTES = [
    "How the 2-worker run spends the two cores (`gridplan.batch.cluster._Dispatcher`,",
    "`gridplan.batch.cluster.LOCAL_CLUSTER_CONFIG`): each feeder is loaded once, on one worker;",
    "a worker runs the units of the feeders it holds, longest expected first (mv-semiurban's",
    "units take 1-2 s, the others' 0.2-0.3 s), and only when it has none left takes units",
    "of a feeder held by the other worker, which Dask then sends it (pickled, 0.1-0.5 s)",
    "instead of it loading the feeder again (1-4 s). The short units left at the end are",
    "shared, so the workers finish together. Workers run with glibc's default malloc",
    "trimming (Dask's `MALLOC_TRIM_THRESHOLD_=65536` costs numpy-heavy units 10-30 %),",
    "without Dask's statistical profiler, and with slower event-loop housekeeping.",
    "",
    "What is left between the 2-worker run and half the 1-worker run: this process (the",
    "Dask scheduler and nannies, recording each unit's files) shares the two cores with",
    "the workers, whereas in the 1-worker run it has the second core to itself; the",
    "feeders sent between workers; the two workers competing for memory bandwidth and",
    "cache.",
]


def make_plan(draws: int) -> plan.BatchPlan:
    """The benchmark batch over every bundled feeder."""
    return plan.plan_batch(
        {
            "name": "bench",
            "feeders": sorted(bundled_feeders()),
            "seed": 2030,
            "draws": draws,
            "study": {"year": 2030, "period": {"kind": "peak_week"}},
            "grid": {
                "fleet.evs_per_household": [0.4, 0.8],
                "fleet.v2g_enrolled_share": [0.25, 0.75],
            },
        }
    )


class CpuMeter:
    """Share of the machine's CPUs that other processes used (Linux ``/proc/stat``)."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as fh:
                values = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(values) - values[3] - values[4]) / tick
        own = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) + sum(
            resource.getrusage(resource.RUSAGE_CHILDREN)[:2]
        )
        return busy, own, time.monotonic()

    def others(self) -> float:
        """Share of all CPUs busy with other processes since this meter started (NaN if
        unknown). Worker processes count as this process's once they have exited."""
        end = self._read()
        if self.start is None or end is None:
            return float("nan")
        busy = end[0] - self.start[0]
        own = end[1] - self.start[1]
        wall = end[2] - self.start[2]
        return max(busy - own, 0.0) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0


def run_dask(plan: plan.BatchPlan, workers: int, out: Path) -> tuple[float, float, pd.DataFrame]:
    """(cluster start-up [s], batch wall time [s], results) on ``workers`` processes.

    The cluster is the one ``gridplan batch --workers N`` starts (:func:`cluster.local_client`:
    single-threaded worker processes that import gridplan while starting).
    """
    t0 = time.perf_counter()
    with cluster.local_client(workers) as client:
        startup = time.perf_counter() - t0
        result = runner.run(plan, client=client, overwrite=True, output_dir=out, progress=False)
    assert result.failed == 0, result.manifest.error.dropna().tolist()
    return startup, result.wall_s, result.results


def run_serial(plan: plan.BatchPlan, out: Path) -> tuple[float, pd.DataFrame]:
    """(batch wall time [s], results) in this process (a fresh interpreter: cold caches)."""
    result = runner.run(plan, workers=1, overwrite=True, output_dir=out, progress=False)
    assert result.failed == 0
    return result.wall_s, result.results


def machine() -> str:
    """CPU model, core counts and memory of this machine."""
    import psutil

    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model or 'unknown CPU'}; {psutil.cpu_count(logical=False)} physical / "
        f"{psutil.cpu_count()} logical cores; {psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}"
    )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--note", default="", help="Conditions to record with the result.")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "batch.md")
    args = parser.parse_args(argv)
    logging.getLogger("pandapower").setLevel(logging.ERROR)  # numba-missing warnings

    load_before = _load()
    print(f"load average at start: {load_before}", flush=True)
    plan = make_plan(args.draws)
    n = len(plan.units)
    rows = []
    reference = None
    meter = CpuMeter()
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeat):
            for workers in (1, 2) if rep % 2 == 0 else (2, 1):
                load = os.getloadavg()[0]
                run_meter = CpuMeter()
                startup, wall, results = run_dask(plan, workers, Path(tmp) / f"d{workers}")
                others = run_meter.others()
                rows.append(("dask", workers, rep, startup, wall, load, others))
                print(
                    f"repeat {rep + 1}, {workers} worker(s): {wall:.1f} s, "
                    f"{60 * n / wall:.1f} units/min (load {load:.2f}, other processes "
                    f"{others:.0%} of the CPUs)",
                    flush=True,
                )
                results = results.drop(columns=_VOLATILE)
                if reference is None:
                    reference = results
                pd.testing.assert_frame_equal(results, reference, check_exact=True)
        load = os.getloadavg()[0]
        run_meter = CpuMeter()
        wall, results = run_serial(plan, Path(tmp) / "serial")
        pd.testing.assert_frame_equal(results.drop(columns=_VOLATILE), reference, check_exact=True)
        rows.append(("in-process", 1, 0, 0.0, wall, load, run_meter.others()))
        print(f"in-process: {wall:.1f} s, {60 * n / wall:.1f} units/min", flush=True)
    others_all = meter.others()
    load_after = _load()

    frame = pd.DataFrame(
        rows, columns=["executor", "workers", "repeat", "startup_s", "wall_s", "load", "others"]
    )
    best = frame.groupby(["executor", "workers"]).wall_s.min()
    one, two = best[("dask", 1)], best[("dask", 2)]
    best_speedup = one / two
    dask = frame[frame.executor == "dask"]
    startup = dask.groupby("workers").startup_s.median()
    walls = dask.pivot(index="repeat", columns="workers", values="wall_s")
    ratios = (walls[1] / walls[2]).tolist()
    paired = statistics.median(ratios)
    median_wall = walls.median()
    met = paired >= TARGET
    verdict = (
        f"**Speed-up, 2 workers over 1: {paired:.2f}× (median of {len(ratios)} paired "
        f"runs); best over best {best_speedup:.2f}×. Target ≥ {TARGET}× on the median: "
        f"{'met' if met else 'NOT met'}.**"
    )
    print(
        f"speed-up 2 over 1 worker: median of paired runs {paired:.2f}x "
        f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)}); best over best {best_speedup:.2f}x; "
        f"target >= {TARGET}x on the median: {'met' if met else 'NOT met'}",
        flush=True,
    )
    runs = []
    for rep, workers, wall, load, others in dask[
        ["repeat", "workers", "wall_s", "load", "others"]
    ].itertuples(index=False):
        runs.append(
            f"| {rep + 1} | {workers} | {wall:.1f} | {60 * n / wall:.1f} | {load:.2f} | "
            f"{others:.0%} |"
        )
    serial = frame[frame.executor == "in-process"].iloc[0]
    quiet = others_all < 0.05
    lines = [
        "# Batch throughput (`benchmarks/bench_batch.py`)",
        "",
        f"Machine: {machine()}.",
        f"gridplan {task.package_versions()['gridplan']}, dask "
        f"{task.package_versions().get('distributed', '?')}, {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        f"Batch: {len(plan.feeders)} bundled feeders ({', '.join(f.name for f in plan.feeders)})"
        f" × {len(plan.scenarios)} scenario points (EVs/household 0.4, 0.8 × V2G enrollment "
        f"0.25, 0.75) × {plan.config.draws} draws = {n} units, each a peak-week study of "
        "three cases. Each run starts a fresh cluster: loading the feeders (1-4 s each) is "
        "inside the timed run, cluster start-up is not. "
        f"{args.repeat} repeats, each a 1-worker and a 2-worker run back to back (order "
        "alternating); results of all runs identical (exact).",
        "",
        f"Command: `python benchmarks/bench_batch.py --draws {args.draws} --repeat {args.repeat}`.",
        f"Load average (1, 5, 15 min) when it started: {load_before}; when it ended: "
        f"{load_after}. Other processes used {others_all:.0%} of the CPUs while it ran"
        + (" (a quiet machine)." if quiet else " -- not a quiet machine: treat with care."),
        "",
        verdict,
        "",
        "| executor | workers | wall time [s], median | best | units/min (median) | "
        "cluster start-up [s] |",
        "|---|---:|---:|---:|---:|---:|",
        f"| Dask LocalCluster | 1 | {median_wall[1]:.1f} | {one:.1f} | "
        f"{60 * n / median_wall[1]:.1f} | {startup[1]:.1f} |",
        f"| Dask LocalCluster | 2 | {median_wall[2]:.1f} | {two:.1f} | "
        f"{60 * n / median_wall[2]:.1f} | {startup[2]:.1f} |",
        f"| in this process (`--workers 1`) | 1 | {serial.wall_s:.1f} | {serial.wall_s:.1f} | "
        f"{60 * n / serial.wall_s:.1f} | - |",
        "",
        "Paired speed-ups (1-worker wall time / 2-worker wall time, per repeat): "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + ".",
        "",
        "| repeat | workers | wall time [s] | units/min | load average at start | "
        "CPU used by other processes |",
        "|---:|---:|---:|---:|---:|---:|",
        *runs,
        "",
        *_NOTES,
        "",
        *([f"Note: {args.note}", ""] if args.note else []),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
