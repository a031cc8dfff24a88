"""Benchmark: peak memory of a year's study on the 9,099-bus grid (issue 21, point 3).

Bundled feeder ``mvlv-semiurban`` (SimBench ``1-MVLV-semiurb-all-0-sw``: 9,099 buses,
8,772 loads, 112 transformers and 121 MV lines monitored). One planning year, a full
profile year (35,136 steps of 15 min), 0.5 EVs per household, the study's default cases
(no EVs, ``unmanaged`` charging, V1G, ``v2g_peak_shave`` with and without availability
effects), ``--draws`` draws, in one process (no workers), screening off (the grid is too
big for it: every step is solved), no targeted V2G search. Target: peak memory under
2 GB, profiles included.

Each measurement runs in a fresh Python process, so its peak RSS is its own:

- ``load``: importing gridplan and loading the feeder (SimBench's CSV reader alone);
- ``study``: the same, then ``gridplan.study.run`` end to end and ``write_study``.

``python benchmarks/bench_study_memory.py [--draws N] [--year Y]`` writes
``benchmarks/results/study_memory.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_markdown, write_result

FEEDER = "mvlv-semiurban"
LIMIT_MIB = 2048

CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, tempfile, time
    from pathlib import Path
    t0 = time.perf_counter()
    from gridplan.grid.feeders import load_feeder
    feeder = load_feeder({feeder!r})
    t_load = time.perf_counter() - t0
    out = {{"load_s": t_load, "buses": len(feeder.net.bus), "loads": len(feeder.net.load),
            "assets": len(feeder.assets), "profile_mib": sum(
                p.nbytes for p in (feeder.load_p, feeder.load_q, feeder.sgen_p)) / 2**20}}
    if {study!r}:
        from gridplan.core.config import validate
        from gridplan.outputs import write_study
        from gridplan.study import run
        from gridplan.study.config import StudyConfig
        config = validate(StudyConfig, json.loads({config!r}))
        t0 = time.perf_counter()
        result = run(config)
        out["study_s"] = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            out["files"] = len(write_study(result, Path(tmp) / "study"))
            out["write_s"] = time.perf_counter() - t0
        out["steps"] = len(result.time_index)
        out["evs"] = int(result.fleet.n_ev)
        out["ev_loads"] = int(len(set(result.fleet.load_pos.tolist())))
        out["screening"] = result.summary.screening.get("reason", "")
        out["peak_loading_pct"] = {{
            case: float(result.loading_pct[case].max()) for case in result.loading_pct}}
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
    """
)


def config(year: int, draws: int) -> dict:
    """The study: one year, a full profile year, no EVs / unmanaged / V2G peak shaving."""
    return {
        "name": "bench-memory",
        "feeder": FEEDER,
        "year": year,
        "base_year": 2026,
        "seed": 1,
        "horizon": {"start": year, "end": year, "draws": draws},
        "period": {"kind": "year"},
        "fleet": {"evs_per_household": 0.5, "v2g_capable_share": 0.5, "v2g_enrolled_share": 0.5},
        "dispatch": {"charging": "unmanaged", "v2g": "v2g_peak_shave"},
        "targeting": {"enabled": False},
    }


def measure(study: bool, year: int, draws: int) -> dict:
    """Run the child in a fresh process; its JSON line."""
    code = CHILD.format(feeder=FEEDER, study=study, config=json.dumps(config(year, draws)))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--year", type=int, default=2035)
    args = parser.parse_args()
    load0 = os.getloadavg()
    load = measure(False, args.year, args.draws)
    study = measure(True, args.year, args.draws)
    verdict = "Target met." if study["peak_rss_mib"] < LIMIT_MIB else "**Target not met.**"
    peaks = ", ".join(f"{c} {v:.1f} %" for c, v in study["peak_loading_pct"].items())
    text = f"""# A year's study on the 9,099-bus grid: peak memory (issue 21)

`python benchmarks/bench_study_memory.py --draws {args.draws} --year {args.year}`
-- bundled feeder `{FEEDER}` (SimBench 1-MVLV-semiurb-all-0-sw: {load["buses"]:,} buses,
{load["loads"]:,} loads, {load["assets"]} monitored assets: every transformer and the 20 kV
lines), one planning year ({args.year}), {args.draws} draws, a full profile year
({study["steps"]:,} steps of 15 min), 0.5 EVs per household, the default cases (no EVs,
`unmanaged`, V1G, `v2g_peak_shave` with and without availability effects), no targeted
search, one process, screening: {study["screening"]}. Each row is a fresh process; peak RSS is
`getrusage(RUSAGE_SELF).ru_maxrss`.

| run | wall time [s] | peak RSS [MiB] |
|---|---|---|
| import gridplan and load the feeder | {load["load_s"]:.1f} | {load["peak_rss_mib"]:,.0f} |
| the same, then `study.run` and `write_study` ({study["files"]} files) | {
        study["load_s"] + study["study_s"] + study["write_s"]:.1f} (study {
        study["study_s"]:.1f}, writing {study["write_s"]:.1f}) | **{study["peak_rss_mib"]:,.0f}** |

Target: under {LIMIT_MIB:,} MiB for a year, profiles included. {verdict}
Load average at the start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}.

The fleet: {study["evs"]:,} EVs at {study["ev_loads"]:,} of the {load["loads"]:,} loads.
Peak loading of the monitored assets: {peaks}.

How: the feeder keeps SimBench's relative profiles and each element's nominal power
({load["profile_mib"]:.0f} MiB for load P, Q and generation; `simbench.get_absolute_values`
expands them to about 8 GB), `gridplan.grid.profiles.ProfileMatrix`; a study grows them
to the planning year and adds the EV power row by row; the dispatch keeps EV power for the
loads with EVs only (`dispatch(..., load_columns=...)`), for a fleet this big as float32
in a sparse array (EVs charge a few hours a day); the power flow runs in chunks of
512 steps and each chunk is reduced to the monitored branches' loading and the service
buses' extremes before the next (`gridplan.study.units.StudyUnit`).

Machine:

{machine_markdown()}
"""
    write_result("study_memory.md", text)


if __name__ == "__main__":
    main()
