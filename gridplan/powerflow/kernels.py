"""Fused element-wise kernels of the power-flow iteration, compiled with numba.

numpy evaluates an expression such as ``max_j |V_new - V|`` one operation at a time, each
a full pass over a (steps × nodes) chunk with a temporary array, and its complex division
is not vectorised (~3 ns per element on the benchmark machine). These kernels do the
same arithmetic in one pass per expression (0.7–0.9 ns per element), which is most of
the element-wise cost of the iteration (:mod:`gridplan.powerflow.iteration`) and of the
branch results (:mod:`gridplan.powerflow.results`) once ``Z_LL`` is applied by BLAS.

numba is a dependency of gridplan, as it is an optional accelerator of pandapower's own
Newton-Raphson solver. Each kernel has a numpy twin with the same semantics; the numpy
twins run when numba cannot be imported, when the environment variable
``GRIDPLAN_NUMBA=0`` is set (read at import), and inside :func:`numba_disabled`. The tests
check that both give the same answers to rounding.

The kernels are compiled on first use and cached on disk (``cache=True``: numba's
``__pycache__`` next to this file, or its user-wide cache directory if that is not
writable), so only the first run on a machine pays the compile time.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

ComplexArray = npt.NDArray[np.complex128]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_numba: Any
try:  # pragma: no cover - exercised by whether numba is installed
    import numba as _numba
except ImportError:  # pragma: no cover
    _numba = None

#: True when the compiled kernels can be used in this process.
AVAILABLE: bool = _numba is not None and os.environ.get("GRIDPLAN_NUMBA", "1") != "0"

_lock = threading.Lock()
_disabled = 0  # depth of numba_disabled() blocks in this process


def enabled() -> bool:
    """Whether the compiled kernels are used now (numba importable and not disabled)."""
    return AVAILABLE and _disabled == 0


@contextlib.contextmanager
def numba_disabled() -> Iterator[None]:
    """Use the numpy twins of the kernels inside the block.

    Process-wide (the worker threads of ``solve_timeseries(threads=N)`` see it too); for
    tests and for timing the numpy path, not for use while other threads solve.
    """
    global _disabled
    with _lock:
        _disabled += 1
    try:
        yield
    finally:
        with _lock:
            _disabled -= 1


# --------------------------------------------------------------------------- numba
if _numba is not None:
    _jit = _numba.njit(cache=True, nogil=True, error_model="numpy")

    @_jit
    def _nb_injected_currents(sc: Any, v: Any, out: Any) -> None:  # pragma: no cover
        m, n = sc.shape
        for i in range(m):
            for j in range(n):
                a = v[i, j].real
                b = v[i, j].imag
                s = sc[i, j]
                inv = 1.0 / (a * a + b * b)
                # conj(S) / conj(V) = conj(S) · V / |V|²
                out[i, j] = complex(
                    (s.real * a - s.imag * b) * inv, (s.real * b + s.imag * a) * inv
                )

    @_jit
    def _nb_max_change(v_new: Any, v: Any, out: Any) -> None:  # pragma: no cover
        m, n = v_new.shape
        for i in range(m):
            mx = 0.0
            acc = 0.0  # any NaN or inf shows in the sum, which max() would drop
            for j in range(n):
                d = v_new[i, j] - v[i, j]
                x = d.real * d.real + d.imag * d.imag
                mx = max(mx, x)
                acc += x
            out[i] = np.sqrt(mx) if np.isfinite(acc) else np.inf

    @_jit
    def _nb_branch_max(
        v: Any,
        f: Any,
        t: Any,
        y: Any,
        scale_f: Any,
        scale_t: Any,
        power: bool,
        cols: Any,
        out: Any,
    ) -> None:  # pragma: no cover
        m = v.shape[0]
        k = f.size
        sf2 = scale_f * scale_f
        st2 = scale_t * scale_t
        for i in range(m):
            for c in range(k):
                vf = v[i, f[c]]
                vt = v[i, t[c]]
                i_f = y[0, c] * vf + y[1, c] * vt
                i_t = y[2, c] * vf + y[3, c] * vt
                if power:
                    i_f = vf * i_f
                    i_t = vt * i_t
                a = (i_f.real * i_f.real + i_f.imag * i_f.imag) * sf2[c]
                b = (i_t.real * i_t.real + i_t.imag * i_t.imag) * st2[c]
                out[i, cols[c]] = np.sqrt(max(a, b))


# --------------------------------------------------------------------------- kernels
def injected_currents(sc: ComplexArray, v: ComplexArray, out: ComplexArray) -> None:
    """``out = sc / conj(v)``: injected currents [pu] from ``sc = conj(S)`` and ``v``.

    All three are (steps, nodes); ``out`` may not overlap the inputs.
    """
    if enabled():
        _nb_injected_currents(sc, v, out)
    else:
        np.conjugate(v, out=out)
        np.divide(sc, out, out=out)


def max_change(v_new: ComplexArray, v: ComplexArray, out: FloatArray) -> FloatArray:
    """``out[i] = max_j |v_new[i, j] - v[i, j]|`` [pu]; ``inf`` where any value is not
    finite (so a diverging step can never look converged). Returns ``out``."""
    if enabled():
        _nb_max_change(v_new, v, out)
        return out
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(v_new - v)
        np.max(d, axis=1, out=out)
    out[~np.isfinite(out)] = np.inf
    return out


def branch_max(
    v: ComplexArray,
    f: IntArray,
    t: IntArray,
    y: ComplexArray,
    scale_f: FloatArray,
    scale_t: FloatArray,
    power: bool,
    cols: IntArray,
    out: FloatArray,
) -> None:
    """Largest scaled end quantity of each branch, written to ``out[:, cols]``.

    With ``i_f = y[0]·v_f + y[1]·v_t`` and ``i_t = y[2]·v_f + y[3]·v_t`` (end currents
    [pu] of two-port admittances ``y``, shape (4, branches), end nodes ``f``, ``t`` as
    columns of ``v``), ``out[:, cols] = max(|x_f|·scale_f, |x_t|·scale_t)`` where ``x`` is
    the end current, or with ``power`` the end apparent power ``v·i``.
    """
    if enabled():
        _nb_branch_max(v, f, t, y, scale_f, scale_t, power, cols, out)
        return
    v_f = np.take(v, f, axis=1)
    v_t = np.take(v, t, axis=1)
    i_f = v_f * y[0]
    i_f += v_t * y[1]
    i_t = v_t * y[3]
    i_t += v_f * y[2]
    if power:
        i_f *= v_f
        i_t *= v_t
    a = np.abs(i_f)
    a *= scale_f
    b = np.abs(i_t)
    b *= scale_t
    np.maximum(a, b, out=a)
    if cols.size == out.shape[1]:  # cols are distinct and increasing: all of them
        out[:] = a
    else:
        out[:, cols] = a
