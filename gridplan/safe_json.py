"""Moved to :mod:`gridplan.grid.safe_json` (this path stays importable; see CHANGELOG.md)."""

from gridplan.grid.safe_json import (
    ALLOWED_TYPES,
    MAX_FILE_BYTES,
    check_net,
    load_pandapower_json,
    save_pandapower_json,
    validate_pandapower_json,
)

__all__ = [
    "ALLOWED_TYPES",
    "MAX_FILE_BYTES",
    "check_net",
    "load_pandapower_json",
    "save_pandapower_json",
    "validate_pandapower_json",
]
