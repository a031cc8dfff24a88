"""Packaging: the wheel carries what a user without a checkout needs, and the metadata says
what the project is (licence, version, Python versions, typed)."""

from __future__ import annotations

import email
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import gridplan

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("repo_copy", "bundled"),
    [("studies/quickstart.toml", "quickstart.toml"), ("batches/screen.toml", "screen.toml")],
)
def test_repository_examples_are_the_bundled_ones(repo_copy, bundled):
    """``studies/quickstart.toml`` and ``batches/screen.toml`` are the files that
    ``gridplan study quickstart`` and ``gridplan batch screen`` run: edit both or neither."""
    package_copy = ROOT / "gridplan" / "examples" / bundled
    assert (ROOT / repo_copy).read_bytes() == package_copy.read_bytes(), (
        f"{repo_copy} differs from gridplan/examples/{bundled}: copy one onto the other"
    )


def test_project_metadata():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "BSD-3-Clause" and (ROOT / "LICENSE").is_file()
    assert "BSD 3-Clause" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert project["dynamic"] == ["version"]  # one version: gridplan.__version__
    assert {"Homepage", "Repository", "Issues", "Changelog"} <= set(project["urls"])
    classifiers = set(project["classifiers"])
    for version in ("3.11", "3.13"):  # the versions .ci/run tests
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Typing :: Typed" in classifiers and (ROOT / "gridplan" / "py.typed").is_file()
    unbounded = [
        d for d in project["dependencies"] if "<" not in d and not d.startswith(("pyarrow", "dask"))
    ]
    assert not unbounded, f"dependencies without an upper bound: {unbounded}"


def test_wheel_carries_examples_feeders_and_licence(tmp_path):
    """The wheel, built as ``pip install .`` builds it: examples, feeders (with the OpenDSS
    models), data, py.typed, the licence and the SPDX expression."""
    pytest.importorskip("hatchling", reason="hatchling (test extra) builds the wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("gridplan-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(n.split("/")[0] for n in names if ".dist-info/" in n)
        metadata = email.message_from_bytes(archive.read(f"{dist_info}/METADATA"))
    for name in (
        "gridplan/py.typed",
        "gridplan/__main__.py",
        "gridplan/examples/quickstart.toml",
        "gridplan/examples/screen.toml",
        "gridplan/_feeders/ca-residential.toml",
        "gridplan/_feeders/epri-ckt5/Master_ckt5.dss",
        "gridplan/data/upgrade_costs.csv",
        "gridplan/outputs/templates/report.html.j2",
        f"{dist_info}/licenses/LICENSE",
    ):
        assert name in names, name
    assert not [n for n in names if "__pycache__" in n or n.endswith((".nbi", ".nbc"))]
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert metadata["Version"] == gridplan.__version__
    assert "Programming Language :: Python :: 3.13" in metadata.get_all("Classifier")
    entry_points = f"{dist_info}/entry_points.txt"
    with zipfile.ZipFile(wheel) as archive:
        assert "gridplan = gridplan.cli:main" in archive.read(entry_points).decode()
