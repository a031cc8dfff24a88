"""The sweep form of ``Z_LL``: the sparse LU factors of ``Y_LL`` in their elimination order.

On a radial feeder whose nodes are numbered in the order a minimum-degree elimination
visits them (leaves first), the LU factors of ``Y_LL`` have no fill: row ``j`` of ``L``
holds the children of node ``j`` and row ``j`` of ``U`` its parent. The forward
substitution ``L y = b`` is then the backward sweep of a feeder (currents summed from the
leaves towards the source) and the backward substitution ``U x = y`` the forward sweep
(voltages from the source outwards), in work linear in the number of nodes. Weakly meshed
and multi-source feeders fill in a few entries per loop; any ``Y_LL`` has LU factors, so
the same substitutions are the exact, general fallback.

:func:`sweep_factor` factorises ``Y_LL`` once with a symmetric minimum-degree ordering,
renumbers the nodes in that order and factorises again with the natural order, so that
the iteration needs no permutation at run time; :class:`SweepFactor` holds the two
factors row by row (CSR), as the fused numba kernel
(:func:`gridplan.powerflow.kernels.sweep_iterate`) reads them: one step at a time, all
iterations of that step while its vectors stay in the CPU caches.

No pandapower here, only scipy sparse matrices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from gridplan.powerflow.arraytypes import ComplexArray, IntArray

__all__ = ["SweepFactor", "elimination_order", "substitute", "sweep_factor"]


@dataclass(frozen=True, eq=False)
class SweepFactor:
    """LU factors of ``Y_LL`` (nodes in elimination order), row by row.

    ``Y_LL = L · U`` with ``L`` unit lower triangular and ``U`` upper triangular; the
    off-diagonal entries of row ``j`` are ``l_val[l_ptr[j]:l_ptr[j + 1]]`` at columns
    ``l_idx[...]`` (all ``< j``), and for ``U`` likewise (columns ``> j``).

    Attributes
    ----------
    l_ptr, l_idx, u_ptr, u_idx : numpy.ndarray of int
        Row pointers and column indices of the strictly lower part of ``L`` and the
        strictly upper part of ``U``.
    l_val, u_val : numpy.ndarray of complex
        Their values [pu admittance, relative].
    inv_diag : numpy.ndarray of complex
        ``1 / U[j, j]`` [pu impedance].
    rhs : numpy.ndarray of complex
        ``-Y_Ls · V_s`` [pu current]: ``Y_LL V = I + rhs`` gives the voltages for the
        injected currents ``I``.
    """

    l_ptr: IntArray
    l_idx: IntArray
    l_val: ComplexArray
    u_ptr: IntArray
    u_idx: IntArray
    u_val: ComplexArray
    inv_diag: ComplexArray
    rhs: ComplexArray

    @property
    def nnz(self) -> int:
        """Off-diagonal entries of both factors plus the diagonal [-] (the work per
        substitution pair is about this many complex multiply-adds)."""
        return int(self.l_idx.size + self.u_idx.size + self.inv_diag.size)


def elimination_order(y_ll: sp.csc_matrix) -> IntArray:
    """Node order of a symmetric minimum-degree elimination of ``Y_LL`` (SuperLU's
    ``MMD_AT_PLUS_A``), then a depth-first postorder of its elimination tree.

    Minimum degree eliminates leaves before their parents, so that on a radial feeder
    the LU factors have no fill. Any postorder of the elimination tree keeps the fill;
    the depth-first one, smaller subtrees first, numbers each subtree contiguously and
    puts a node right after its largest child's subtree, so that the substitutions and
    the branch results read neighbouring entries along the feeder (the minimum-degree
    order alone scatters them over the whole vector).
    """
    opts = {"SymmetricMode": True}
    lu = splu(y_ll, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options=opts)
    # Pc moves column j of Y_LL to position perm_c[j]: the order is the inverse permutation
    order = np.argsort(np.asarray(lu.perm_c, dtype=np.int64))
    y = sp.csc_matrix(y_ll[order][:, order])
    try:
        nat = splu(y, permc_spec="NATURAL", diag_pivot_thresh=0.0, options=opts)
    except RuntimeError:
        return order
    upper = sp.csr_matrix(sp.triu(nat.U, k=1))
    upper.eliminate_zeros()
    n = int(y.shape[0])
    parent = np.full(n, -1, dtype=np.int64)
    has = np.diff(upper.indptr) > 0
    parent[has] = np.minimum.reduceat(upper.indices, upper.indptr[:-1][has])
    return order[_postorder(parent)]


def _postorder(parent: IntArray) -> IntArray:
    """Depth-first postorder of the forest ``parent`` (-1 for roots), children in order
    of increasing subtree size."""
    n = parent.size
    size = np.ones(n, dtype=np.int64)
    for j in range(n):  # parents come after their children in elimination order
        if parent[j] >= 0:
            size[parent[j]] += size[j]
    children: list[list[int]] = [[] for _ in range(n)]
    roots: list[int] = []
    for j in np.argsort(size, kind="stable").tolist():
        (children[parent[j]] if parent[j] >= 0 else roots).append(j)
    out: list[int] = []
    for root in roots:
        stack = [(root, 0)]
        while stack:
            node, k = stack.pop()
            if k < len(children[node]):
                stack.append((node, k + 1))
                stack.append((children[node][k], 0))
            else:
                out.append(node)
    return np.asarray(out, dtype=np.int64)


def _rows(m: sp.spmatrix, strict: str) -> tuple[IntArray, IntArray, ComplexArray]:
    """CSR pointers, columns and values of the strictly lower or upper part of ``m``."""
    part = sp.tril(m, k=-1) if strict == "lower" else sp.triu(m, k=1)
    csr = sp.csr_matrix(part)
    csr.eliminate_zeros()  # SuperLU stores its supernodes' structural zeros
    csr.sort_indices()
    return (
        np.asarray(csr.indptr, dtype=np.int64),
        np.asarray(csr.indices, dtype=np.int64),
        np.asarray(csr.data, dtype=np.complex128),
    )


def sweep_factor(
    y_ll: sp.csc_matrix, rhs: ComplexArray
) -> tuple[SweepFactor, Any, ComplexArray] | None:
    """``(factor, lu, w)``: the :class:`SweepFactor` of ``Y_LL`` whose nodes are already
    in elimination order (see :func:`elimination_order`), its SuperLU object, and the
    no-load voltages ``w = Y_LL⁻¹ · rhs`` [pu].

    ``None`` when the natural-order factorisation without pivoting is not accurate (a
    zero or tiny pivot): the caller then keeps SuperLU's pivoted factor.
    """
    try:
        lu = splu(
            y_ll,
            permc_spec="NATURAL",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )
    except RuntimeError:
        return None
    n = int(y_ll.shape[0])
    ident = np.arange(n)
    if not (np.array_equal(lu.perm_r, ident) and np.array_equal(lu.perm_c, ident)):
        return None
    diag = np.asarray(lu.U.diagonal(), dtype=np.complex128)
    if not np.all(np.isfinite(diag)) or np.any(diag == 0):
        return None
    l_ptr, l_idx, l_val = _rows(lu.L, "lower")
    u_ptr, u_idx, u_val = _rows(lu.U, "upper")
    factor = SweepFactor(
        l_ptr=l_ptr,
        l_idx=l_idx,
        l_val=l_val,
        u_ptr=u_ptr,
        u_idx=u_idx,
        u_val=u_val,
        inv_diag=1.0 / diag,
        rhs=np.asarray(rhs, dtype=np.complex128),
    )
    w = substitute(factor, factor.rhs)
    scale = float(np.abs(rhs).max()) if rhs.size else 1.0
    if not np.isfinite(w).all() or np.abs(y_ll @ w - rhs).max() > 1e-9 * (scale or 1.0):
        return None
    return factor, lu, w


def substitute(f: SweepFactor, b: ComplexArray) -> ComplexArray:
    """``Y_LL⁻¹ · b`` for one vector by the two substitutions (numpy, for checks and the
    compile; the time series uses the numba kernel)."""
    n = f.inv_diag.size
    y = np.array(b, dtype=np.complex128)
    for j in range(n):
        a, c = f.l_ptr[j], f.l_ptr[j + 1]
        if c > a:
            y[j] -= f.l_val[a:c] @ y[f.l_idx[a:c]]
    for j in range(n - 1, -1, -1):
        a, c = f.u_ptr[j], f.u_ptr[j + 1]
        if c > a:
            y[j] -= f.u_val[a:c] @ y[f.u_idx[a:c]]
        y[j] *= f.inv_diag[j]
    return y
