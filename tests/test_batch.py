"""Batch studies: plan and seeds, outputs, Dask = serial, resume after a kill, failing
feeders, a killed worker, and bad input (one clear line, before anything runs)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from gridplan.batch import cluster as batch_cluster
from gridplan.batch import lock as batch_lock
from gridplan.batch import plan as batch_plan
from gridplan.batch import plan_batch, ranking_frame, run, summary_metrics
from gridplan.batch import records as batch_records
from gridplan.batch import results as batch_results
from gridplan.batch import runner as batch_runner
from gridplan.batch import task as batch_task
from gridplan.batch.plan import unit_stem
from gridplan.cli import main
from gridplan.core.errors import ConfigError
from gridplan.study import StudySummary

#: A US feeder on the SimBench 2016 calendar (the bundled us-residential before issue 18),
#: so that one date range fits every feeder of a batch; bundled us-residential now runs on
#: a typical (TMY3) year.
US_SPEC = (Path(__file__).parent / "data" / "feeders" / "us-simbench.toml").as_posix()
US = "us-simbench"


def uid(feeder: str, rest: str) -> str:
    """A unit id: the feeder stem (name and hash) and the scenario/draw part."""
    return f"{unit_stem(feeder)}__{rest}"


# One day of the feeders' winter peak keeps each unit well under a second.
STUDY = """
[study]
year = 2032

[study.period]
kind = "range"
start = 2016-12-22  # TOML dates
end = 2016-12-23
"""

BATCH = f"""
name = "t"
feeders = ["lv-rural", "lv-semiurban", "{US_SPEC}"]
seed = 11

