"""Batch studies across feeders: feeders × scenario grid × draws, on Dask or in this process.

A batch config (``BATCH.toml``, see ``batches/screen.toml``) names

- ``feeders``: bundled feeder names, spec paths, or globs of either (``"lv-*"`` matches
  bundled names, ``"specs/*.toml"`` matches files relative to the batch file);
- ``study``: the base study, an inline table or the path of a study TOML whose ``name``,
  ``feeder``, ``seed`` and ``output_dir`` the batch replaces;
- ``grid``: dotted study fields and the values each takes (``"fleet.evs_per_household" =
  [0.4, 0.8]``); every combination is a scenario point. ``[[scenarios]]`` lists named
  points instead (or in addition: each is combined with each grid point);
- ``draws``: Monte Carlo draws of the EV fleet per (feeder, scenario point);
- ``seed``: the batch seed every unit's seed derives from.

A *unit* is one (feeder, scenario point, draw): one :func:`gridplan.study.run` with the
unit's :class:`~gridplan.study.StudyConfig` (the base study, the scenario's overrides,
the feeder and the unit's seed, validated like a study file).

Execution
    With one worker the units run in this process. Otherwise they run on Dask: a
    ``LocalCluster`` of single-threaded worker processes (all cores by default; see
    :func:`local_client` for its settings), a running scheduler (``scheduler =
    "tcp://host:8786"``), or a ``distributed.Client`` passed in. This process places the
    units itself, a few at a time, longest expected run time first, each on a worker that
    already holds its feeder while there is one (:class:`_Dispatcher`). Seeds depend on
    the unit only, so results are the same whatever the worker count or the order units
    finish in. Use single-threaded worker processes (as the ``LocalCluster`` here does).

Shared inputs
    Feeders (network, year-long profiles) are never shipped with tasks from this process:
    a task carries the unit's config, a few kB. Each feeder is loaded from its spec once,
    by a warm-up task on one worker (:func:`warm_feeder`); Dask keeps the loaded feeder
    there and sends it once to each other worker that runs one of its units (unpickling
    it takes a fraction of the 1-4 s of loading it), where :func:`run_unit` hands it to
    :func:`gridplan.study.run`. Workers must see
    the feeder specs: bundled feeders ship with gridplan; custom specs need a shared file
    system.

Durability
    A lock file (``batch.lock``, :func:`output_lock`) keeps two runs from writing the same
    output folder at once; a killed run's lock is taken over by the next run. Workers
    return each unit's summary and asset table; this process writes them to
    ``<output_dir>/<batch>/units/<unit-id>/`` (``summary.json``, ``assets.csv``,
    ``study.toml``, then ``unit.json``, the unit's record, each file atomically) as soon
    as the unit finishes, so workers need no access to the output folder and a killed
    batch loses only the units in flight. A unit that raises (a bad feeder file, any
    study error) is recorded as ``failed`` with its error and the batch goes on (power-flow
    steps that did not converge are counted in the ``non_converged_steps`` column);
    a unit whose worker dies is rescheduled by Dask on another worker (up to
    ``distributed.scheduler.allowed-failures`` times, then recorded as failed).
    ``manifest.parquet``/``.csv`` (rewritten atomically while the batch runs) lists every
    unit with its seed, config hash, status, error, timing, worker and package versions.
    ``resume=True`` keeps the units whose ``unit.json`` says ``ok`` for the same config
    hash and runs the failed and missing ones.

Results
    ``results.parquet``/``.csv``: one row per unit (:data:`RESULT_COLUMNS`, read from the
    study summary as :data:`SUMMARY_COLUMNS` lists); ``ranking.parquet``/``.csv``: feeders
    ranked by net deferral value.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from gridplan.batch.cluster import (
    _connect,
    _dask_installed,
    _describe_client,
    _run_dask,
    local_client,
)
from gridplan.batch.lock import output_lock
from gridplan.batch.plan import BatchConfig, BatchPlan, plan_batch
from gridplan.batch.records import (
    UNIT_FILES,
    _jsonable,
    _now,
    _read_json,
    _read_record,
    _Recorder,
    _write_table,
    ranking_frame,
    results_frame,
)
from gridplan.batch.task import UnitTask, _one_line, package_versions, run_unit
from gridplan.core.errors import ConfigError
from gridplan.core.io import write_json
from gridplan.outputs.report import write_batch_report

__all__ = ["BatchResult", "run"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- running
@dataclass(frozen=True, eq=False)
class BatchResult:
    """What a batch run produced (also in ``output_path``).

    Attributes
    ----------
    plan
        The batch plan.
    output_path
        ``<output_dir>/<batch name>/``.
    results
        One row per finished unit (see :func:`results_frame`).
    ranking
        Feeders by net deferral value (see :func:`ranking_frame`).
    manifest
        One row per unit: seed, config hash, status, error, timing, worker, versions.
    computed
        Units run this time.
    skipped
        Units kept from an earlier run (``resume``).
    ok, failed
        Units of the plan finished ``ok`` / ``failed`` (this run and earlier ones).
    wall_s
        Wall time of this run [s].
    executor
        Where the units ran (``this process``, ``LocalCluster (n worker processes)``, a
        scheduler or a client).
    """

    plan: BatchPlan
    output_path: Path
    results: pd.DataFrame
    ranking: pd.DataFrame
    manifest: pd.DataFrame
    computed: int
    skipped: int
    ok: int
    failed: int
    wall_s: float
    executor: str

    @property
    def units_per_minute(self) -> float:
        """Units computed per minute of wall time in this run."""
        return 60.0 * self.computed / self.wall_s if self.wall_s > 0 else math.nan

    def summary_lines(self, top: int = 5) -> list[str]:
        """A few lines for the end of a run: counts, failures, top feeders, files."""
        plan = self.plan
        n = len(plan.units)
        lines = [
            f"batch '{plan.config.name}': {n} units ({len(plan.feeders)} feeders × "
            f"{len(plan.scenarios)} scenarios × {plan.config.draws} draws): {self.ok} ok, "
            f"{self.failed} failed, {n - self.ok - self.failed} pending; {self.computed} run "
            f"in {self.wall_s:.1f} s ({self.units_per_minute:.1f} units/min; {self.executor}), "
            f"{self.skipped} kept from an earlier run"
        ]
        failed = self.manifest[self.manifest.status == "failed"]
        for _, row in failed.head(top).iterrows():
            lines.append(f"  failed {row.unit_id}: {row.error}")
        if len(failed) > top:
            lines.append(f"  ... {len(failed) - top} more failed units (see manifest.csv)")
        ranked = self.ranking.dropna(subset=["net_deferral_value_usd_mean"]).head(top)
        if len(ranked):
            lines.append("feeders by net deferral value (mean over units, USD):")
            for _, r in ranked.iterrows():
                lines.append(
                    f"  {int(r['rank']):>3}. {r.feeder:<24}{r.net_deferral_value_usd_mean:>14,.0f}"
                    f"  (best: {r.net_deferral_value_usd_best:,.0f} at {r.best_scenario_name})"
                )
        lines.append(f"results: {self.output_path}")
        return lines


def run(
    batch: BatchConfig | BatchPlan | Mapping[str, Any] | str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    output_dir: str | Path | None = None,
    progress: bool = True,
    max_units: int | None = None,
) -> BatchResult:
    """Run a batch of feeder studies.

    Parameters
    ----------
    batch
        A batch TOML path, a :class:`BatchConfig` (or dict of its fields), or a plan from
        :func:`plan_batch`. Validated and expanded before anything runs.
    workers
        Worker processes; default the config's ``execution.workers``, else all cores (one
        when Dask is not installed). One worker (and no scheduler) runs the units in this
        process, without Dask.
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``); default the config's.
        Unreachable within ``execution.connect_timeout_s`` -> :class:`ConfigError`.
    client
        A ``distributed.Client`` to run on (takes precedence over the two above).
    resume
        Keep the units already finished ``ok`` (same config hash) and run the rest.
    overwrite
        Delete the batch's earlier results first. Without ``resume`` or ``overwrite`` an
        output folder that already holds units is an error.
    output_dir
        Parent of the batch's folder; default the config's ``output_dir``.
    max_units
        Most units the batch may hold; default ``execution.max_units``.
    progress
        Show a progress bar (ETA, done and failed counts).

    Returns
    -------
    BatchResult

    Raises
    ------
    ConfigError
        Invalid batch, an output folder holding results without ``resume``/``overwrite``,
        an unreachable scheduler.
    BatchLockedError
        Another run is writing the same output folder (see :func:`output_lock`).
    """
    t0 = time.perf_counter()
    plan = batch if isinstance(batch, BatchPlan) else plan_batch(batch, max_units=max_units)
    config = plan.config
    out = Path(output_dir if output_dir is not None else config.output_dir) / config.name
    scheduler = scheduler if scheduler is not None else config.execution.scheduler
    n_workers = workers if workers is not None else config.execution.workers
    if n_workers is None:
        n_workers = _cpu_count()
        if n_workers > 1 and client is None and not scheduler and not _dask_installed():
            log.warning(
                "Dask is not installed: running the batch in this process "
                "(pip install 'gridplan[dask]' to use all %d cores)",
                n_workers,
            )
            n_workers = 1
    if n_workers < 1:
        raise ConfigError(f"workers must be at least 1 (got {n_workers})", field="workers")
    # Quick checks before a cluster starts; repeated under the output folder's lock.
    _check_output(plan, out, resume=resume, overwrite=overwrite)
    previous = _previous_records(plan, out, warn=False) if resume else {}
    todo = [u for u in plan.units if previous.get(u.unit_id, {}).get("status") != "ok"]

    with ExitStack() as locked:  # the output folder's lock, until the results are written
        with ExitStack() as stack:  # the Dask client (and cluster), until the units are done
            # Connect (or start the cluster) before anything is written or cleared: an
            # unreachable scheduler is a quick error that leaves earlier results alone.
            dask = client
            if dask is None and scheduler:
                dask = stack.enter_context(
                    _connect(scheduler, config.execution.connect_timeout_s, plan.file)
                )
            if dask is None and todo and n_workers > 1:
                n = min(n_workers, len(todo))
                dask = stack.enter_context(local_client(n))
                executor = f"LocalCluster ({n} worker processes)"
            elif dask is not None:
                where = f"Dask scheduler {scheduler}" if client is None else "Dask client"
                executor = f"{where} ({_describe_client(dask)})"
            else:
                executor = "this process"
            locked.enter_context(output_lock(out, config.name))
            # Another run may have finished in this folder since the checks above.
            _check_output(plan, out, resume=resume, overwrite=overwrite)
            previous = _previous_records(plan, out) if resume else {}
            todo = [u for u in plan.units if previous.get(u.unit_id, {}).get("status") != "ok"]
            skipped = len(plan.units) - len(todo)
            if overwrite:
                _clear_output(out)

            run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
            _write_batch_json(plan, out, run_id, "running", {"units_todo": len(todo)})
            recorder = _Recorder(plan, out, run_id, previous, len(todo), progress)
            recorder.flush()
            try:
                if todo and dask is not None:
                    _run_dask(dask, todo, recorder)
                else:
                    for unit in todo:
                        outcome = run_unit(None, UnitTask(unit.unit_id, unit.config))
                        recorder.record(unit, outcome)
            except BaseException as exc:  # the batch stops: say so in batch.json
                _record_stop(plan, out, run_id, recorder, exc)
                raise
            recorder.close()
            manifest = recorder.flush()
        wall_s = time.perf_counter() - t0
        result = _finish(plan, out, run_id, manifest, recorder.done_now, skipped, wall_s, executor)
    return result


def _record_stop(
    plan: BatchPlan, out: Path, run_id: str, recorder: _Recorder, exc: BaseException
) -> None:
    """Close the recorder and mark the run ``interrupted`` (Ctrl-C) or ``failed`` in
    ``batch.json``, with the units done so far."""
    recorder.close()
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    extra = {
        "units_done": recorder.done_now,
        "units_ok": recorder.ok,
        "error": _one_line(exc) or type(exc).__name__,
        "manifest_rows": len(recorder.flush()),
    }
    _write_batch_json(plan, out, run_id, status, extra)


def _finish(
    plan: BatchPlan,
    out: Path,
    run_id: str,
    manifest: pd.DataFrame,
    computed: int,
    skipped: int,
    wall_s: float,
    executor: str,
) -> BatchResult:
    """Consolidate the results from the unit files on disk (this and earlier runs),
    write the tables, the screening report and the final ``batch.json``."""
    finished = {}
    for unit in plan.units:
        rec = _read_record(out / "units" / unit.unit_id)
        if rec is not None and rec.get("config_hash") == unit.config_hash:
            finished[unit.unit_id] = rec
    results = results_frame(plan, finished)
    ranking = ranking_frame(results)
    _write_table(out / "results", results)
    _write_table(out / "ranking", ranking)
    try:  # the screening report across feeders; a report problem must not fail the batch
        write_batch_report(results, out)
    except Exception:
        log.exception("batch screening report failed; the results tables are complete")
    ok = int((manifest.status == "ok").sum())
    failed = int((manifest.status == "failed").sum())
    result = BatchResult(
        plan=plan,
        output_path=out,
        results=results,
        ranking=ranking,
        manifest=manifest,
        computed=computed,
        skipped=skipped,
        ok=ok,
        failed=failed,
        wall_s=wall_s,
        executor=executor,
    )
    rate = result.units_per_minute
    _write_batch_json(
        plan,
        out,
        run_id,
        "finished",
        {
            "executor": executor,
            "units_run": result.computed,
            "units_kept": skipped,
            "units_ok": ok,
            "units_failed": failed,
            "wall_s": round(wall_s, 3),
            "units_per_minute": round(rate, 3) if math.isfinite(rate) else None,
        },
    )
    return result


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_output(plan: BatchPlan, out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix a new run into an earlier run's results (unless resume/overwrite)."""
    if resume and overwrite:
        raise ConfigError("give either resume (--resume) or overwrite (--overwrite), not both")
    units_dir = out / "units"
    if not (resume or overwrite) and units_dir.is_dir() and any(units_dir.iterdir()):
        raise ConfigError(
            f"output folder {out} already holds results of batch '{plan.config.name}'; "
            "resume it (--resume) or start over (--overwrite)"
        )


