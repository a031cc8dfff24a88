"""Compile a pandapower net into the matrices the time-series solver iterates on.

:func:`compile_network` runs pandapower's own ``_pd2ppc`` on a copy of the net (with
``runpp``'s default options, overruled by ``net.user_pf_options`` as in ``runpp``), so
switches, open lines, out-of-service elements, transformer taps and phase shifts, shunts
and ext_grid set-points mean exactly what they mean in ``runpp``. From that internal model
(the ``ppc`` / ``ppci``) it reads the admittance matrices, the fixed injections, the
element-to-node maps and the constants of the results, and returns them as one
:class:`CompiledNetwork`, renumbered so that the non-slack nodes come first.

This is the one module of gridplan that uses pandapower's private API: ``_pd2ppc``,
``_init_runpp_options``, the compiled net's ``_options``, ``_pd2ppc_lookups`` and
``_is_elements``, the pypower column constants and ``makeYbus``. pandapower is imported
inside the functions, so that importing gridplan stays light.
"""

# pandapower keeps the options, lookups and element masks of its compiled model in private
# attributes of the net (``net._options``, ``net._pd2ppc_lookups``, ``net._is_elements``);
# reading them here, in this one module, is how the model matches runpp exactly.
# ruff: noqa: SLF001

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from gridplan.core.errors import ConfigError, GridplanError
from gridplan.powerflow.arraytypes import BoolArray, ComplexArray, FloatArray, IntArray
from gridplan.powerflow.blocks import BlockZ
from gridplan.powerflow.sweep import SweepFactor
from gridplan.powerflow.zll import METHODS, Method, ZForm, z_form

__all__ = ["CompiledNetwork", "UnsupportedElementError", "compile_network"]

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
        How ``Z_LL`` is applied: ``"dense"``, ``"sparse"``, ``"block"`` or ``"sweep"``.
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
    lu: Any  # SuperLU of Y_LL (methods "sparse", "block" and "sweep")
    zt_w: ComplexArray | None  # [Z_LL^T; W^T]: [I | 1] @ zt_w = W + Z_LL I, rows as steps
    blocks: BlockZ | None
    sweep: SweepFactor | None  # LU factors row by row (method "sweep")
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


# --------------------------------------------------------------------------------------
# pandapower's internal model, read into plain arrays (internal ppci node order)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Nodes:
    """The in-service internal nodes (pandapower ``ppci`` buses) and their admittances."""

    base_mva: float
    n_nodes: int
    slack: IntArray
    nonslack: IntArray
    v_slack: ComplexArray  # fixed voltages of the slack nodes [pu]
    ybus: sp.csc_matrix
    yf: sp.csr_matrix  # from-end currents of the in-service branches per node voltage
    yt: sp.csr_matrix  # to-end currents
    g_shunt: FloatArray  # bus shunt conductance [pu]
    s_fixed_mva: ComplexArray  # fixed bus power (load convention) [MVA]
    zip_p: FloatArray | None  # (3, node): constant power, current, impedance shares of P
    zip_q: FloatArray | None
    base_kv: FloatArray
    br_f: IntArray  # end nodes of the in-service branches
    br_t: IntArray


def _pandapower_model(net: Any) -> tuple[Any, Any, Any]:
    """``(work, ppc, ppci)``: pandapower's ``_pd2ppc`` of a copy of the net, with ``runpp``'s
    default options and the time-varying loads and sgens at zero (so that the ppc bus
    powers hold only the fixed elements)."""
    from pandapower.pd2ppc import _pd2ppc
    from pandapower.run import _init_runpp_options

    work = copy.deepcopy(net)
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
    return work, ppc, ppci


