"""Every notebook in notebooks/ runs top to bottom without error (nbclient), so none can rot.

The notebooks run in a kernel of this interpreter (``python3`` from ipykernel), from the
notebooks folder, with their outputs sent to a temporary folder through
``GRIDPLAN_NOTEBOOK_OUTPUT``. The executed copies are kept in memory; the files in
``notebooks/`` stay without outputs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Each notebook is meant to run in under two minutes; this bound leaves room for a slow or
#: busy machine and still catches a notebook that has grown far beyond its budget.
MAX_SECONDS = 240.0

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def test_the_three_notebooks_are_there():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["01_quickstart.ipynb", "02_what_if.ipynb", "03_batch_screen.ipynb"]
    readme = (ROOT / "notebooks" / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert name in readme


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "clear the outputs"


#: The quick-start notebook runs in the default suite; the what-if and batch notebooks
#: (about 25 s each) in the slow pass (default suite time, CI limit).
RUNS = [
    p if p.stem.startswith("01_") else pytest.param(p, marks=pytest.mark.slow) for p in NOTEBOOKS
]


@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDPLAN_NOTEBOOK_OUTPUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    seconds = time.perf_counter() - start
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    assert seconds < MAX_SECONDS, f"{path.name} took {seconds:.0f} s"
    assert any(tmp_path.rglob("*")), "the notebook wrote no output files"
