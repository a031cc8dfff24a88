"""core: errors, config helpers and atomic file writes; imports nothing of gridplan."""

__all__: list[str] = []