def _clear_output(out: Path) -> None:
    """Delete an earlier run's units and tables (``overwrite``): only the files a batch
    writes, and folders left empty by that; anything else (a user's notes, a symlink's
    target) stays."""
    units_dir = out / "units"
    if units_dir.is_dir() and not units_dir.is_symlink():
        for unit_dir in units_dir.iterdir():
            if unit_dir.is_dir() and not unit_dir.is_symlink():
                for name in UNIT_FILES:
                    (unit_dir / name).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    unit_dir.rmdir()  # only when nothing else is in it
        with contextlib.suppress(OSError):
            units_dir.rmdir()
    for stem in ("manifest", "results", "ranking"):
        for suffix in (".parquet", ".csv"):
            (out / f"{stem}{suffix}").unlink(missing_ok=True)
    (out / "batch.json").unlink(missing_ok=True)


def _previous_records(
    plan: BatchPlan, out: Path, *, warn: bool = True
) -> dict[str, dict[str, Any]]:
    """Earlier records of the plan's units whose config hash is unchanged (``resume``);
    the ``ok`` ones are not run again, the others keep their attempt count."""
    old = _read_json(out / "batch.json") if warn else None
    if old and old.get("config_hash") != plan.config_hash:
        log.warning(
            "batch config or feeder specs changed since the last run; units whose study "
            "config changed are run again"
        )
    previous = {}
    for unit in plan.units:
        rec = _read_record(out / "units" / unit.unit_id)
        if rec is not None and rec.get("config_hash") == unit.config_hash:
            previous[unit.unit_id] = rec
    return previous


