"""Benchmark: sampling 10,000 EVs x 366 days with ``gridplan.ev.fleet.sample_fleet``.

Target (issue 3): under 1 s on one core. Run ``python benchmarks/bench_fleet.py``; the
result is written to ``benchmarks/results/fleet.md``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dataclasses
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_markdown

from gridplan.ev.fleet import FleetScenario, sample_fleet
from gridplan.grid.feeders import load_feeder

TARGET_EVS = 10_000


def main() -> None:
    feeder = load_feeder("us-residential")
    scale = int(np.ceil(TARGET_EVS / feeder.households.sum()))
    big = dataclasses.replace(feeder, households=feeder.households * scale)
    rate = TARGET_EVS / big.households.sum()
    scenario = FleetScenario(evs_per_household=rate)
    times = []
    fleet = None
    for seed in range(5):
        start = time.perf_counter()
        fleet = sample_fleet(big, scenario, 2030, seed)
        times.append(time.perf_counter() - start)
    assert fleet is not None
    tracemalloc.start()
    sample_fleet(big, scenario, 2030, 0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    best, median = min(times), float(np.median(times))
    text = f"""# Fleet sampling benchmark

`python benchmarks/bench_fleet.py` — `sample_fleet` on the `us-residential` feeder with
households scaled x{scale}, adoption set for about {TARGET_EVS:,} EVs, all 366 days of the
2016 profile year, default scenario (vehicle/charger mixes, weekday/weekend behaviour).

| EVs | days | best of 5 [s] | median [s] | peak traced memory [MiB] | target |
|---|---|---|---|---|---|
| {fleet.n_ev:,} | {fleet.days.size} | {best:.3f} | {median:.3f} | {peak / 2**20:.0f} | < 1 s |

Machine (single thread: OMP/OPENBLAS threads = 1; numpy's Generator is single-threaded):

{machine_markdown()}
"""
    out = Path(__file__).resolve().parent / "results" / "fleet.md"
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
