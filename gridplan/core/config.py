"""Reading and validating TOML inputs into typed pydantic models.

Every problem becomes one :class:`~gridplan.core.errors.ConfigError` line naming the file, the
field (dotted path) and what was expected; misspelled field names get a "did you mean".
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from gridplan.core.errors import ConfigError
from gridplan.core.io import require_file

__all__ = ["StrictModel", "format_validation_error", "read_toml", "validate"]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config model: unknown fields and wrong types are errors (a quoted
    ``"2030"`` is not a year), values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, strict=True)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict, with a one-line error for unreadable or malformed files.

    Parameters
    ----------
    path
        The TOML file.

    Raises
    ------
    ConfigError
        If the file is missing, empty, not UTF-8 or not valid TOML.
    """
    path = require_file(path, "a TOML file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    if not raw.strip():
        raise ConfigError("file is empty (expected a TOML document)", file=path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start}); expected a UTF-8 TOML file", file=path
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}", file=path) from None
    except RecursionError:
        raise ConfigError("malformed TOML: nested too deeply", file=path) from None


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names (aliases) allowed at ``loc`` (the parent of an unknown field)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _model_in(annotation: Any) -> Any:
    """The first BaseModel class inside an annotation (``X | None``, ``list[X]``...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def format_validation_error(
    exc: ValidationError, model: type[BaseModel], file: str | Path | None
) -> ConfigError:
    """Turn the first pydantic error into a one-line :class:`ConfigError`."""
    errors = exc.errors()
    # A misspelled field shows up as both "missing" and "extra": report the misspelling.
    errors.sort(key=lambda e: e.get("type") != "extra_forbidden")
    err = errors[0]
    loc = tuple(err.get("loc", ()))
    field = ".".join(str(p) for p in loc) or "(top level)"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        allowed = _allowed_fields(model, loc[:-1])
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        expected = f" (expected one of: {', '.join(sorted(allowed))})" if allowed else ""
        return ConfigError(
            f"unknown field{hint}{expected if not close else ''}", file=file, field=field
        )
    if kind == "missing":
        return ConfigError("missing required field", file=file, field=field)
    msg = err.get("msg", "invalid value")
    if kind.startswith("network_") or not loc:  # the message names the values itself
        return ConfigError(msg, file=file, field=field)
    value = err.get("input")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ConfigError(f"{msg} (got {shown})", file=file, field=field)


def validate(model: type[M], data: Any, *, file: str | Path | None = None) -> M:
    """Validate ``data`` against ``model``; raise a one-line :class:`ConfigError` otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc, model, file) from None
