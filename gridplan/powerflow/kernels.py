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

__all__ = [
    "AVAILABLE",
    "ComplexArray",
    "FloatArray",
    "IntArray",
    "branch_max",
    "bus_voltages",
    "enabled",
    "injected_currents",
    "max_change",
    "numba_disabled",
    "scatter_add",
    "sweep_iterate",
]

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
    # the sweep: multiply-adds fused (FMA) where the CPU has them; no other fast-math
    # licence (the kernels test values for NaN and inf)
    _jit_fma = _numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})

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

    @_jit_fma
    def _nb_current(s: complex, v: complex) -> complex:  # pragma: no cover
        """``conj(S / V)`` from ``s = conj(S)`` and ``V``."""
        a = v.real
        b = v.imag
        inv = 1.0 / (a * a + b * b)
        return complex((s.real * a - s.imag * b) * inv, (s.real * b + s.imag * a) * inv)

    @_jit_fma
    def _nb_zip_current(
        s: complex, v: complex, kp: Any, kq: Any, j: int
    ) -> complex:  # pragma: no cover
        """:func:`_nb_current` with ``S`` scaled by the ZIP shares ``kp[:, j]``,
        ``kq[:, j]`` of node ``j`` at ``|V|``."""
        vm = np.sqrt(v.real * v.real + v.imag * v.imag)
        sr = s.real * (kp[0, j] + vm * (kp[1, j] + vm * kp[2, j]))
        si = s.imag * (kq[0, j] + vm * (kq[1, j] + vm * kq[2, j]))
        return _nb_current(complex(sr, si), v)

    @_jit_fma
    def _nb_lanes_forward(
        s: Any, v: Any, zip_p: Any, zip_q: Any, use_zip: bool, fac: Any, x: Any
    ) -> None:  # pragma: no cover
        """Currents of the 4 lanes (columns) of ``v`` and ``L y = cur + rhs`` into ``x``:
        the backward sweep of a radial feeder (leaves to source). The lanes are written
        out so that they stay in registers."""
        lp, li, lv, _, _, _, _, rhs = fac
        for j in range(v.shape[0]):
            r = rhs[j]
            if use_zip:
                a0 = _nb_zip_current(s[j, 0], v[j, 0], zip_p, zip_q, j) + r
                a1 = _nb_zip_current(s[j, 1], v[j, 1], zip_p, zip_q, j) + r
                a2 = _nb_zip_current(s[j, 2], v[j, 2], zip_p, zip_q, j) + r
                a3 = _nb_zip_current(s[j, 3], v[j, 3], zip_p, zip_q, j) + r
            else:
                a0 = _nb_current(s[j, 0], v[j, 0]) + r
                a1 = _nb_current(s[j, 1], v[j, 1]) + r
                a2 = _nb_current(s[j, 2], v[j, 2]) + r
                a3 = _nb_current(s[j, 3], v[j, 3]) + r
            for p in range(lp[j], lp[j + 1]):
                q = li[p]
                f = lv[p]
                a0 -= f * x[q, 0]
                a1 -= f * x[q, 1]
                a2 -= f * x[q, 2]
                a3 -= f * x[q, 3]
            x[j, 0] = a0
            x[j, 1] = a1
            x[j, 2] = a2
            x[j, 3] = a3

    @_jit_fma
    def _nb_lanes_backward(v: Any, fac: Any, x: Any, dv: Any) -> None:  # pragma: no cover
        """``U x = y`` in place for the 4 lanes of ``x``: the forward sweep of a radial
        feeder (source to leaves); ``dv[b]`` = the largest change of lane ``b`` from
        ``v`` (inf if any value is not finite)."""
        _, _, _, up, ui, uv, inv_d, _ = fac
        m0 = m1 = m2 = m3 = 0.0
        t0 = t1 = t2 = t3 = 0.0  # any NaN or inf shows in the sum, which max() would drop
        for j in range(v.shape[0] - 1, -1, -1):
            a0 = x[j, 0]
            a1 = x[j, 1]
            a2 = x[j, 2]
            a3 = x[j, 3]
            for p in range(up[j], up[j + 1]):
                q = ui[p]
                f = uv[p]
                a0 -= f * x[q, 0]
                a1 -= f * x[q, 1]
                a2 -= f * x[q, 2]
                a3 -= f * x[q, 3]
            d = inv_d[j]
            a0 *= d
            a1 *= d
            a2 *= d
            a3 *= d
            x[j, 0] = a0
            x[j, 1] = a1
            x[j, 2] = a2
            x[j, 3] = a3
            e0 = _nb_abs2(a0 - v[j, 0])
            e1 = _nb_abs2(a1 - v[j, 1])
            e2 = _nb_abs2(a2 - v[j, 2])
            e3 = _nb_abs2(a3 - v[j, 3])
            m0 = max(m0, e0)
            m1 = max(m1, e1)
            m2 = max(m2, e2)
            m3 = max(m3, e3)
            t0 += e0
            t1 += e1
            t2 += e2
            t3 += e3
        dv[0] = np.sqrt(m0) if np.isfinite(t0) else np.inf
        dv[1] = np.sqrt(m1) if np.isfinite(t1) else np.inf
        dv[2] = np.sqrt(m2) if np.isfinite(t2) else np.inf
        dv[3] = np.sqrt(m3) if np.isfinite(t3) else np.inf

    @_jit_fma
    def _nb_abs2(d: complex) -> float:  # pragma: no cover
        return d.real * d.real + d.imag * d.imag

    @_jit_fma
    def _nb_lane_load(sc: Any, i: int, w: Any, s: Any, v: Any, b: int) -> None:  # pragma: no cover
        """Put step ``i`` (``-1``: none, zero load) into lane ``b``, at the no-load voltage."""
        for j in range(w.size):
            v[j, b] = w[j]
            s[j, b] = sc[i, j] if i >= 0 else 0.0

    @_jit_fma
    def _nb_lane_store(
        i: int,
        b: int,
        v: Any,
        x: Any,
        s: Any,
        zp: Any,
        zq: Any,
        use_zip: bool,
        v_out: Any,
        cur_out: Any,
    ) -> None:  # pragma: no cover
        """The converged lane ``b``: its voltages ``x`` and its last currents (from ``v``)
        into row ``i`` of the outputs."""
        for j in range(v.shape[0]):
            v_out[i, j] = x[j, b]
            if use_zip:
                cur_out[i, j] = _nb_zip_current(s[j, b], v[j, b], zp, zq, j)
            else:
                cur_out[i, j] = _nb_current(s[j, b], v[j, b])

    @_jit_fma
    def _nb_sweep_iterate(
        sc: Any,
        w: Any,
        fac: Any,
        zip_p: Any,
        zip_q: Any,
        use_zip: bool,
        max_iter: int,
        tol: float,
        v_out: Any,
        cur_out: Any,
        converged: Any,
        iterations: Any,
    ) -> None:  # pragma: no cover
        m, n = sc.shape
        lanes = 4  # as written out in _nb_lanes_forward / _nb_lanes_backward
        v = np.empty((n, lanes), dtype=np.complex128)
        x = np.empty((n, lanes), dtype=np.complex128)
        s = np.empty((n, lanes), dtype=np.complex128)
        dv = np.empty(lanes)
        step = np.full(lanes, -1, dtype=np.int64)
        k = np.zeros(lanes, dtype=np.int64)
        dv_prev = np.full(lanes, np.nan)
        tiny = 1e-3 * tol
        nxt = 0
        for b in range(lanes):
            step[b] = nxt if nxt < m else -1
            nxt += 1
            _nb_lane_load(sc, step[b], w, s, v, b)
        while (step >= 0).any():
            _nb_lanes_forward(s, v, zip_p, zip_q, use_zip, fac, x)
            _nb_lanes_backward(v, fac, x, dv)
            for b in range(lanes):
                i = step[b]
                if i < 0:
                    continue
                k[b] += 1
                if k[b] == 1 and max_iter > 1:
                    continue  # no stop possible yet: the rate needs two changes
                rho = dv[b] / dv_prev[b]
                done = (dv[b] * rho < tol * (1.0 - rho)) or (dv[b] <= tiny)
                if done or not np.isfinite(dv[b]) or k[b] == max_iter:
                    iterations[i] = k[b]
                    converged[i] = done
                    if done:
                        _nb_lane_store(i, b, v, x, s, zip_p, zip_q, use_zip, v_out, cur_out)
                    step[b] = -2  # refilled after the swap
                else:
                    dv_prev[b] = dv[b]
            v, x = x, v
            for b in range(lanes):
                if step[b] == -2:
                    step[b] = nxt if nxt < m else -1
                    nxt += 1
                    k[b] = 0
                    dv_prev[b] = np.nan
                    _nb_lane_load(sc, step[b], w, s, v, b)

    @_jit
    def _nb_scatter_add(
        x: Any, src: Any, tgt: Any, factor: float, by_column: bool, out: Any
    ) -> None:  # pragma: no cover
        m = x.shape[0]
        if not by_column:  # x row-major: one step at a time
            for i in range(m):
                for c in range(src.size):
                    out[i, tgt[c]] += factor * x[i, src[c]]
            return
        # x column-major: 8 steps at a time, reading 8 consecutive values of a column
        for i0 in range(0, m, 8):
            i1 = min(i0 + 8, m)
            for c in range(src.size):
                s = src[c]
                t = tgt[c]
                for i in range(i0, i1):
                    out[i, t] += factor * x[i, s]

    @_jit
    def _nb_bus_parts(v: Any, node: Any, vm: Any, re: Any, im: Any) -> None:  # pragma: no cover
        m = v.shape[0]
        nan = np.nan
        for i in range(m):
            for b in range(node.size):
                k = node[b]
                if k < 0:
                    vm[i, b] = nan
                    re[i, b] = nan
                    im[i, b] = nan
                else:
                    x = v[i, k]
                    vm[i, b] = np.sqrt(x.real * x.real + x.imag * x.imag)
                    re[i, b] = x.real
                    im[i, b] = x.imag


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