[grid]
"fleet.evs_per_household" = [0.5, 1.0]
{STUDY}
"""

# Results that must not depend on where or when a unit ran.
VOLATILE = ["duration_s", "worker", "attempts"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def batch_file(tmp_path_factory):
    return write(tmp_path_factory.mktemp("batch") / "b.toml", BATCH)


@pytest.fixture(scope="module")
def serial(batch_file):
    return run(batch_file, workers=1, output_dir=batch_file.parent / "serial", progress=False)


def stable(results: pd.DataFrame) -> pd.DataFrame:
    return results.drop(columns=VOLATILE).reset_index(drop=True)


# --------------------------------------------------------------------------- plan
def test_plan_units_seeds_and_configs(batch_file):
    plan = plan_batch(batch_file)
    assert len(plan.units) == 3 * 2
    assert len({u.unit_id for u in plan.units}) == 6
    assert [u.feeder for u in plan.units[:2]] == ["lv-rural", "lv-rural"]  # feeder-major
    by_key = {(u.feeder, u.scenario, u.draw): u for u in plan.units}
    # common random numbers: scenario points of a feeder and draw share the fleet seed
    assert by_key["lv-rural", 0, 0].seed == by_key["lv-rural", 1, 0].seed
    assert by_key["lv-rural", 0, 0].seed != by_key[US, 0, 0].seed
    unit = by_key[US, 1, 0]
    assert unit.config.fleet.evs_per_household == 1.0
    assert unit.config.feeder == str(Path(US_SPEC).resolve())
    assert unit.config.year == 2032 and unit.config.period.kind == "range"
    assert unit.config.seed == unit.seed == batch_plan.unit_seed(11, US, 0)
    assert unit.params == {"fleet.evs_per_household": 1.0}


def test_seeds_do_not_depend_on_order_or_draw_count(batch_file):
    plan = plan_batch(batch_file)
    data = batch_plan.load_batch_config(batch_file).model_dump()
    data.update(feeders=[US_SPEC, "lv-semiurban", "lv-rural"], draws=3)
    other = plan_batch(data, base_dir=batch_file.parent)
    seeds = {u.unit_id.split("__")[0] + str((u.scenario, u.draw)): u.seed for u in other.units}
    for u in plan.units:
        assert seeds[u.unit_id.split("__")[0] + str((u.scenario, u.draw))] == u.seed
    assert len({u.seed for u in other.units if u.feeder == "lv-rural"}) == 3  # one per draw
    independent = plan_batch({**data, "common_random_numbers": False}, base_dir=batch_file.parent)
    lv = [u.seed for u in independent.units if u.feeder == "lv-rural" and u.draw == 0]
    assert len(set(lv)) == 2


def test_named_scenarios_and_study_template(tmp_path):
    write(
        tmp_path / "base.toml",
        'name = "tmpl"\nfeeder = "lv-rural"\nseed = 99\nyear = 2031\n[fleet]\ncharger_kw = 11\n',
    )
    plan = plan_batch(
        write(
            tmp_path / "b.toml",
            f'name = "n"\nfeeders = ["{US_SPEC}"]\nstudy = "base.toml"\ndraws = 2\n'
            "[[scenarios]]\nname = 'low'\nfleet.evs_per_household = 0.2\n"
            "[[scenarios]]\nname = 'high'\nfleet.evs_per_household = 0.9\n"
            '[grid]\n"fleet.v2g_enrolled_share" = [0.1, 0.2]\n',
        )
    )
    assert len(plan.scenarios) == 4 and len(plan.units) == 8
    assert plan.scenarios[0].name == "low, v2g_enrolled_share=0.1"
    config = plan.units[-1].config
    assert config.feeder == str(Path(US_SPEC).resolve())
    assert config.seed != 99 and config.year == 2031
    assert config.fleet.charger_kw == 11 and config.fleet.evs_per_household == 0.9
    assert plan.param_columns == ["fleet.evs_per_household", "fleet.v2g_enrolled_share"]


def test_example_batch_is_valid():
    root = Path(__file__).resolve().parents[1]
    for path in sorted((root / "batches").glob("*.toml")):
        plan = plan_batch(path)
        assert plan.units, path


# --------------------------------------------------------------------------- outputs
def test_serial_outputs(serial):
    out = serial.output_path
    assert serial.ok == 6 and serial.failed == 0 and serial.computed == 6
    for name in ("batch.json", "manifest.parquet", "manifest.csv", "results.parquet"):
        assert (out / name).is_file()
    assert not list(out.rglob("*.tmp"))
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 6 and results.unit_id.is_unique
    assert (results.status == "ok").all()
    pd.testing.assert_frame_equal(results, serial.results)
    csv = pd.read_csv(out / "results.csv")
    assert list(csv.columns) == list(results.columns)
    assert "fleet.evs_per_household" in results.columns
    # each row carries its unit's own study summary
    for row in results.itertuples():
        unit_dir = out / "units" / row.unit_id
        assert {"summary.json", "assets.csv", "study.toml", "unit.json"} <= {
            p.name for p in unit_dir.iterdir()
        }
        summary = json.loads((unit_dir / "summary.json").read_text())
        critical = summary["critical_asset"]
        assert summary["seed"] == row.seed
        assert row.peak_loading_pct_charging == critical["peak_loading_pct_charging"]
        assert row.evs == summary["fleet"]["evs"]
        # every summary-derived column round-trips through unit.json and the tables
        expected = summary_metrics(StudySummary.from_dict(summary))
        actual = results.set_index("unit_id").loc[row.unit_id]
        for column, value in expected.items():
            if isinstance(value, str) or not pd.isna(value):
                assert actual[column] == pytest.approx(value), column
            else:
                assert pd.isna(actual[column]), column
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert (manifest.status == "ok").all() and (manifest.attempts == 1).all()
    assert manifest.seed.tolist() == results.seed.tolist()
    assert json.loads(manifest.versions[0])["gridplan"]
    ranking = pd.read_csv(out / "ranking.csv")
    assert sorted(ranking.feeder) == ["lv-rural", "lv-semiurban", US]
    assert ranking.net_deferral_value_usd_mean.is_monotonic_decreasing
    assert ranking["rank"].tolist() == [1, 2, 3]
    text = "\n".join(serial.summary_lines())
    assert "6 ok, 0 failed" in text and str(out) in text


def test_unit_reproduces_as_a_study(serial, tmp_path):
    """A unit's study.toml run with `gridplan study` gives the unit's numbers."""
    from gridplan.study import run as run_study

    row = serial.results.iloc[-1]
    result = run_study(serial.output_path / "units" / row.unit_id / "study.toml")
    assert summary_metrics(result.summary)["peak_loading_pct_v2g"] == row.peak_loading_pct_v2g
    assert result.summary.fleet.evs == row.evs


def test_rerun_needs_resume_and_resume_runs_nothing(serial, batch_file):
    with pytest.raises(ConfigError, match="--resume"):
        run(batch_file, workers=1, output_dir=serial.output_path.parent, progress=False)
    before = {p: p.stat().st_mtime_ns for p in serial.output_path.glob("units/*/unit.json")}
    again = run(
        batch_file, workers=1, output_dir=serial.output_path.parent, resume=True, progress=False
    )
    assert again.computed == 0 and again.skipped == 6 and again.ok == 6
    assert {p: p.stat().st_mtime_ns for p in before} == before
    pd.testing.assert_frame_equal(again.results, serial.results)
    results, ranking = batch_records.consolidate(serial.output_path)
    assert len(results) == 6 and len(ranking) == 3


# --------------------------------------------------------------------------- dask
# Dask clusters start worker processes (~30 s each on 2 cores): run in the slow pass, which
# .ci/run runs after the default suite.
@pytest.mark.slow
def test_two_dask_workers_equal_serial(serial, batch_file):
    pytest.importorskip("distributed")
    result = run(batch_file, workers=2, output_dir=batch_file.parent / "dask", progress=False)
    assert result.executor.startswith("LocalCluster (2")
    assert result.ok == 6
    # Exactly equal: the power-flow solver runs BLAS single-threaded here as on the workers.
    pd.testing.assert_frame_equal(stable(result.results), stable(serial.results), check_exact=True)


def _count_feeder_builds() -> None:
    """On a worker: count the feeders this process builds from their specs."""
    import gridplan.grid.feeders as feeders

    original = feeders.build_feeder
    counts: dict[str, int] = {}

    def counting(spec, path=None):
        counts[spec.name] = counts.get(spec.name, 0) + 1
        return original(spec, path)

    counting.counts = counts  # type: ignore[attr-defined]
    feeders.build_feeder = counting


def _feeder_builds() -> dict[str, int]:
    import gridplan.grid.feeders as feeders

    return dict(feeders.build_feeder.counts)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_feeder_is_loaded_once_and_sent_to_the_other_worker(tmp_path, serial):
    """Shared inputs go to workers once: the feeder is built on one worker only; the
    other worker gets the loaded feeder from it and runs units with the same results."""
    pytest.importorskip("distributed")
    plan = plan_batch(
        {
            "name": "once",
            "feeders": [US_SPEC],
            "seed": 11,
            "draws": 3,
            "grid": {"fleet.evs_per_household": [0.5, 1.0]},
            "study": {
                "year": 2032,
                "period": {"kind": "range", "start": "2016-12-22", "end": "2016-12-23"},
            },
        }
    )
    with batch_cluster.local_client(2) as client:
        client.run(_count_feeder_builds)
        result = run(plan, client=client, output_dir=tmp_path, progress=False)
        builds = client.run(_feeder_builds)
        env = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
    assert result.ok == 6
    assert sorted(builds.values(), key=len) == [{}, {US: 1}], builds
    # while one worker loads the feeder the other takes units of it: both run some
    assert result.results.worker.nunique() == 2
    assert set(env.values()) == {None}  # glibc's malloc defaults, not Dask's eager trim
    # the same numbers as in this process: the draw-0 units are those of `serial`
    here = stable(serial.results).set_index("unit_id")
    there = stable(result.results).set_index("unit_id")
    same = [u for u in there.index if u in here.index]
    assert len(same) == 2
    pd.testing.assert_frame_equal(there.loc[same], here.loc[same], check_exact=True)


def test_killed_worker_has_its_unit_retried(tmp_path):
    distributed = pytest.importorskip("distributed")
    path = write(
        tmp_path / "k.toml",
        f'name = "k"\nfeeders = ["{US_SPEC}"]\ndraws = 3\n{STUDY}',
    )
    plan = plan_batch(path)
    victim = plan.units[1].unit_id
    marker = tmp_path / "killed"

    def install(marker: str, unit_id: str) -> None:
        import os
        from pathlib import Path

        import gridplan.batch.task as batch_task

        original = batch_task.run_study

        def run(config, **kwargs):
            if config.name == unit_id and not Path(marker).exists():
                Path(marker).write_text(str(os.getpid()))
                os._exit(1)  # the worker process dies mid-task
            return original(config, **kwargs)

        batch_task.run_study = run

    # A cluster reached by its scheduler's address, as with `gridplan batch --scheduler`.
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as lc,
        distributed.Client(lc, set_as_default=False) as client,
    ):
        client.run(install, str(marker), victim)
        address = lc.scheduler_address
        result = run(plan, scheduler=address, output_dir=tmp_path / "out", progress=False)
    assert result.executor.startswith(f"Dask scheduler {address} (2 workers")
    assert marker.exists(), "the worker was not killed"
    assert result.ok == 3 and result.failed == 0
    row = result.results.set_index("unit_id").loc[victim]
    assert row.status == "ok" and not row.worker.endswith(":" + marker.read_text())
    # the same numbers as in this process
    here = run(plan, workers=1, output_dir=tmp_path / "here", progress=False)
    pd.testing.assert_frame_equal(stable(result.results), stable(here.results), check_exact=True)


def test_unreachable_scheduler_fails_fast(batch_file, tmp_path, capsys):
    pytest.importorskip("distributed")
    t0 = time.monotonic()
    with pytest.raises(
        ConfigError, match=r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:9'"
    ):
        run(batch_file, scheduler="tcp://127.0.0.1:9", output_dir=tmp_path, progress=False)
    assert time.monotonic() - t0 < 20  # default connect timeout 5 s
    assert not (tmp_path / "t").exists()  # nothing written
    # the same from the batch file, on the command line
    path = write(
        tmp_path / "s.toml",
        BATCH + '\n[execution]\nscheduler = "tcp://127.0.0.1:9"\nconnect_timeout_s = 1\n',
    )
    assert main(["batch", str(path), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: field 'execution.scheduler': cannot reach")
    assert "\n" not in err


def test_without_dask_default_runs_here_and_more_workers_is_an_error(tmp_path, monkeypatch):
    from gridplan.core.errors import GridplanError

    monkeypatch.setattr(batch_runner, "_dask_installed", lambda: False)
    monkeypatch.setattr(batch_runner, "_cpu_count", lambda: 4)
    path = write(tmp_path / "one.toml", f'name = "one"\nfeeders = ["lv-rural"]\n{STUDY}')
    result = run(path, output_dir=tmp_path, progress=False)
    assert result.executor == "this process" and result.ok == 1

    def missing():
        raise GridplanError("needs Dask: pip install 'gridplan[dask]'")

    monkeypatch.setattr(batch_cluster, "_distributed", missing)
    with pytest.raises(GridplanError, match=r"gridplan\[dask\]"):
        run(path, workers=2, output_dir=tmp_path, overwrite=True, progress=False)
    assert (tmp_path / "one" / "units" / uid("lv-rural", "s0_d0") / "unit.json").is_file()  # kept


# --------------------------------------------------------------------------- durability
def test_corrupt_feeder_fails_only_its_units(tmp_path, capsys):
    write(tmp_path / "specs" / "broken.toml", 'name = "broken"\nnetwork = [\n')
    bad_code = (Path(__file__).resolve().parents[1] / "feeders" / "lv-rural.toml").read_text()
    bad_code = bad_code.replace('"lv-rural"', '"badcode"').replace("1-LV-rural1--0-sw", "1-XX")
    write(tmp_path / "specs" / "badcode.toml", bad_code)
    path = write(
        tmp_path / "c.toml",
        f'name = "c"\nfeeders = ["lv-rural", "specs/*.toml"]\n'
        f'[grid]\n"fleet.evs_per_household" = [0.5, 1.0]\n{STUDY}',
    )
    out = tmp_path / "out"
    # exit status 1: some units failed
    assert main(["batch", str(path), "-w", "1", "-o", str(out), "--no-progress"]) == 1
    stdout = capsys.readouterr().out
    assert "2 ok, 4 failed" in stdout and f"failed {uid('broken', 's0_d0')}: " in stdout
    manifest = pd.read_parquet(out / "c" / "manifest.parquet").set_index("unit_id")
    assert set(manifest.index[manifest.status == "ok"]) == {
        uid("lv-rural", "s0_d0"),
        uid("lv-rural", "s1_d0"),
    }
    assert "malformed TOML" in manifest.error[uid("broken", "s0_d0")]
    assert "broken.toml" in manifest.error[uid("broken", "s1_d0")]
    assert "not a valid SimBench code '1-XX'" in manifest.error[uid("badcode", "s0_d0")]
    assert manifest.error_type[uid("badcode", "s0_d0")] == "ConfigError"
    results = pd.read_parquet(out / "c" / "results.parquet")
    assert len(results) == 6 and results[results.status == "failed"].evs.isna().all()
    ranking = pd.read_parquet(out / "c" / "ranking.parquet")
    assert ranking.feeder.iloc[0] == "lv-rural" and ranking.units_failed.iloc[-1] == 2
    # resume runs the failed units again, and only them
    again = run(path, workers=1, output_dir=out, resume=True, progress=False)
    assert again.computed == 4 and again.skipped == 2 and again.failed == 4
    attempts = again.manifest.set_index("unit_id").attempts
    assert attempts[uid("broken", "s0_d0")] == 2 and attempts[uid("lv-rural", "s0_d0")] == 1


def _start_batch(path: Path, out: Path) -> subprocess.Popen[bytes]:
    """``gridplan batch PATH -w 1 -o OUT`` in its own session (so it can be killed whole)."""
    return subprocess.Popen(
        [sys.executable, "-m", "gridplan.cli", "batch", str(path), "-w", "1", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_killed_batch_resumes_without_recomputing(tmp_path):
    path = write(
        tmp_path / "r.toml",
        f'name = "r"\nfeeders = ["{US_SPEC}", "lv-semiurban"]\n'
        '[grid]\n"fleet.evs_per_household" = [0.3, 0.6, 0.9, 1.2]\n'
        '[study]\nyear = 2032\n[study.period]\nkind = "range"\n'
        'start = "2016-12-20"\nend = "2016-12-23"\n',
    )
    out = tmp_path / "out"
    units = out / "r" / "units"
    proc = _start_batch(path, out)
    try:
        deadline = time.monotonic() + 120
        while len(list(units.glob("*/unit.json"))) < 2:
            assert proc.poll() is None, "the batch ended before it could be killed"
            assert time.monotonic() < deadline, "no unit finished in time"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in units.glob("*/unit.json")}
    assert 2 <= len(finished) < 8, "kill the batch mid-way"
    manifest = pd.read_parquet(out / "r" / "manifest.parquet")  # readable after the kill
    assert len(manifest) == 8
    interrupted, _ = batch_records.consolidate(out / "r")
    assert set(interrupted.unit_id) == set(finished)

    assert main(["batch", str(path), "-w", "1", "-o", str(out), "--resume", "--no-progress"]) == 0
    for unit_id, mtime in finished.items():
        assert (units / unit_id / "unit.json").stat().st_mtime_ns == mtime, unit_id
    results = pd.read_parquet(out / "r" / "results.parquet")
    assert len(results) == 8 and results.unit_id.is_unique and (results.status == "ok").all()
    assert (results.attempts == 1).all()
    manifest = pd.read_parquet(out / "r" / "manifest.parquet").set_index("unit_id")
    runs = manifest.run_id
    assert runs[list(finished)].nunique() == 1
    assert not set(runs[list(finished)]) & set(runs.drop(index=list(finished)))


# --------------------------------------------------------------------------- the lock
ONE = f'name = "one"\nfeeders = ["{US_SPEC}"]\n{STUDY}'


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_run_on_a_locked_folder_fails_with_one_line(tmp_path, capsys):
    path = write(tmp_path / "one.toml", ONE)
    folder = tmp_path / "out" / "one"
    with batch_lock.output_lock(folder, "one") as lock:  # a live run: this very process
        assert lock == folder / batch_lock.LOCK_FILE
        holder = json.loads(lock.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] and holder["started_at"]
        with pytest.raises(batch_lock.BatchLockedError) as info:
            run(path, workers=1, output_dir=tmp_path / "out", progress=False)
        message = str(info.value)
        assert str(folder) in message and str(lock) in message and f"pid {os.getpid()}" in message
        assert main(["batch", str(path), "-w", "1", "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: output folder") and "\n" not in err
        assert str(lock) in err and "in use by another batch run" in err
        assert not (folder / "units").exists()  # nothing of the second run written
        assert lock.is_file()  # the holder's lock is left alone
    assert not lock.exists()  # released at the end of the block


def test_lock_of_another_host_is_not_taken_over(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    lock = folder / batch_lock.LOCK_FILE
    lock.write_text(json.dumps({"pid": dead_pid(), "host": "elsewhere.example", "token": "t"}))
    with pytest.raises(
        batch_lock.BatchLockedError, match=r"on elsewhere\.example.*delete the lock file"
    ):
        with batch_lock.output_lock(folder):
            pass
    assert json.loads(lock.read_text())["host"] == "elsewhere.example"


def test_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    path = write(tmp_path / "one.toml", ONE)
    folder = tmp_path / "out" / "one"
    folder.mkdir(parents=True)
    lock = folder / batch_lock.LOCK_FILE
    pid = dead_pid()
    stale = {"pid": pid, "host": __import__("socket").gethostname(), "token": "old"}
    lock.write_text(json.dumps(stale))
    with caplog.at_level("WARNING", logger="gridplan.batch"):
        result = run(path, workers=1, output_dir=tmp_path / "out", progress=False)
    assert result.ok == 1
    assert any("stale lock" in r.message and f"pid {pid}" in r.message for r in caplog.records)
    assert not lock.exists() and not list(folder.glob("batch.lock*"))
    # an unreadable lock (its writer died before writing it) is stale after a few seconds
    lock.write_text("")
    old = time.time() - 60
    os.utime(lock, (old, old))
    with batch_lock.output_lock(folder):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_lock_is_released_on_errors_and_interrupts(tmp_path, monkeypatch):
    path = write(tmp_path / "one.toml", ONE)
    lock = tmp_path / "out" / "one" / batch_lock.LOCK_FILE

    def interrupt(self, unit, outcome):
        assert lock.is_file()  # held while the units run
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_records._Recorder, "record", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(path, workers=1, output_dir=tmp_path / "out", progress=False)
    assert not lock.exists()
    monkeypatch.undo()
    result = run(path, workers=1, output_dir=tmp_path / "out", progress=False, overwrite=True)
    assert result.ok == 1 and not lock.exists()


def test_concurrent_batch_is_refused_and_a_killed_ones_lock_taken_over(tmp_path, capsys, caplog):
    """Two `gridplan batch` processes on one folder: the second fails at once; after the
    first is killed, its stale lock is taken over by a resumed run."""
    path = write(
        tmp_path / "r.toml",
        f'name = "r"\nfeeders = ["{US_SPEC}"]\n'
        '[grid]\n"fleet.evs_per_household" = [0.3, 0.6, 0.9, 1.2, 1.5, 1.8]\n'
        '[study]\nyear = 2032\n[study.period]\nkind = "range"\n'
        'start = "2016-12-20"\nend = "2016-12-23"\n',
    )
    out = tmp_path / "out"
    lock = out / "r" / batch_lock.LOCK_FILE
    proc = _start_batch(path, out)
    try:
        deadline = time.monotonic() + 120
        while not lock.is_file() or not (out / "r" / "manifest.parquet").is_file():
            assert proc.poll() is None, "the first batch ended before the second started"
            assert time.monotonic() < deadline, "the first batch did not start in time"
            time.sleep(0.02)
        assert json.loads(lock.read_text())["pid"] == proc.pid
        for flag in ("--resume", "--overwrite"):
            assert main(["batch", str(path), "-w", "1", "-o", str(out), flag]) == 2
            err = capsys.readouterr().err.strip()
            assert f"output folder {out / 'r'} is in use" in err and str(lock) in err
            assert f"pid {proc.pid}" in err and "\n" not in err
        assert proc.poll() is None and lock.is_file()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert lock.is_file()  # a killed run leaves its lock behind
    with caplog.at_level("WARNING", logger="gridplan.batch"):
        assert (
            main(["batch", str(path), "-w", "1", "-o", str(out), "--resume", "--no-progress"]) == 0
        )
    assert any("stale lock" in r.message for r in caplog.records)
    assert not lock.exists()
    assert (pd.read_parquet(out / "r" / "results.parquet").status == "ok").all()


# --------------------------------------------------------------------------- bad input
def bad(tmp_path: Path, body: str) -> Path:
    return write(tmp_path / "bad.toml", body)


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ('name = "x"\nfeeders = ["nope/*.toml"]\n', "feeders[0]", "matches no feeder spec"),
        ('name = "x"\nfeeders = "zz-*"\n', "feeders", "matches no bundled feeder"),
        ('name = "x"\nfeeders = ["lv-rurall"]\n', "feeders[0]", "did you mean 'lv-rural'"),
        ('name = "x"\nfeeders = ["lv-rural", "lv-*"]\n', "feeders", "duplicate feeder name"),
        ('name = "x"\nfeeders = []\n', "feeders", "no feeders"),
        (
            'name = "x"\nfeeders = ["lv-rural"]\n[grid]\n"fleet.evs_per_houshold" = [1]\n',
            "grid.fleet.evs_per_houshold",
            "did you mean 'fleet.evs_per_household'",
        ),
        (
            'name = "x"\nfeeders = ["lv-rural"]\n[grid]\n"fleet.evs_per_household" = [0.5, -1]\n',
            "grid.fleet.evs_per_household",
            "greater than or equal to 0",
        ),
        (
            'name = "x"\nfeeders = ["lv-rural"]\n[grid]\nfleet.evs_per_household = 0.5\n',
            "grid.fleet.evs_per_household",
            "non-empty list",
        ),
        ('name = "x"\nfeeders = ["lv-rural"]\n[grid]\nseed = [1, 2]\n', "grid.seed", "set by"),
        (
            'name = "x"\nfeeders = ["lv-rural"]\n[study]\nfeeder = "lv-rural"\n',
            "study.feeder",
            "set by the batch",
        ),
        ('name = "x"\nfeeders = ["lv-rural"]\n[study]\nyear = "2030"\n', "study.year", "integer"),
        (
            'name = "x"\nfeeders = ["lv-rural"]\n[study]\nyear = 2030\n'
            "[grid]\nbase_year = [2031]\n",
            "grid.base_year",
            "before base_year",
        ),
        ('name = "x"\nfeeders = ["lv-rural"]\ndraws = 0\n', "draws", "greater than or equal"),
        ('name = "x"\nfeeders = ["lv-rural"]\nworkers = 2\n', "workers", "unknown field"),
        ('name = "x"\nfeeders = ["lv-rural"]\nstudy = "none.toml"\n', "study", "not found"),
    ],
)
def test_bad_input_names_file_and_field(tmp_path, capsys, body, field, needle):
    path = bad(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        plan_batch(path)
    assert info.value.file == str(path)
    assert info.value.field == field
    assert needle in str(info.value)
    assert main(["batch", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and needle in err
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_duplicate_feeder_name_from_spec_file(tmp_path):
    spec = Path(__file__).resolve().parents[1] / "feeders" / "lv-rural.toml"
    write(tmp_path / "copy" / "mine.toml", spec.read_text())
    path = bad(tmp_path, 'name = "x"\nfeeders = ["lv-rural", "copy/*.toml"]\n')
    with pytest.raises(ConfigError, match=r"duplicate feeder name 'lv-rural'.*mine\.toml"):
        plan_batch(path)


# --------------------------------------------------------------------------- tables
def test_summary_metrics_read_the_typed_summary(serial):
    """The results row of a unit is read from its typed summary, which round-trips through
    summary.json; the primary V2G case's economics fill the economics columns."""
    row = serial.results.iloc[0]
    data = json.loads((serial.output_path / "units" / row.unit_id / "summary.json").read_text())
    summary = StudySummary.from_dict(data)
    assert summary.to_dict() == {k: v for k, v in data.items() if k != "files"}
    metrics = summary_metrics(summary)
    assert set(batch_results.SUMMARY_COLUMNS) <= set(metrics)
    econ = data["economics"]["v2g"]

    def same(value, expected):  # JSON null is NaN in the results table
        return math.isnan(value) if expected is None else value == pytest.approx(expected)

    assert same(metrics["deferral_value_usd"], econ["deferral_value_usd"])
    assert same(metrics["value_usd_per_kw_yr"], econ["value_usd_per_kw_yr"])
    assert same(metrics["peak_loading_pct_v2g"], data["critical_asset"]["peak_loading_pct_v2g"])
    steps = sum(case["non_converged_steps"] for case in data["power_flow"].values())
    assert metrics["non_converged_steps"] == steps
    # without a [program] section the net value is the gross deferral value
    assert math.isnan(metrics["net_benefit_usd"])
    assert metrics["net_deferral_value_usd"] == metrics["deferral_value_usd"]
    assert metrics["net_value_basis"] == "deferral_value_usd"
    # with one, the ratepayer net benefit
    program = dict(econ, ratepayer_net_benefit_pv_usd=40.0, ratepayer_cost_pv_usd=60.0)
    priced = StudySummary.from_dict({**data, "economics": {"v2g": program}})
    metrics = summary_metrics(priced)
    assert metrics["net_deferral_value_usd"] == 40.0 and metrics["program_cost_usd"] == 60.0
    assert metrics["net_value_basis"] == "net_benefit_usd"


