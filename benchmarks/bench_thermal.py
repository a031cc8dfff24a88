"""Benchmark: the IEEE C57.91 thermal model (``gridplan.planning.thermal.thermal_response``).

A year of hourly and of 15-min steps, and a 15-min peak week, for 100 and 1000
transformers, one core. Run ``python benchmarks/bench_thermal.py``; the result is written
to ``benchmarks/results/thermal.md``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_markdown

from gridplan.planning.thermal import load_thermal_parameters, thermal_response

CASES = (  # (label, steps, step_h, transformers)
    ("year, hourly", 8760, 1.0, 100),
    ("year, 15 min", 35040, 0.25, 100),
    ("peak week, 15 min", 672, 0.25, 100),
    ("year, hourly", 8760, 1.0, 1000),
    ("peak week, 15 min", 672, 0.25, 1000),
)


def _run(
    n_time: int, step_h: float, n_asset: int, repeat: int = 5
) -> tuple[float, float, float, float]:
    rng = np.random.default_rng(0)
    params = load_thermal_parameters()
    kinds = [params["pole_mount"], params["pad_mount"]] * (n_asset // 2)
    load = rng.uniform(0.2, 1.4, size=(n_time, n_asset))
    ambient = 18 + 8 * np.sin(np.arange(n_time) * step_h / 24 * 2 * np.pi)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        thermal_response(load, ambient, step_h, kinds)
        times.append(time.perf_counter() - start)
    peaks = []
    for keep in (True, False):
        tracemalloc.start()
        thermal_response(load, ambient, step_h, kinds, keep_series=keep)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    return min(times), float(np.median(times)), peaks[0], peaks[1]


def main() -> None:
    load_start = os.getloadavg()
    rows = []
    for label, n_time, step_h, n_asset in CASES:
        best, median, peak_mib, lean_mib = _run(n_time, step_h, n_asset)
        rows.append(
            f"| {label} | {n_time} | {n_asset} | {median:.3f} | {best:.3f} | {peak_mib:.0f} "
            f"| {lean_mib:.0f} |"
        )
    load_end = os.getloadavg()
    table = "\n".join(rows)
    text = f"""# Transformer thermal model benchmark (`benchmarks/bench_thermal.py`)

{machine_markdown()}
- load average (1, 5, 15 min) at start: {" ".join(f"{x:.2f}" for x in load_start)};
  at end: {" ".join(f"{x:.2f}" for x in load_end)} (a shared machine: treat with care)

`thermal_response` (IEEE C57.91 Clause 7, aging with 5-min sub-steps, one-day warm-up),
half pole-mount and half pad-mount parameters, random loads 0.2-1.4 pu, one core; 5
repeats, peak memory from tracemalloc (inputs excluded) with the series kept (the
default) and with `keep_series=False` (summaries only, what `thermal_needs` uses).

| period | steps | transformers | time [s], median | best | memory [MiB] | summaries only [MiB] |
|---|---:|---:|---:|---:|---:|---:|
{table}
"""
    out = Path(__file__).resolve().parent / "results" / "thermal.md"
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
