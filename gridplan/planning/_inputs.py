"""Input checks shared by the valuation functions: floats, rates, broadcasting.

Every check raises :class:`~gridplan.core.errors.ConfigError` naming the argument and the
expected value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from gridplan.core.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
#: A scalar or anything numpy turns into a float array (broadcast together).
ArrayLike = float | int | npt.ArrayLike


def _as_float_array(name: str, value: Any) -> FloatArray:
    """Return ``value`` as a float array; raise ConfigError on non-numbers, NaN or inf."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(
            f"expected a number or an array of numbers, got {value!r}", field=name
        ) from None
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"expected finite numbers, got NaN or infinity in {value!r}", field=name)
    return arr


def _check(name: str, arr: FloatArray, ok: npt.NDArray[np.bool_], expected: str) -> None:
    """Raise ConfigError naming ``name`` and the first offending value where ``ok`` is False."""
    ok_arr = np.broadcast_to(np.asarray(ok, dtype=bool), arr.shape)
    if not np.all(ok_arr):
        bad = arr[~ok_arr].flat[0]
        raise ConfigError(f"expected {expected}, got {bad!r}", field=name)


def _rate(name: str, value: Any) -> FloatArray:
    """A discount or escalation rate: a fraction per year, strictly greater than -1."""
    arr = _as_float_array(name, value)
    _check(name, arr, arr > -1.0, "a rate (fraction per year) greater than -1")
    return arr


def _non_negative(name: str, value: Any) -> FloatArray:
    arr = _as_float_array(name, value)
    _check(name, arr, arr >= 0.0, "a value >= 0")
    return arr


def _broadcast(**arrays: FloatArray) -> list[FloatArray]:
    try:
        return list(np.broadcast_arrays(*arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{k}{np.shape(v)}" for k, v in arrays.items())
        raise ConfigError(
            f"array shapes do not broadcast together: {shapes}", field="shape"
        ) from None


def _out(result: FloatArray, *inputs: Any) -> float | FloatArray:
    """A Python float when every input was a scalar, else an ndarray (the broadcast shape)."""
    if all(np.ndim(x) == 0 for x in inputs):
        return float(result)
    return np.asarray(result, dtype=np.float64)


def _log_q(discount_rate: FloatArray, escalation_rate: FloatArray) -> FloatArray:
    """``ln q`` with ``q = (1 + i)/(1 + r)``, computed as ``log1p((i − r)/(1 + r))``.

    Accurate when ``i`` is close to ``r`` and exactly zero when ``i == r``.
    """
    return np.log1p((escalation_rate - discount_rate) / (1.0 + discount_rate))


def _scalar(name: str, value: Any) -> float:
    arr = _as_float_array(name, value)
    if arr.ndim != 0:
        raise ConfigError(f"expected a scalar, got shape {arr.shape}", field=name)
    return float(arr)