def _write_batch_json(
    plan: BatchPlan, out: Path, run_id: str, status: str, extra: dict[str, Any]
) -> None:
    config = plan.config
    data = {
        "batch": config.name,
        "description": config.description,
        "file": str(plan.file) if plan.file else None,
        "status": status,
        "run_id": run_id,
        "written_at": _now(),
        "config_hash": plan.config_hash,
        "seed": config.seed,
        "draws": config.draws,
        "common_random_numbers": config.common_random_numbers,
        "seed_rule": "numpy SeedSequence(seed, spawn_key=(sha256(feeder)[:8], draw"
        + ("" if config.common_random_numbers else ", scenario")
        + ")) -> 63-bit int",
        "units": len(plan.units),
        "feeders": [
            {"name": f.name, "ref": f.ref, "spec": str(f.spec_path), "spec_sha256": f.spec_digest}
            for f in plan.feeders
        ],
        "scenarios": [
            {"index": s.index, "name": s.name, "overrides": s.overrides} for s in plan.scenarios
        ],
        "base_study": plan.base_study,
        "config": config.model_dump(mode="json"),
        "versions": package_versions(),
        "shared_inputs": "each feeder loaded from its spec once, on one worker; Dask sends "
        "the loaded feeder once to each other worker that runs one of its units",
        **extra,
    }
    write_json(out / "batch.json", _jsonable(data))
