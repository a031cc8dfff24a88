"""A study's output folder is complete or absent (outputs.write_study)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gridplan.core.errors import ConfigError, GridplanError
from gridplan.outputs import study as writer
from gridplan.outputs import write_study
from gridplan.study import run

STUDY = """
name = "short"
feeder = "ca-residential"
year = 2030
base_year = 2026
seed = 3

[period]
kind = "range"
start = "2017-09-04"
end = "2017-09-05"

[fleet]
evs_per_household = 0.6
v2g_enrolled_share = 0.8
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "short.toml"
    path.write_text(STUDY, encoding="utf-8")
    return run(path)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_writes_a_complete_folder(result, tmp_path):
    folder = tmp_path / "out" / "short"
    files = write_study(result, folder)
    assert sorted(files) == sorted(p.name for p in folder.iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == {**result.summary.to_dict(), "files": files}
    assert [name for name in _leftovers(folder.parent) if not name.endswith(".lock")] == []


def test_existing_results_need_overwrite_and_overwrite_swaps_whole_folders(result, tmp_path):
    folder = tmp_path / "short"
    write_study(result, folder)
    (folder / "sensitivity.csv").write_text("stale")  # a file of an earlier, different run
    with pytest.raises(ConfigError, match="already holds results; use --overwrite"):
        write_study(result, folder)
    assert (folder / "sensitivity.csv").read_text() == "stale"  # untouched
    write_study(result, folder, overwrite=True)
    assert not (folder / "sensitivity.csv").exists()
    assert (folder / "summary.json").is_file()


def test_a_killed_runs_leftovers_never_block_a_rerun(result, tmp_path):
    folder = tmp_path / "short"
    # what a run killed mid-write leaves: a temporary sibling named after a dead process
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".short.tmp-{dead.pid}-abcdef12"
    stale.mkdir()
    (stale / "assets.csv").write_text("half")
    write_study(result, folder)
    assert not stale.exists()
    assert (folder / "summary.json").is_file()


def test_a_failure_while_writing_leaves_no_folder(result, tmp_path, monkeypatch):
    folder = tmp_path / "short"

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write_report", broken)
    with pytest.raises(ConfigError, match="No space left on device") as info:
        write_study(result, folder)
    assert str(folder) in str(info.value)
    assert not folder.exists()
    assert [n for n in _leftovers(tmp_path) if not n.endswith(".lock")] == []


def test_a_file_in_the_way_is_a_clear_error(result, tmp_path):
    blocker = tmp_path / "short"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="is not a folder"):
        write_study(result, blocker)


@pytest.mark.skipif(
    os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root writes anywhere"
)
def test_a_read_only_parent_is_a_clear_error(result, tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            write_study(result, parent / "short")
    finally:
        parent.chmod(0o700)


def test_two_concurrent_writers_never_mix(result, tmp_path):
    """Both pass the early check; the lock lets one win, the other gets a clear error."""
    folder = tmp_path / "short"
    outcomes: list[object] = []
    barrier = threading.Barrier(2)
    original = writer._write_files

    def slow_write(res, out, **options):
        barrier.wait(timeout=60)  # both have passed the early check and write a temp folder
        return original(res, out, **options)

    def target():
        try:
            outcomes.append(write_study(result, folder))
        except GridplanError as exc:
            outcomes.append(exc)

    writer._write_files = slow_write
    try:
        threads = [threading.Thread(target=target) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        writer._write_files = original
    errors = [o for o in outcomes if isinstance(o, Exception)]
    written = [o for o in outcomes if isinstance(o, list)]
    assert len(written) == 1 and len(errors) == 1
    assert "already holds results" in str(errors[0])
    assert sorted(written[0]) == sorted(p.name for p in folder.iterdir())
    assert [n for n in _leftovers(tmp_path) if not n.endswith(".lock")] == []


def test_writing_never_touches_pyplot_or_the_backend(tmp_path):
    """A study written from a notebook leaves matplotlib's backend and pyplot alone."""
    study = tmp_path / "short.toml"
    study.write_text(STUDY, encoding="utf-8")
    # pandapower itself imports pyplot when it is there; with pyplot made unimportable the
    # study and its files must still be written (gridplan draws on Figure objects only).
    code = (
        "import sys, matplotlib\n"
        "sys.modules['matplotlib.pyplot'] = None\n"
        "matplotlib.use('svg')\n"
        "from gridplan.study import run\n"
        "from gridplan.outputs import write_study\n"
        f"write_study(run({str(study)!r}), {str(tmp_path / 'out')!r})\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "assert sys.modules['matplotlib.pyplot'] is None\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
