"""Benchmark: the reference multi-year study of issue 6, end to end.

SimBench ``1-LV-semiurb4--0-sw`` (bundled feeder ``lv-semiurban``), 15 planning years x 100
draws x a full year at 15 minutes x {``unmanaged``, ``v2g_peak_shave``} (plus the no-EV
case once per year): about 105 million feeder-steps. Target: under 2 minutes on 2 cores.

``python benchmarks/bench_study.py [--years N] [--draws N] [--workers N]`` runs it end to
end (``gridplan.study.runner.run`` writing every output file), checks on a smaller study that the
screened run gives the same results as solving every step, profiles one unit, and writes
``benchmarks/results/study.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_markdown, write_result

from gridplan.core.config import validate
from gridplan.grid.feeders import load_feeder
from gridplan.outputs import write_study
from gridplan.study.runner import StudyConfig, run


def config(years: int, draws: int, *, screening: bool = True, start: int = 2026) -> StudyConfig:
    """The reference study with ``years`` planning years from ``start`` and ``draws`` draws:
    the cases of issue 6 (no EVs, ``unmanaged``, ``v2g_peak_shave``), so no V1G case, no
    perfect-availability case and no targeted search; screening as the study default (on where
    it pays: here, with 100 draws per year)."""
    return validate(
        StudyConfig,
        {
            "name": "bench-reference",
            "feeder": "lv-semiurban",
            "year": start,
            "base_year": 2026,
            "seed": 1,
            "horizon": {
                "start": start,
                "end": start + years - 1,
                "draws": draws,
                "screening": screening,
            },
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
            "dispatch": {"charging": "unmanaged", "v2g": "v2g_peak_shave", "v1g_case": False},
            "availability": {"preset": "perfect"},
            "targeting": {"enabled": False},
        },
    )


def _same(a: object, b: object) -> bool:
    import numpy as np

    names = ("peak_loading_pct", "hours_over_limit", "need", "min_vm_pu", "max_vm_pu")
    names += ("voltage_hours_out", "requirement_kw", "requirement_kwh", "overload_energy_kvah")
    return all(
        np.allclose(getattr(a, n), getattr(b, n), rtol=0, atol=1e-6, equal_nan=True) for n in names
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--years", type=int, default=15)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    load_feeder("lv-semiurban")  # feeder loading is not part of the study time
    run(config(1, 1))  # warm caches (imports, catalogs)

    # 1. the reference study, end to end (all output files written)
    with tempfile.TemporaryDirectory() as tmp:
        load0 = os.getloadavg()
        start = time.perf_counter()
        cpu0 = time.process_time()
        result = run(config(args.years, args.draws), workers=args.workers)
        n_files = len(write_study(result, Path(tmp) / "reference"))
        elapsed = time.perf_counter() - start
        cpu_main = time.process_time() - cpu0
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    units = args.years * args.draws
    steps = len(result.time_index)
    feeder_steps = units * steps * 2 + args.years * steps
    stats = result.summary.screening

    # 2. same results as solving every step (a smaller study, screening on and off)
    small = (3, 4, 2038)
    t0 = time.perf_counter()
    full = run(config(*small[:2], screening=False, start=small[2]))
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = run(config(*small[:2], screening=True, start=small[2]))
    t_fast = time.perf_counter() - t0
    same = _same(fast.horizon, full.horizon)

    # 3. where one unit's time goes
    profile = cProfile.Profile()
    profile.enable()
    run(config(1, 4, start=2040))
    profile.disable()
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(14)
    top = "\n".join(stream.getvalue().splitlines()[:40])

    full_units = 15 * 100
    verdict = (
        ("Target met." if elapsed < 120 else "**Target not met.**")
        if units == full_units
        else "(a subset: the target is for 15 years x 100 draws)"
    )
    command = (
        f"python benchmarks/bench_study.py --years {args.years} --draws {args.draws} "
        f"--workers {args.workers}"
    )
    header = (
        "| years | draws | units | feeder-steps | workers | wall time [s] "
        "| CPU main process [s] | peak RSS main / largest worker [MiB] |"
    )
    row = (
        f"| {args.years} | {args.draws} | {units} | {feeder_steps:,} | {args.workers} "
        f"| **{elapsed:.1f}** | {cpu_main:.1f} | {rss_self:.0f} / {rss_children:.0f} |"
    )
    text = f"""# Multi-year study benchmark (issue 6)

`{command}`
-- bundled feeder `lv-semiurban` (SimBench 1-LV-semiurb4--0-sw), a full profile year
({steps:,} steps of 15 min) per planning year and draw, cases: no EVs (once per year),
`unmanaged`, `v2g_peak_shave`; `gridplan.study.runner.run` end to end, writing all {n_files} output
files (tables, figures, report, GIS layers).

{header}
|---|---|---|---|---|---|---|---|
{row}

Target: under 2 minutes on 2 cores. {verdict}
Load average at the start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}.

How: the base case (no EVs) is solved in full once per year; with {args.draws} draws per
year each EV case is solved only at the steps whose results could matter, proven step by
step from the base case (`gridplan.powerflow.screening`; the study screens from
`SCREENING_MIN_DRAWS` draws, `benchmarks/results/screening.md`); the dispatch runs
without a step loop (closed-form `unmanaged`, `v2g_peak_shave` stepping only where an asset
would exceed its limit); the (year, draw) units run in {args.workers} worker processes.
Screening: {stats}.

Same results as solving every step: a {small[0]}-year x {small[1]}-draw study from {small[2]}
with `horizon.screening` on and off: {"identical" if same else "**DIFFERENT**"}
(peak loading, hours and energy over the limit, need flags, voltages, DER-VET
requirement; `tests/test_screening.py` checks every bundled feeder). Time, one process:
{t_full:.1f} s solving every step, {t_fast:.1f} s screened.

Where the time goes (cProfile of 1 year (2040) x 4 draws in one process, by own time):

```
{top}
```

Machine:

{machine_markdown()}
"""
    write_result("study.md", text)


if __name__ == "__main__":
    main()