def _zip_shares(bus_i: Any, options: dict[str, Any]) -> tuple[FloatArray | None, FloatArray | None]:
    """Constant power / current / impedance shares of each node's P and Q, (3, node), or
    ``None`` when no load is voltage dependent."""
    from pandapower.pypower.idx_bus import CID_P, CID_Q, CZD_P, CZD_Q

    if options.get("voltage_depend_loads", False):
        ci_p, cz_p = bus_i[:, CID_P].astype(float), bus_i[:, CZD_P].astype(float)
        ci_q, cz_q = bus_i[:, CID_Q].astype(float), bus_i[:, CZD_Q].astype(float)
        if np.any(ci_p) or np.any(cz_p) or np.any(ci_q) or np.any(cz_q):
            zip_p = np.stack([1.0 - ci_p - cz_p, ci_p, cz_p])
            zip_q = np.stack([1.0 - ci_q - cz_q, ci_q, cz_q])
            return zip_p, zip_q
    return None, None


def _read_nodes(ppci: Any, options: dict[str, Any]) -> _Nodes:
    """The nodes, slack voltages, admittance matrices and fixed injections of the ppci."""
    from pandapower.pypower.idx_brch import F_BUS, T_BUS
    from pandapower.pypower.idx_bus import BASE_KV, BUS_TYPE, GS, PD, PQ, QD, REF, VA, VM
    from pandapower.pypower.idx_gen import GEN_BUS, VG
    from pandapower.pypower.makeYbus import makeYbus

    base_mva = float(ppci["baseMVA"])
    bus_i = ppci["bus"]
    node_type = bus_i[:, BUS_TYPE].astype(np.int64)
    if np.any((node_type != PQ) & (node_type != REF)):
        raise UnsupportedElementError(
            "gen", [], "the compiled net has voltage-controlled (PV) buses, not modelled."
        )
    gen = ppci["gen"]
    slack = np.flatnonzero(node_type == REF).astype(np.int64)
    # Slack voltage as pandapower's Newton solver fixes it: magnitude from the ext_grid
    # set-point (gen VG), angle from the bus (ext_grid va_degree if calculate_voltage_angles).
    vm_set = bus_i[:, VM].astype(np.float64).copy()
    gen_bus = np.real(gen[:, GEN_BUS]).astype(np.int64)
    vm_set[gen_bus] = np.real(gen[:, VG])
    v_slack = (vm_set[slack] * np.exp(1j * np.deg2rad(bus_i[slack, VA].astype(float)))).astype(
        np.complex128
    )
    ybus, yf, yt = makeYbus(base_mva, bus_i, ppci["branch"])
    br = ppci["branch"]
    zip_p, zip_q = _zip_shares(bus_i, options)
    return _Nodes(
        base_mva=base_mva,
        n_nodes=int(bus_i.shape[0]),
        slack=slack,
        nonslack=np.flatnonzero(node_type != REF).astype(np.int64),
        v_slack=v_slack,
        ybus=sp.csc_matrix(ybus),
        yf=sp.csr_matrix(yf),
        yt=sp.csr_matrix(yt),
        g_shunt=bus_i[:, GS].astype(float) / base_mva,
        s_fixed_mva=(bus_i[:, PD] + 1j * bus_i[:, QD]).astype(np.complex128),
        zip_p=zip_p,
        zip_q=zip_q,
        base_kv=bus_i[:, BASE_KV].astype(float),
        br_f=np.real(br[:, F_BUS]).astype(np.int64),
        br_t=np.real(br[:, T_BUS]).astype(np.int64),
    )


def _out_of_service_branches(
    ppc: Any, ppci: Any, n_nodes: int
) -> tuple[IntArray, FloatArray, FloatArray]:
    """``(ppc_to_ppci, s_const, i_const)``: the in-service (ppci) row of each ppc branch
    (-1 if out of service), and the end apparent powers [MVA] and currents [kA], (branch,
    2), pandapower reports for each.

    Branches out of service keep the values pandapower derives from the ppc: |S| /
    (vm · base_kv) / √3 with |S| = 0, i.e. 0 between solved buses and NaN next to an
    unsolved bus (pandapower sets vm to NaN for every bus it does not solve).
    """
    from pandapower.pypower.idx_brch import F_BUS, PF, PT, QF, QT, T_BUS
    from pandapower.pypower.idx_bus import BASE_KV, VM

    branch_ppc = ppc["branch"]
    branch_is = np.asarray(ppci["internal"]["branch_is"], dtype=bool)
    ppc_to_ppci_branch = np.full(branch_ppc.shape[0], -1, dtype=np.int64)
    ppc_to_ppci_branch[branch_is] = np.arange(int(branch_is.sum()))
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
    return ppc_to_ppci_branch, s_const, i_const


