"""Fast balanced AC power flow over many time steps on one network topology.

The network is compiled once from pandapower's own internal model (the ``ppc`` that
``pandapower.runpp`` builds), so switches, open lines, out-of-service elements,
transformer taps and phase shifts, shunts and ext_grid set-points mean exactly what they
mean in ``runpp``. All time steps are then solved together, in chunks of columns, by a
fixed-point (Z-bus) iteration on the non-slack buses::

    V_L = W + Z_LL · conj(S_L / V_L)      with  Z_LL = Y_LL⁻¹,  W = -Z_LL · Y_Ls · V_s

where ``S_L`` is the complex power injected at the non-slack buses and ``V_s`` the fixed
ext_grid voltages. ``Z_LL`` is applied either as a dense matrix (BLAS matrix product,
fastest below ~60 non-slack buses) or through one sparse LU factorisation of ``Y_LL``
(``scipy.sparse.linalg.splu``). There is no Python loop over time steps: each iteration
updates every still-unconverged step of a chunk at once, and converged steps drop out.

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
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from gridplan.errors import ConfigError, GridplanError

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

Method = Literal["auto", "dense", "sparse"]
_METHODS: tuple[str, ...] = ("auto", "dense", "sparse")

#: Non-slack node count up to which ``method="auto"`` applies ``Z_LL`` as a dense matrix
#: (one BLAS product per iteration); above it the sparse LU of ``Y_LL`` is used. Measured
#: with ``benchmarks/bench_powerflow.py --mode method`` (``benchmarks/results/powerflow.md``),
#: single-threaded on SimBench grids, per step column: dense 0.19 / 0.55 µs vs sparse
#: 0.33 / 0.66 µs at 14 / 43 nodes, but dense 2.0 vs sparse 1.3 µs at 100 nodes and
#: 7.8 vs 2.6 µs at 207 nodes.
DENSE_MAX_BUSES = 60

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
    ``trafo_index``). Steps that did not converge (``converged`` False) hold NaN in every
    float field. Buses that pandapower leaves unsolved (out of service or isolated) are NaN
    in every step; out-of-service lines and transformers carry 0 current and 0 loading,
    and NaN where they touch such a bus, exactly as ``pandapower.runpp`` reports them.

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
    converged : numpy.ndarray of bool, shape (time,)
        True where the step converged to ``tol_pu`` within ``max_iter`` iterations.
    iterations : numpy.ndarray of int, shape (time,)
        Fixed-point iterations the step used [-] (``max_iter`` for unconverged steps).
    bus_index : numpy.ndarray of int, shape (bus,)
        ``net.bus.index`` (columns of ``vm_pu`` and ``va_degree``).
    line_index : numpy.ndarray of int, shape (line,)
        ``net.line.index`` (columns of ``line_loading_pct`` and ``line_i_ka``).
    trafo_index : numpy.ndarray of int, shape (trafo,)
        ``net.trafo.index`` (columns of ``trafo_loading_pct``).
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
        How ``Z_LL`` is applied: ``"dense"`` or ``"sparse"``.
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
    zt: ComplexArray | None
    lu: Any
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
                f"{what} are not modelled by gridplan.powerflow; set them out of service, "
                "replace them (e.g. a gen by an sgen with fixed Q), or use pandapower.runpp.",
            )
    rows = _in_service_rows(net, "controller")
    if rows:
        raise UnsupportedElementError(
            "controller",
            rows,
            "controllers are not applied by gridplan.powerflow (it solves the net as "
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
                "gridplan.powerflow; remove it from net.user_pf_options.",
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


def compile_network(net: Any, *, method: Method = "auto") -> CompiledNetwork:
    """Compile a pandapower net into the matrices the time-series solver iterates on.

    The net is not modified: a deep copy goes through pandapower's own ``_pd2ppc`` with
    ``runpp``'s default options (overruled by ``net.user_pf_options`` as in ``runpp``).

    Parameters
    ----------
    net : pandapower.pandapowerNet
        The network. Loads and static generators are the time-varying elements;
        storage, motors, wards and shunts stay at their values in the net.
    method : {"auto", "dense", "sparse"}, default "auto"
        How ``Z_LL = Y_LL⁻¹`` is applied: a dense inverse (BLAS matrix product) or a
        sparse LU factorisation. ``"auto"`` picks dense up to :data:`DENSE_MAX_BUSES`
        non-slack nodes.

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
    y_ll = ybus[nonslack][:, nonslack].tocsc()
    y_ls = ybus[nonslack][:, slack]
    n_l = int(nonslack.size)
    if method == "auto":
        method = "dense" if n_l <= DENSE_MAX_BUSES else "sparse"
    zt: ComplexArray | None = None
    lu: Any = None
    if n_l:
        rhs = -(y_ls @ v_slack)
        try:
            if method == "dense":
                z = np.linalg.inv(y_ll.toarray())
                w = z @ rhs
                zt = np.ascontiguousarray(z.T)
            else:
                lu, w = _factorize(y_ll, np.asarray(rhs, dtype=np.complex128))
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
    w = np.asarray(w, dtype=np.complex128)

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
    y_branch = np.stack(
        [
            np.asarray(yf[rng_br, br_f]).ravel(),
            np.asarray(yf[rng_br, br_t]).ravel(),
            np.asarray(yt[rng_br, br_f]).ravel(),
            np.asarray(yt[rng_br, br_t]).ravel(),
        ]
    ).astype(np.complex128)
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
class _Scatter:
    """How one (time × element) input adds to the (time × nonslack) node load.

    Elements are split into layers with at most one element per node each, so that every
    layer is a plain column gather and scatter-add (``layers`` pairs of element columns and
    non-slack node positions).
    """

    part: str  # "real" or "imag"
    factor: float  # sign and kW -> MW
    layers: tuple[tuple[IntArray, IntArray], ...]


