"""The fixed-point (Z-bus) iteration over all steps of a chunk at once.

For the non-slack nodes ``L`` and the fixed ext_grid voltages ``V_s``::

    V_L = W + Z_LL · conj(S_L / V_L)      with  Z_LL = Y_LL⁻¹,  W = -Z_LL · Y_Ls · V_s

Each iteration updates every still-unconverged step (a row) of the chunk: the injected
currents (:func:`injected_currents`, fused kernels of :mod:`gridplan.powerflow.kernels`),
one application of ``Z_LL`` to all of them (:func:`apply_z`: a BLAS product, SuperLU
solves or the block form), and the largest voltage change per step. Converged steps
drop out and the rest are compacted, so later iterations work on fewer rows.

With the sweep form (:mod:`gridplan.powerflow.sweep`) and numba, the iteration is instead
one kernel (:func:`gridplan.powerflow.kernels.sweep_iterate`) that runs each step's
iterations to the end, four steps side by side, with the same stopping rule
(:func:`_stops`); without numba the sweep form's SuperLU factor goes through the loop
here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import zgemm as _zgemm

from gridplan.powerflow import kernels
from gridplan.powerflow.arraytypes import BoolArray, ComplexArray, FloatArray, IntArray
from gridplan.powerflow.model import CompiledNetwork

__all__ = ["apply_z", "injected_currents", "iterate"]


def apply_z(
    cn: CompiledNetwork, cur: ComplexArray, out: ComplexArray, t_buf: ComplexArray | None
) -> None:
    """``out = W + Z_LL · cur`` for steps as rows.

    ``cur`` is (steps, nonslack) C-contiguous; for method ``"dense"`` it has one more
    column of ones (``[I | 1] @ zt_w`` adds ``W`` in the same product). ``t_buf`` is the
    (steps, separators + 1) work array of method ``"block"``, last column ones.
    """
    if cn.zt_w is not None:
        np.matmul(cur, cn.zt_w, out=out)
        return
    bz = cn.blocks
    if bz is None:
        x = cn.lu.solve(cur.T)  # cur.T is Fortran-ordered: no copy before SuperLU's own
        np.add(x.T, cn.w, out=out)
        return
    assert t_buf is not None
    s = bz.n_sep
    for a, b, dt in bz.blocks:
        np.matmul(cur[:, a:b], dt, out=out[:, a:b])
    n = out.shape[1]
    if s:
        np.matmul(cur, bz.qt, out=t_buf[:, :s])
        out[:, n - s :] = 0.0
    # out += [I @ qt | 1] @ rt_w, as one BLAS call accumulating into out (column-major view)
    res = _zgemm(1.0, bz.rt_w.T, t_buf.T, beta=1.0, c=out.T, overwrite_c=True)
    if not np.may_share_memory(res, out):  # f2py had to copy: never for these layouts
        out[:] = res.T


def injected_currents(
    cn: CompiledNetwork, sc: ComplexArray, v: ComplexArray, first: bool, out: ComplexArray
) -> None:
    """``out = conj(S_inj / V) = conj(S_inj) / conj(V)``: injected currents [pu].

    ``sc`` is ``conj(S_inj)`` at the nominal voltage, (steps, nonslack). Loads with
    ZIP shares (``cn.zip_p``, ``cn.zip_q``) scale it with ``|V|`` as pandapower does. In
    the ``first`` iteration ``V`` is the no-load voltage ``W`` (``1 / conj(W)`` is
    precomputed).
    """
    if cn.zip_p is not None and cn.zip_q is not None:
        n = sc.shape[1]
        kp = cn.zip_p[:, :n]
        kq = cn.zip_q[:, :n]
        vm = np.abs(v)
        load = sc.real * (kp[0] + vm * (kp[1] + vm * kp[2])) + 1j * (
            sc.imag * (kq[0] + vm * (kq[1] + vm * kq[2]))
        )
        np.divide(load, np.conj(v), out=out)
    elif first:
        np.multiply(sc, cn.inv_conj_w, out=out)
    else:
        kernels.injected_currents(sc, v, out)


@dataclass(frozen=True, eq=False)
class _Buffers:
    """Work arrays of one chunk's iteration (rows: the chunk's steps)."""

    cur: ComplexArray  # injected currents, (m, n), or (m, n + 1) with a column of ones
    t: ComplexArray | None  # block form: (m, separators + 1), last column ones
    v: tuple[ComplexArray, ComplexArray]  # voltages of this and the previous iteration
    dv: FloatArray  # largest change per step

    @classmethod
    def allocate(cls, cn: CompiledNetwork, m: int, n: int) -> _Buffers:
        """Buffers for ``m`` steps and ``n`` non-slack nodes, in the layout of ``cn``."""
        dense = cn.zt_w is not None
        cur = np.empty((m, n + 1) if dense else (m, n), dtype=np.complex128)
        if dense:
            cur[:, n] = 1.0
        t = None
        if cn.blocks is not None:
            t = np.empty((m, cn.blocks.n_sep + 1), dtype=np.complex128)
            t[:, -1] = 1.0
        v = (np.empty((m, n), dtype=np.complex128), np.empty((m, n), dtype=np.complex128))
        return cls(cur=cur, t=t, v=v, dv=np.empty(m))


def _stops(dv: FloatArray, dv_prev: FloatArray, tol_pu: float) -> tuple[BoolArray, BoolArray]:
    """``(done, finished)``: steps that converged, and those that stop (converged or not
    finite).

    The iteration contracts linearly: with rate ``rho = dv / dv_prev`` the error left in
    ``v`` is about ``dv·rho/(1-rho)``. Stop on that estimate (from the 3rd iteration on,
    when rho is measured); a change at rounding level stops at once.
    """
    tiny = 1e-3 * tol_pu
    rho = dv / dv_prev
    done = (dv * rho < tol_pu * (1.0 - rho)) | (dv <= tiny)
    return done, done | ~np.isfinite(dv)


def iterate(
    cn: CompiledNetwork,
    sc: ComplexArray,
    max_iter: int,
    tol_pu: float,
    v_out: ComplexArray,
    cur_out: ComplexArray,
) -> tuple[BoolArray, IntArray]:
    """Fixed-point iteration for all steps of a chunk.

    Parameters
    ----------
    cn
        The compiled network.
    sc
        ``conj(S_inj)`` per non-slack node [pu], shape (steps, nonslack).
    max_iter, tol_pu
        Iteration limit [-] and tolerance [pu] (see
        :func:`gridplan.powerflow.solve.solve_timeseries`).
    v_out
        (steps, nodes): receives the non-slack voltages of converged steps in its first
        columns (left untouched, e.g. NaN, for the others).
    cur_out
        (steps, nonslack): receives the injected currents of the last iteration of the
        converged steps (``V = W + Z_LL · cur`` exactly: the losses use it).

    Returns
    -------
    converged, iterations
        Convergence flag and iterations used per step.
    """
    m, n = sc.shape
    converged = np.zeros(m, dtype=bool)
    iterations = np.full(m, max_iter, dtype=np.int64)
    if n == 0:
        converged[:] = True
        iterations[:] = 0
        return converged, iterations
    f = cn.sweep
    if f is not None and kernels.enabled():
        zip_pq = None
        if cn.zip_p is not None and cn.zip_q is not None:
            zip_pq = (cn.zip_p[:, :n], cn.zip_q[:, :n])
        factor = (f.l_ptr, f.l_idx, f.l_val, f.u_ptr, f.u_idx, f.u_val, f.inv_diag, f.rhs)
        with np.errstate(all="ignore"):
            kernels.sweep_iterate(
                sc, cn.w, factor, zip_pq, max_iter, tol_pu, v_out, cur_out, converged, iterations
            )
        return converged, iterations

    buf = _Buffers.allocate(cn, m, n)
    held = 1  # which of buf.v holds v (after the first iteration)
    v: ComplexArray = np.broadcast_to(cn.w, (m, n))
    active = np.arange(m)
    dv_prev = np.full(m, np.nan)  # rho unknown in the first iteration: only dv <= tiny stops
    with np.errstate(all="ignore"):
        for k in range(1, max_iter + 1):
            ma = int(active.size)
            cur = buf.cur[:ma, :n]
            injected_currents(cn, sc, v, k == 1, cur)
            v_new = buf.v[1 - held][:ma]
            apply_z(cn, buf.cur[:ma], v_new, None if buf.t is None else buf.t[:ma])
            if k == 1 and max_iter > 1:
                # No stop is possible yet (the rate rho needs two changes; a step without
                # load stops at the next iteration on its zero change): skip the pass.
                held = 1 - held
                v = v_new
                continue
            dv = kernels.max_change(v_new, v, buf.dv[:ma])
            done, finished = _stops(dv, dv_prev, tol_pu)
            if not finished.any():
                held = 1 - held
                v = v_new
                dv_prev = dv.copy()  # buf.dv is overwritten by the next iteration
                continue
            iterations[active[finished]] = k
            ok = active[done]
            v_out[ok, :n] = v_new[done]
            cur_out[ok] = cur[done]
            converged[ok] = True
            keep = np.flatnonzero(~finished)
            active = active[keep]
            if active.size == 0:
                break
            # compact the steps still iterating into the buffer v no longer needs
            v = buf.v[held][: keep.size]
            np.take(v_new, keep, axis=0, out=v, mode="clip")
            sc = np.take(sc, keep, axis=0)
            dv_prev = dv[keep]  # a copy: buf.dv is overwritten by the next iteration
    return converged, iterations