# --------------------------------------------------------------------------------------
# from the internal model to the solver's arrays
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Losses:
    """Terms of the network losses by power balance (see :func:`_loss_terms`)."""

    loss_a: ComplexArray
    loss_c0: float
    shunt_node: IntArray
    shunt_g: FloatArray


def _loss_terms(nodes: _Nodes, nonslack: IntArray) -> _Losses:
    """Branch losses by power balance.

    The sum over all nodes of V·conj(I), I = Ybus·V, is the power taken by all branches
    plus the bus shunts. At a non-slack node I is the injected current of the last
    iteration; at the slack nodes it is Y_sL·V_L + Y_ss·V_s, whose real part against
    conj(V_s) is Re(V_L · loss_a) + a constant.
    """
    ybus, slack, v_slack = nodes.ybus, nodes.slack, nodes.v_slack
    y_sl = ybus[slack][:, nonslack]
    y_ss = ybus[slack][:, slack]
    loss_a = np.asarray(y_sl.T @ np.conj(v_slack), dtype=np.complex128).ravel()
    g_shunt = nodes.g_shunt
    loss_c0 = float(np.real(np.conj(v_slack) @ (y_ss @ v_slack)))
    loss_c0 -= float(g_shunt[slack] @ np.abs(v_slack) ** 2)
    g_l = g_shunt[nonslack]
    shunt_node = np.flatnonzero(g_l != 0).astype(np.int64)
    return _Losses(loss_a=loss_a, loss_c0=loss_c0, shunt_node=shunt_node, shunt_g=g_l[shunt_node])


def _element_map(
    net: Any, table: str, is_el: Any, lookup: IntArray, n_nodes: int
) -> tuple[sp.csr_matrix, FloatArray, FloatArray]:
    """``(c, p_mw, q_mvar)`` of ``net[table]`` (loads or sgens): the (node, element)
    incidence of the active elements and the net's ``p × scaling`` and ``q × scaling``
    (0 for inactive elements)."""
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


def _branch_admittances(nodes: _Nodes) -> ComplexArray:
    """Two-port admittances ``(y_ff, y_ft, y_tf, y_tt)`` of each in-service branch, (4,
    branch): ``I_f = y_ff·V_f + y_ft·V_t`` and ``I_t = y_tf·V_f + y_tt·V_t`` (Yf and Yt
    have two entries per row)."""
    yf, yt = nodes.yf, nodes.yt
    br_f, br_t = nodes.br_f, nodes.br_t
    rng_br = np.arange(br_f.shape[0])
    y_branch = np.zeros((4, br_f.shape[0]), dtype=np.complex128)
    if br_f.shape[0]:  # (sparse fancy indexing with empty arrays returns a matrix)
        y_branch[:] = [
            np.asarray(yf[rng_br, br_f]).ravel(),
            np.asarray(yf[rng_br, br_t]).ravel(),
            np.asarray(yt[rng_br, br_f]).ravel(),
            np.asarray(yt[rng_br, br_t]).ravel(),
        ]
    return y_branch


@dataclass(frozen=True, eq=False)
class _Outputs:
    """Where each line and transformer of the net is, and the constants of its results."""

    line_branch: IntArray  # in-service branch of each line, -1 if out of service
    line_i_const: FloatArray  # current of out-of-service lines [kA] (0 or NaN)
    line_i_max: FloatArray  # max_i_ka × df × parallel [kA]
    trafo_branch: IntArray
    trafo_loading_const: FloatArray  # loading of out-of-service trafos [%] (0 or NaN)
    trafo_scale: FloatArray  # (trafo, 2): loading [%] per kA (or per MVA) at each end
    trafo_loading_mode: str


