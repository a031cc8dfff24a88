"""Benchmark: the bundled OpenDSS feeders (issue 17, point 6).

For each of ``epri-ckt5`` and ``epri-ckt7``, in a fresh process (clean peak RSS):

* load the feeder (OpenDSS scan + compile + conversion + yearly profiles) [s];
* compile the net for the time-series solver [s];
* a full year of hourly steps (8,760) through
  :func:`gridplan.powerflow.solver.solve_timeseries` at 1 thread, reporting every
  monitored transformer and line [s], converged share, peak loading;
* accuracy at the feeder's peak step: max |Δvm| [pu] and max |Δloading| [%-pt] of the
  monitored transformers against ``pandapower.runpp`` on the same loads;
* peak resident memory of the process [MB].

and, with ``--study``, the issue's study on each feeder from the CLI (``gridplan study``:
peak week, planning years 2026-2040, 5 draws, the quick-start assumptions) in a fresh
process: wall time [s] and peak resident memory [MB].

Run ``python benchmarks/bench_opendss.py [--study]``; the result goes to
``benchmarks/results/opendss.md``. ``--quick`` solves one week instead of a year.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_markdown

RESULTS = Path(__file__).resolve().parent / "results" / "opendss.md"
FEEDERS = ("epri-ckt5", "epri-ckt7")


def run_one(name: str, steps: int | None) -> dict[str, Any]:
    """Load, compile and solve one feeder; return the figures (one process per feeder)."""
    import pandapower as pp

    from gridplan.grid.feeders import load_feeder, peak_step
    from gridplan.powerflow.solver import compile_network, solve_timeseries

    t0 = time.perf_counter()
    feeder = load_feeder(name)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = compile_network(feeder.net)
    t_compile = time.perf_counter() - t0
    n = steps or len(feeder.time_index)
    lines = feeder.assets.element[feeder.assets.kind == "line"].tolist()
    trafos = feeder.assets.element[feeder.assets.kind == "trafo"].tolist()
    t0 = time.perf_counter()
    result = solve_timeseries(
        compiled, feeder.load_p_kw[:n], feeder.load_q_kvar[:n], lines=lines, trafos=trafos
    )
    t_solve = time.perf_counter() - t0

    k = peak_step(feeder)
    net = copy.deepcopy(feeder.net)
    net.load["p_mw"] = feeder.load_p_kw[k] / 1000.0
    net.load["q_mvar"] = feeder.load_q_kvar[k] / 1000.0
    pp.runpp(net)
    peak = solve_timeseries(
        compiled, feeder.load_p_kw[k : k + 1], feeder.load_q_kvar[k : k + 1], trafos=trafos
    )
    bus_pos = {b: i for i, b in enumerate(peak.bus_index)}
    vm_ref = net.res_bus.vm_pu.to_numpy()
    vm_ours = np.array([peak.vm_pu[0, bus_pos[b]] for b in net.bus.index])
    ok = np.isfinite(vm_ref) & np.isfinite(vm_ours)
    loading_ref = net.res_trafo.loading_percent.loc[trafos].to_numpy()
    return {
        "feeder": name,
        "buses": len(feeder.net.bus),
        "loads": len(feeder.net.load),
        "monitored": len(lines) + len(trafos),
        "steps": n,
        "load_s": t_load,
        "compile_s": t_compile,
        "solve_s": t_solve,
        "converged": float(np.mean(result.converged)),
        "max_trafo_loading_pct": float(np.nanmax(result.trafo_loading_pct)),
        "peak_step": int(k),
        "peak_dvm_pu": float(np.max(np.abs(vm_ref[ok] - vm_ours[ok]))),
        "peak_dloading_pct": float(np.max(np.abs(loading_ref - peak.trafo_loading_pct[0]))),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "load": os.getloadavg()[0],
    }


STUDY = """name = "{name}-peak-week"
feeder = "{name}"
year = 2030
base_year = 2026
seed = 2030
[horizon]
start = 2026
end = 2040
draws = 5
confidence = 0.9
[period]
kind = "peak_week"
[fleet]
v2g_capable_share = 0.5
v2g_enrolled_share = 0.5
[fleet.adoption]
kind = "logistic"
midpoint_year = 2033
ceiling = 1.2
steepness = 0.35
[dispatch]
charging = "unmanaged"
v2g = "v2g_peak_shave"
"""


def run_study(name: str, folder: Path) -> dict[str, Any]:
    """``gridplan study`` on a peak week of ``name`` in a fresh process: wall time, RSS."""
    config = folder / f"{name}.toml"
    config.write_text(STUDY.format(name=name), encoding="utf-8")
    code = (
        "import resource, sys, time\n"
        "from gridplan.cli import main\n"
        "t = time.perf_counter()\n"
        f"rc = main(['study', {str(config)!r}, '-o', {str(folder / 'out')!r}, '--overwrite'])\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print('BENCH', rc, time.perf_counter() - t, rss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH"))
    _, rc, wall, rss = line.split()
    load = os.getloadavg()[0]
    return {"feeder": name, "rc": int(rc), "wall_s": float(wall), "rss_mb": float(rss),
            "load": load}  # fmt: skip


def _study_markdown(rows: list[dict[str, Any]]) -> str:
    body = "\n".join(
        f"| {r['feeder']} | {r['rc']} | {r['wall_s']:.1f} | {r['rss_mb']:.0f} | {r['load']:.1f} |"
        for r in rows
    )
    return (
        "\n## Peak-week study from the CLI\n\n`gridplan study`: peak week (168 h), planning "
        "years 2026-2040, 5 draws, quick-start assumptions, 1 worker; one fresh process "
        "per feeder. The 1-min load average when it finished is shown: the machine is "
        "shared, figures under load are slower.\n\n"
        "| feeder | exit code | wall [s] | peak RSS [MB] | load average |\n|---|---|---|---|---|\n"
        + body
        + "\n"
    )


def _markdown(rows: list[dict[str, Any]], quick: bool) -> str:
    head = (
        "| feeder | buses | loads | monitored | steps | load feeder [s] | compile [s] | "
        "solve [s] | converged | max trafo loading [%] | peak-step max abs dvm vs runpp [pu] | "
        "peak-step max abs dloading [%-pt] | peak RSS [MB] | load average |\n|" + "---|" * 14
    )
    body = [
        f"| {r['feeder']} | {r['buses']} | {r['loads']} | {r['monitored']} | {r['steps']} | "
        f"{r['load_s']:.2f} | {r['compile_s']:.2f} | {r['solve_s']:.1f} | "
        f"{100 * r['converged']:.1f} % | {r['max_trafo_loading_pct']:.1f} | "
        f"{r['peak_dvm_pu']:.1e} | {r['peak_dloading_pct']:.1e} | {r['peak_rss_mb']:.0f} | "
        f"{r['load']:.1f} |"
        for r in rows
    ]
    note = " (--quick: one week)" if quick else ""
    return (
        "# OpenDSS feeders: a year of hourly steps\n\n"
        f"`python benchmarks/bench_opendss.py`{note}. Each feeder runs in a fresh process: "
        "load (OpenDSS scan, compile, conversion, yearly loadshapes), compile for the "
        "solver, then every step through `solve_timeseries` at 1 thread reporting every "
        "monitored asset. Accuracy: the feeder's peak step against `pandapower.runpp` on "
        "the same loads. The 1-min load average when each finished is shown: the machine "
        "is shared, and figures under load are slower.\n\n"
        f"{head}\n" + "\n".join(body) + "\n\n## Machine\n\n" + machine_markdown() + "\n"
    )


def main() -> None:
    """Run every feeder in its own process and write the markdown result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one week instead of a year")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--study", action="store_true", help="also time a peak-week study")
    args = parser.parse_args()
    steps = 168 if args.quick else None
    if args.one:
        print(json.dumps(run_one(args.one, steps)))
        return
    rows = []
    for name in FEEDERS:
        cmd = [sys.executable, __file__, "--one", name] + (["--quick"] if args.quick else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1])
    text = _markdown(rows, args.quick)
    if args.study:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="gridplan-bench-") as tmp:
            studies = [run_study(name, Path(tmp)) for name in FEEDERS]
        print(studies)
        text = text.replace("\n## Machine", _study_markdown(studies) + "\n## Machine")
    RESULTS.write_text(text, encoding="utf-8")
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()