def _load_plan(
    cn: CompiledNetwork, inputs: list[_Input]
) -> tuple[ComplexArray, list[_Scatter | None]]:
    """Constant part of the non-slack node load and the scatter plan of each given input.

    Returns the constant complex load per non-slack node [MVA] (fixed elements plus every
    input left at the net's values) and, per input, its :class:`_Scatter` (None for inputs
    left at the net's values). Elements at slack nodes do not change any voltage and are
    dropped.
    """
    position = np.full(cn.n_nodes, -1, dtype=np.int64)
    position[cn.nonslack] = np.arange(cn.nonslack.size)
    const = cn.s_fixed_mva[cn.nonslack].copy()
    plans: list[_Scatter | None] = []
    for inp, c, sign, part in zip(
        inputs,
        (cn.c_load, cn.c_load, cn.c_sgen, cn.c_sgen),
        (1.0, 1.0, -1.0, -1.0),
        ("real", "imag", "real", "imag"),
        strict=True,
    ):
        if inp.data is None:
            contrib = (c @ inp.default)[cn.nonslack] * sign
            const += contrib if part == "real" else 1j * contrib
            plans.append(None)
            continue
        coo = c.tocoo()
        pos = position[coo.row]
        keep = pos >= 0
        el, pos = coo.col[keep].astype(np.int64), pos[keep]
        by_node = np.argsort(pos, kind="stable")
        el, pos = el[by_node], pos[by_node]
        _, starts, counts = np.unique(pos, return_index=True, return_counts=True)
        rank = np.arange(pos.size) - np.repeat(starts, counts)  # index within its node
        layers = tuple(
            (el[rank == r], pos[rank == r]) for r in range(int(rank.max(initial=-1)) + 1)
        )
        plans.append(_Scatter(part=part, factor=sign * 1e-3, layers=layers))
    return const, plans


def _chunk_load(
    inputs: list[_Input],
    const: ComplexArray,
    plans: list[_Scatter | None],
    start: int,
    stop: int,
) -> ComplexArray:
    """Complex load per non-slack node [MVA] (load convention), shape (steps, nonslack)."""
    s = np.empty((stop - start, const.shape[0]), dtype=np.complex128)
    s[:] = const
    for inp, plan in zip(inputs, plans, strict=True):
        if plan is None:
            continue
        x = inp.rows(start, stop)
        if plan.factor != 1.0:
            x = x * plan.factor
        target = s.real if plan.part == "real" else s.imag
        for elements, nodes in plan.layers:
            target[:, nodes] += x[:, elements]
    return s


def _apply_z(cn: CompiledNetwork, i: ComplexArray) -> ComplexArray:
    """``Z_LL @ i`` for a (steps, nonslack) current matrix."""
    if cn.zt is not None:
        return i @ cn.zt
    return np.asarray(cn.lu.solve(np.asfortranarray(i.T)), dtype=np.complex128).T


