"""Moved to :mod:`gridplan.ev.dispatch` (this path stays importable; see CHANGELOG.md)."""

from gridplan.ev.dispatch import (
    DEFAULT_DISPATCH_OPTIONS,
    DispatchContext,
    DispatchOptions,
    DispatchResult,
    Strategy,
    dispatch,
    load_power_kw,
)

__all__ = [
    "DEFAULT_DISPATCH_OPTIONS",
    "DispatchContext",
    "DispatchOptions",
    "DispatchResult",
    "Strategy",
    "dispatch",
    "load_power_kw",
]
