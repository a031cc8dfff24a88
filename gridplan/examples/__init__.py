"""Example study and batch files shipped inside the package: usable without a checkout.

- ``quickstart`` (a study): the README's quick start, ``ca-residential`` over its summer
  peak week; the repository's ``studies/quickstart.toml`` is the same file.
- ``screen`` (a batch): every bundled feeder × EV adoption × V2G enrollment; the
  repository's ``batches/screen.toml`` is the same file.

``gridplan study quickstart`` and ``gridplan batch screen`` run them (a bare name that is not
a file is a bundled example); ``gridplan init DIR`` copies them into ``DIR`` to edit.
In Python::

    from gridplan.examples import example_path
    from gridplan.study import run

    result = run(example_path("quickstart"))

Imports only :mod:`gridplan.core` (the command line and notebooks use it).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from gridplan.core.errors import ConfigError

__all__ = ["EXAMPLES", "example_path", "resolve_example", "write_examples"]

Kind = Literal["study", "batch"]

#: Bundled example name -> what it is (``gridplan study`` or ``gridplan batch`` runs it).
EXAMPLES: dict[str, Kind] = {"quickstart": "study", "screen": "batch"}

_HERE = Path(__file__).resolve().parent


def example_path(name: str, kind: Kind | None = None) -> Path:
    """The file of a bundled example.

    Parameters
    ----------
    name
        An example name (:data:`EXAMPLES`), without ``.toml``.
    kind
        ``"study"`` or ``"batch"``: the kind the caller expects; ``None`` accepts both.

    Raises
    ------
    ConfigError
        An unknown name (the bundled names listed), or an example of the other kind.
    """
    found = EXAMPLES.get(name)
    if found is not None and kind is not None and found != kind:
        raise ConfigError(
            f"'{name}' is a bundled {found}, not a {kind}: run 'gridplan {found} {name}'"
        )
    if found is None:
        wanted = ", ".join(n for n, k in EXAMPLES.items() if kind is None or k == kind)
        what = f"example {kind}" if kind else "example"
        raise ConfigError(
            f"no file '{name}' and no bundled {what} of that name (bundled: {wanted})"
        )
    return _HERE / f"{name}.toml"


def resolve_example(arg: str | Path, kind: Kind) -> Path:
    """A command-line argument as a file: itself when it exists or looks like a path (has
    a folder or a suffix), else the bundled example of that name.

    Raises
    ------
    ConfigError
        A bare name that is neither a file nor a bundled example of ``kind``.
    """
    path = Path(arg)
    if path.exists() or path.suffix or len(path.parts) != 1:
        return path
    return example_path(str(arg), kind)


def write_examples(folder: str | Path, *, force: bool = False) -> list[Path]:
    """Copy every bundled example into ``folder`` (made if missing), to edit and run.

    Parameters
    ----------
    folder
        Where the files go: ``quickstart.toml``, ``screen.toml``.
    force
        Replace files that exist; otherwise an existing file is an error and nothing is
        written.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ConfigError
        A file exists and ``force`` is off, or ``folder`` is not a folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError("exists and is not a folder", file=folder)
    targets = [folder / f"{name}.toml" for name in EXAMPLES]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        names = ", ".join(t.name for t in existing)
        raise ConfigError(f"{names} already there; use --force to overwrite", file=folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in zip(EXAMPLES, targets, strict=True):
        shutil.copyfile(example_path(name), target)
    return targets
