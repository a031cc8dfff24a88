"""Fast balanced AC power flow over many time steps on one network topology.

The network is compiled once from pandapower's own internal model (the ``ppc`` that
``pandapower.runpp`` builds), so switches, open lines, out-of-service elements,
transformer taps and phase shifts, shunts and ext_grid set-points mean exactly what they
mean in ``runpp``. All time steps are then solved together, in chunks of columns, by a
fixed-point (Z-bus) iteration on the non-slack buses::

    V_L = W + Z_LL · conj(S_L / V_L)      with  Z_LL = Y_LL⁻¹,  W = -Z_LL · Y_Ls · V_s

where ``S_L`` is the complex power injected at the non-slack buses and ``V_s`` the fixed
ext_grid voltages. ``Z_LL`` is applied as a dense matrix (one BLAS product), through one
sparse LU factorisation of ``Y_LL`` (``scipy.sparse.linalg.splu``), or — the usual choice
for radial and weakly meshed feeders — in block form: dense inverses of the small blocks
left when a few separator nodes are removed, plus a low-rank coupling through those
nodes (4–10× less work than the dense product on SimBench feeders). There is no Python
loop over time steps: each iteration updates every still-unconverged step of a chunk at
once, and converged steps drop out. Results are computed once per step after
convergence, for all buses and for all or only the requested lines and transformers;
the network losses come from the power balance of the converged solution. The
element-wise passes (injected currents, the change per iteration, branch currents) are
fused kernels compiled with numba, with numpy twins (:mod:`gridplan.powerflow.kernels`).

Supported: lines, two-winding transformers (taps, phase shift, parallel), switches
(open, closed, with impedance), shunts, ext_grids (several, with angles), time-varying
loads (constant power, or ZIP as pandapower models it) and static generators, and
storage, motors and wards at their values in the net. Refused with
:class:`UnsupportedElementError`: voltage-controlled ``gen``, ``trafo3w``, ``impedance``,
``xward``, ``dcline``, FACTS and DC elements, asymmetric loads/sgens, in-service
controllers and runpp options the model cannot honour.

Entry points
------------
solve_timeseries
    Solve a whole series and return one :class:`FlowResult`.
iter_timeseries
    Same solution, yielded chunk by chunk (bounded memory for very long or stacked
    Monte Carlo series).
compile_network
    Compile a net once and reuse it across calls (e.g. one call per Monte Carlo draw).

The reference path is ``pandapower.runpp`` with its default settings (and any
``net.user_pf_options``); the tests compare against it step by step.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.linalg.blas import zgemm as _zgemm
from scipy.sparse.linalg import splu

from gridplan.core.errors import ConfigError, GridplanError
from gridplan.powerflow import kernels as _kernels

logger = logging.getLogger(__name__)

__all__ = [
    "CompiledNetwork",
    "FlowResult",
    "UnsupportedElementError",
    "compile_network",
    "iter_timeseries",
    "solve_timeseries",
]

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Method = Literal["auto", "dense", "sparse", "block"]
_METHODS: tuple[str, ...] = ("auto", "dense", "sparse", "block")

#: Non-slack node count up to which ``method="auto"`` considers applying ``Z_LL`` as one
#: dense matrix (one BLAS product per iteration). Measured with
#: ``benchmarks/bench_powerflow.py --mode method`` (``benchmarks/results/powerflow.md``),
#: single-threaded on SimBench grids, per step column: dense 0.19 / 0.55 µs vs sparse
#: 0.33 / 0.66 µs at 14 / 43 nodes, but dense 2.0 vs sparse 1.3 µs at 100 nodes and
#: 7.8 vs 2.6 µs at 207 nodes.
DENSE_MAX_BUSES = 60

#: Non-slack node count up to which ``method="auto"`` looks for the block structure of
#: ``Z_LL`` (radial and weakly meshed feeders: a few separator nodes split the grid into
#: small blocks; see :func:`_block_structure`). Above it only dense and sparse LU are
#: considered (the search is quadratic in the node count).
BLOCK_MAX_NODES = 1000

# Cost model of one ``Z_LL`` application per step column, in units of one complex
# multiply-add of a large dense BLAS product (≈ 0.16 ns on the benchmark machine): a
# dense product costs n², the block form its blocks' squares plus the separator terms and
# a fixed cost per BLAS call, and SuperLU's triangular solves cost ~15 per factor entry
# (they run one right-hand side at a time). Calibrated with ``--mode method``.
_COST_SPARSE_PER_NNZ = 15.0
_COST_PER_CALL = 40.0
_COST_BLOCK_FACTOR = 1.3  # small products run below the large-product rate

#: Default number of time steps solved together (memory per chunk is roughly
#: ``chunk_size × (buses + branches) × 100 B``).
DEFAULT_CHUNK_SIZE = 512

#: Element tables that change the power flow and that this solver does not model.
#: An in-service row in any of them raises :class:`UnsupportedElementError`.
_UNSUPPORTED_TABLES: dict[str, str] = {
    "gen": "voltage-controlled generators (PV buses)",
    "trafo3w": "three-winding transformers",
    "impedance": "impedance elements",
    "xward": "extended wards (they add a PV bus)",
    "dcline": "DC lines",
    "svc": "static var compensators",
    "tcsc": "thyristor-controlled series capacitors",
    "ssc": "static synchronous compensators",
    "vsc": "voltage source converters",
    "vsc_stacked": "voltage source converters",
    "vsc_bipolar": "voltage source converters",
    "b2b_vsc": "back-to-back converters",
    "bus_dc": "DC buses",
    "line_dc": "DC lines",
    "source_dc": "DC sources",
    "load_dc": "DC loads",
    "asymmetric_load": "asymmetric (per-phase) loads",
    "asymmetric_sgen": "asymmetric (per-phase) static generators",
}

#: runpp options (``net.user_pf_options``) the compiled model cannot honour.
_UNSUPPORTED_OPTIONS: dict[str, Any] = {
    "distributed_slack": False,
    "tdpf": False,
    "consider_line_temperature": False,
    "enforce_p_lims": False,  # would clip the given sgen powers to their limits
    "enforce_q_lims": False,
}


class UnsupportedElementError(GridplanError):
    """The net contains an element (or a runpp option) the solver does not model.

    Parameters
    ----------
    table
        Name of the pandapower table (``"gen"``, ``"trafo3w"``, ``"controller"``, ...)
        or ``"user_pf_options"``.
    indices
        Row indices of the offending, in-service elements (empty for options).
    message
        What is not modelled and what to do instead.
    """

    def __init__(self, table: str, indices: list[Any], message: str) -> None:
        self.table = table
        self.indices = list(indices)
        shown = ", ".join(str(i) for i in self.indices[:10])
        if len(self.indices) > 10:
            shown += f", ... ({len(self.indices)} in total)"
        where = f"net.{table}" + (f" rows [{shown}]" if self.indices else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class FlowResult:
    """Results of a time-series power flow; arrays are ``(time, element)``.

    Element order follows the net's tables (``bus_index``, ``line_index``,
    ``trafo_index``), or the ``lines`` / ``trafos`` a call asked for. Steps that did not
    converge (``converged`` False) hold NaN in every float field. Buses that pandapower
    leaves unsolved (out of service or isolated) are NaN in every step; out-of-service
    lines and transformers carry 0 current and 0 loading, and NaN where they touch such a
    bus, exactly as ``pandapower.runpp`` reports them.

    Attributes
    ----------
    vm_pu : numpy.ndarray of float, shape (time, bus)
        Voltage magnitude [pu of the bus's ``vn_kv``].
    va_degree : numpy.ndarray of float, shape (time, bus)
        Voltage angle [degree], including transformer phase shifts when pandapower's
        ``calculate_voltage_angles`` is on (its default).
    line_loading_pct : numpy.ndarray of float, shape (time, line)
        Line loading [%]: the larger of the from- and to-end currents divided by
        ``max_i_ka × df × parallel`` (pandapower's ``res_line.loading_percent``).
    line_i_ka : numpy.ndarray of float, shape (time, line)
        Line current, larger of the two ends [kA] (pandapower's ``res_line.i_ka``).
    trafo_loading_pct : numpy.ndarray of float, shape (time, trafo)
        Two-winding transformer loading [%] as pandapower defines it: with the default
        ``trafo_loading="current"`` the larger of ``i_hv × vn_hv_kv`` and ``i_lv × vn_lv_kv``
        (× √3) relative to ``sn_mva``, divided by ``parallel × df``.
    losses_kw : numpy.ndarray of float, shape (time,)
        Active power lost in all lines, transformers and impedance (``z_ohm > 0``) bus-bus
        switches [kW]: series and shunt branch losses, including transformer iron
        losses; equal to ``res_line.pl_mw.sum() + res_trafo.pl_mw.sum()`` × 1000 for nets
        without impedance switches. Shunt elements (``net.shunt``) are not included.
        Always the whole network's losses, whichever lines and transformers are reported
        (computed from the power balance of the solution).
    converged : numpy.ndarray of bool, shape (time,)
        True where the step converged to ``tol_pu`` within ``max_iter`` iterations.
    iterations : numpy.ndarray of int, shape (time,)
        Fixed-point iterations the step used [-] (``max_iter`` for unconverged steps).
    bus_index : numpy.ndarray of int, shape (bus,)
        ``net.bus.index`` (columns of ``vm_pu`` and ``va_degree``).
    line_index : numpy.ndarray of int, shape (line,)
        ``net.line.index``, or the requested ``lines`` (columns of ``line_loading_pct``
        and ``line_i_ka``).
    trafo_index : numpy.ndarray of int, shape (trafo,)
        ``net.trafo.index``, or the requested ``trafos`` (columns of
        ``trafo_loading_pct``).
    """

    vm_pu: FloatArray
    va_degree: FloatArray
    line_loading_pct: FloatArray
    line_i_ka: FloatArray
    trafo_loading_pct: FloatArray
    losses_kw: FloatArray
    converged: BoolArray
    iterations: IntArray
    bus_index: IntArray
    line_index: IntArray
    trafo_index: IntArray

    @property
    def n_steps(self) -> int:
        """Number of time steps [-]."""
        return int(self.converged.shape[0])


@dataclass(frozen=True, eq=False)
class _BlockZ:
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


@dataclass(frozen=True, eq=False)
class CompiledNetwork:
    """A pandapower net compiled for repeated time-series solves (see :func:`compile_network`).

    Treat it as opaque: it holds the admittance matrices, the factorisation of ``Y_LL``
    and the maps between pandapower elements and the internal bus/branch order. It does
    not reference the net it came from; a change to the net needs a new compile.

    Attributes
    ----------
    bus_index, line_index, trafo_index, load_index, sgen_index : numpy.ndarray of int
        The net's table indices, in the order of the result and input columns.
    n_nodes : int
        Number of in-service internal nodes (pandapower ``ppci`` buses) [-].
    method : str
        How ``Z_LL`` is applied: ``"dense"``, ``"sparse"`` or ``"block"``.
    """

    bus_index: IntArray
    line_index: IntArray
    trafo_index: IntArray
    load_index: IntArray
    sgen_index: IntArray
    n_nodes: int
    method: str
    base_mva: float
    # node partition and fixed voltages
    slack: IntArray
    nonslack: IntArray
    v_slack: ComplexArray
    w: ComplexArray
    zt: ComplexArray | None  # dense Z_LL transposed (method "dense"), a view of zt_w
    lu: Any  # SuperLU of Y_LL (methods "sparse" and "block")
    zt_w: ComplexArray | None  # [Z_LL^T; W^T]: [I | 1] @ zt_w = W + Z_LL I, rows as steps
    blocks: _BlockZ | None
    inv_conj_w: ComplexArray  # 1 / conj(W): the first iteration's current is S* · this
    # power injections (load convention, MW / Mvar, per node)
    s_fixed_mva: ComplexArray
    zip_p: FloatArray | None
    zip_q: FloatArray | None
    c_load: sp.csr_matrix
    c_sgen: sp.csr_matrix
    load_p_mw: FloatArray
    load_q_mvar: FloatArray
    sgen_p_mw: FloatArray
    sgen_q_mvar: FloatArray
    # branches (in-service, internal order)
    y_branch: ComplexArray
    br_f: IntArray
    br_t: IntArray
    i_base_f_ka: FloatArray
    i_base_t_ka: FloatArray
    # output maps
    bus_node: IntArray
    line_branch: IntArray
    line_i_const: FloatArray
    line_scale: FloatArray
    line_rated: BoolArray
    trafo_branch: IntArray
    trafo_loading_const: FloatArray
    trafo_scale: FloatArray
    trafo_loading_mode: str
    # network losses by power balance (see compile_network and _results)
    loss_a: ComplexArray
    loss_c0: float
    shunt_node: IntArray
    shunt_g: FloatArray

    @property
    def n_load(self) -> int:
        """Number of rows of ``net.load`` [-]."""
        return int(self.load_index.shape[0])

    @property
    def n_sgen(self) -> int:
        """Number of rows of ``net.sgen`` [-]."""
        return int(self.sgen_index.shape[0])


# --------------------------------------------------------------------------------------
# compile
# --------------------------------------------------------------------------------------


def _in_service_rows(net: Any, table: str) -> list[Any]:
    """Row indices of ``net[table]`` that are in service (all rows if no such column)."""
    if table not in net:
        return []
    df = net[table]
    if not hasattr(df, "index") or len(df) == 0:
        return []
    if "in_service" in df.columns:
        return df.index[df["in_service"].astype(bool).to_numpy()].tolist()
    return df.index.tolist()


def _check_supported(net: Any) -> None:
    """Raise :class:`UnsupportedElementError` for anything the solver does not model."""
    for table, what in _UNSUPPORTED_TABLES.items():
        rows = _in_service_rows(net, table)
        if rows:
            raise UnsupportedElementError(
                table,
                rows,
                f"{what} are not modelled by gridplan.powerflow.solver; set them out of service, "
                "replace them (e.g. a gen by an sgen with fixed Q), or use pandapower.runpp.",
            )
    rows = _in_service_rows(net, "controller")
    if rows:
        raise UnsupportedElementError(
            "controller",
            rows,
            "controllers are not applied by gridplan.powerflow.solver (it solves the net as "
            "pandapower.runpp does, without run_control); set them out of service or "
            "apply their effect to the input arrays.",
        )
    if not _in_service_rows(net, "ext_grid"):
        raise ConfigError(
            "the net has no in-service ext_grid; the solver needs at least one slack bus",
            field="net.ext_grid",
        )
    options = dict(net.get("user_pf_options", {}) or {})
    for key, supported in _UNSUPPORTED_OPTIONS.items():
        if key in options and bool(options[key]) != supported:
            raise UnsupportedElementError(
                "user_pf_options",
                [],
                f"runpp option {key}={options[key]!r} is not supported by "
                "gridplan.powerflow.solver; remove it from net.user_pf_options.",
            )


def _factorize(y_ll: sp.csc_matrix, rhs: ComplexArray) -> tuple[Any, ComplexArray]:
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


@dataclass(frozen=True)
class _BlockStructure:
    """Node order for :class:`_BlockZ`: ``order`` lists blocks, then separator nodes."""

    order: IntArray
    sizes: tuple[int, ...]
    n_sep: int
    cost: float


def _block_cost(sizes: list[int], n_sep: int, n: int) -> float:
    """Estimated cost of one block-form ``Z_LL`` application per column (see ``_COST_*``)."""
    squares = float(sum(k * k for k in sizes))
    low_rank = 2.0 * n * n_sep + n  # [I @ qt | 1] @ rt_w, including W
    calls = len(sizes) + (2 if n_sep else 1)
    return _COST_BLOCK_FACTOR * (squares + low_rank) + _COST_PER_CALL * calls


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


def _block_structure(y_ll: sp.spmatrix) -> _BlockStructure:
    """Greedy separator search for the block form of ``Z_LL`` (:class:`_BlockZ`).

    Repeatedly removes the node of the largest remaining component whose removal lowers
    the estimated cost most (:func:`_block_cost`), while the cost drops. Distribution
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
    cost = _block_cost(sizes.tolist(), 0, n)
    while len(sep) < n // 2:
        big = int(sizes.argmax())
        members = np.flatnonzero(labels == big)
        if members.size <= 2:
            break
        cand, pieces_sq = _pieces_squared(adj, members)
        rest_sq = float((sizes.astype(float) ** 2).sum()) - float(members.size) ** 2
        n_blocks = sizes.size  # approximate: the call term is refined when recomputed
        trial = [
            _COST_BLOCK_FACTOR * (rest_sq + sq + 2.0 * n * (len(sep) + 1) + n)
            + _COST_PER_CALL * (n_blocks + 2)
            for sq in pieces_sq
        ]
        k = int(np.argmin(trial))
        if trial[k] >= cost:
            break
        removed[members[cand[k]]] = True
        sep.append(int(members[cand[k]]))
        labels, sizes = components()
        cost = _block_cost(sizes.tolist(), len(sep), n)

    # blocks: components, smallest merged into groups while a call costs more
    comp_nodes = sorted(
        (np.flatnonzero(labels == c) for c in range(sizes.size)), key=lambda a: a.size
    )
    groups: list[list[IntArray]] = []
    group_size = 0
    for nodes in comp_nodes:
        if groups and 2.0 * group_size * nodes.size * _COST_BLOCK_FACTOR < _COST_PER_CALL:
            groups[-1].append(nodes)
            group_size += int(nodes.size)
        else:
            groups.append([nodes])
            group_size = int(nodes.size)
    blocks = [np.sort(np.concatenate(g)) for g in groups]
    blocks.sort(key=lambda a: int(a[0]))  # keep the original order roughly
    order = np.concatenate([*blocks, np.asarray(sep, dtype=np.int64)]).astype(np.int64)
    block_sizes = tuple(int(b.size) for b in blocks)
    return _BlockStructure(
        order=order,
        sizes=block_sizes,
        n_sep=len(sep),
        cost=_block_cost(list(block_sizes), len(sep), n),
    )


def _build_block(y_ll: sp.csc_matrix, structure: _BlockStructure, w: ComplexArray) -> _BlockZ:
    """The :class:`_BlockZ` of ``Y_LL`` (nodes already in ``structure.order``)."""
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
    return _BlockZ(
        blocks=tuple(blocks),
        n_sep=s,
        qt=np.ascontiguousarray(q.T),
        rt_w=np.ascontiguousarray(rt_w),
    )


def compile_network(net: Any, *, method: Method = "auto") -> CompiledNetwork:
    """Compile a pandapower net into the matrices the time-series solver iterates on.

    The net is not modified: a deep copy goes through pandapower's own ``_pd2ppc`` with
    ``runpp``'s default options (overruled by ``net.user_pf_options`` as in ``runpp``).

    Parameters
    ----------
    net : pandapower.pandapowerNet
        The network. Loads and static generators are the time-varying elements;
        storage, motors, wards and shunts stay at their values in the net.
    method : {"auto", "dense", "sparse", "block"}, default "auto"
        How ``Z_LL = Y_LL⁻¹`` is applied: a dense inverse (one BLAS matrix product), a
        sparse LU factorisation (SuperLU triangular solves), or ``"block"``: dense
        inverses of the small blocks left when a few separator nodes are removed plus a
        low-rank coupling through those nodes (radial and weakly meshed feeders; see
        :class:`_BlockZ`). ``"auto"`` picks the one with the lowest estimated cost
        (dense only up to :data:`DENSE_MAX_BUSES` non-slack nodes, block only up to
        :data:`BLOCK_MAX_NODES`). All give the same results to rounding.

    Returns
    -------
    CompiledNetwork

    Raises
    ------
    UnsupportedElementError
        For in-service elements the solver does not model (``gen``, ``trafo3w``,
        ``impedance``, ``xward``, ``dcline``, FACTS and DC elements, asymmetric loads and
        sgens, controllers) and for unsupported ``user_pf_options``.
    ConfigError
        For an unknown ``method`` or a net without an in-service ext_grid.
    """
    if method not in _METHODS:
        raise ConfigError(
            f"unknown method {method!r}; valid: {', '.join(_METHODS)}", field="method"
        )
    _check_supported(net)

    # pandapower internals: imported here so that importing gridplan stays light.
    from pandapower.pd2ppc import _pd2ppc
    from pandapower.pypower.idx_brch import F_BUS, PF, PT, QF, QT, T_BUS
    from pandapower.pypower.idx_bus import (
        BASE_KV,
        BUS_TYPE,
        CID_P,
        CID_Q,
        CZD_P,
        CZD_Q,
        GS,
        PD,
        PQ,
        QD,
        REF,
        VA,
        VM,
    )
    from pandapower.pypower.idx_gen import GEN_BUS, VG
    from pandapower.pypower.makeYbus import makeYbus
    from pandapower.run import _init_runpp_options

    work = copy.deepcopy(net)
    # Zero the time-varying elements so that the ppc bus powers hold only the fixed ones.
    for table, cols in (("load", ("p_mw", "q_mvar")), ("sgen", ("p_mw", "q_mvar"))):
        for col in cols:
            work[table][col] = 0.0
    passed: dict[str, Any] | None = {} if work.get("user_pf_options") else None
    _init_runpp_options(
        work,
        algorithm="nr",
        calculate_voltage_angles=True,
        init="auto",
        max_iteration="auto",
        tolerance_mva=1e-8,
        trafo_model="t",
        trafo_loading="current",
        enforce_p_lims=False,
        enforce_q_lims=False,
        check_connectivity=True,
        voltage_depend_loads=True,
        passed_parameters=passed,
        # Only the model is built here (no Newton solve): numba would not be used, and
        # without it installed pandapower prints a warning on every compile.
        numba=False,
    )
    ppc, ppci = _pd2ppc(work)
    options = work._options

    base_mva = float(ppci["baseMVA"])
    bus_i = ppci["bus"]
    n_nodes = int(bus_i.shape[0])
    node_type = bus_i[:, BUS_TYPE].astype(np.int64)
    if np.any((node_type != PQ) & (node_type != REF)):
        raise UnsupportedElementError(
            "gen", [], "the compiled net has voltage-controlled (PV) buses, not modelled."
        )

    gen = ppci["gen"]
    slack = np.flatnonzero(node_type == REF).astype(np.int64)
    nonslack = np.flatnonzero(node_type != REF).astype(np.int64)
    # Slack voltage as pandapower's Newton solver fixes it: magnitude from the ext_grid
    # set-point (gen VG), angle from the bus (ext_grid va_degree if calculate_voltage_angles).
    vm_set = bus_i[:, VM].astype(np.float64).copy()
    gen_bus = np.real(gen[:, GEN_BUS]).astype(np.int64)
    vm_set[gen_bus] = np.real(gen[:, VG])
    v_slack = (vm_set[slack] * np.exp(1j * np.deg2rad(bus_i[slack, VA].astype(float)))).astype(
        np.complex128
    )

    ybus, yf, yt = makeYbus(base_mva, bus_i, ppci["branch"])
    ybus = sp.csc_matrix(ybus)
    n_l = int(nonslack.size)
    structure: _BlockStructure | None = None
    if n_l and (method == "block" or (method == "auto" and n_l <= BLOCK_MAX_NODES)):
        structure = _block_structure(ybus[nonslack][:, nonslack])
        nonslack = nonslack[structure.order]  # blocks, then separator nodes
    y_ll = ybus[nonslack][:, nonslack].tocsc()
    y_ls = ybus[nonslack][:, slack]
    zt: ComplexArray | None = None
    zt_w: ComplexArray | None = None
    lu: Any = None
    blocks: _BlockZ | None = None
    if n_l:
        rhs = np.asarray(-(y_ls @ v_slack), dtype=np.complex128)
        try:
            if method != "dense":
                lu, w = _factorize(y_ll, rhs)
            if method == "auto":
                costs = {"sparse": _COST_SPARSE_PER_NNZ * float(lu.L.nnz + lu.U.nnz)}
                if n_l <= DENSE_MAX_BUSES:
                    costs["dense"] = float(n_l * n_l)
                if structure is not None and structure.n_sep:
                    costs["block"] = structure.cost
                cheapest = min(costs, key=costs.__getitem__)
                method = (
                    "dense" if cheapest == "dense" else "block" if cheapest == "block" else "sparse"
                )
            if method == "dense":
                z = np.linalg.inv(y_ll.toarray())
                w = z @ rhs
                zt_w = np.ascontiguousarray(np.vstack([z.T, w[None, :]]))
                zt = zt_w[:n_l]
                lu = None
            elif method == "block":
                assert structure is not None
                blocks = _build_block(y_ll, structure, np.asarray(w, dtype=np.complex128))
        except (np.linalg.LinAlgError, RuntimeError) as exc:
            raise GridplanError(
                "the admittance matrix of the non-slack buses is singular (an island "
                "without ext_grid, e.g. with runpp option check_connectivity=False): "
                f"{exc}"
            ) from exc
        if not np.isfinite(w).all():
            raise GridplanError("the no-load voltages are not finite (singular network)")
    else:
        w = np.zeros(0, dtype=np.complex128)
        if method == "auto":
            method = "dense"
    w = np.asarray(w, dtype=np.complex128)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_conj_w = np.asarray(1.0 / np.conj(w), dtype=np.complex128)

    # Branch losses by power balance: the sum over all nodes of V·conj(I), I = Ybus·V,
    # is the power taken by all branches plus the bus shunts. At a non-slack node I is
    # the injected current of the last iteration; at the slack nodes it is Y_sL·V_L +
    # Y_ss·V_s, whose real part against conj(V_s) is Re(V_L · loss_a) + a constant.
    y_sl = ybus[slack][:, nonslack]
    y_ss = ybus[slack][:, slack]
    loss_a = np.asarray(y_sl.T @ np.conj(v_slack), dtype=np.complex128).ravel()
    g_shunt = bus_i[:, GS].astype(float) / base_mva
    loss_c0 = float(np.real(np.conj(v_slack) @ (y_ss @ v_slack)))
    loss_c0 -= float(g_shunt[slack] @ np.abs(v_slack) ** 2)
    g_l = g_shunt[nonslack]
    shunt_node = np.flatnonzero(g_l != 0).astype(np.int64)
    shunt_g = g_l[shunt_node]

    s_fixed = (bus_i[:, PD] + 1j * bus_i[:, QD]).astype(np.complex128)
    zip_p = zip_q = None
    if options.get("voltage_depend_loads", False):
        ci_p, cz_p = bus_i[:, CID_P].astype(float), bus_i[:, CZD_P].astype(float)
        ci_q, cz_q = bus_i[:, CID_Q].astype(float), bus_i[:, CZD_Q].astype(float)
        if np.any(ci_p) or np.any(cz_p) or np.any(ci_q) or np.any(cz_q):
            zip_p = np.stack([1.0 - ci_p - cz_p, ci_p, cz_p])
            zip_q = np.stack([1.0 - ci_q - cz_q, ci_q, cz_q])

    lookup = np.asarray(work._pd2ppc_lookups["bus"], dtype=np.int64)
    is_el = work._is_elements

    def element_map(table: str) -> tuple[sp.csr_matrix, FloatArray, FloatArray]:
        df = net[table]
        n_el = len(df)
        if n_el == 0:
            empty = np.zeros(0)
            return sp.csr_matrix((n_nodes, 0)), empty, empty
        active = np.asarray(is_el[table], dtype=bool)
        node = lookup[df["bus"].to_numpy(dtype=np.int64)]
        active &= (node >= 0) & (node < n_nodes)
        cols = np.flatnonzero(active)
        c = sp.csr_matrix(
            (np.ones(cols.size), (node[cols], cols)), shape=(n_nodes, n_el), dtype=np.float64
        )
        scaling = df["scaling"].to_numpy(dtype=float) * active
        return (
            c,
            df["p_mw"].to_numpy(dtype=float) * scaling,
            df["q_mvar"].to_numpy(dtype=float) * scaling,
        )

    c_load, load_p, load_q = element_map("load")
    c_sgen, sgen_p, sgen_q = element_map("sgen")

    # branches in service (rows of ppci["branch"], Yf, Yt)
    branch_ppc = ppc["branch"]
    branch_is = np.asarray(ppci["internal"]["branch_is"], dtype=bool)
    ppc_to_ppci_branch = np.full(branch_ppc.shape[0], -1, dtype=np.int64)
    ppc_to_ppci_branch[branch_is] = np.arange(int(branch_is.sum()))
    br = ppci["branch"]
    br_f = np.real(br[:, F_BUS]).astype(np.int64)
    br_t = np.real(br[:, T_BUS]).astype(np.int64)
    # Two-port admittances of each in-service branch (Yf and Yt have two entries per row):
    # I_f = y_ff·V_f + y_ft·V_t and I_t = y_tf·V_f + y_tt·V_t.
    yf, yt = sp.csr_matrix(yf), sp.csr_matrix(yt)
    rng_br = np.arange(br.shape[0])
    y_branch = np.zeros((4, br.shape[0]), dtype=np.complex128)
    if br.shape[0]:  # (sparse fancy indexing with empty arrays returns a matrix)
        y_branch[:] = [
            np.asarray(yf[rng_br, br_f]).ravel(),
            np.asarray(yf[rng_br, br_t]).ravel(),
            np.asarray(yt[rng_br, br_f]).ravel(),
            np.asarray(yt[rng_br, br_t]).ravel(),
        ]
    base_kv = bus_i[:, BASE_KV].astype(float)
    i_base = base_mva / math.sqrt(3.0)
    i_base_f = i_base / base_kv[br_f]
    i_base_t = i_base / base_kv[br_t]

    # Branches out of service keep the values pandapower derives from the ppc: |S| /
    # (vm · base_kv) / √3 with |S| = 0, i.e. 0 between solved buses and NaN next to an
    # unsolved bus (pandapower sets vm to NaN for every bus it does not solve).
    ppc_bus = np.array(ppc["bus"], dtype=float)
    ppc_bus[n_nodes:, VM] = np.nan
    pb_f = np.real(branch_ppc[:, F_BUS]).astype(np.int64)
    pb_t = np.real(branch_ppc[:, T_BUS]).astype(np.int64)
    s_const = np.stack(
        [
            np.hypot(np.real(branch_ppc[:, PF]), np.real(branch_ppc[:, QF])),
            np.hypot(np.real(branch_ppc[:, PT]), np.real(branch_ppc[:, QT])),
        ],
        axis=1,
    ).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        vkv = np.stack(
            [
                ppc_bus[pb_f, VM] * ppc_bus[pb_f, BASE_KV],
                ppc_bus[pb_t, VM] * ppc_bus[pb_t, BASE_KV],
            ],
            axis=1,
        ).astype(float)
        i_const = s_const / vkv / math.sqrt(3.0)

    branch_lookup = work._pd2ppc_lookups["branch"]

    def branch_rows(table: str) -> tuple[IntArray, slice]:
        n_el = len(net[table])
        if n_el == 0 or table not in branch_lookup:
            return np.full(n_el, -1, dtype=np.int64), slice(0, 0)
        f, t = branch_lookup[table]
        return ppc_to_ppci_branch[f:t].copy(), slice(f, t)

    line = net.line
    line_branch, rows = branch_rows("line")
    line_i_max = (
        line["max_i_ka"].to_numpy(dtype=float)
        * line["df"].to_numpy(dtype=float)
        * line["parallel"].to_numpy(dtype=float)
    )
    line_i_const = np.max(i_const[rows], axis=1) if len(line) else np.zeros(0)

    trafo = net.trafo
    trafo_branch, rows = branch_rows("trafo")
    trafo_mode = str(options.get("trafo_loading", "current"))
    if trafo_mode not in ("current", "power"):
        raise ConfigError(
            f"unknown trafo_loading {trafo_mode!r}; valid: current, power",
            field="net.user_pf_options.trafo_loading",
        )
    if len(trafo):
        denom = (
            trafo["sn_mva"].to_numpy(dtype=float)
            * trafo["parallel"].to_numpy(dtype=float)
            * trafo["df"].to_numpy(dtype=float)
        )
        if trafo_mode == "current":
            vns = np.stack(
                [trafo["vn_hv_kv"].to_numpy(dtype=float), trafo["vn_lv_kv"].to_numpy(dtype=float)],
                axis=1,
            )
            trafo_scale = vns * math.sqrt(3.0) * 100.0 / denom[:, None]
            trafo_loading_const = np.max(i_const[rows] * trafo_scale, axis=1)
        else:
            trafo_scale = np.repeat((100.0 / denom)[:, None], 2, axis=1)
            trafo_loading_const = np.max(s_const[rows] * trafo_scale, axis=1)
    else:
        trafo_scale = np.zeros((0, 2))
        trafo_loading_const = np.zeros(0)

    # Buses pandapower leaves unsolved (out of service, isolated, or out of service but
    # merged into a solved bus by a closed switch) are NaN in its results.
    bus_node = lookup[net.bus.index.to_numpy(dtype=np.int64)]
    unsolved = (bus_node < 0) | (bus_node >= n_nodes) | ~net.bus["in_service"].to_numpy(bool)
    bus_node = np.where(unsolved, -1, bus_node)

    # Renumber the nodes: non-slack first (in their order), then slack, so that the full
    # voltage vector of a chunk is two contiguous blocks [V_L | V_s].
    perm = np.r_[nonslack, slack]
    new_index = np.empty(n_nodes, dtype=np.int64)
    new_index[perm] = np.arange(n_nodes)
    s_fixed = s_fixed[perm]
    if zip_p is not None and zip_q is not None:
        zip_p, zip_q = zip_p[:, perm], zip_q[:, perm]
    c_load = sp.csr_matrix(c_load[perm])
    c_sgen = sp.csr_matrix(c_sgen[perm])
    br_f, br_t = new_index[br_f], new_index[br_t]
    bus_node = np.where(bus_node >= 0, new_index[np.maximum(bus_node, 0)], -1)
    nonslack = np.arange(n_l, dtype=np.int64)
    slack = np.arange(n_l, n_nodes, dtype=np.int64)

    return CompiledNetwork(
        bus_index=net.bus.index.to_numpy(dtype=np.int64),
        line_index=net.line.index.to_numpy(dtype=np.int64),
        trafo_index=net.trafo.index.to_numpy(dtype=np.int64),
        load_index=net.load.index.to_numpy(dtype=np.int64),
        sgen_index=net.sgen.index.to_numpy(dtype=np.int64),
        n_nodes=n_nodes,
        method=method,
        base_mva=base_mva,
        slack=slack,
        nonslack=nonslack,
        v_slack=v_slack,
        w=w,
        zt=zt,
        lu=lu,
        zt_w=zt_w,
        blocks=blocks,
        inv_conj_w=inv_conj_w,
        s_fixed_mva=s_fixed,
        zip_p=zip_p,
        zip_q=zip_q,
        c_load=c_load,
        c_sgen=c_sgen,
        load_p_mw=load_p,
        load_q_mvar=load_q,
        sgen_p_mw=sgen_p,
        sgen_q_mvar=sgen_q,
        y_branch=y_branch,
        br_f=br_f,
        br_t=br_t,
        i_base_f_ka=i_base_f,
        i_base_t_ka=i_base_t,
        bus_node=bus_node,
        line_branch=line_branch,
        line_i_const=line_i_const,
        line_scale=np.where(
            line_i_max != 0, 100.0 / np.where(line_i_max != 0, line_i_max, 1.0), 0.0
        ),
        line_rated=line_i_max != 0,
        trafo_branch=trafo_branch,
        trafo_loading_const=trafo_loading_const,
        trafo_scale=trafo_scale,
        trafo_loading_mode=trafo_mode,
        loss_a=loss_a,
        loss_c0=loss_c0,
        shunt_node=shunt_node,
        shunt_g=shunt_g,
    )


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------


class _Input:
    """One (time × element) input: a row-sliceable array or the net's constant values."""

    def __init__(
        self, name: str, data: Any, n_el: int, default: FloatArray, n_steps: int | None
    ) -> None:
        self.name = name
        self.default = default
        self.checked = False
        if data is None:
            self.data = None
            return
        if not hasattr(data, "shape") or not hasattr(data, "__getitem__"):
            data = np.asarray(data, dtype=np.float64)
        shape = tuple(data.shape)
        if len(shape) != 2 or shape[1] != n_el:
            raise ConfigError(
                f"expected a 2-D (time, element) array with {n_el} columns "
                f"(one per row of the net's table, in index order), got shape {shape}; "
                "stack Monte Carlo draws along the time axis",
                field=name,
            )
        if n_steps is not None and shape[0] != n_steps:
            raise ConfigError(f"has {shape[0]} time steps, load_p_kw has {n_steps}", field=name)
        self.data = data

    def rows(self, start: int, stop: int) -> FloatArray:
        """Rows ``start:stop`` as given [kW / kvar], checked to be finite."""
        assert self.data is not None
        rows = np.asarray(self.data[start:stop], dtype=np.float64)
        if not self.checked:
            self._check(rows, start)
        return rows

    def _check(self, rows: FloatArray, start: int) -> None:
        if not np.isfinite(rows).all():
            bad = np.argwhere(~np.isfinite(rows))[0]
            raise ConfigError(
                f"non-finite value at step {start + int(bad[0])}, "
                f"column {int(bad[1])}; expected finite kW / kvar",
                field=self.name,
            )

    def check_all(self) -> None:
        """Validate the whole array up front when it is an in-memory numpy array."""
        if isinstance(self.data, np.ndarray) and not isinstance(self.data, np.memmap):
            self._check(self.data, 0)
            self.checked = True


def _inputs(
    cn: CompiledNetwork,
    load_p_kw: Any,
    load_q_kvar: Any,
    sgen_p_kw: Any,
    sgen_q_kvar: Any,
) -> tuple[int, list[_Input]]:
    if load_p_kw is None:
        raise ConfigError(
            "load_p_kw is required (it sets the number of time steps); pass "
            "np.zeros((n_steps, 0)) for a net without loads",
            field="load_p_kw",
        )
    first = _Input("load_p_kw", load_p_kw, cn.n_load, cn.load_p_mw, None)
    assert first.data is not None
    n_steps = int(first.data.shape[0])
    items = [
        first,
        _Input("load_q_kvar", load_q_kvar, cn.n_load, cn.load_q_mvar, n_steps),
        _Input("sgen_p_kw", sgen_p_kw, cn.n_sgen, cn.sgen_p_mw, n_steps),
        _Input("sgen_q_kvar", sgen_q_kvar, cn.n_sgen, cn.sgen_q_mvar, n_steps),
    ]
    return n_steps, items


# --------------------------------------------------------------------------------------
# solve
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LoadPlan:
    """How the (time × element) inputs become ``conj(S_inj)`` of a chunk's steps.

    The work is done on the float view of the (step, non-slack node) complex array, two
    float columns (real, imaginary) per node. The given inputs are scaled (kW / kvar to
    pu, with the sign they take in ``conj(S_inj)``) into the columns of one buffer that
    ends in a zero column; the result is ``const`` plus, per layer, one column gather of
    that buffer (``layers[r][c]``: the buffer column of the r-th element that adds to
    float column ``c``, or the zero column).
    """

    const: FloatArray  # (2 n_l,): constant part, re/im interleaved [pu]
    given: tuple[tuple[int, int, float], ...]  # (input number, buffer offset, factor)
    width: int  # buffer columns, including the final zero column
    layers: tuple[IntArray, ...]  # full-width gathers
    sparse_layers: tuple[tuple[IntArray, IntArray], ...]  # (float columns, buffer columns)


def _load_plan(cn: CompiledNetwork, inputs: list[_Input]) -> _LoadPlan:
    """The :class:`_LoadPlan` of the inputs (elements at slack nodes are dropped: they
    change no voltage)."""
    n_l = int(cn.nonslack.size)
    s_const = cn.s_fixed_mva[:n_l].copy()  # load convention [MVA]
    targets: list[IntArray] = []
    sources: list[IntArray] = []
    given: list[tuple[int, int, float]] = []
    offset = 0
    for k, (inp, c, sign, part) in enumerate(
        zip(
            inputs,
            (cn.c_load, cn.c_load, cn.c_sgen, cn.c_sgen),
            (1.0, 1.0, -1.0, -1.0),
            (0, 1, 0, 1),
            strict=True,
        )
    ):
        if inp.data is None:
            contrib = (c @ inp.default)[:n_l] * sign
            s_const += contrib if part == 0 else 1j * contrib
            continue
        coo = sp.coo_matrix(c)
        keep = coo.row < n_l
        # conj(S_inj) = conj(-S_load) = -P + jQ: P enters negated, Q as it is
        factor = sign * (-1.0 if part == 0 else 1.0) * 1e-3 / cn.base_mva
        targets.append(2 * coo.row[keep].astype(np.int64) + part)
        sources.append(offset + coo.col[keep].astype(np.int64))
        given.append((k, offset, factor))
        offset += int(c.shape[1])
    const = np.empty(2 * n_l)
    const[0::2] = -s_const.real / cn.base_mva
    const[1::2] = s_const.imag / cn.base_mva
    zero = offset
    layers: list[IntArray] = []
    sparse_layers: list[tuple[IntArray, IntArray]] = []
    if given:
        tgt = np.concatenate(targets)
        src = np.concatenate(sources)
        by_target = np.argsort(tgt, kind="stable")
        tgt, src = tgt[by_target], src[by_target]
        _, starts, counts = np.unique(tgt, return_index=True, return_counts=True)
        rank = np.arange(tgt.size) - np.repeat(starts, counts)
        for r in range(int(rank.max(initial=-1)) + 1):
            mine = rank == r
            # the first layer always, and layers that fill much of the width, as one
            # full-width gather; the rest (a few nodes with several elements) by column
            if r == 0 or mine.sum() > 0.3 * 2 * n_l:
                idx = np.full(2 * n_l, zero, dtype=np.int64)
                idx[tgt[mine]] = src[mine]
                layers.append(idx)
            else:
                sparse_layers.append((tgt[mine], src[mine]))
    return _LoadPlan(
        const=const,
        given=tuple(given),
        width=offset + 1,
        layers=tuple(layers),
        sparse_layers=tuple(sparse_layers),
    )


def _chunk_load(
    plan: _LoadPlan, inputs: list[_Input], n_l: int, start: int, stop: int
) -> ComplexArray:
    """``conj(S_inj)`` per non-slack node [pu], shape (steps, nonslack)."""
    m = stop - start
    sc = np.empty((m, n_l), dtype=np.complex128)
    sc_f = sc.view(np.float64)
    if not plan.layers:
        sc_f[:] = plan.const
        for k, _, _ in plan.given:  # inputs whose elements all sit at slack nodes
            inputs[k].rows(start, stop)  # still read and checked
        return sc
    buf = np.empty((m, plan.width))
    buf[:, -1] = 0.0
    for k, offset, factor in plan.given:
        x = inputs[k].rows(start, stop)
        np.multiply(x, factor, out=buf[:, offset : offset + x.shape[1]])
    np.take(buf, plan.layers[0], axis=1, out=sc_f, mode="clip")
    sc_f += plan.const
    if len(plan.layers) > 1:
        tmp = np.empty_like(sc_f)
        for idx in plan.layers[1:]:
            np.take(buf, idx, axis=1, out=tmp, mode="clip")
            sc_f += tmp
    for cols, src in plan.sparse_layers:
        sc_f[:, cols] += np.take(buf, src, axis=1, mode="clip")
    return sc


def _apply_z(
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


def _iterate(
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
        Iteration limit [-] and tolerance [pu] (see :func:`solve_timeseries`).
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

    dense = cn.zt_w is not None
    cur_buf = np.empty((m, n + 1) if dense else (m, n), dtype=np.complex128)
    if dense:
        cur_buf[:, n] = 1.0
    t_buf = None
    if cn.blocks is not None:
        t_buf = np.empty((m, cn.blocks.n_sep + 1), dtype=np.complex128)
        t_buf[:, -1] = 1.0
    bufs = (np.empty((m, n), dtype=np.complex128), np.empty((m, n), dtype=np.complex128))
    dv_buf = np.empty(m)
    held = 1  # which of bufs holds v (after the first iteration)
    v: ComplexArray = np.broadcast_to(cn.w, (m, n))

    voltage_dependent = cn.zip_p is not None and cn.zip_q is not None
    if voltage_dependent:
        assert cn.zip_p is not None and cn.zip_q is not None
        kp = cn.zip_p[:, :n]
        kq = cn.zip_q[:, :n]

    active = np.arange(m)
    dv_prev = np.full(m, np.nan)  # rho unknown in the first iteration: only dv <= tiny stops
    tiny = 1e-3 * tol_pu
    with np.errstate(all="ignore"):
        for k in range(1, max_iter + 1):
            ma = int(active.size)
            cur = cur_buf[:ma, :n]
            # injected current conj(S_inj / V) = conj(S_inj) / conj(V)
            if voltage_dependent:
                vm = np.abs(v)
                load = sc.real * (kp[0] + vm * (kp[1] + vm * kp[2])) + 1j * (
                    sc.imag * (kq[0] + vm * (kq[1] + vm * kq[2]))
                )
                np.divide(load, np.conj(v), out=cur)
            elif k == 1:
                np.multiply(sc, cn.inv_conj_w, out=cur)
            else:
                _kernels.injected_currents(sc, v, cur)
            v_new = bufs[1 - held][:ma]
            _apply_z(cn, cur_buf[:ma], v_new, None if t_buf is None else t_buf[:ma])
            if k == 1 and max_iter > 1:
                # No stop is possible yet (the rate rho needs two changes; a step without
                # load stops at the next iteration on its zero change): skip the pass.
                held = 1 - held
                v = v_new
                continue
            dv = _kernels.max_change(v_new, v, dv_buf[:ma])
            # The iteration contracts linearly: with rate rho = dv / dv_prev the error left
            # in v is about dv·rho/(1-rho). Stop on that estimate (from the 3rd iteration
            # on, when rho is measured); a change at rounding level stops at once.
            rho = dv / dv_prev
            done = (dv * rho < tol_pu * (1.0 - rho)) | (dv <= tiny)
            finished = done | ~np.isfinite(dv)
            if not finished.any():
                held = 1 - held
                v = v_new
                dv_prev = dv.copy()  # dv_buf is overwritten by the next iteration
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
            v = bufs[held][: keep.size]
            np.take(v_new, keep, axis=0, out=v, mode="clip")
            sc = np.take(sc, keep, axis=0)
            dv_prev = dv[keep]  # a copy: dv_buf is overwritten by the next iteration
    return converged, iterations


@dataclass(frozen=True)
class _BranchSet:
    """Selected lines or transformers: which output columns have an in-service branch and
    that branch's end nodes, two-port admittances and current scales."""

    on: IntArray  # output columns whose branch is in service
    all_on: bool
    f: IntArray  # end nodes
    t: IntArray
    y: ComplexArray  # (4, k): y_ff, y_ft, y_tf, y_tt
    scale_f: FloatArray  # kA per pu of current at each end (× rating scale for trafos)
    scale_t: FloatArray


@dataclass(frozen=True)
class _Selection:
    """What a call reports: all buses, and the selected lines and transformers."""

    line_pos: IntArray  # positions in net.line.index order
    trafo_pos: IntArray
    lines: _BranchSet
    trafos: _BranchSet
    line_scale: FloatArray
    line_unrated: IntArray  # output columns of lines with max_i_ka = 0
    line_i_const: FloatArray
    trafo_loading_const: FloatArray


def _positions(index: IntArray, wanted: Any, field: str) -> IntArray:
    """Positions of the labels ``wanted`` in ``index`` (all for None)."""
    if wanted is None:
        return np.arange(index.size, dtype=np.int64)
    table = field[:-1]  # "lines" -> "line"
    arr = np.asarray(wanted)
    if arr.ndim != 1:
        raise ConfigError(
            f"expected a 1-D list of net.{table} index labels, got shape {arr.shape}",
            field=field,
        )
    lookup = {int(v): k for k, v in enumerate(index.tolist())}
    pos: list[int] = []
    unknown: list[Any] = []
    for label in arr.tolist():
        key = int(label) if isinstance(label, int | float | np.integer) else None
        if key is None or key != label or key not in lookup:
            unknown.append(label)
        else:
            pos.append(lookup[key])
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10])
        raise ConfigError(f"{len(unknown)} label(s) not in net.{table}.index: {shown}", field=field)
    out = np.asarray(pos, dtype=np.int64)
    if np.unique(out).size != out.size:
        raise ConfigError(f"lists a net.{table} index label more than once", field=field)
    return out


def _branch_set(
    cn: CompiledNetwork,
    branch: IntArray,
    scale_f: FloatArray,
    scale_t: FloatArray,
    *,
    current: bool = True,
) -> _BranchSet:
    """Branch data of the selected elements; ``current=False`` for apparent power."""
    on = np.flatnonzero(branch >= 0)
    br = branch[on]
    if current:
        sf = cn.i_base_f_ka[br] * scale_f[on]
        st = cn.i_base_t_ka[br] * scale_t[on]
    else:
        sf = cn.base_mva * scale_f[on]
        st = cn.base_mva * scale_t[on]
    return _BranchSet(
        on=on,
        all_on=bool(on.size == branch.size),
        f=cn.br_f[br],
        t=cn.br_t[br],
        y=np.ascontiguousarray(cn.y_branch[:, br]),
        scale_f=sf,
        scale_t=st,
    )


def _selection(cn: CompiledNetwork, lines: Any, trafos: Any) -> _Selection:
    line_pos = _positions(cn.line_index, lines, "lines")
    trafo_pos = _positions(cn.trafo_index, trafos, "trafos")
    ones = np.ones(line_pos.size)
    trafo_scale = cn.trafo_scale[trafo_pos]
    return _Selection(
        line_pos=line_pos,
        trafo_pos=trafo_pos,
        lines=_branch_set(cn, cn.line_branch[line_pos], ones, ones),
        trafos=_branch_set(
            cn,
            cn.trafo_branch[trafo_pos],
            trafo_scale[:, 0],
            trafo_scale[:, 1],
            current=cn.trafo_loading_mode == "current",
        ),
        line_scale=cn.line_scale[line_pos],
        line_unrated=np.flatnonzero(~cn.line_rated[line_pos]),
        line_i_const=cn.line_i_const[line_pos],
        trafo_loading_const=cn.trafo_loading_const[trafo_pos],
    )


def _empty_result(cn: CompiledNetwork, n_steps: int, sel: _Selection) -> FlowResult:
    """A result with uninitialised arrays for ``n_steps`` steps."""
    n_line, n_trafo = sel.line_pos.size, sel.trafo_pos.size
    return FlowResult(
        vm_pu=np.empty((n_steps, cn.bus_index.size)),
        va_degree=np.empty((n_steps, cn.bus_index.size)),
        line_loading_pct=np.empty((n_steps, n_line)),
        line_i_ka=np.empty((n_steps, n_line)),
        trafo_loading_pct=np.empty((n_steps, n_trafo)),
        losses_kw=np.empty(n_steps),
        converged=np.empty(n_steps, dtype=bool),
        iterations=np.empty(n_steps, dtype=np.int64),
        bus_index=cn.bus_index,
        line_index=cn.line_index[sel.line_pos],
        trafo_index=cn.trafo_index[sel.trafo_pos],
    )


def _step_rows(res: FlowResult, steps: slice) -> FlowResult:
    """Views of the rows ``steps`` of every per-step array of ``res``."""
    return FlowResult(
        **{
            f.name: getattr(res, f.name)[steps] if f.name in _PER_STEP else getattr(res, f.name)
            for f in fields(FlowResult)
        }
    )


_PER_STEP = frozenset(
    (
        "vm_pu",
        "va_degree",
        "line_loading_pct",
        "line_i_ka",
        "trafo_loading_pct",
        "losses_kw",
        "converged",
        "iterations",
    )
)


def _results(
    cn: CompiledNetwork,
    sel: _Selection,
    v: ComplexArray,
    cur: ComplexArray,
    converged: BoolArray,
    iterations: IntArray,
    out: FlowResult,
) -> FlowResult:
    """Write bus, line and trafo results and losses of one chunk into ``out``.

    ``v`` is (steps, nodes), non-slack nodes first; ``cur`` the injected currents of the
    last iteration (:func:`_iterate`).
    """
    n_l = cn.nonslack.size

    # buses
    solved = cn.bus_node >= 0
    v_bus = np.take(v, cn.bus_node[solved], axis=1)
    # arctan2 runs twice as fast on contiguous real / imaginary parts as on the views
    re = np.ascontiguousarray(v_bus.real)
    im = np.ascontiguousarray(v_bus.imag)
    if solved.all():
        np.abs(v_bus, out=out.vm_pu)
        np.arctan2(im, re, out=out.va_degree)
        np.multiply(out.va_degree, 180.0 / math.pi, out=out.va_degree)
    else:
        out.vm_pu[:] = np.nan
        out.va_degree[:] = np.nan
        out.vm_pu[:, solved] = np.abs(v_bus)
        out.va_degree[:, solved] = np.arctan2(im, re) * (180.0 / math.pi)

    # losses: Re Σ V·conj(I) over all nodes minus the bus shunts (see compile_network)
    v_l = v[:, :n_l]
    losses = out.losses_kw
    # Re(V·conj(I)) summed per step, as one real dot product per row
    np.einsum("ij,ij->i", v_l.view(np.float64), cur.view(np.float64), out=losses)
    losses += np.real(v_l @ cn.loss_a)
    if cn.shunt_node.size:
        v_sh = np.take(v, cn.shunt_node, axis=1)
        losses -= (v_sh.real**2 + v_sh.imag**2) @ cn.shunt_g
    losses += cn.loss_c0
    losses *= cn.base_mva * 1e3

    # lines: out-of-service ones keep pandapower's constant (0 or NaN)
    bs = sel.lines
    if not bs.all_on:
        out.line_i_ka[:] = sel.line_i_const
    if bs.on.size:
        _kernels.branch_max(
            v, bs.f, bs.t, bs.y, bs.scale_f, bs.scale_t, False, bs.on, out.line_i_ka
        )
    np.multiply(out.line_i_ka, sel.line_scale, out=out.line_loading_pct)
    if sel.line_unrated.size:  # max_i_ka = 0: pandapower reports inf
        out.line_loading_pct[:, sel.line_unrated] = np.inf

    # transformers
    bs = sel.trafos
    if not bs.all_on:
        out.trafo_loading_pct[:] = sel.trafo_loading_const
    if bs.on.size:
        # "power" loading: apparent power at each end (scaled to MVA and % in bs)
        power = cn.trafo_loading_mode != "current"
        _kernels.branch_max(
            v, bs.f, bs.t, bs.y, bs.scale_f, bs.scale_t, power, bs.on, out.trafo_loading_pct
        )

    out.converged[:] = converged
    out.iterations[:] = iterations
    if not converged.all():
        bad = ~converged
        for name in ("vm_pu", "va_degree", "line_loading_pct", "line_i_ka", "trafo_loading_pct"):
            getattr(out, name)[bad] = np.nan
        out.losses_kw[bad] = np.nan
    return out


def _check_params(max_iter: int, tol_pu: float, chunk_size: int, threads: int) -> None:
    if not (isinstance(max_iter, int | np.integer) and max_iter >= 1):
        raise ConfigError(f"expected an integer >= 1, got {max_iter!r}", field="max_iter")
    if not (np.isfinite(tol_pu) and tol_pu > 0):
        raise ConfigError(f"expected a positive tolerance [pu], got {tol_pu!r}", field="tol_pu")
    if not (isinstance(chunk_size, int | np.integer) and chunk_size >= 1):
        raise ConfigError(f"expected an integer >= 1, got {chunk_size!r}", field="chunk_size")
    if not (isinstance(threads, int | np.integer) and threads >= 1):
        raise ConfigError(f"expected an integer >= 1, got {threads!r}", field="threads")


@dataclass(frozen=True)
class _Plan:
    """Everything a chunk needs besides its rows: fixed for one call."""

    cn: CompiledNetwork
    inputs: list[_Input]
    loads: _LoadPlan
    sel: _Selection
    max_iter: int
    tol_pu: float


def _solve_chunk(plan: _Plan, steps: slice, out: FlowResult | None) -> FlowResult:
    """Solve the steps ``steps``; results go into ``out`` (full-length) when given."""
    cn = plan.cn
    n_l = int(cn.nonslack.size)
    m = steps.stop - steps.start
    sc = _chunk_load(plan.loads, plan.inputs, n_l, steps.start, steps.stop)
    v = np.empty((m, cn.n_nodes), dtype=np.complex128)
    v[:, :n_l] = np.nan
    v[:, n_l:] = cn.v_slack
    cur = np.empty((m, n_l), dtype=np.complex128)
    conv, iters = _iterate(cn, sc, plan.max_iter, plan.tol_pu, v, cur)
    rows = _empty_result(cn, m, plan.sel) if out is None else _step_rows(out, steps)
    with np.errstate(all="ignore"):  # unconverged steps compute garbage, then are NaN
        return _results(cn, plan.sel, v, cur, conv, iters, rows)


def _prepare(
    net: Any,
    load_p_kw: Any,
    load_q_kvar: Any,
    sgen_p_kw: Any,
    sgen_q_kvar: Any,
    max_iter: int,
    tol_pu: float,
    chunk_size: int,
    threads: int,
    lines: Any,
    trafos: Any,
) -> tuple[_Plan, int]:
    """Validate everything and build the call's :class:`_Plan` (before any solving)."""
    _check_params(max_iter, tol_pu, chunk_size, threads)
    cn = net if isinstance(net, CompiledNetwork) else compile_network(net)
    sel = _selection(cn, lines, trafos)
    n_steps, inputs = _inputs(cn, load_p_kw, load_q_kvar, sgen_p_kw, sgen_q_kvar)
    for inp in inputs:
        inp.check_all()
    plan = _Plan(
        cn=cn,
        inputs=inputs,
        loads=_load_plan(cn, inputs),
        sel=sel,
        max_iter=int(max_iter),
        tol_pu=float(tol_pu),
    )
    return plan, n_steps


def iter_timeseries(
    net: Any,
    load_p_kw: Any,
    load_q_kvar: Any = None,
    sgen_p_kw: Any = None,
    sgen_q_kvar: Any = None,
    *,
    max_iter: int = 100,
    tol_pu: float = 1e-8,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int = 1,
    lines: Any = None,
    trafos: Any = None,
) -> Iterator[tuple[slice, FlowResult]]:
    """Solve a time series chunk by chunk, yielding each chunk's results in order.

    Same parameters and solution as :func:`solve_timeseries`, but memory stays bounded by
    ``chunk_size × threads`` whatever the number of steps: the inputs may be any
    row-sliceable arrays (``numpy.memmap``, HDF5/zarr datasets, or any object with
    ``shape`` and ``__getitem__(slice)``), read one chunk at a time, and the caller
    reduces each chunk (e.g. annual maxima per Monte Carlo draw) before it is discarded.
    In-memory numpy inputs are validated before the first chunk; other inputs chunk by
    chunk (a non-finite value then raises :class:`~gridplan.core.errors.ConfigError` when its
    chunk is reached).

    Yields
    ------
    steps : slice
        The rows of the inputs this chunk covers.
    result : FlowResult
        Results for those rows.
    """
    plan, n_steps = _prepare(
        net, load_p_kw, load_q_kvar, sgen_p_kw, sgen_q_kvar,
        max_iter, tol_pu, chunk_size, threads, lines, trafos,
    )  # fmt: skip
    yield from _run(plan, n_steps, chunk_size, threads)


class _OneBlasThread:
    """Context manager: BLAS limited to one thread while any chunk is being solved.

    The products here are small (non-slack buses × chunk): multi-threaded BLAS only adds
    synchronisation, and on a loaded machine it made a year on a 44-bus grid about 9x
    slower (3.2 s instead of 0.36 s, measured). Parallelism comes from ``threads`` (chunks
    on worker threads) instead.

    BLAS thread limits are process-wide, so the limit is reference counted over all
    chunks in flight (on any thread, in any call): the first one to enter sets it, the
    last one to leave restores the original limits. The ``threadpoolctl`` controller is
    built once: ``threadpool_limits`` rescans ``/proc`` and the loaded libraries on every
    call (~1 ms; it was a third of the time of a year on a 44-bus grid).
    """

    _lock = threading.Lock()
    _depth = 0
    _controller: Any = None
    _limiter: Any = None

    def __enter__(self) -> None:
        cls = type(self)
        with cls._lock:
            if cls._depth == 0:
                if cls._controller is None:
                    from threadpoolctl import ThreadpoolController

                    cls._controller = ThreadpoolController()
                cls._limiter = cls._controller.limit(limits=1, user_api="blas")
            cls._depth += 1

    def __exit__(self, *exc: object) -> None:
        cls = type(self)
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0:
                limiter, cls._limiter = cls._limiter, None
                limiter.restore_original_limits()


def _solve_chunk_one_blas_thread(plan: _Plan, steps: slice, out: FlowResult | None) -> FlowResult:
    """:func:`_solve_chunk` with BLAS limited to one thread (see :class:`_OneBlasThread`)."""
    with _OneBlasThread():
        return _solve_chunk(plan, steps, out)


def _run(
    plan: _Plan,
    n_steps: int,
    chunk_size: int,
    threads: int,
    out: FlowResult | None = None,
) -> Iterator[tuple[slice, FlowResult]]:
    """Solve the chunks in order, on ``threads`` worker threads.

    With ``out`` (a full-length result) every chunk writes into its rows of ``out``;
    otherwise each chunk gets its own arrays.
    """
    chunks = [slice(a, min(a + chunk_size, n_steps)) for a in range(0, n_steps, chunk_size)]
    if threads == 1 or len(chunks) == 1:
        for steps in chunks:
            yield steps, _solve_chunk_one_blas_thread(plan, steps, out)
        return
    # numpy and scipy release the GIL in their loops, so chunks solve in parallel; a
    # bounded queue of submitted chunks keeps memory at two chunks per thread.
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque[tuple[slice, Future[FlowResult]]] = deque()
        for steps in chunks:
            future = pool.submit(_solve_chunk_one_blas_thread, plan, steps, out)
            pending.append((steps, future))
            if len(pending) >= 2 * threads:
                done_steps, done = pending.popleft()
                yield done_steps, done.result()
        while pending:
            done_steps, done = pending.popleft()
            yield done_steps, done.result()


def solve_timeseries(
    net: Any,
    load_p_kw: Any,
    load_q_kvar: Any = None,
    sgen_p_kw: Any = None,
    sgen_q_kvar: Any = None,
    *,
    max_iter: int = 100,
    tol_pu: float = 1e-8,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int = 1,
    lines: Any = None,
    trafos: Any = None,
) -> FlowResult:
    """Balanced AC power flow for every time step of a series on one topology.

    The net is compiled once (see :func:`compile_network`) and all steps are solved in
    vectorised chunks by a fixed-point (Z-bus) iteration. Each step converges
    independently; a step that does not reach ``tol_pu`` within ``max_iter`` iterations
    is flagged ``converged=False`` and its results are NaN (the batch does not fail).

    Parameters
    ----------
    net : pandapower.pandapowerNet or CompiledNetwork
        The network, or the result of :func:`compile_network` to reuse a compile.
    load_p_kw : array_like, shape (time, load)
        Active power of each ``net.load`` row, columns in ``net.load.index`` order [kW];
        positive = consumption. Used as given (``net.load.scaling`` is not applied);
        out-of-service loads, and loads at unsolved buses, are ignored. Monte Carlo
        draws are stacked along the time axis (``draw × time`` rows).
    load_q_kvar : array_like, shape (time, load), optional
        Reactive power of each load [kvar]; positive = inductive consumption. ``None``
        keeps the net's ``q_mvar × scaling`` for every step.
    sgen_p_kw : array_like, shape (time, sgen), optional
        Active power of each ``net.sgen`` row, ``net.sgen.index`` order [kW]; positive =
        generation. ``None`` keeps the net's ``p_mw × scaling``.
    sgen_q_kvar : array_like, shape (time, sgen), optional
        Reactive power of each sgen [kvar]; positive = injection into the grid. ``None``
        keeps the net's ``q_mvar × scaling``.
    max_iter : int, default 100
        Iteration limit per step [-].
    tol_pu : float, default 1e-8
        Convergence tolerance on the estimated error left in any complex bus voltage [pu]:
        ``dv·rho/(1-rho)`` with ``dv`` the largest voltage change of the last iteration and
        ``rho`` its ratio to the previous one (the iteration contracts linearly, by a
        factor of 20–50 per iteration on SimBench feeders). At the default the results
        agree with ``pandapower.runpp`` (1e-8 MVA mismatch) to ~1e-8 pu and ~1e-5
        percentage points of loading.
    chunk_size : int, default 512
        Steps solved together [-]. Working memory is about
        ``chunk_size × (buses + branches) × 100`` bytes per thread on top of inputs and
        results; a few hundred steps keep it in the CPU caches.
    threads : int, default 1
        Worker threads solving chunks in parallel [-]. Results do not depend on it. With
        more than one, limit BLAS to one thread (``OPENBLAS_NUM_THREADS=1`` or
        ``threadpoolctl``), otherwise BLAS threads and chunk threads compete for cores.
        numpy, BLAS and SuperLU release the GIL, so on a machine with free cores two
        threads solve a year about 1.8× faster (``benchmarks/results/powerflow.md``).
    lines : sequence of int, optional
        Labels of ``net.line.index`` to report (in this order); ``None`` reports all.
        Only the reported branches' currents are computed, so a caller that monitors a
        few assets saves time and memory. Voltages are always reported for every bus,
        and ``losses_kw`` always covers the whole network.
    trafos : sequence of int, optional
        Labels of ``net.trafo.index`` to report; ``None`` reports all.

    Returns
    -------
    FlowResult
        Memory of the results is about ``time × (2 × bus + 2 × line + trafo + 3) × 8``
        bytes; for very long or stacked series use :func:`iter_timeseries`.

    Raises
    ------
    UnsupportedElementError
        The net contains elements the solver does not model (see :func:`compile_network`).
    ConfigError
        Wrong input shape, non-finite input values, bad parameters, or ``lines`` /
        ``trafos`` labels that are not in the net (before any solving).

    Notes
    -----
    Storage units, motors, wards and shunts stay at their values in the net for every
    step. Loads with ``const_z_*_percent`` / ``const_i_*_percent`` are voltage dependent
    exactly as in pandapower (which applies the per-bus mean of those percentages to the
    bus's net load).
    """
    plan, n_steps = _prepare(
        net, load_p_kw, load_q_kvar, sgen_p_kw, sgen_q_kvar,
        max_iter, tol_pu, chunk_size, threads, lines, trafos,
    )  # fmt: skip
    result = _empty_result(plan.cn, n_steps, plan.sel)
    for _ in _run(plan, n_steps, chunk_size, threads, out=result):
        pass
    n_bad = int((~result.converged).sum())
    if n_bad:
        logger.warning(
            "%d of %d steps did not converge within %d iterations; their results are NaN",
            n_bad,
            n_steps,
            max_iter,
        )
    return result
