"""File helpers: atomic writers (a temporary file in the same folder, then a rename) and
the check that an input file is a regular file."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from gridplan.core.errors import ConfigError

__all__ = [
    "atomic_path",
    "read_text_table",
    "require_file",
    "write_csv",
    "write_json",
    "write_text",
    "write_with",
]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    An exception inside the block removes the temporary file and leaves ``path``
    untouched, so an interrupted run never leaves a half-written result.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically; numpy scalars are converted."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "item"):
            return obj.item()
        if hasattr(obj, "tolist"):
            return obj.tolist()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"not JSON serializable: {type(obj).__name__}")

    return write_text(path, json.dumps(data, indent=2, default=default, allow_nan=False) + "\n")


def write_csv(path: str | Path, frame: pd.DataFrame, **kwargs: Any) -> Path:
    """Write a DataFrame as CSV atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def write_with(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and rename the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def require_file(
    path: str | Path, expected: str, *, what: str = "file", field: str | None = None
) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is a regular file, else a one-line error.

    Parameters
    ----------
    path
        The input file.
    expected
        What the file should be, for the message (e.g. ``"a TOML file"``).
    what
        How the message names the file (e.g. ``"zone file"``).
    field
        The config field that named the file.

    Raises
    ------
    ConfigError
        "<what> not found" when nothing is there; "not a regular file" for a directory, a
        FIFO, a device or a socket (reading those would fail or block).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(
            f"{what} not found (expected {expected})", file=path, field=field
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what}: {exc.strerror or exc} (expected {expected})",
            file=path,
            field=field,
        ) from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, device or socket"
        raise ConfigError(
            f"not a regular file ({kind}; expected {expected})", file=path, field=field
        )
    return path


def read_text_table(path: str | Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    """A small CSV data table read as text (no NaN guessing), with its required columns.

    Parameters
    ----------
    path
        The CSV file.
    columns
        Columns it must have.
    what
        What the table is, for errors (e.g. ``"the thermal parameter table"``).

    Raises
    ------
    ConfigError
        Unreadable file, or missing columns (one line naming the file).
    """
    from gridplan.core.errors import ConfigError

    file = Path(path)
    try:
        table = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what}: {exc}", file=file) from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(f"missing columns {missing}; expected {list(columns)}", file=file)
    return table
