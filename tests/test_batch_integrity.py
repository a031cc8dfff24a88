"""Batch integrity (issue 16): unique unit ids, resume that sees changed inputs, no writes
through symbolic links, no deletion of what the batch did not write, interrupts recorded,
a unit ceiling. Through the command line where a user would meet them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from tinyfeeder import YEAR, tiny_feeder

from gridplan.batch import plan_batch
from gridplan.batch.plan import unit_stem
from gridplan.cli import main

BATCH = """
name = "tb"
feeders = [{feeders}]
draws = {draws}
seed = 7

[study]
year = 2030
base_year = 2026

[study.period]
kind = "range"
start = "2016-07-01"
end = "2016-07-02"

[study.fleet]
evs_per_household = 0.3
"""


def _batch(folder: Path, feeders: str = '"tiny.toml"', draws: int = 1, extra: str = "") -> Path:
    path = folder / "b.toml"
    path.write_text(BATCH.format(feeders=feeders, draws=draws) + extra, encoding="utf-8")
    return path


def _cli(*args: str) -> list[str]:
    return ["batch", *args, "-w", "1", "--no-progress"]


def test_unit_ids_are_unique_for_any_feeder_names(tmp_path):
    """Names that share their first 60+ characters or differ only in case, and names with
    characters a file name cannot hold, still get distinct, file-safe unit ids."""
    long = "a" * 90
    names = [long + "x", long + "y", "Feeder", "feeder", "odd name/with:chars"]
    stems = [unit_stem(n) for n in names]
    assert len({s.lower() for s in stems}) == len(names)
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    assert all(set(s) <= safe for s in stems)
    # through a plan: two spec files whose names differ only in case
    spec = (Path(__file__).resolve().parents[1] / "feeders" / "lv-rural.toml").read_text()
    for name in ("Rural", "rural"):
        (tmp_path / f"{name}-spec.toml").write_text(
            spec.replace('name = "lv-rural"', f'name = "{name}"'), encoding="utf-8"
        )
    plan = plan_batch(_batch(tmp_path, '"Rural-spec.toml", "rural-spec.toml"', draws=2))
    ids = [u.unit_id for u in plan.units]
    assert len({i.lower() for i in ids}) == len(ids) == 4


def test_resume_reruns_units_whose_input_files_changed(tmp_path, capsys):
    tiny_feeder(tmp_path, YEAR.astype(str))
    path = _batch(tmp_path, draws=2)
    out = tmp_path / "out"
    assert main([*_cli(str(path), "-o", str(out))]) == 0
    assert main([*_cli(str(path), "-o", str(out), "--resume")]) == 0
    assert "0 run in" in capsys.readouterr().out  # nothing changed: nothing runs
    # the same spec, a different profile: the units read it, so they run again
    profile = pd.read_csv(tmp_path / "load.csv")
    profile[["load1", "load2"]] *= 1.5
    profile.to_csv(tmp_path / "load.csv", index=False)
    assert main([*_cli(str(path), "-o", str(out), "--resume")]) == 0
    assert "2 ok, 0 failed, 0 pending; 2 run in" in capsys.readouterr().out


def test_never_writes_through_a_symlink_in_its_folder(tmp_path, capsys):
    tiny_feeder(tmp_path, YEAR.astype(str))
    path = _batch(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out = tmp_path / "out" / "tb"
    out.mkdir(parents=True)
    (out / "units").symlink_to(outside, target_is_directory=True)
    assert main([*_cli(str(path), "-o", str(tmp_path / "out"))]) == 2
    err = capsys.readouterr().err
    assert "symbolic link" in err and err.count("\n") == 1
    assert list(outside.iterdir()) == []


def test_overwrite_deletes_only_what_the_batch_wrote(tmp_path):
    tiny_feeder(tmp_path, YEAR.astype(str))
    path = _batch(tmp_path)
    out = tmp_path / "out"
    assert main([*_cli(str(path), "-o", str(out))]) == 0
    units = out / "tb" / "units"
    unit_dir = next(units.iterdir())
    (units / "notes.txt").write_text("mine")
    (unit_dir / "my-analysis.ipynb").write_text("{}")
    keep = tmp_path / "precious.txt"
    keep.write_text("do not delete")
    (units / "link-to-precious").symlink_to(keep)
    assert main([*_cli(str(path), "-o", str(out), "--overwrite")]) == 0
    assert (units / "notes.txt").read_text() == "mine"
    assert (unit_dir / "my-analysis.ipynb").exists()
    assert keep.read_text() == "do not delete"
    assert (unit_dir / "unit.json").is_file()  # and the new run's files are there


def test_interrupt_marks_the_batch_interrupted(tmp_path):
    tiny_feeder(tmp_path, YEAR.astype(str))
    path = _batch(tmp_path, draws=40)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "gridplan.cli", *_cli(str(path), "-o", str(out))]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    units = out / "tb" / "units"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(units.glob("*/unit.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=240)
    _, err = proc.communicate()
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    status = json.loads((out / "tb" / "batch.json").read_text())
    assert status["status"] == "interrupted" and status["units_done"] >= 1
    assert not (out / "tb" / "batch.lock").exists()
    # the finished units are kept and a resume runs the rest
    assert main([*_cli(str(path), "-o", str(out), "--resume")]) == 0


def test_unit_ceiling_and_count(tmp_path, capsys):
    tiny_feeder(tmp_path, YEAR.astype(str))
    values = ", ".join(str(0.1 + i / 1000) for i in range(1000))
    grid = (
        f'\n[grid]\n"fleet.evs_per_household" = [{values}]\n'
        f'"fleet.v2g_enrolled_share" = [{values}]\n'
    )
    path = _batch(tmp_path, extra=grid)
    start = time.perf_counter()
    assert main([*_cli(str(path), "-o", str(tmp_path / "out"))]) == 2
    err = capsys.readouterr().err
    assert "1,000,000 units" in err and "--max-units" in err and err.count("\n") == 1
    assert time.perf_counter() - start < 20  # refused before the grid is expanded
    small = _batch(tmp_path, draws=3)
    assert main([*_cli(str(small), "-o", str(tmp_path / "out"), "--max-units", "2")]) == 2
    assert "3 units" in capsys.readouterr().err
    assert main([*_cli(str(small), "-o", str(tmp_path / "out"), "--max-units", "3")]) == 0
    assert capsys.readouterr().out.startswith("starting batch 'tb': 3 units (1 feeders × 1 ")