def sweep_iterate(
    sc: ComplexArray,
    w: ComplexArray,
    factor: tuple[Any, ...],
    zip_pq: tuple[FloatArray, FloatArray] | None,
    max_iter: int,
    tol_pu: float,
    v_out: ComplexArray,
    cur_out: ComplexArray,
    converged: Any,
    iterations: IntArray,
) -> None:
    """The whole fixed-point iteration of each step (row of ``sc``), one step at a time.

    Per iteration: injected currents ``conj(S / V)`` (ZIP-scaled with ``zip_pq``), then
    ``V = Y_LL⁻¹ (I + rhs)`` by the forward and backward substitutions of the sparse LU
    factors in ``factor`` (``(l_ptr, l_idx, l_val, u_ptr, u_idx, u_val, inv_diag, rhs)``,
    :class:`gridplan.powerflow.sweep.SweepFactor`), then the same stopping rule as
    :func:`gridplan.powerflow.iteration.iterate`. A step's vectors stay in the CPU caches
    through all its iterations. Writes the voltages (first columns of ``v_out``) and last
    currents of converged steps, and ``converged`` / ``iterations`` of every step.

    numba only: without it the iteration applies the same factor through SuperLU
    (:func:`gridplan.powerflow.iteration.iterate`), which is this kernel's numpy twin.
    """
    if not enabled():
        raise RuntimeError("sweep_iterate needs numba (see kernels.enabled())")
    if zip_pq is None:
        zp = zq = np.zeros((3, sc.shape[1]))
        use_zip = False
    else:
        zp, zq = zip_pq
        use_zip = True
    converged[:] = False
    iterations[:] = max_iter
    _nb_sweep_iterate(
        sc, w, factor, zp, zq, use_zip, max_iter, tol_pu, v_out, cur_out, converged, iterations
    )