def _iterate(
    cn: CompiledNetwork, s_load: ComplexArray, max_iter: int, tol_pu: float
) -> tuple[ComplexArray, BoolArray, IntArray]:
    """Fixed-point iteration for all steps of a chunk.

    Parameters
    ----------
    cn
        The compiled network.
    s_load
        Complex load per non-slack node [MVA], shape (steps, nonslack).
    max_iter, tol_pu
        Iteration limit [-] and tolerance on the largest voltage change [pu].

    Returns
    -------
    v, converged, iterations
        Non-slack voltages [pu] (NaN where not converged), shape (steps, nonslack);
        convergence flag and iterations used per step.
    """
    m, n_l = s_load.shape
    v_out = np.full((m, n_l), np.nan, dtype=np.complex128)
    converged = np.zeros(m, dtype=bool)
    iterations = np.full(m, max_iter, dtype=np.int64)
    if n_l == 0:
        converged[:] = True
        iterations[:] = 0
        return v_out, converged, iterations

    w = cn.w
    # conj(S_inj) [pu] with S_inj = -S_load / base; for ZIP loads its P and Q parts
    sc = -np.conj(s_load) / cn.base_mva
    voltage_dependent = cn.zip_p is not None and cn.zip_q is not None
    if voltage_dependent:
        assert cn.zip_p is not None and cn.zip_q is not None
        kp = cn.zip_p[:, cn.nonslack]
        kq = cn.zip_q[:, cn.nonslack]

    active = np.arange(m)
    v = np.broadcast_to(w, (m, n_l)).copy()
    dv_prev = np.full(m, np.nan)  # rho unknown in the first iteration: only dv <= tiny stops
    tiny = 1e-3 * tol_pu
    with np.errstate(all="ignore"):
        for k in range(1, max_iter + 1):
            # injected current conj(S / V) = conj(S) · (1 / conj(V))
            cur = np.conj(v)
            np.reciprocal(cur, out=cur)
            if voltage_dependent:
                vm = np.abs(v)
                cur *= sc.real * (kp[0] + vm * (kp[1] + vm * kp[2])) + 1j * (
                    sc.imag * (kq[0] + vm * (kq[1] + vm * kq[2]))
                )
            else:
                cur *= sc
            v_new = _apply_z(cn, cur)
            v_new += w
            dv = np.abs(v_new - v).max(axis=1)
            v = v_new
            # The iteration contracts linearly: with rate rho = dv / dv_prev the error left
            # in v is about dv·rho/(1-rho). Stop on that estimate (from the 2nd iteration
            # on, when rho is measured); a change at rounding level stops at once.
            rho = dv / dv_prev
            done = (dv * rho < tol_pu * (1.0 - rho)) | (dv <= tiny)
            dv_prev = dv
            finished = done | ~np.isfinite(dv)
            if finished.any():
                iterations[active[finished]] = k
                ok = active[done]
                v_out[ok] = v[done]
                converged[ok] = True
                keep = ~finished
                active = active[keep]
                if active.size == 0:
                    break
                v = v[keep]
                sc = sc[keep]
                dv_prev = dv_prev[keep]
    return v_out, converged, iterations