def test_ranking_orders_feeders_by_mean_net_value():
    results = pd.DataFrame(
        {
            "feeder": ["a", "a", "b", "b", "c"],
            "scenario": [0, 1, 0, 1, 0],
            "scenario_name": ["s0", "s1", "s0", "s1", "s0"],
            "status": ["ok", "ok", "ok", "ok", "failed"],
            "net_deferral_value_usd": [10.0, 30.0, 50.0, 0.0, math.nan],
            "deferral_years": [1.0, 2.0, 3.0, 0.0, math.nan],
            "peak_loading_pct_charging": [90.0, 95.0, 120.0, 80.0, math.nan],
            "year_of_need_charging": pd.array([2040, 2035, 2030, None, None], dtype="Int64"),
            "net_value_basis": ["deferral_value_usd"] * 4 + [None],
        }
    )
    ranking = ranking_frame(results)
    assert ranking.feeder.tolist() == ["b", "a", "c"]
    assert ranking.net_deferral_value_usd_mean.tolist()[:2] == [25.0, 20.0]
    assert ranking.best_scenario_name.tolist()[:2] == ["s0", "s1"]
    assert ranking.units_failed.tolist() == [0, 0, 1]


def test_csv_ready_writes_what_pandas_writes(serial):
    """Unit asset tables are written as pandas' to_csv(float_format="%.6g") writes them."""
    import numpy as np

    table = pd.DataFrame(
        {
            "x": [1.0, np.nan, -0.0, np.inf, -np.inf, 1e-300, 123456789.0, 0.1 + 0.2],
            "f32": np.arange(8, dtype="float32") / 3,
            "nullable": pd.array([0.5, None, 2, 3, 4, 5, 6, 7], dtype="Float64"),
            "n": pd.array([1, None, 3, 4, 5, 6, 7, 8], dtype="Int64"),
            "s": [*"abcdefg", None],
            "ok": [True, False] * 4,
            "when": pd.to_datetime(["2020-01-01"] * 7 + [None]),
        },
        index=pd.Index(list("ABCDEFGH"), name="asset"),
    )
    unit = serial.plan.units[0]
    assets = batch_task.run_unit(None, batch_task.UnitTask(unit.unit_id, unit.config))["assets"]
    for frame in (table, assets):
        expected = frame.copy()
        for column in expected.columns:
            if pd.api.types.is_datetime64_any_dtype(expected[column]):
                expected[column] = expected[column].astype(str)
        assert batch_records.csv_ready(frame).to_csv(index=False) == expected.reset_index().to_csv(
            index=False, float_format="%.6g"
        )
    written = serial.output_path / "units" / unit.unit_id / "assets.csv"
    assert written.read_text() == batch_records.csv_ready(assets).to_csv(index=False)
