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


def test_feeders_command_named(capsys):
    assert main(["feeders", "us-residential", "lv-semiurban"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["us-residential", "lv-semiurban"]
    us = lines[1].split()
    assert us[1:5] == ["53", "264", "25", "264"]  # buses, loads, assets, households


@pytest.mark.slow  # every bundled feeder over a year, the 9,099-bus grid included
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


# --------------------------------------------------------------------------- issue 22
#: Runs the command with click and dask unimportable, as after a base install (typer vendors
#: its own click; dask comes with the test extra only).
HIDE_CLICK_AND_DASK = """
import sys

class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("click", "dask", "distributed"):
            raise ImportError(f"{name} is hidden (base install)")
        return None

sys.meta_path.insert(0, _Hide())
for name in [m for m in sys.modules if m.split(".")[0] in ("click", "dask", "distributed")]:
    del sys.modules[name]
from gridplan.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _gridplan(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """``gridplan ARGS`` in a fresh process without click and dask, stderr redirected."""
    return subprocess.run(
        [sys.executable, "-c", HIDE_CLICK_AND_DASK, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def test_version():
    from gridplan import __version__

    proc = _gridplan("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"gridplan {__version__}"
    module = subprocess.run(
        [sys.executable, "-m", "gridplan", "--version"], capture_output=True, text=True, check=False
    )
    assert module.returncode == 0 and module.stdout == proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["study"], "Missing argument 'STUDY'"),
        (["--bogus"], "No such option: --bogus"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["study", "quickstart", "--workers", "many"], "--workers"),
        (["feeders", "--format", "xml"], "--format"),
        (["study", "no-such-study"], "no bundled example study"),
        (["batch", "quickstart"], "run 'gridplan study quickstart'"),
        (["init"], "Missing argument 'DIR'"),
    ],
)
def test_usage_errors_one_line_without_click(args, needle):
    """Every usage error: one line on stderr, exit 2, no traceback, with only the base
    install's packages (the README's ``pip install .``)."""
    proc = _gridplan(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert "Traceback" not in proc.stderr


def test_bundled_example_names_resolve(tmp_path):
    from gridplan.examples import EXAMPLES, example_path, resolve_example
    from gridplan.study import load_study_config

    assert EXAMPLES == {"quickstart": "study", "screen": "batch"}
    assert resolve_example("quickstart", "study") == example_path("quickstart")
    assert load_study_config(example_path("quickstart")).name == "quickstart"
    # a file of that name wins over the bundled example
    (tmp_path / "quickstart").write_text('name = "mine"\nfeeder = "ca-residential"\n')
    assert resolve_example(tmp_path / "quickstart", "study") == tmp_path / "quickstart"


def test_batch_screen_plans_the_bundled_batch(monkeypatch, tmp_path):
    from gridplan.batch import plan_batch
    from gridplan.examples import resolve_example

    monkeypatch.chdir(tmp_path)
    plan = plan_batch(resolve_example("screen", "batch"))
    assert plan.config.name == "screen" and len(plan.scenarios) == 4


def test_init_writes_the_examples(tmp_path, capsys):
    from gridplan.examples import example_path

    folder = tmp_path / "mine"
    assert main(["init", str(folder)]) == 0
    for name in ("quickstart", "screen"):
        assert (folder / f"{name}.toml").read_bytes() == example_path(name).read_bytes()
    assert "gridplan study" in capsys.readouterr().out
    (folder / "quickstart.toml").write_text("# edited\n")
    assert main(["init", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--force" in err and "quickstart.toml" in err
    assert (folder / "quickstart.toml").read_text() == "# edited\n"  # nothing overwritten
    assert main(["init", str(folder), "--force"]) == 0
    assert (folder / "quickstart.toml").read_bytes() == example_path("quickstart").read_bytes()


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_feeders_formats(capsys, fmt):
    import csv as csv_module

    assert main(["feeders", "lv-rural", "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        rows = json.loads(out)
    elif fmt == "csv":
        rows = list(csv_module.DictReader(out.splitlines()))
    else:
        header, *lines = out.strip().splitlines()
        assert header.split()[:2] == ["feeder", "buses"] and len(lines) == 1
        return
    assert [r["name"] for r in rows] == ["lv-rural"]
    assert int(rows[0]["buses"]) == 15 and float(rows[0]["peak_load_kw"]) > 0


def test_redirected_log_has_no_progress_frames_and_v_logs_steps(tmp_path, capsys):
    """A redirected stderr gets -v's log lines (one per feeder) and no progress bar."""
    import re

    proc = _gridplan("-v", "feeders", "lv-rural", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "\r" not in proc.stdout
    assert "gridplan.cli: feeders: lv-rural (" in proc.stderr
    records = [line for line in proc.stderr.splitlines() if re.match(r"\d\d:\d\d:\d\d ", line)]
    assert records and all(re.match(r"\S+ gridplan[.\w]*: ", r) for r in records), records
    # the batch's bar is off too when stderr is not a terminal (default --progress)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "broken.toml").write_text('name = "broken"\nnetwork = [\n')
    (tmp_path / "b.toml").write_text('name = "f"\nfeeders = ["specs/broken.toml"]\ndraws = 2\n')
    assert main(["batch", str(tmp_path / "b.toml"), "-w", "1", "-o", str(tmp_path / "o")]) == 1
    captured = capsys.readouterr()
    assert "0 ok, 2 failed" in captured.out and "\r" not in captured.err, captured.err


@pytest.mark.slow
def test_study_quickstart_runs_the_bundled_study(tmp_path):
    """``gridplan study quickstart`` from a folder without the repository (~30 s)."""
    proc = _gridplan("study", "quickstart", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "outputs" / "quickstart" / "summary.json").is_file()
    assert "results: outputs/quickstart" in proc.stdout
