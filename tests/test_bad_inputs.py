"""The bad-input catalogue (tests/data/bad_inputs/cases.toml).

Every case runs ``gridplan study`` on a bad file and must exit with status 2 and one line
that names the file with the problem, the field (or row/column) and what was expected --
before any long computation, and without a traceback.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

import pytest

from gridplan.cli import main

DATA = Path(__file__).parent / "data" / "bad_inputs"
CASES = tomllib.loads((DATA / "cases.toml").read_text(encoding="utf-8"))["cases"]


def test_catalogue_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, tmp_path, capsys):
    spec = CASES[case]
    start = time.perf_counter()
    status = main(["study", str(DATA / spec["file"]), "--output-dir", str(tmp_path)])
    elapsed = time.perf_counter() - start
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert status == 2, f"{case}: exit {status}, stderr {err!r}"
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in err
    assert spec.get("names", spec["file"]) in err, err
    for fragment in spec["expect"]:
        assert fragment in err, f"{case}: {fragment!r} not in {err!r}"
    # refused before the long computation: nothing written
    assert not any(tmp_path.iterdir())
    assert elapsed < 60