def _trafo_scale(
    trafo: Any, rows: slice, s_const: FloatArray, i_const: FloatArray, mode: str
) -> tuple[FloatArray, FloatArray]:
    """``(scale, loading_const)`` of the transformers (see :class:`_Outputs`)."""
    if not len(trafo):
        return np.zeros((0, 2)), np.zeros(0)
    denom = (
        trafo["sn_mva"].to_numpy(dtype=float)
        * trafo["parallel"].to_numpy(dtype=float)
        * trafo["df"].to_numpy(dtype=float)
    )
    if mode == "current":
        vns = np.stack(
            [trafo["vn_hv_kv"].to_numpy(dtype=float), trafo["vn_lv_kv"].to_numpy(dtype=float)],
            axis=1,
        )
        trafo_scale = vns * math.sqrt(3.0) * 100.0 / denom[:, None]
        return trafo_scale, np.max(i_const[rows] * trafo_scale, axis=1)
    trafo_scale = np.repeat((100.0 / denom)[:, None], 2, axis=1)
    return trafo_scale, np.max(s_const[rows] * trafo_scale, axis=1)


def _outputs(
    net: Any,
    ppc_to_ppci_branch: IntArray,
    s_const: FloatArray,
    i_const: FloatArray,
    branch_lookup: dict[str, Any],
    options: dict[str, Any],
) -> _Outputs:
    """The line and transformer maps of :class:`_Outputs`."""

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

    trafo_branch, rows = branch_rows("trafo")
    trafo_mode = str(options.get("trafo_loading", "current"))
    if trafo_mode not in ("current", "power"):
        raise ConfigError(
            f"unknown trafo_loading {trafo_mode!r}; valid: current, power",
            field="net.user_pf_options.trafo_loading",
        )
    trafo_scale, trafo_loading_const = _trafo_scale(net.trafo, rows, s_const, i_const, trafo_mode)
    return _Outputs(
        line_branch=line_branch,
        line_i_const=line_i_const,
        line_i_max=line_i_max,
        trafo_branch=trafo_branch,
        trafo_loading_const=trafo_loading_const,
        trafo_scale=trafo_scale,
        trafo_loading_mode=trafo_mode,
    )


