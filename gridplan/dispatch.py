"""Moved to :mod:`gridplan.ev.dispatch` (this path stays importable; see CHANGELOG.md)."""

from gridplan.ev.dispatch import (
    DispatchContext,
    DispatchResult,
    Strategy,
    dispatch,
    load_power_kw,
)

__all__ = [
    "DispatchContext",
    "DispatchResult",
    "Strategy",
    "dispatch",
    "load_power_kw",
]
