"""Exceptions that carry a one-line, actionable message for the user."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError", "GridplanError"]


class GridplanError(Exception):
    """Base class of every error gridplan raises on purpose (bad input, bad model)."""


class ConfigError(GridplanError, ValueError):
    """Bad input: names the file, the field and what was expected.

    Parameters
    ----------
    message
        What is wrong and what was expected.
    file
        The file the bad value came from (``None`` for values given in Python).
    field
        Dotted path of the field, or ``row/column`` for tables.
    """

    def __init__(
        self, message: str, *, file: str | Path | None = None, field: str | None = None
    ) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        self.reason = message
        parts = []
        if self.file:
            parts.append(self.file)
        if field:
            parts.append(f"field '{field}'")
        prefix = ": ".join(parts)
        text = f"{prefix}: {message}" if prefix else message
        super().__init__(" ".join(text.split()))