def scatter_add(
    x: FloatArray, src: IntArray, tgt: IntArray, factor: float, out: FloatArray
) -> None:
    """``out[:, tgt[c]] += factor · x[:, src[c]]`` for every ``c`` in order (targets may
    repeat: the additions accumulate)."""
    if enabled():
        by_column = bool(x.flags.f_contiguous and not x.flags.c_contiguous)
        _nb_scatter_add(x, src, tgt, factor, by_column, out)
        return
    np.add.at(out.T, tgt, (factor * x[:, src]).T)


def bus_voltages(v: ComplexArray, node: IntArray, vm_pu: FloatArray, va_degree: FloatArray) -> None:
    """Bus voltage magnitude [pu] and angle [degree] from the node voltages ``v`` (steps,
    nodes): bus ``b`` is node ``node[b]`` (NaN where ``node[b] < 0``: an unsolved bus)."""
    if enabled():
        im = np.empty_like(va_degree)
        _nb_bus_parts(v, node, vm_pu, va_degree, im)
        # numpy's arctan2 is vectorised (numba's calls libm one value at a time)
        np.arctan2(im, va_degree, out=va_degree)
        np.multiply(va_degree, 180.0 / np.pi, out=va_degree)
        return
    solved = node >= 0
    v_bus = np.take(v, node[solved], axis=1)
    # arctan2 runs twice as fast on contiguous real / imaginary parts as on the views
    re = np.ascontiguousarray(v_bus.real)
    im = np.ascontiguousarray(v_bus.imag)
    if solved.all():
        np.abs(v_bus, out=vm_pu)
        np.arctan2(im, re, out=va_degree)
        np.multiply(va_degree, 180.0 / np.pi, out=va_degree)
    else:
        vm_pu[:] = np.nan
        va_degree[:] = np.nan
        vm_pu[:, solved] = np.abs(v_bus)
        va_degree[:, solved] = np.arctan2(im, re) * (180.0 / np.pi)
