"""The package's architecture holds: layers import only downward, functions stay short,
``import gridplan`` stays light, and the public entry points stay where users find them."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gridplan"

#: The longest a function may be [lines, docstring included]. Tables of data are not
#: functions, so none is exempt.
MAX_FUNCTION_LINES = 120


def test_layers_contract_is_kept():
    """import-linter's layers contract (pyproject.toml): core -> grid -> powerflow | ev ->
    planning -> study -> outputs -> batch -> cli, imports only downward."""
    pytest.importorskip("importlinter")
    root = PACKAGE.parent
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command;"
         " sys.exit(lint_imports_command())"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "KEPT" in proc.stdout


def test_no_function_is_over_the_limit():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.name} ({lines})")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_pandapower_private_api_in_one_module():
    """pandapower's private API (``_pd2ppc``, pypower, ``net._...``) is read in one module
    only (:mod:`gridplan.powerflow.model`)."""
    markers = (
        "pd2ppc", "._is_elements", "._ppc", "pypower", "makeYbus", "_init_runpp_options",
        "._options",
    )  # fmt: skip
    users = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if any(marker in text for marker in markers):
            users.add(path.relative_to(PACKAGE).as_posix())
    assert users <= {"powerflow/model.py"}, users


def test_import_gridplan_is_light():
    heavy = "('matplotlib', 'dask', 'distributed', 'numba')"
    code = (
        f"import sys, gridplan, gridplan.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "path",
    [
        "gridplan.feeders.load_feeder",
        "gridplan.fleet.sample_fleet",
        "gridplan.dispatch.dispatch",
        "gridplan.powerflow.solve_timeseries",
        "gridplan.needs.deferral_requirement",
        "gridplan.valuation.deferral_value_usd",
        "gridplan.safe_json.load_pandapower_json",
        "gridplan.study.run",
        "gridplan.batch.run",
        "gridplan.outputs.write_study",
    ],
)
def test_public_entry_points_stay_importable(path):
    module, _, name = path.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_package_never_imports_the_compatibility_modules():
    """Old paths (gridplan.feeders, ...) are re-exports for users; the package itself
    imports the new ones, so the layers stay visible."""
    shims = {"feeders", "fleet", "dispatch", "needs", "valuation", "safe_json", "errors"}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE and path.stem in shims:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[0] == "gridplan" and len(parts) == 2 and parts[1] in shims:
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}: {node.module}")
                if node.module == "gridplan" and any(a.name in shims for a in node.names):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}: gridplan.<shim>")
    assert not offenders, offenders
