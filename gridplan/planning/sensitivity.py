"""Sensitivity: one-at-a-time tornado of a headline metric over its inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from gridplan.core.errors import ConfigError
from gridplan.planning._inputs import _scalar

__all__ = ["TORNADO_COLUMNS", "tornado"]


TORNADO_COLUMNS: tuple[str, ...] = (
    "parameter",
    "low_value",
    "high_value",
    "result_low",
    "result_base",
    "result_high",
    "swing",
)


def _call(evaluate: Callable[..., Any], params: Mapping[str, float], label: str) -> float:
    result = evaluate(**params)
    try:
        return float(result)
    except (TypeError, ValueError):
        raise ConfigError(
            f"evaluate() must return a number, got {type(result).__name__} ({label})",
            field="evaluate",
        ) from None


def tornado(
    evaluate: Callable[..., Any],
    base: Mapping[str, float],
    ranges: Mapping[str, tuple[float, float]],
) -> pd.DataFrame:
    """One-at-a-time sensitivity table for a tornado chart.

    Calls ``evaluate(**base)`` once, then, for each parameter in ``ranges``,
    ``evaluate(**params)`` with that parameter at its low and at its high value and every
    other parameter at its base value (``2·len(ranges) + 1`` calls).

    Parameters
    ----------
    evaluate
        Function of keyword arguments returning one number (e.g. net benefit [USD]).
    base
        Base value of every argument of ``evaluate`` [units of each parameter].
    ranges
        ``{parameter: (low, high)}`` for the parameters to vary; each must be in ``base``.

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter, low_value, high_value, result_low, result_base, result_high,
        swing``, one row per parameter, sorted by ``swing = |result_high − result_low|``,
        largest first (ties keep the order of ``ranges``; NaN swings last). The swing only
        compares the two ends; for a non-monotonic ``evaluate`` the base may lie outside
        them.

    Raises
    ------
    ConfigError
        A parameter in ``ranges`` missing from ``base``, a range that is not two finite
        numbers, a non-finite base value, or ``evaluate`` returning something that is not a
        number. Exceptions raised by ``evaluate`` itself propagate unchanged.
    """
    if not callable(evaluate):
        raise ConfigError("expected a callable evaluate(**params) -> float", field="evaluate")
    missing = [p for p in ranges if p not in base]
    if missing:
        raise ConfigError(
            f"parameter(s) {missing} have a range but no base value; base has {list(base)}",
            field="ranges",
        )
    base_params = {k: _scalar(f"base.{k}", v) for k, v in base.items()}
    checked: dict[str, tuple[float, float]] = {}
    for name, bounds in ranges.items():
        try:
            low, high = bounds
        except (TypeError, ValueError):
            raise ConfigError(
                f"expected a (low, high) pair, got {bounds!r}", field=f"ranges.{name}"
            ) from None
        checked[name] = (_scalar(f"ranges.{name}", low), _scalar(f"ranges.{name}", high))

    result_base = _call(evaluate, base_params, "base")
    rows = []
    for name, (low, high) in checked.items():
        result_low = _call(evaluate, {**base_params, name: low}, f"{name}={low:g}")
        result_high = _call(evaluate, {**base_params, name: high}, f"{name}={high:g}")
        rows.append(
            {
                "parameter": name,
                "low_value": low,
                "high_value": high,
                "result_low": result_low,
                "result_base": result_base,
                "result_high": result_high,
                "swing": abs(result_high - result_low),
            }
        )
    table = pd.DataFrame(rows, columns=list(TORNADO_COLUMNS))
    table = table.sort_values("swing", ascending=False, kind="mergesort", na_position="last")
    return table.reset_index(drop=True)
