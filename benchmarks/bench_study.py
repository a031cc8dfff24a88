"""Benchmark: the reference multi-year study of issue 6, end to end.

SimBench ``1-LV-semiurb4--0-sw`` (bundled feeder ``lv-semiurban``), 15 planning years x 100
draws x a full year at 15 minutes x {``unmanaged``, ``v2g_peak_shave``} (plus the no-EV
case once per year): about 105 million feeder-steps. Target: under 2 minutes on 2 cores.

``python benchmarks/bench_study.py [--years N] [--draws N]`` runs it (or a subset, timed
and extrapolated per unit), profiles one unit, and writes ``benchmarks/results/study.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_markdown

from gridplan.config import validate
from gridplan.feeders import load_feeder
from gridplan.study import StudyConfig, run


def config(years: int, draws: int) -> StudyConfig:
    """The reference study with ``years`` planning years and ``draws`` draws."""
    return validate(
        StudyConfig,
        {
            "name": "bench-reference",
            "feeder": "lv-semiurban",
            "year": 2026,
            "base_year": 2026,
            "seed": 1,
            "horizon": {"start": 2026, "end": 2026 + years - 1, "draws": draws},
            "period": {"kind": "year"},
            "fleet": {
                "adoption": {
                    "kind": "logistic",
                    "midpoint_year": 2033,
                    "ceiling": 1.2,
                    "steepness": 0.35,
                },
                "v2g_capable_share": 0.5,
                "v2g_enrolled_share": 0.5,
            },
            "dispatch": {"charging": "unmanaged", "v2g": "v2g_peak_shave"},
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--years", type=int, default=15)
    parser.add_argument("--draws", type=int, default=100)
    args = parser.parse_args()
    load_feeder("lv-semiurban")  # feeder loading is not part of the study time
    run(config(1, 1), write=False)  # warm caches (imports, catalogs)

    profile = cProfile.Profile()
    profile.enable()
    run(config(1, 1), write=False)
    profile.disable()
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(12)
    top = "\n".join(stream.getvalue().splitlines()[:40])

    tracemalloc.start()
    start = time.perf_counter()
    result = run(config(args.years, args.draws), write=False)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    units = args.years * args.draws
    steps = len(result.time_index)
    feeder_steps = units * steps * 2 + args.years * steps  # two EV cases + base per year
    per_unit = elapsed / units
    full_units = 15 * 100
    full_estimate = per_unit * full_units
    mib = peak / 2**20
    row = (
        f"| {args.years} | {args.draws} | {units} | {feeder_steps:,} | {elapsed:.1f} "
        f"| {per_unit:.2f} | {mib:.0f} |"
    )
    text = f"""# Multi-year study benchmark (issue 6)

`python benchmarks/bench_study.py --years {args.years} --draws {args.draws}` — bundled feeder
`lv-semiurban` (SimBench 1-LV-semiurb4--0-sw), full profile year ({steps} steps of 15 min)
per planning year and draw, cases: no EVs (once per year), `unmanaged`, `v2g_peak_shave`.

| years | draws | units | feeder-steps | time [s] | per unit [s] | peak memory [MiB] |
|---|---|---|---|---|---|---|
{row}

Reference study (15 years x 100 draws = {full_units} units, about
{full_units * steps * 2 + 15 * steps:,} feeder-steps): **{full_estimate / 60:.1f} min**
{"measured" if units == full_units else "extrapolated from the per-unit time above"}
on one process; target under 2 minutes on 2 cores.
{"Target met." if full_estimate < 120 else "**Target not met** -- see where the time goes below."}

Where one unit's time goes (cProfile, 1 year x 1 draw, sorted by own time):

```
{top}
```

Machine:

{machine_markdown()}
"""
    out = Path(__file__).resolve().parent / "results" / "study.md"
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
