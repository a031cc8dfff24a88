"""The command line: bad input gives one line and a non-zero exit, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gridplan.cli import main


def test_study_command(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text(
        'name = "cli"\nfeeder = "ca-residential"\n[period]\nkind = "range"\n'
        'start = "2017-07-01"\nend = "2017-07-02"\n',
        encoding="utf-8",
    )
    assert main(["study", str(study), "--output-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"results: {tmp_path / 'out' / 'cli'}" in out
    assert json.loads((tmp_path / "out" / "cli" / "summary.json").read_text())["study"] == "cli"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('name = "x"\nfeeder = "nope"\n', "field 'feeder'"),
        ('feeder = "us-residential"\n', "field 'name': missing"),
        (
            'name = "x"\nfeeder = "us-residential"\n[fleet]\nevs_per_houshold = 1\n',
            "did you mean 'evs_per_household'",
        ),
        ('name = "x"\nfeeder = "us-residential"\nyear = "2030"\n', "field 'year'"),
        (
            'name = "x"\nfeeder = "us-residential"\n[fleet]\nevs_per_household = -0.5\n',
            "fleet.evs_per_household",
        ),
        ('name = "x"\nfeeder = \n', "malformed TOML"),
        ("", "empty"),
    ],
)
def test_bad_input_one_line(tmp_path, capsys, body, needle):
    study = tmp_path / "bad.toml"
    study.write_text(body, encoding="utf-8")
    assert main(["study", str(study)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert str(study) in err and needle in err
    assert "Traceback" not in err


def test_installed_command_no_traceback(tmp_path):
    study = tmp_path / "bad.toml"
    study.write_text('name = "x"\nfeeder = "nope"\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "gridplan.cli", "study", str(study)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: ") and "unknown feeder 'nope'" in proc.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "gridplan.cli", "--debug", "study", str(study)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_missing_file(tmp_path, capsys):
    assert main(["study", str(tmp_path / "absent.toml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_feeders_command(capsys):
    assert main(["feeders"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["feeder", "buses", "loads"]
    names = {line.split()[0] for line in lines[1:]}
    assert {"lv-semiurban", "lv-rural", "mv-semiurban", "us-residential"} <= names
    us = next(line for line in lines if line.startswith("us-residential")).split()
    assert us[1:5] == ["53", "264", "25", "264"]  # buses, loads, assets, households


def test_existing_results_need_overwrite(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text(
        'name = "again"\nfeeder = "ca-residential"\n[period]\nkind = "range"\n'
        'start = "2017-07-01"\nend = "2017-07-02"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    assert main(["study", str(study), "-o", str(out)]) == 0
    before = (out / "again" / "summary.json").stat().st_mtime_ns
    assert main(["study", str(study), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "again" / "summary.json").stat().st_mtime_ns == before
    assert main(["study", str(study), "-o", str(out), "--overwrite"]) == 0


def test_batch_with_failed_units_exits_1(tmp_path, capsys):
    """A batch whose units failed: main() returns 1 and the command exits with 1."""
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "broken.toml").write_text('name = "broken"\nnetwork = [\n')
    path = tmp_path / "b.toml"
    path.write_text('name = "f"\nfeeders = ["specs/broken.toml"]\ndraws = 2\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["batch", str(path), "-w", "1", "-o", str(out), "--no-progress"]) == 1
    assert "0 ok, 2 failed" in capsys.readouterr().out
    args = ["batch", str(path), "-w", "1", "-o", str(out), "--overwrite", "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-m", "gridplan.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "0 ok, 2 failed" in proc.stdout and "Traceback" not in proc.stderr
    assert not (out / "f" / "batch.lock").exists()