def _assemble(
    net: Any,
    nodes: _Nodes,
    form: ZForm,
    losses: _Losses,
    loads: tuple[sp.csr_matrix, FloatArray, FloatArray],
    sgens: tuple[sp.csr_matrix, FloatArray, FloatArray],
    outputs: _Outputs,
    lookup: IntArray,
) -> CompiledNetwork:
    """The :class:`CompiledNetwork`, with the nodes renumbered: non-slack first (in the
    order of ``form``), then slack, so that the full voltage vector of a chunk is two
    contiguous blocks ``[V_L | V_s]``."""
    n_nodes = nodes.n_nodes
    n_l = int(form.nonslack.size)
    # Buses pandapower leaves unsolved (out of service, isolated, or out of service but
    # merged into a solved bus by a closed switch) are NaN in its results.
    bus_node = lookup[net.bus.index.to_numpy(dtype=np.int64)]
    unsolved = (bus_node < 0) | (bus_node >= n_nodes) | ~net.bus["in_service"].to_numpy(bool)
    bus_node = np.where(unsolved, -1, bus_node)
    perm = np.r_[form.nonslack, nodes.slack]
    new_index = np.empty(n_nodes, dtype=np.int64)
    new_index[perm] = np.arange(n_nodes)
    zip_p, zip_q = nodes.zip_p, nodes.zip_q
    if zip_p is not None and zip_q is not None:
        zip_p, zip_q = zip_p[:, perm], zip_q[:, perm]
    i_base = nodes.base_mva / math.sqrt(3.0)
    line_i_max = outputs.line_i_max
    return CompiledNetwork(
        bus_index=net.bus.index.to_numpy(dtype=np.int64),
        line_index=net.line.index.to_numpy(dtype=np.int64),
        trafo_index=net.trafo.index.to_numpy(dtype=np.int64),
        load_index=net.load.index.to_numpy(dtype=np.int64),
        sgen_index=net.sgen.index.to_numpy(dtype=np.int64),
        n_nodes=n_nodes,
        method=form.method,
        base_mva=nodes.base_mva,
        slack=np.arange(n_l, n_nodes, dtype=np.int64),
        nonslack=np.arange(n_l, dtype=np.int64),
        v_slack=nodes.v_slack,
        w=form.w,
        zt=form.zt,
        lu=form.lu,
        zt_w=form.zt_w,
        blocks=form.blocks,
        sweep=form.sweep,
        inv_conj_w=form.inv_conj_w,
        s_fixed_mva=nodes.s_fixed_mva[perm],
        zip_p=zip_p,
        zip_q=zip_q,
        c_load=sp.csr_matrix(loads[0][perm]),
        c_sgen=sp.csr_matrix(sgens[0][perm]),
        load_p_mw=loads[1],
        load_q_mvar=loads[2],
        sgen_p_mw=sgens[1],
        sgen_q_mvar=sgens[2],
        y_branch=_branch_admittances(nodes),
        br_f=new_index[nodes.br_f],
        br_t=new_index[nodes.br_t],
        i_base_f_ka=i_base / nodes.base_kv[nodes.br_f],
        i_base_t_ka=i_base / nodes.base_kv[nodes.br_t],
        bus_node=np.where(bus_node >= 0, new_index[np.maximum(bus_node, 0)], -1),
        line_branch=outputs.line_branch,
        line_i_const=outputs.line_i_const,
        line_scale=np.where(
            line_i_max != 0, 100.0 / np.where(line_i_max != 0, line_i_max, 1.0), 0.0
        ),
        line_rated=line_i_max != 0,
        trafo_branch=outputs.trafo_branch,
        trafo_loading_const=outputs.trafo_loading_const,
        trafo_scale=outputs.trafo_scale,
        trafo_loading_mode=outputs.trafo_loading_mode,
        loss_a=losses.loss_a,
        loss_c0=losses.loss_c0,
        shunt_node=losses.shunt_node,
        shunt_g=losses.shunt_g,
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
    method : {"auto", "dense", "sparse", "block", "sweep"}, default "auto"
        How ``Z_LL = Y_LL⁻¹`` is applied: a dense inverse (one BLAS matrix product), a
        sparse LU factorisation (SuperLU triangular solves), ``"block"``: dense
        inverses of the small blocks left when a few separator nodes are removed plus a
        low-rank coupling through those nodes (radial and weakly meshed feeders; see
        :class:`gridplan.powerflow.blocks.BlockZ`), or ``"sweep"``: the LU factors in
        minimum-degree elimination order, applied by forward and backward substitution
        inside one numba kernel that runs each step's whole iteration (a backward/forward
        sweep on a radial feeder, work linear in its size; meshed and multi-source nets
        fill in a few entries per loop; see :mod:`gridplan.powerflow.sweep`). ``"auto"``
        picks ``"sweep"`` when numba is available (the fastest at every size measured,
        44 to 9,099 buses: ``benchmarks/results/powerflow.md``); otherwise the form with
        the lowest estimated cost (dense only up to
        :data:`gridplan.powerflow.zll.DENSE_MAX_BUSES` non-slack nodes, block only up to
        :data:`gridplan.powerflow.zll.BLOCK_MAX_NODES`). Without numba at run time the
        sweep form is applied through SuperLU. All give the same results to rounding.

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
    GridplanError
        For a singular network (an island without ext_grid).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; valid: {', '.join(METHODS)}", field="method")
    _check_supported(net)
    work, ppc, ppci = _pandapower_model(net)
    options = work._options
    nodes = _read_nodes(ppci, options)
    form = z_form(nodes.ybus, nodes.slack, nodes.nonslack, nodes.v_slack, method)
    losses = _loss_terms(nodes, form.nonslack)
    lookup = np.asarray(work._pd2ppc_lookups["bus"], dtype=np.int64)
    loads = _element_map(net, "load", work._is_elements, lookup, nodes.n_nodes)
    sgens = _element_map(net, "sgen", work._is_elements, lookup, nodes.n_nodes)
    ppc_to_ppci, s_const, i_const = _out_of_service_branches(ppc, ppci, nodes.n_nodes)
    outputs = _outputs(net, ppc_to_ppci, s_const, i_const, work._pd2ppc_lookups["branch"], options)
    return _assemble(net, nodes, form, losses, loads, sgens, outputs, lookup)
