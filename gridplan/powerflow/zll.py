"""``Z_LL = Y_LL⁻¹`` in the form the iteration applies it: dense, sparse LU or block.

The fixed-point iteration (:mod:`gridplan.powerflow.iteration`) applies ``Z_LL``, the
inverse of the admittance matrix of the non-slack nodes, once per iteration to a chunk of
step columns. Three forms give the same result to rounding at different costs:

``"dense"``
    the inverse as one dense matrix (one BLAS product), stored transposed with the
    no-load voltages ``W`` as a last row (``[I | 1] @ zt_w = W + Z_LL·I``);
``"sparse"``
    a sparse LU factorisation of ``Y_LL`` (SuperLU triangular solves);
``"block"``
    dense inverses of the small blocks left when a few separator nodes are removed, plus
    a low-rank coupling through them (:mod:`gridplan.powerflow.blocks`);
``"sweep"``
    the sparse LU factors in minimum-degree elimination order, row by row, for the fused
    numba iteration (:mod:`gridplan.powerflow.sweep`): no fill on a radial feeder, so
    work linear in its size.

:func:`z_form` builds the chosen form from the admittance matrix; ``"auto"`` picks
``"sweep"`` whenever numba is available, otherwise the one with the lowest estimated
cost. No pandapower here: the input is scipy's sparse ``Ybus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from gridplan.core.errors import GridplanError
from gridplan.powerflow import kernels
from gridplan.powerflow.arraytypes import ComplexArray, IntArray
from gridplan.powerflow.blocks import BlockStructure, BlockZ, block_structure, build_block
from gridplan.powerflow.sweep import SweepFactor, elimination_order, sweep_factor

__all__ = [
    "BLOCK_MAX_NODES",
    "COST_SPARSE_PER_NNZ",
    "DENSE_MAX_BUSES",
    "METHODS",
    "Method",
    "ZForm",
    "factorize",
    "z_form",
]

Method = Literal["auto", "dense", "sparse", "block", "sweep"]
METHODS: tuple[str, ...] = ("auto", "dense", "sparse", "block", "sweep")

#: Non-slack node count up to which ``method="auto"`` considers applying ``Z_LL`` as one
#: dense matrix (one BLAS product per iteration). Measured with
#: ``benchmarks/bench_powerflow.py --mode method`` (``benchmarks/results/powerflow.md``),
#: single-threaded on SimBench grids, per step column: dense 0.19 / 0.55 µs vs sparse
#: 0.33 / 0.66 µs at 14 / 43 nodes, but dense 2.0 vs sparse 1.3 µs at 100 nodes and
#: 7.8 vs 2.6 µs at 207 nodes.
DENSE_MAX_BUSES = 60

#: Non-slack node count up to which ``method="auto"`` looks for the block structure of
#: ``Z_LL`` (radial and weakly meshed feeders: a few separator nodes split the grid into
#: small blocks; see :func:`gridplan.powerflow.blocks.block_structure`). Above it only
#: dense and sparse LU are considered (the search is quadratic in the node count).
BLOCK_MAX_NODES = 1000

# Cost model of one ``Z_LL`` application per step column, in units of one complex
# multiply-add of a large dense BLAS product (≈ 0.16 ns on the benchmark machine): a
# dense product costs n², the block form its blocks' squares plus the separator terms and
# a fixed cost per BLAS call (:func:`gridplan.powerflow.blocks.block_cost`), and SuperLU's
# triangular solves cost ~15 per factor entry (they run one right-hand side at a time).
# Calibrated with ``--mode method``.
COST_SPARSE_PER_NNZ = 15.0


@dataclass(frozen=True, eq=False)
class ZForm:
    """``Z_LL`` of one network in the form the iteration applies, and the no-load voltages.

    Attributes
    ----------
    method : str
        ``"dense"``, ``"sparse"`` or ``"block"`` (never ``"auto"``).
    nonslack : numpy.ndarray of int
        The non-slack nodes (internal node numbers) in the order of the rows and columns
        of ``Z_LL``: for the block form, blocks first, then the separator nodes.
    w : numpy.ndarray of complex
        No-load voltages ``W = -Z_LL · Y_Ls · V_s`` of the non-slack nodes [pu].
    inv_conj_w : numpy.ndarray of complex
        ``1 / conj(W)`` [1/pu]: the first iteration's current is ``conj(S) · inv_conj_w``.
    zt, zt_w : numpy.ndarray of complex or None
        Method ``"dense"``: ``zt_w = [Z_LLᵀ; Wᵀ]`` and ``zt`` its first rows (a view).
    lu : scipy.sparse.linalg.SuperLU or None
        Sparse LU of ``Y_LL`` (methods ``"sparse"`` and ``"block"``).
    blocks : BlockZ or None
        The block form (method ``"block"``).
    sweep : SweepFactor or None
        The LU factors row by row, nodes in elimination order (method ``"sweep"``).
    """

    method: str
    nonslack: IntArray
    w: ComplexArray
    inv_conj_w: ComplexArray
    zt: ComplexArray | None
    zt_w: ComplexArray | None
    lu: Any
    blocks: BlockZ | None
    sweep: SweepFactor | None = None


def factorize(y_ll: sp.csc_matrix, rhs: ComplexArray) -> tuple[Any, ComplexArray]:
    """Sparse LU of ``Y_LL`` and the solution of ``Y_LL w = rhs``.

    Admittance matrices are structurally symmetric and (nearly) diagonally dominant, so a
    symmetric minimum-degree ordering with diagonal pivots gives the least fill: on SimBench
    grids 25–35 % fewer factor entries and solves 1.4–1.8× faster than SuperLU's default
    (COLAMD with partial pivoting). If that factorisation is not accurate, the default is
    used.
    """
    try:
        lu = splu(
            y_ll,
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )
        w = lu.solve(rhs)
        scale = np.abs(rhs).max() or 1.0
        if np.isfinite(w).all() and np.abs(y_ll @ w - rhs).max() <= 1e-9 * scale:
            return lu, w
    except RuntimeError:
        pass
    lu = splu(y_ll)
    return lu, lu.solve(rhs)


def _cheapest(lu: Any, n_l: int, structure: BlockStructure | None) -> str:
    """The method ``"auto"`` picks: the lowest estimated cost per application."""
    costs = {"sparse": COST_SPARSE_PER_NNZ * float(lu.L.nnz + lu.U.nnz)}
    if n_l <= DENSE_MAX_BUSES:
        costs["dense"] = float(n_l * n_l)
    if structure is not None and structure.n_sep:
        costs["block"] = structure.cost
    return min(costs, key=costs.__getitem__)


@dataclass(frozen=True, eq=False)
class _Built:
    """What :func:`_build` makes of ``Y_LL`` (see :class:`ZForm`)."""

    method: str
    w: ComplexArray
    zt_w: ComplexArray | None = None
    lu: Any = None
    blocks: BlockZ | None = None
    sweep: SweepFactor | None = None


def _build(
    y_ll: sp.csc_matrix,
    rhs: ComplexArray,
    method: str,
    structure: BlockStructure | None,
) -> _Built:
    """The chosen form of ``Y_LL`` (nodes in their final order)."""
    n_l = int(y_ll.shape[0])
    if method == "sweep":
        made = sweep_factor(y_ll, rhs)
        if made is not None:
            return _Built(method, made[2], lu=made[1], sweep=made[0])
        method = "sparse"  # a zero pivot in elimination order: SuperLU with pivoting
    lu: Any = None
    if method != "dense":
        lu, w = factorize(y_ll, rhs)
    if method == "auto":
        method = _cheapest(lu, n_l, structure)
    if method == "dense":
        z = np.linalg.inv(y_ll.toarray())
        w = z @ rhs
        zt_w = np.ascontiguousarray(np.vstack([z.T, w[None, :]]))
        return _Built(method, w, zt_w=zt_w)
    blocks: BlockZ | None = None
    if method == "block":
        assert structure is not None
        blocks = build_block(y_ll, structure, np.asarray(w, dtype=np.complex128))
    return _Built(method, w, lu=lu, blocks=blocks)


def z_form(
    ybus: sp.csc_matrix,
    slack: IntArray,
    nonslack: IntArray,
    v_slack: ComplexArray,
    method: str,
) -> ZForm:
    """Build ``Z_LL`` of the non-slack nodes in the form ``method`` (or the cheapest).

    Parameters
    ----------
    ybus
        Bus admittance matrix of all in-service nodes [pu].
    slack, nonslack
        Internal node numbers of the slack (ext_grid) and the other nodes.
    v_slack
        Fixed complex voltages of the slack nodes [pu].
    method
        ``"auto"``, ``"dense"``, ``"sparse"``, ``"block"`` or ``"sweep"`` (see
        :func:`gridplan.powerflow.model.compile_network`). With ``"block"``, or ``"auto"``
        up to :data:`BLOCK_MAX_NODES` non-slack nodes, the nodes are reordered into blocks
        and separators (``ZForm.nonslack``), whichever form is then chosen; with
        ``"sweep"`` into elimination order.

    Raises
    ------
    GridplanError
        ``Y_LL`` is singular (an island without ext_grid) or the no-load voltages are not
        finite.
    """
    n_l = int(nonslack.size)
    if method == "auto" and kernels.AVAILABLE:
        method = "sweep"  # the fastest form at every size measured (with numba)
    structure: BlockStructure | None = None
    if n_l and (method == "block" or (method == "auto" and n_l <= BLOCK_MAX_NODES)):
        structure = block_structure(ybus[nonslack][:, nonslack])
        nonslack = nonslack[structure.order]  # blocks, then separator nodes
    built = _Built(method, np.zeros(0, dtype=np.complex128))
    if n_l:
        try:
            if method == "sweep":
                nonslack = nonslack[elimination_order(ybus[nonslack][:, nonslack].tocsc())]
            y_ll = ybus[nonslack][:, nonslack].tocsc()
            rhs = np.asarray(-(ybus[nonslack][:, slack] @ v_slack), dtype=np.complex128)
            built = _build(y_ll, rhs, method, structure)
        except (np.linalg.LinAlgError, RuntimeError) as exc:
            raise GridplanError(
                "the admittance matrix of the non-slack buses is singular (an island "
                "without ext_grid, e.g. with runpp option check_connectivity=False): "
                f"{exc}"
            ) from exc
        if not np.isfinite(built.w).all():
            raise GridplanError("the no-load voltages are not finite (singular network)")
    elif method in ("auto", "sweep"):
        built = _Built("dense", built.w)
    w = np.asarray(built.w, dtype=np.complex128)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_conj_w = np.asarray(1.0 / np.conj(w), dtype=np.complex128)
    zt_w = built.zt_w
    return ZForm(
        method=built.method,
        nonslack=nonslack,
        w=w,
        inv_conj_w=inv_conj_w,
        zt=None if zt_w is None else zt_w[:n_l],
        zt_w=zt_w,
        lu=built.lu,
        blocks=built.blocks,
        sweep=built.sweep,
    )
