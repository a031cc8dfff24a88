"""Moved to :mod:`gridplan.core.errors` (this path stays importable; see CHANGELOG.md)."""

from gridplan.core.errors import (
    ConfigError,
    GridplanError,
)

__all__ = [
    "ConfigError",
    "GridplanError",
]