def _empty_result(cn: CompiledNetwork, n_steps: int) -> FlowResult:
    """A result with uninitialised arrays for ``n_steps`` steps."""
    return FlowResult(
        vm_pu=np.empty((n_steps, cn.bus_index.size)),
        va_degree=np.empty((n_steps, cn.bus_index.size)),
        line_loading_pct=np.empty((n_steps, cn.line_index.size)),
        line_i_ka=np.empty((n_steps, cn.line_index.size)),
        trafo_loading_pct=np.empty((n_steps, cn.trafo_index.size)),
        losses_kw=np.empty(n_steps),
        converged=np.empty(n_steps, dtype=bool),
        iterations=np.empty(n_steps, dtype=np.int64),
        bus_index=cn.bus_index,
        line_index=cn.line_index,
        trafo_index=cn.trafo_index,
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
    v_l: ComplexArray,
    converged: BoolArray,
    iterations: IntArray,
    out: FlowResult,
) -> FlowResult:
    """Write bus, line and trafo results of one chunk into ``out`` (and return it)."""
    m = v_l.shape[0]
    n_l = cn.nonslack.size  # nodes are numbered non-slack first, then slack
    v = np.empty((m, cn.n_nodes), dtype=np.complex128)
    v[:, :n_l] = v_l
    v[:, n_l:] = cn.v_slack

    # buses
    solved = cn.bus_node >= 0
    # np.take keeps the C order (fancy indexing of columns would return F order)
    v_bus = np.take(v, cn.bus_node[solved], axis=1)
    if solved.all():
        np.abs(v_bus, out=out.vm_pu)
        out.va_degree[:] = np.angle(v_bus, deg=True)
    else:
        out.vm_pu[:] = np.nan
        out.va_degree[:] = np.nan
        out.vm_pu[:, solved] = np.abs(v_bus)
        out.va_degree[:, solved] = np.angle(v_bus, deg=True)

    # branch end currents and losses
    v_f = np.take(v, cn.br_f, axis=1)
    v_t = np.take(v, cn.br_t, axis=1)
    y_ff, y_ft, y_tf, y_tt = cn.y_branch
    i_f = v_f * y_ff
    i_f += v_t * y_ft
    i_t = v_f * y_tf
    i_t += v_t * y_tt
    # Re(V·conj(I)) summed over both ends of every branch, as real dot products
    losses_kw = out.losses_kw
    m2 = (m, 2 * cn.br_f.size)
    np.einsum(
        "ij,ij->i",
        v_f.view(np.float64).reshape(m2),
        i_f.view(np.float64).reshape(m2),
        out=losses_kw,
    )
    losses_kw += np.einsum(
        "ij,ij->i", v_t.view(np.float64).reshape(m2), i_t.view(np.float64).reshape(m2)
    )
    losses_kw *= cn.base_mva * 1e3
    ika_f = np.abs(i_f)
    ika_f *= cn.i_base_f_ka
    ika_t = np.abs(i_t)
    ika_t *= cn.i_base_t_ka

    # lines: out-of-service ones keep pandapower's constant (0 or NaN)
    on = cn.line_branch >= 0
    rows = cn.line_branch[on]
    if on.all():
        if rows.size and rows[-1] - rows[0] == rows.size - 1 and (np.diff(rows) == 1).all():
            block = slice(int(rows[0]), int(rows[-1]) + 1)  # contiguous: views, no gather
            np.maximum(ika_f[:, block], ika_t[:, block], out=out.line_i_ka)
        else:
            np.maximum(np.take(ika_f, rows, 1), np.take(ika_t, rows, 1), out=out.line_i_ka)
    else:
        out.line_i_ka[:] = cn.line_i_const
        out.line_i_ka[:, on] = np.maximum(np.take(ika_f, rows, 1), np.take(ika_t, rows, 1))
    np.multiply(out.line_i_ka, cn.line_scale, out=out.line_loading_pct)
    if not cn.line_rated.all():  # max_i_ka = 0: pandapower reports inf
        out.line_loading_pct[:, ~cn.line_rated] = np.inf

    # transformers
    on = cn.trafo_branch >= 0
    rows = cn.trafo_branch[on]
    if cn.trafo_loading_mode == "current":
        side_f, side_t = np.take(ika_f, rows, 1), np.take(ika_t, rows, 1)
    else:  # "power": apparent power at each end [MVA]
        side_f = np.abs(np.take(v_f, rows, 1) * np.take(i_f, rows, 1)) * cn.base_mva
        side_t = np.abs(np.take(v_t, rows, 1) * np.take(i_t, rows, 1)) * cn.base_mva
    side_f *= cn.trafo_scale[on, 0]
    side_t *= cn.trafo_scale[on, 1]
    if on.all():
        np.maximum(side_f, side_t, out=out.trafo_loading_pct)
    else:
        out.trafo_loading_pct[:] = cn.trafo_loading_const
        out.trafo_loading_pct[:, on] = np.maximum(side_f, side_t)

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


