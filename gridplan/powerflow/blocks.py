"""The block form of ``Z_LL = Y_LL⁻¹``: dense inverses of small blocks plus a low-rank coupling.

Distribution feeders are trees or nearly so. Removing a few *separator* nodes splits the
non-slack nodes into small connected blocks; ``Z_LL`` is then applied as one small dense
product per block plus a low-rank correction through the separators (:class:`BlockZ`),
4–10× less work than one dense product on SimBench feeders. :func:`block_structure`
finds the separators (a greedy search on the estimated cost, :func:`block_cost`),
:func:`build_block` builds the matrices for a given node order.

Used by :mod:`gridplan.powerflow.zll`, which chooses among the dense, sparse LU and block
forms; no pandapower here, only scipy sparse matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from gridplan.powerflow.arraytypes import ComplexArray, FloatArray, IntArray

__all__ = [
    "COST_BLOCK_FACTOR",
    "COST_PER_CALL",
    "BlockStructure",
    "BlockZ",
    "block_cost",
    "block_structure",
    "build_block",
]

# Cost of one ``Z_LL`` application per step column, in units of one complex multiply-add
# of a large dense BLAS product (≈ 0.16 ns on the benchmark machine): the block form costs
# its blocks' squares plus the separator terms and a fixed cost per BLAS call (the dense
# and sparse LU costs are in :mod:`gridplan.powerflow.zll`). Calibrated with
# ``benchmarks/bench_powerflow.py --mode method``.
COST_PER_CALL = 40.0
COST_BLOCK_FACTOR = 1.3  # small products run below the large-product rate


@dataclass(frozen=True, eq=False)
class BlockZ:
    """``Z_LL`` as block diagonal plus low rank (method ``"block"``).

    With the non-slack nodes ordered as blocks (the components left when a few separator
    nodes are removed) followed by the ``s`` separator nodes, ``Y_LL = [[A, B], [B', C]]``
    with ``A`` block diagonal, and

        Z_LL = blockdiag(A⁻¹, 0) + R · Sc⁻¹ · Q,   Sc = C − B' A⁻¹ B,
        R = [−A⁻¹ B; I],   Q = [−B' A⁻¹, I].

    For steps as rows (``V = W + I · Z_LLᵀ``): ``V[:, a:b] = I[:, a:b] @ dt`` per block,
    plus ``[I @ qt | 1] @ rt_w`` (the low-rank part and ``W``).
    """

    blocks: tuple[tuple[int, int, ComplexArray], ...]  # (start, stop, A_f⁻ᵀ)
    n_sep: int
    qt: ComplexArray  # Qᵀ, (n, s)
    rt_w: ComplexArray  # [(R Sc⁻¹)ᵀ; Wᵀ], (s + 1, n)

    def solve(self, rhs: ComplexArray) -> ComplexArray:
        """``Z_LL @ rhs`` for a (node, k) right-hand side (the interface of SuperLU)."""
        i = np.ascontiguousarray(np.asarray(rhs, dtype=np.complex128).T)
        v = np.zeros_like(i)
        for a, b, dt in self.blocks:
            v[:, a:b] = i[:, a:b] @ dt
        v += (i @ self.qt) @ self.rt_w[:-1]
        return np.ascontiguousarray(v.T)


@dataclass(frozen=True)
class BlockStructure:
    """Node order for :class:`BlockZ`: ``order`` lists blocks, then separator nodes."""

    order: IntArray
    sizes: tuple[int, ...]
    n_sep: int
    cost: float


def block_cost(sizes: list[int], n_sep: int, n: int) -> float:
    """Estimated cost of one block-form ``Z_LL`` application per column (see ``COST_*``)."""
    squares = float(sum(k * k for k in sizes))
    low_rank = 2.0 * n * n_sep + n  # [I @ qt | 1] @ rt_w, including W
    calls = len(sizes) + (2 if n_sep else 1)
    return COST_BLOCK_FACTOR * (squares + low_rank) + COST_PER_CALL * calls


def _pieces_squared(adj: sp.csr_matrix, members: IntArray) -> tuple[IntArray, FloatArray]:
    """For nodes of one connected component: sum of squared sizes of the pieces left when
    each one is removed. Exact for every node of a tree (subtree sizes of a spanning
    tree); for a meshed component only the 48 nodes of highest degree are evaluated."""
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    sub = sp.csr_matrix(adj[members][:, members])
    size = members.size
    if sub.nnz // 2 == size - 1:  # a tree
        order, pred = breadth_first_order(sub, 0, directed=False, return_predecessors=True)
        sub_size = np.ones(size, dtype=np.int64)
        for u in order[:0:-1]:  # leaves first
            sub_size[pred[u]] += sub_size[u]
        child_sq = np.zeros(size, dtype=np.float64)
        np.add.at(child_sq, pred[order[1:]], sub_size[order[1:]].astype(float) ** 2)
        return np.arange(size), child_sq + (size - sub_size).astype(float) ** 2
    degree = np.diff(sub.indptr)
    cand = np.argsort(-degree, kind="stable")[:48]
    sq = np.empty(cand.size)
    keep = np.ones(size, dtype=bool)
    for k, j in enumerate(cand):
        keep[j] = False
        idx = np.flatnonzero(keep)
        _, lab = connected_components(sub[idx][:, idx], directed=False)
        sq[k] = float((np.bincount(lab).astype(float) ** 2).sum())
        keep[j] = True
    return cand.astype(np.int64), sq


def block_structure(y_ll: sp.spmatrix) -> BlockStructure:
    """Greedy separator search for the block form of ``Z_LL`` (:class:`BlockZ`).

    Repeatedly removes the node of the largest remaining component whose removal lowers
    the estimated cost most (:func:`block_cost`), while the cost drops. Distribution
    feeders are trees or nearly so: on SimBench grids 1–3 separator nodes split 40–200
    nodes into blocks of at most ~20, cutting the work of a ``Z_LL`` application 4–10×.
    Tiny neighbouring blocks are then merged where a BLAS call costs more than the
    merged block. Returns the trivial structure (one block, no separator) if nothing
    helps.
    """
    from scipy.sparse.csgraph import connected_components

    n = int(y_ll.shape[0])
    adj = sp.csr_matrix(abs(sp.csr_matrix(y_ll)) > 0, dtype=np.float64)
    adj = sp.csr_matrix(((adj + adj.T) > 0).astype(np.float64))
    adj.setdiag(0.0)
    adj.eliminate_zeros()
    removed = np.zeros(n, dtype=bool)
    sep: list[int] = []

    def components() -> tuple[IntArray, IntArray]:
        idx = np.flatnonzero(~removed)
        _, lab = connected_components(adj[idx][:, idx], directed=False)
        labels = np.full(n, -1, dtype=np.int64)
        labels[idx] = lab
        return labels, np.bincount(lab, minlength=1).astype(np.int64)

    labels, sizes = components()
    cost = block_cost(sizes.tolist(), 0, n)
    while len(sep) < n // 2:
        big = int(sizes.argmax())
        members = np.flatnonzero(labels == big)
        if members.size <= 2:
            break
        cand, pieces_sq = _pieces_squared(adj, members)
        rest_sq = float((sizes.astype(float) ** 2).sum()) - float(members.size) ** 2
        n_blocks = sizes.size  # approximate: the call term is refined when recomputed
        trial = [
            COST_BLOCK_FACTOR * (rest_sq + sq + 2.0 * n * (len(sep) + 1) + n)
            + COST_PER_CALL * (n_blocks + 2)
            for sq in pieces_sq
        ]
        k = int(np.argmin(trial))
        if trial[k] >= cost:
            break
        removed[members[cand[k]]] = True
        sep.append(int(members[cand[k]]))
        labels, sizes = components()
        cost = block_cost(sizes.tolist(), len(sep), n)

    # blocks: components, smallest merged into groups while a call costs more
    comp_nodes = sorted(
        (np.flatnonzero(labels == c) for c in range(sizes.size)), key=lambda a: a.size
    )
    groups: list[list[IntArray]] = []
    group_size = 0
    for nodes in comp_nodes:
        if groups and 2.0 * group_size * nodes.size * COST_BLOCK_FACTOR < COST_PER_CALL:
            groups[-1].append(nodes)
            group_size += int(nodes.size)
        else:
            groups.append([nodes])
            group_size = int(nodes.size)
    blocks = [np.sort(np.concatenate(g)) for g in groups]
    blocks.sort(key=lambda a: int(a[0]))  # keep the original order roughly
    order = np.concatenate([*blocks, np.asarray(sep, dtype=np.int64)]).astype(np.int64)
    block_sizes = tuple(int(b.size) for b in blocks)
    return BlockStructure(
        order=order,
        sizes=block_sizes,
        n_sep=len(sep),
        cost=block_cost(list(block_sizes), len(sep), n),
    )


def build_block(y_ll: sp.csc_matrix, structure: BlockStructure, w: ComplexArray) -> BlockZ:
    """The :class:`BlockZ` of ``Y_LL`` (nodes already in ``structure.order``)."""
    n = int(y_ll.shape[0])
    s = structure.n_sep
    n_a = n - s
    y = sp.csr_matrix(y_ll)
    a_inv = np.zeros((n_a, n_a), dtype=np.complex128)  # block diagonal, kept dense per block
    blocks: list[tuple[int, int, ComplexArray]] = []
    start = 0
    for size in structure.sizes:
        stop = start + size
        inv = np.linalg.inv(y[start:stop, start:stop].toarray())
        a_inv[start:stop, start:stop] = inv
        blocks.append((start, stop, np.ascontiguousarray(inv.T)))
        start = stop
    b = y[:n_a, n_a:].toarray()
    b2 = y[n_a:, :n_a].toarray()
    c = y[n_a:, n_a:].toarray()
    r_top = -(a_inv @ b)  # −A⁻¹ B
    q_left = -(b2 @ a_inv)  # −B' A⁻¹
    sc_inv = np.linalg.inv(c + b2 @ r_top) if s else np.zeros((0, 0), dtype=np.complex128)
    r = np.vstack([r_top, np.eye(s, dtype=np.complex128)])
    q = np.hstack([q_left, np.eye(s, dtype=np.complex128)])
    rt_w = np.vstack([(r @ sc_inv).T, w[None, :]])
    return BlockZ(
        blocks=tuple(blocks),
        n_sep=s,
        qt=np.ascontiguousarray(q.T),
        rt_w=np.ascontiguousarray(rt_w),
    )
