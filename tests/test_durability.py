"""Durability through the command line: results are never lost, mixed or silently wrong,
and every failure is one line (issue 16). Each test attacks the CLI the way a careless or
hostile user would: kills, concurrent runs, files in the way, diverging power flows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from gridplan.cli import main

SHORT = """
name = "{name}"
feeder = "ca-residential"
year = 2030
base_year = 2026
seed = 4

[period]
kind = "range"
start = "2017-09-04"
end = "2017-09-05"

[fleet]
evs_per_household = 0.6
"""

#: A fleet of 500 kW chargers: one step of the V2G case does not converge, and the feeder
#: head ("Trunk 1", line_0) is otherwise within its limit in that case.
DIVERGING = """
name = "diverge"
feeder = "ca-residential"
year = 2030
base_year = 2026
seed = 1

[period]
kind = "range"
start = "2017-09-04"
end = "2017-09-05"

[fleet]
evs_per_household = 1.5
charger_kw = 500

[dispatch]
charging = "unmanaged"
v2g = "v2g_event"
"""


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gridplan.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _study(tmp_path: Path, name: str = "short", body: str = SHORT) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(body.format(name=name), encoding="utf-8")
    return path


def _complete(folder: Path) -> bool:
    """A folder written by a whole run: summary.json lists exactly the files there."""
    summary = json.loads((folder / "summary.json").read_text())
    return sorted(summary["files"]) == sorted(p.name for p in folder.iterdir())


def _visible(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if not p.name.endswith(".lock"))


# --------------------------------------------------------------------------- lost or mixed
def test_two_concurrent_runs_never_mix(tmp_path):
    study = _study(tmp_path)
    out = tmp_path / "out"
    procs = [_cli("study", str(study), "-o", str(out)) for _ in range(2)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert "already holds results" in loser and loser.count("\n") == 1
    assert _complete(out / "short")
    assert _visible(out) == ["short"]


@pytest.mark.parametrize(
    "delay_s",
    [pytest.param(1.0, marks=pytest.mark.slow), 4.0, pytest.param(7.0, marks=pytest.mark.slow)],
)
def test_kill_9_leaves_the_old_folder_or_the_new_one(tmp_path, delay_s):
    """SIGKILL at a point of the run (loading, simulating, writing): the folder is the
    earlier run's or the new run's, whole; a rerun is never blocked by the leftovers."""
    study = _study(tmp_path)
    out = tmp_path / "out"
    assert main(["study", str(study), "-o", str(out)]) == 0
    first = json.loads((out / "short" / "summary.json").read_text())
    (out / "short" / "marker-of-the-first-run").write_text("old")  # tells the runs apart
    proc = _cli("study", str(study), "-o", str(out), "--overwrite")
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    folder = out / "short"
    if (folder / "marker-of-the-first-run").exists():  # the old folder, untouched
        assert json.loads((folder / "summary.json").read_text()) == first
    else:  # the new one, complete
        assert _complete(folder)
    assert main(["study", str(study), "-o", str(out), "--overwrite"]) == 0
    assert _complete(folder) and not (folder / "marker-of-the-first-run").exists()
    assert _visible(out) == ["short"]  # the killed run's temporary folder is gone


def test_overwrite_leaves_no_stale_file(tmp_path, capsys):
    study = _study(tmp_path)
    out = tmp_path / "out"
    assert main(["study", str(study), "-o", str(out)]) == 0
    (out / "short" / "sensitivity.csv").write_text("from an earlier study with [sensitivity]")
    assert main(["study", str(study), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["study", str(study), "-o", str(out), "--overwrite"]) == 0
    assert not (out / "short" / "sensitivity.csv").exists()
    assert _complete(out / "short")


# --------------------------------------------------------------------------- silently wrong
def test_non_converged_steps_count_against_the_criteria(tmp_path, capsys):
    study = _study(tmp_path, "diverge", DIVERGING)
    out = tmp_path / "out"
    assert main(["study", str(study), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "WARNING power-flow steps that did not converge" in printed
    summary = json.loads((out / "diverge" / "summary.json").read_text())
    assert summary["power_flow"]["v2g"]["non_converged_steps"] >= 1
    assert any(note.startswith("Need (non-convergence)") for note in summary["notes"])
    assets = pd.read_csv(out / "diverge" / "assets.csv").set_index("asset_id")
    head = assets.loc["line_0"]
    # within its limit at every converged step, yet a need: the diverged step counts
    assert head.hours_over_limit_v2g == 0
    assert head.year_of_need_v2g_p50 == 2030 and head.need_from_non_convergence_v2g
    needs = pd.read_csv(out / "diverge" / "needs.csv")
    row = needs[(needs.asset_id == "line_0") & (needs.case == "v2g")].iloc[0]
    assert row.non_convergence_need_probability == 1.0
    report = (out / "diverge" / "report.md").read_text(encoding="utf-8")
    headline = report.split("## Summary")[1].split("##")[0]
    assert "Non-convergence: power-flow steps" in headline and "line_0" in headline


# --------------------------------------------------------------------------- one line, exit 2
def test_output_path_that_is_a_file(tmp_path, capsys):
    study = _study(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "short").write_text("a file where the folder goes")
    assert main(["study", str(study), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and err.count("\n") == 1


def test_output_parent_that_is_a_file(tmp_path, capsys):
    study = _study(tmp_path)
    (tmp_path / "out").write_text("a file where the parent folder goes")
    assert main(["study", str(study), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "output folder" in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only folders")
def test_read_only_output_folder(tmp_path, capsys):
    study = _study(tmp_path)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert main(["study", str(study), "-o", str(out)]) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        out.chmod(0o700)


@pytest.mark.parametrize(
    "args",
    [
        ["study"],
        ["--no-such-option"],
        ["no-such-command"],
        ["study", "x.toml", "--workers", "many"],
        ["batch"],
    ],
)
def test_usage_errors_are_one_line(args):
    proc = _cli(*args)
    code = proc.wait(timeout=120)
    _, err = proc.communicate()
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
def test_input_that_is_not_a_regular_file(tmp_path, capsys, kind):
    if kind == "directory":
        path = tmp_path / "study.toml"
        path.mkdir()
    elif kind == "fifo":
        path = tmp_path / "study.toml"
        os.mkfifo(path)
    else:
        path = Path("/dev/null")
    assert main(["study", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not a regular file" in err and str(path) in err and err.count("\n") == 1


def test_ctrl_c_prints_interrupted_and_exits_130(tmp_path):
    study = _study(tmp_path)
    proc = _cli("study", str(study), "-o", str(tmp_path / "out"))
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=120)
    _, err = proc.communicate()
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "short").exists()


def test_killed_worker_process_is_one_line(tmp_path):
    """A --workers process killed mid-study: one line and exit 2, no BrokenProcessPool."""
    body = SHORT + "\n[horizon]\nstart = 2026\nend = 2034\ndraws = 4\n"
    study = _study(tmp_path, body=body)
    proc = _cli("study", str(study), "-o", str(tmp_path / "out"), "--workers", "2")
    children: list[int] = []
    deadline = time.monotonic() + 60
    while not children and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            text = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
        except OSError:
            pytest.skip("no /proc children list on this platform")
        children = [int(c) for c in text.split()]
    if not children:
        proc.kill()
        pytest.skip("the study finished before its workers could be seen")
    os.kill(children[0], signal.SIGKILL)
    code = proc.wait(timeout=300)
    _, err = proc.communicate()
    assert code == 2, err
    assert "worker process of the study died" in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "short").exists()


@pytest.fixture
def full_disk(tmp_path):
    """A 256 kB tmpfs: too small for a study's folder (figures and report take more)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not permitted'})")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, full_disk, capsys):
    study = _study(tmp_path)
    assert main(["study", str(study), "-o", str(full_disk)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and err.count("\n") == 1
    assert "Traceback" not in err
    assert _visible(full_disk) == []  # no half-written folder, no temporary one