def _solve_chunk(
    cn: CompiledNetwork,
    inputs: list[_Input],
    const: ComplexArray,
    plans: list[_Scatter | None],
    steps: slice,
    max_iter: int,
    tol_pu: float,
    out: FlowResult | None,
) -> FlowResult:
    """Solve the steps ``steps``; results go into ``out`` (full-length) when given."""
    s_load = _chunk_load(inputs, const, plans, steps.start, steps.stop)
    v_l, conv, iters = _iterate(cn, s_load, max_iter, tol_pu)
    rows = _empty_result(cn, steps.stop - steps.start) if out is None else _step_rows(out, steps)
    return _results(cn, v_l, conv, iters, rows)


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
) -> Iterator[tuple[slice, FlowResult]]:
    """Solve a time series chunk by chunk, yielding each chunk's results in order.

    Same parameters and solution as :func:`solve_timeseries`, but memory stays bounded by
    ``chunk_size × threads`` whatever the number of steps: the inputs may be any
    row-sliceable arrays (``numpy.memmap``, HDF5/zarr datasets, or any object with
    ``shape`` and ``__getitem__(slice)``), read one chunk at a time, and the caller
    reduces each chunk (e.g. annual maxima per Monte Carlo draw) before it is discarded.
    In-memory numpy inputs are validated before the first chunk; other inputs chunk by
    chunk (a non-finite value then raises :class:`~gridplan.errors.ConfigError` when its
    chunk is reached).

    Yields
    ------
    steps : slice
        The rows of the inputs this chunk covers.
    result : FlowResult
        Results for those rows.
    """
    _check_params(max_iter, tol_pu, chunk_size, threads)
    cn = net if isinstance(net, CompiledNetwork) else compile_network(net)
    n_steps, inputs = _inputs(cn, load_p_kw, load_q_kvar, sgen_p_kw, sgen_q_kvar)
    for inp in inputs:
        inp.check_all()
    yield from _run(cn, inputs, n_steps, max_iter, tol_pu, chunk_size, threads)


def _solve_chunk_one_blas_thread(*args: Any) -> FlowResult:
    """:func:`_solve_chunk` with BLAS limited to one thread.

    The products here are small (non-slack buses × chunk): multi-threaded BLAS only adds
    synchronisation, and on a loaded machine it made a year on a 44-bus grid about 9x
    slower (3.2 s instead of 0.36 s, measured). Parallelism comes from ``threads`` (chunks
    on worker threads) instead.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _solve_chunk(*args)


def _run(
    cn: CompiledNetwork,
    inputs: list[_Input],
    n_steps: int,
    max_iter: int,
    tol_pu: float,
    chunk_size: int,
    threads: int,
    out: FlowResult | None = None,
) -> Iterator[tuple[slice, FlowResult]]:
    """Solve the chunks in order, on ``threads`` worker threads.

    With ``out`` (a full-length result) every chunk writes into its rows of ``out``;
    otherwise each chunk gets its own arrays.
    """
    const, plans = _load_plan(cn, inputs)
    chunks = [slice(a, min(a + chunk_size, n_steps)) for a in range(0, n_steps, chunk_size)]
    args = (cn, inputs, const, plans)
    if threads == 1 or len(chunks) == 1:
        for steps in chunks:
            yield steps, _solve_chunk_one_blas_thread(*args, steps, max_iter, tol_pu, out)
        return
    # numpy and scipy release the GIL in their loops, so chunks solve in parallel; a
    # bounded queue of submitted chunks keeps memory at two chunks per thread.
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque[tuple[slice, Future[FlowResult]]] = deque()
        for steps in chunks:
            future = pool.submit(_solve_chunk_one_blas_thread, *args, steps, max_iter, tol_pu, out)
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
        Wrong input shape, non-finite input values or bad parameters (before any solving).

    Notes
    -----
    Storage units, motors, wards and shunts stay at their values in the net for every
    step. Loads with ``const_z_*_percent`` / ``const_i_*_percent`` are voltage dependent
    exactly as in pandapower (which applies the per-bus mean of those percentages to the
    bus's net load).
    """
    _check_params(max_iter, tol_pu, chunk_size, threads)
    cn = net if isinstance(net, CompiledNetwork) else compile_network(net)
    n_steps, inputs = _inputs(cn, load_p_kw, load_q_kvar, sgen_p_kw, sgen_q_kvar)
    for inp in inputs:
        inp.check_all()
    result = _empty_result(cn, n_steps)
    for _ in _run(cn, inputs, n_steps, max_iter, tol_pu, chunk_size, threads, out=result):
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
