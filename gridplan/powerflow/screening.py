"""Critical-step screening: solve only the time steps whose result could matter.

A multi-year Monte Carlo study solves the same feeder for every (year, draw) with the base
load of the year plus one draw's EV power. What a planner reads from a case -- each
monitored asset's peak loading, its hours and energy over the planning limit, the excess
series that sizes the need, and the lowest/highest service voltage with the hours outside
the voltage band -- depends only on the steps where an asset is over (or near) its limit
or at its yearly extreme. This module proves, step by step and without solving, that the
other steps cannot matter, and solves only the rest (issue 6's critical-period
reduction, at step rather than day resolution).

The bound
---------
The year's base case (no EVs) is solved exactly at every step: node voltages ``V_b``,
injections ``S_b`` (per unit). A case adds ``ΔS`` (the EVs' power) at some nodes. The
solver's fixed point is ``V = w + Z·conj(S/V)`` over the non-slack nodes
(``Z = Y_LL⁻¹``), so the change of the injected currents is

    ΔI = conj(ΔS/V_b) − conj(S·Δ/(V·V_b)),     Δ = V − V_b = Z·ΔI,

a part linear in ``ΔS`` that is computed exactly, and a remainder bounded through
``|Δ_j| ≤ u``: with ``m = |V_b|``,

    |remainder_j| ≤ (|S_b,j| + |ΔS_j|)·u / (m_j²·(1 − u/m_min)),

where ``u`` is the smallest root of ``u²/m_min − (1 − G)·u + E = 0``,
``E = max_i Σ_j |Z_ij|·|ΔS_j|/m_j`` and ``G = max_i Σ_j |Z_ij|·|S_b,j|/m_j²`` (the
fixed-point map sends the ball of radius ``u`` around ``V_b`` into itself, so the solution
lies in it). Voltages and branch-end currents are linear in the injected currents
(``V = w + Z·I``, ``I_end = y_1·V_f + y_2·V_t``), so for every service-bus voltage and
every monitored asset's end current ``x = x_b + L + r`` with ``L`` exact and ``|r|``
bounded by ``|M|`` (the magnitudes of the ``Z``/``K`` row) times the remainder bound: the
magnitude lies in ``|x_b + L| ± R``, a bound of second order in the EV power.

Two stages keep it cheap. A crude bound that ignores the direction of the linear part
(real matrix products only) certifies most steps; the steps it leaves open get the bound
above (one complex product), and only the steps that bound leaves open are solved. The
certain values the thresholds start from (the largest lower bound of each asset's loading,
the voltage extremes) come from the unchanged steps and from the tight bound at the steps
most likely to hold each extreme.

What is solved
--------------
A step whose EV power is zero equals the base step (the base result is used). Another step
is solved when, for some monitored asset, its upper bound reaches the asset's limit or the
largest certain value of that asset in the year (it could be over the limit, or be the
peak), or when its service-voltage bounds reach the voltage band or the year's certain
extremes; with ``requirement=True`` also where an asset with an excess could have less
headroom than its peak excess (the EPRI DER-VET recharge rule). Every other step is
certified below its limit, not the peak, inside the band and not an extreme, so peak
loading, hours and energy over the limit, need flags, excess series, the DER-VET power and
energy, the extreme voltages and the hours outside the band equal those of solving every
step (``tests/test_screening.py`` checks this on every bundled feeder). Unsolved steps
carry their certified bound (upper bound of the loading, the voltage bounds) in the
returned arrays: these are not time series to plot (a study's detail draw is solved in
full).

Screening is unavailable (:func:`build_basis` returns ``None``; callers solve every step)
for voltage-dependent loads, ``trafo_loading="power"``, out-of-service or unrated
monitored branches, and nets with more than :data:`MAX_NODES` non-slack nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "LOADING_EPS_PCT",
    "MAX_NODES",
    "VOLTAGE_EPS_PU",
    "ScreenBasis",
    "Screened",
    "SolveFn",
    "build_basis",
    "screen",
]

#: Largest number of non-slack nodes for which the dense ``Z`` rows are built [-].
MAX_NODES = 3000
#: Margin on loading thresholds [percentage points]: solved results agree with pandapower
#: to about 1e-5 pp, so a step this close to a threshold is solved rather than certified.
LOADING_EPS_PCT = 1e-3
#: Margin on voltage thresholds [pu].
VOLTAGE_EPS_PU = 1e-6

#: (loading_pct (rows, asset), vm_min_pu (rows,), vm_max_pu (rows,), converged (rows,))
SolveFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class ScreenBasis:
    """One planning year's base case, prepared for screening (see the module docstring).

    Attributes
    ----------
    base_loading_pct : numpy.ndarray, shape (time, asset)
        Exact loading of each monitored asset in the base case [%].
    base_vm_min_pu, base_vm_max_pu : numpy.ndarray, shape (time,)
        Exact lowest/highest service-bus voltage in the base case [pu].
    base_converged : numpy.ndarray of bool, shape (time,)
        Whether each base step converged (unconverged steps are always solved).
    limit_pct : numpy.ndarray, shape (asset,)
        Planning limit of each asset [% of rating].
    """

    base_loading_pct: np.ndarray
    base_vm_min_pu: np.ndarray
    base_vm_max_pu: np.ndarray
    base_converged: np.ndarray
    limit_pct: np.ndarray
    load_node: np.ndarray  # (load, node): ΔS per node [pu] = ΔP [kW] @ load_node
    inv_v: np.ndarray  # 1 / V_b at non-slack nodes, (time, node), complex
    inv_m: np.ndarray  # 1 / |V_b|, (time, node)
    z_k: np.ndarray  # [|Z|ᵀ | k_assetᵀ], (node, node + asset): one product per block
    m_min: np.ndarray  # min |V_b| over non-slack nodes, (time,)
    x_b: np.ndarray  # service-node voltages, then asset-end currents [pu], (time, out)
    m_out: np.ndarray  # Z rows of the service nodes, then K rows of the ends, (out, node)
    abs_m_out: np.ndarray  # |m_out|
    abs_zt: np.ndarray  # |Z|ᵀ, (node, node): max over rows of a @ abs_zt = E
    g_out: np.ndarray  # |M|·(|S_b|/m²) per output, (time, out)
    g_max: np.ndarray  # G per step, (time,)
    k_asset: np.ndarray  # per asset, max over its ends of |K_end|·scale [% per pu], (asset, node)
    g_asset: np.ndarray  # per asset, max over its ends of g_out·scale [%], (time, asset)
    n_serv: int
    serv_nodes: np.ndarray  # service nodes (non-slack node positions), (service,)
    m_serv: np.ndarray  # |V_b| at the service nodes, (time, service)
    p0_serv: np.ndarray  # Re(Z_ij·conj(w_i)/(|w_i|·conj(w_j))), (node, service)
    xi: np.ndarray  # bound on the error of p0 per unit of |Z|·|ΔS|/m, (time,)
    end_asset: np.ndarray  # asset position of each end, (end,)
    end_scale: np.ndarray  # loading [%] per pu current at each end, (end,)


@dataclass(frozen=True)
class Screened:
    """One case after screening: exact where it matters, certified bounds elsewhere.

    Attributes
    ----------
    loading_pct : numpy.ndarray, shape (time, asset)
        Asset loading [%]: exact at solved and unchanged steps, the certified upper bound
        elsewhere (below the limit and below the asset's peak).
    vm_min_pu, vm_max_pu : numpy.ndarray, shape (time,)
        Lowest/highest service-bus voltage [pu]: exact, or the certified lower/upper bound.
    converged : numpy.ndarray of bool, shape (time,)
        False only at steps that were solved (or unchanged from the base) and did not
        converge.
    solved : numpy.ndarray of bool, shape (time,)
        Steps that were solved.
    stats : dict
        Steps per stage: ``changed`` (with EV power, not reused), ``tight`` and
        ``voltage`` (given the per-step bound), ``solved``.
    """

    loading_pct: np.ndarray
    vm_min_pu: np.ndarray
    vm_max_pu: np.ndarray
    converged: np.ndarray
    solved: np.ndarray
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def n_solved(self) -> int:
        """Number of solved steps [-]."""
        return int(self.solved.sum())


def build_basis(
    cn: Any,
    base_flow: Any,
    base_load_p_kw: np.ndarray,
    base_load_q_kvar: np.ndarray,
    sgen_p_kw: np.ndarray | None,
    sgen_q_kvar: np.ndarray | None,
    asset_kind: Any,
    asset_element: Any,
    limit_pct: Any,
    service_bus_pos: np.ndarray,
) -> ScreenBasis | None:
    """Prepare one year's base case for screening, or ``None`` where it is unavailable.

    Parameters
    ----------
    cn
        The :class:`gridplan.powerflow.solver.CompiledNetwork` the cases are solved on.
    base_flow
        The base case's :class:`gridplan.powerflow.solver.FlowResult` over every step (all lines,
        transformers and buses).
    base_load_p_kw, base_load_q_kvar
        The base case's load inputs [kW], [kvar], shape (time, load).
    sgen_p_kw, sgen_q_kvar
        The sgen inputs [kW], [kvar], shape (time, sgen), or ``None`` (the net's values).
    asset_kind, asset_element
        Monitored assets: ``"line"`` or ``"trafo"`` and the element's table index.
    limit_pct
        Planning limit of each asset [% of rating].
    service_bus_pos
        Positions (in ``net.bus.index`` order) of the buses whose voltage is checked.

    Returns
    -------
    ScreenBasis or None
    """
    if cn.zip_p is not None or cn.trafo_loading_mode != "current":
        return None
    n_l = int(cn.nonslack.size)
    if n_l == 0 or n_l > MAX_NODES:
        return None
    if cn.zt is not None:
        z = np.asarray(cn.zt).T
    else:
        z = np.asarray(cn.lu.solve(np.eye(n_l, dtype=np.complex128)), dtype=np.complex128)
    n_t = int(base_flow.converged.shape[0])
    converged = np.asarray(base_flow.converged, dtype=bool)
    s = _base_injections(cn, n_t, base_load_p_kw, base_load_q_kvar, sgen_p_kw, sgen_q_kvar)
    v = _base_voltages(cn, base_flow, s, z, converged)
    if v is None:
        return None
    # outputs: service-node voltages, then both end currents of each monitored asset
    serv_pos = np.asarray(service_bus_pos, dtype=np.int64)
    serv_nodes = cn.bus_node[serv_pos]
    if (serv_nodes < 0).any() or (serv_nodes >= n_l).any():
        return None
    outputs = _output_rows(cn, z, v, serv_nodes, asset_kind, asset_element)
    if outputs is None:
        return None
    base = _BaseCase(
        s=s,
        v=v,
        converged=converged,
        loading_pct=_base_loading(base_flow, asset_kind, asset_element),
        vm_serv=np.asarray(base_flow.vm_pu)[:, serv_pos],
    )
    return _assemble_basis(cn, z, base, serv_nodes, outputs, limit_pct)


def _base_injections(
    cn: Any,
    n_t: int,
    base_load_p_kw: np.ndarray,
    base_load_q_kvar: np.ndarray,
    sgen_p_kw: np.ndarray | None,
    sgen_q_kvar: np.ndarray | None,
) -> np.ndarray:
    """Base injections ``S_b`` per non-slack node [MVA, load convention], (time, node)."""
    n_l = int(cn.nonslack.size)
    c_load = sp.csr_matrix(cn.c_load)[:n_l]
    c_sgen = sp.csr_matrix(cn.c_sgen)[:n_l]
    s = np.empty((n_t, n_l), dtype=np.complex128)
    s[:] = cn.s_fixed_mva[:n_l]
    s += (c_load @ (np.asarray(base_load_p_kw, float) * 1e-3).T).T
    s += 1j * (c_load @ (np.asarray(base_load_q_kvar, float) * 1e-3).T).T
    if c_sgen.shape[1]:
        for part, given, net_value in (
            (1.0, sgen_p_kw, cn.sgen_p_mw),
            (1j, sgen_q_kvar, cn.sgen_q_mvar),
        ):
            if given is not None:
                s -= part * (c_sgen @ (np.asarray(given, float) * 1e-3).T).T
            else:
                s -= part * (c_sgen @ net_value)
    return s


def _base_voltages(
    cn: Any, base_flow: Any, s: np.ndarray, z: np.ndarray, converged: np.ndarray
) -> np.ndarray | None:
    """Base node voltages [pu], (time, node), or ``None`` (no basis: not finite, or a load
    at a node without a bus).

    From the bus results; nodes without a bus (pandapower's auxiliary nodes, e.g. at open
    line switches) carry no load: ``V = w + Z·I`` there. Unconverged base steps (always
    solved) get 1 pu.
    """
    n_l = int(cn.nonslack.size)
    n_t = int(s.shape[0])
    node_bus = np.full(cn.n_nodes, -1, dtype=np.int64)
    ok = cn.bus_node >= 0
    node_bus[cn.bus_node[ok]] = np.flatnonzero(ok)
    has_bus = node_bus[:n_l] >= 0
    v = np.empty((n_t, cn.n_nodes), dtype=np.complex128)
    v[:, n_l:] = cn.v_slack
    cols = np.flatnonzero(has_bus)
    v[:, cols] = np.asarray(base_flow.vm_pu)[:, node_bus[cols]] * np.exp(
        1j * np.deg2rad(np.asarray(base_flow.va_degree)[:, node_bus[cols]])
    )
    v[~converged] = 1.0  # unconverged base steps are always solved
    aux = np.flatnonzero(~has_bus)
    if aux.size:
        if np.any(np.abs(s[:, aux]) > 0):
            return None
        current = np.zeros((n_t, n_l), dtype=np.complex128)
        current[:, cols] = np.conj(-s[:, cols] / cn.base_mva / v[:, cols])
        v[:, aux] = cn.w[aux] + current @ z[aux].T
    if not np.isfinite(v).all():
        return None
    return v


@dataclass(frozen=True, eq=False)
class _Outputs:
    """The screened outputs: service-node voltages, then both ends of each asset."""

    m_out: np.ndarray  # Z rows of the service nodes, then K rows of the ends, (out, node)
    x_b: np.ndarray  # their base values [pu], (time, out)
    end_asset: np.ndarray  # asset position of each end, (end,)
    end_scale: np.ndarray  # loading [%] per pu current at each end, (end,)


def _end_scales(
    cn: Any, kind: Any, element: Any, line_pos: dict[int, int], trafo_pos: dict[int, int]
) -> tuple[int, tuple[Any, Any]] | None:
    """``(branch, (scale_f, scale_t))`` of one monitored asset: its in-service branch and
    the loading [%] per pu current at each end; ``None`` if out of service or unrated."""
    if kind == "line":
        k = line_pos[int(element)]
        br = int(cn.line_branch[k])
        if br < 0 or not bool(cn.line_rated[k]):
            return None
        return br, (cn.i_base_f_ka[br] * cn.line_scale[k], cn.i_base_t_ka[br] * cn.line_scale[k])
    k = trafo_pos[int(element)]
    br = int(cn.trafo_branch[k])
    if br < 0:
        return None
    return br, (
        cn.i_base_f_ka[br] * cn.trafo_scale[k, 0],
        cn.i_base_t_ka[br] * cn.trafo_scale[k, 1],
    )


def _output_rows(
    cn: Any,
    z: np.ndarray,
    v: np.ndarray,
    serv_nodes: np.ndarray,
    asset_kind: Any,
    asset_element: Any,
) -> _Outputs | None:
    """The rows of ``Z`` / ``K`` and base values of every output (``None``: an asset is
    out of service or unrated, no basis)."""
    n_l = int(cn.nonslack.size)
    n_t = int(v.shape[0])
    z_all = np.zeros((cn.n_nodes, n_l), dtype=np.complex128)
    z_all[:n_l] = z
    rows: list[np.ndarray] = [z[k] for k in serv_nodes]
    x_cols: list[np.ndarray] = [v[:, k] for k in serv_nodes]
    end_asset, end_scale = [], []
    line_pos = {int(e): k for k, e in enumerate(cn.line_index)}
    trafo_pos = {int(e): k for k, e in enumerate(cn.trafo_index)}
    y_ff, y_ft, y_tf, y_tt = cn.y_branch
    for a, (kind, element) in enumerate(zip(asset_kind, asset_element, strict=True)):
        ends = _end_scales(cn, kind, element, line_pos, trafo_pos)
        if ends is None:
            return None
        br, scales = ends
        f, t = int(cn.br_f[br]), int(cn.br_t[br])
        for y1, y2, scale in ((y_ff, y_ft, scales[0]), (y_tf, y_tt, scales[1])):
            rows.append(y1[br] * z_all[f] + y2[br] * z_all[t])
            x_cols.append(y1[br] * v[:, f] + y2[br] * v[:, t])
            end_asset.append(a)
            end_scale.append(float(scale))
    return _Outputs(
        m_out=np.array(rows, dtype=np.complex128).reshape(len(rows), n_l),
        x_b=np.column_stack(x_cols) if x_cols else np.zeros((n_t, 0), dtype=np.complex128),
        end_asset=np.asarray(end_asset, dtype=np.int64),
        end_scale=np.asarray(end_scale, dtype=float),
    )


def _base_loading(base_flow: Any, asset_kind: Any, asset_element: Any) -> np.ndarray:
    """The solver's own loading of each asset in the base case [%], (time, asset).

    The end currents of :func:`_output_rows` agree with it to the solver's tolerance,
    amplified at open line ends; :data:`LOADING_EPS_PCT` covers that.
    """
    line_col = {int(e): k for k, e in enumerate(np.asarray(base_flow.line_index))}
    trafo_col = {int(e): k for k, e in enumerate(np.asarray(base_flow.trafo_index))}
    return np.column_stack(
        [
            np.asarray(base_flow.line_loading_pct)[:, line_col[int(e)]]
            if kind == "line"
            else np.asarray(base_flow.trafo_loading_pct)[:, trafo_col[int(e)]]
            for kind, e in zip(asset_kind, asset_element, strict=True)
        ]
    ).astype(float)


@dataclass(frozen=True, eq=False)
class _BaseCase:
    """The base case's injections, voltages and results that a basis is built from."""

    s: np.ndarray  # injections per non-slack node [MVA, load convention], (time, node)
    v: np.ndarray  # node voltages [pu], (time, node)
    converged: np.ndarray  # (time,)
    loading_pct: np.ndarray  # (time, asset)
    vm_serv: np.ndarray  # service-bus voltage magnitudes [pu], (time, service)


def _assemble_basis(
    cn: Any,
    z: np.ndarray,
    base: _BaseCase,
    serv_nodes: np.ndarray,
    out: _Outputs,
    limit_pct: Any,
) -> ScreenBasis:
    """The :class:`ScreenBasis` from the base case and the output rows."""
    n_l = int(cn.nonslack.size)
    v_l = base.v[:, :n_l]
    m = np.abs(v_l)
    inv_v = 1.0 / v_l
    b = np.abs(base.s) / cn.base_mva / (m * m)
    abs_m_out = np.abs(out.m_out)
    abs_zt = np.ascontiguousarray(np.abs(z).T)
    # how far the base voltages are from the no-load voltages w (direction of the change)
    w_min = float(np.abs(cn.w).min())
    eta = np.abs(v_l - cn.w).max(axis=1) / w_min
    n_s = int(serv_nodes.size)
    g_out = b @ abs_m_out.T
    k_end = abs_m_out[n_s:] * out.end_scale[:, None]
    g_end = g_out[:, n_s:] * out.end_scale
    with np.errstate(all="ignore"):
        vmin = np.min(base.vm_serv, axis=1, initial=np.inf)
        vmax = np.max(base.vm_serv, axis=1, initial=-np.inf)
    w_s = cn.w[serv_nodes]
    return ScreenBasis(
        base_loading_pct=base.loading_pct,
        base_vm_min_pu=vmin,
        base_vm_max_pu=vmax,
        base_converged=base.converged,
        limit_pct=np.asarray(limit_pct, dtype=float),
        load_node=np.asarray(sp.csr_matrix(cn.c_load)[:n_l].T.toarray()) * (1e-3 / cn.base_mva),
        inv_v=inv_v,
        inv_m=1.0 / m,
        z_k=np.ascontiguousarray(np.hstack([abs_zt, np.maximum(k_end[0::2], k_end[1::2]).T])),
        m_min=m.min(axis=1),
        x_b=out.x_b,
        m_out=out.m_out,
        abs_m_out=abs_m_out,
        abs_zt=abs_zt,
        g_out=g_out,
        g_max=_row_max_product(b, abs_zt),
        k_asset=np.maximum(k_end[0::2], k_end[1::2]),
        g_asset=np.maximum(g_end[:, 0::2], g_end[:, 1::2]),
        n_serv=n_s,
        serv_nodes=np.asarray(serv_nodes, dtype=np.int64),
        m_serv=np.ascontiguousarray(m[:, serv_nodes]),
        p0_serv=np.ascontiguousarray(
            np.real(
                z[serv_nodes] * (np.conj(w_s) / np.abs(w_s))[:, None] / np.conj(cn.w)[None, :]
            ).T
        ),
        xi=eta * (3.0 + 2.0 * eta),
        end_asset=out.end_asset,
        end_scale=out.end_scale,
    )


def _row_max_product(x: np.ndarray, abs_zt: np.ndarray) -> np.ndarray:
    """``max_i (|Z|·x)_i`` for each row of ``x`` (rows, node), in blocks of rows."""
    out = np.empty(x.shape[0])
    for blk in _blocks(x.shape[0]):
        out[blk] = (x[blk] @ abs_zt).max(axis=1, initial=0.0)
    return out


def _radius(e: np.ndarray, g: np.ndarray, m_min: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``u`` (radius of the voltage change) and ``1/(1 − u/m_min)``.

    Where the quadratic has no root (no bound: the step must be solved) ``u`` is inf and
    the scale 0; callers mark those rows unbounded.
    """
    disc = (1.0 - g) ** 2 - 4.0 * e / m_min
    ok = (disc > 0) & (g < 1.0)
    u = np.where(ok, 0.5 * m_min * ((1.0 - g) - np.sqrt(np.where(ok, disc, 0.0))), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(ok, 1.0 / (1.0 - np.where(ok, u, 0.0) / m_min), 0.0)
    return u, scale


#: Rows per block in the bound computations (keeps the work arrays in the CPU caches).
_BLOCK = 1024


def _blocks(n: int) -> list[slice]:
    return [slice(i, min(i + _BLOCK, n)) for i in range(0, n, _BLOCK)]


def _crude_bounds(basis: ScreenBasis, rows: np.ndarray, ds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cheap per-step bounds at ``rows`` (real products only).

    Loading: ``|Δx| ≤ scale·(|M|·a·(1 + u/m_min) + g·u)`` with ``a = |ΔS|/m``, per asset
    (the larger of its two ends). Service voltages: ``|V_u,i|`` lies within
    ``m_i + p_i ± R_i`` (plus ``|L_i|²/(2·m_i)`` above), where ``p_i`` is the change of
    the magnitude along ``V_b,i`` (projection of the linear part), taken as ``p⁰_i`` from
    the no-load voltages plus an error ``ξ·(|Z|·a)_i``, ``|L_i| ≤ (|Z|·a)_i`` and ``R_i``
    the remainder. ``ds`` is ``ΔS`` per node [pu], load convention, (rows, node).

    Returns the loading change bound per asset [pp], (rows, asset), and bounds of the
    lowest and highest service voltage ``(vmin_lb, vmin_ub, vmax_lb, vmax_ub)`` [pu].
    """
    dl = np.empty((rows.size, basis.k_asset.shape[0]))
    volt = np.empty((4, rows.size))
    n_s = basis.n_serv
    serv = basis.serv_nodes
    for blk in _blocks(rows.size):
        r = rows[blk]
        m_min = basis.m_min[r]
        a = np.abs(ds[blk]) * basis.inv_m[r]
        zk = a @ basis.z_k
        n_l = basis.abs_zt.shape[0]
        za = zk[:, :n_l]  # first-order voltage change bound per node
        e = za.max(axis=1, initial=0.0)
        g = basis.g_max[r]
        u, scale = _radius(e, g, m_min)
        finite = np.isfinite(u)
        u0 = np.where(finite, u, 0.0)
        grow = 1.0 + u0 / m_min
        d = zk[:, n_l:]
        d *= grow[:, None]
        d += basis.g_asset[r] * u0[:, None]
        d *= scale[:, None]
        d[~finite] = np.inf
        dl[blk] = d
        # service voltages
        zs = za[:, serv]
        m_s = basis.m_serv[r]
        rem = basis.g_out[r, :n_s] + zs / m_min[:, None]
        rem *= (u0 * scale)[:, None]
        rem += zs * basis.xi[r][:, None]
        p = -(ds[blk] @ basis.p0_serv)  # injection = -load
        p += m_s
        lo = p - rem
        hi = p + rem
        hi += zs * zs / (2.0 * m_s)
        lo[~finite] = -np.inf
        hi[~finite] = np.inf
        volt[0, blk] = np.min(lo, axis=1, initial=np.inf)
        volt[1, blk] = np.min(hi, axis=1, initial=np.inf)
        volt[2, blk] = np.max(lo, axis=1, initial=-np.inf)
        volt[3, blk] = np.max(hi, axis=1, initial=-np.inf)
    return dl, volt[0], volt[1], volt[2], volt[3]


def _step_bounds(
    basis: ScreenBasis, rows: np.ndarray, ds: np.ndarray, *, voltage_only: bool = False
) -> tuple[np.ndarray, ...]:
    """Per-step bounds at ``rows`` (see the module docstring).

    ``ds`` is the injected ΔS per node [pu], (rows, node), real (EV active power).
    Returns ``(loading_lb, loading_ub)`` (rows, asset) [%] (NaN with ``voltage_only``) and
    the bounds of the lowest and highest service voltage ``(vmin_lb, vmin_ub, vmax_lb,
    vmax_ub)`` (rows,) [pu].
    """
    n_s = basis.n_serv
    n_out = n_s if voltage_only else basis.m_out.shape[0]
    m_out, abs_m_out = basis.m_out[:n_out], basis.abs_m_out[:n_out]
    n_asset = basis.limit_pct.size
    lb = np.full((rows.size, n_asset), np.nan)
    ub = np.full((rows.size, n_asset), np.nan)
    volt = np.empty((4, rows.size))
    sc = basis.end_scale
    for blk in _blocks(rows.size):
        r = rows[blk]
        inv_v = basis.inv_v[r]
        inv_m = basis.inv_m[r]
        d = ds[blk]
        abs_d = np.abs(d)
        e = _row_max_product(abs_d * inv_m, basis.abs_zt)
        u, scale = _radius(e, basis.g_max[r], basis.m_min[r])
        finite = np.isfinite(u)
        u0 = np.where(finite, u, 0.0)
        x = np.conj(d * inv_v) @ m_out.T  # exact linear part M · conj(ΔS / V_b)
        x += basis.x_b[r, :n_out]
        rem = (abs_d * inv_m * inv_m) @ abs_m_out.T
        rem += basis.g_out[r, :n_out]
        rem *= (u0 * scale)[:, None]
        rem[~finite] = np.inf
        mag = np.abs(x)
        lo = mag - rem
        hi = mag + rem
        with np.errstate(invalid="ignore"):
            volt[0, blk] = np.min(lo[:, :n_s], axis=1, initial=np.inf)
            volt[1, blk] = np.min(hi[:, :n_s], axis=1, initial=np.inf)
            volt[2, blk] = np.max(lo[:, :n_s], axis=1, initial=-np.inf)
            volt[3, blk] = np.max(hi[:, :n_s], axis=1, initial=-np.inf)
        if not voltage_only:
            hi_end = hi[:, n_s:] * sc
            lo_end = np.maximum(lo[:, n_s:], 0.0) * sc
            ub[blk] = np.maximum(hi_end[:, 0::2], hi_end[:, 1::2])
            lb[blk] = np.maximum(lo_end[:, 0::2], lo_end[:, 1::2])
    return lb, ub, volt[0], volt[1], volt[2], volt[3]


def screen(
    basis: ScreenBasis,
    delta_p_kw: np.ndarray,
    solve: SolveFn,
    *,
    vm_band_pu: tuple[float, float],
    requirement: bool = False,
    known: tuple[np.ndarray, Screened] | None = None,
) -> Screened:
    """Solve only the steps of one case whose results could matter (see the module doc).

    Parameters
    ----------
    basis
        The year's base case (:func:`build_basis`).
    delta_p_kw
        The case's load minus the base load [kW], shape (time, load) (EV power; exact
        zeros where no EV charges or exports).
    solve
        ``solve(rows)`` solves the case at the step positions ``rows`` and returns
        ``(loading_pct (rows, asset), vm_min_pu (rows,), vm_max_pu (rows,), converged)``.
    vm_band_pu
        The service-voltage band (low, high) [pu].
    requirement
        Also make the DER-VET recharge exact: solve the steps where an asset with an
        excess could have less headroom than its peak excess.
    known
        ``(delta_p_kw, screened)`` of another case on the same basis: steps where both
        cases have the same load reuse its values (solved or certified), e.g. a V2G case
        that differs from the unmanaged case only where V2G acts.

    Returns
    -------
    Screened
    """
    delta_p_kw = np.asarray(delta_p_kw, dtype=float)
    case = _Case.start(basis, vm_band_pu)
    changed = np.any(delta_p_kw != 0.0, axis=1)
    case.exact &= ~changed
    if known is not None:
        changed &= ~case.reuse(known, changed, delta_p_kw)
    case.certain_from_exact()
    rows = np.flatnonzero(changed)
    ds = delta_p_kw[rows] @ basis.load_node  # ΔS per node [pu], load convention
    stats = {"changed": int(rows.size)}
    if rows.size:
        _crude_stage(case, rows, ds)
        _tight_stage(case, rows, ds, stats)
    pending = np.flatnonzero(~case.exact)
    case.run(pending[case.open_rows(pending)], solve)
    if requirement:
        _solve_recharge(case, solve)
    stats["solved"] = int(case.solved.sum())
    return Screened(case.loading, case.vmin, case.vmax, case.converged, case.solved, stats)


@dataclass(eq=False)
class _Case:
    """The working values of one case in :func:`screen`.

    ``loading``, ``vmin``, ``vmax`` hold exact values where ``exact`` (base steps without
    EV power, solved or reused steps) and certified bounds elsewhere; ``peak``, ``low``,
    ``high`` are the certain values of the year the thresholds start from (largest lower
    bound of each asset's loading [%], smallest upper bound of the lowest and largest
    lower bound of the highest service voltage [pu]).
    """

    basis: ScreenBasis
    band: tuple[float, float]
    loading: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    converged: np.ndarray
    solved: np.ndarray
    exact: np.ndarray
    peak: np.ndarray = field(default_factory=lambda: np.zeros(0))
    low: float = np.inf
    high: float = -np.inf

    @classmethod
    def start(cls, basis: ScreenBasis, band: tuple[float, float]) -> _Case:
        """The base case's values, all of them exact where the base step converged."""
        return cls(
            basis=basis,
            band=band,
            loading=basis.base_loading_pct.copy(),
            vmin=basis.base_vm_min_pu.copy(),
            vmax=basis.base_vm_max_pu.copy(),
            converged=basis.base_converged.copy(),
            solved=np.zeros(basis.base_loading_pct.shape[0], dtype=bool),
            exact=basis.base_converged.copy(),
        )

    def reuse(
        self, known: tuple[np.ndarray, Screened], changed: np.ndarray, delta_p_kw: np.ndarray
    ) -> np.ndarray:
        """Take the values of ``known`` at the changed steps with the same load; returns
        those steps."""
        k_delta, k_res = known
        same = changed & np.all(delta_p_kw == k_delta, axis=1)
        self.loading[same] = k_res.loading_pct[same]
        self.vmin[same] = k_res.vm_min_pu[same]
        self.vmax[same] = k_res.vm_max_pu[same]
        self.converged[same] = k_res.converged[same]
        self.solved[same] = k_res.solved[same]
        self.exact[same] = k_res.solved[same]
        return same

    def certain_from_exact(self) -> None:
        """The certain values of the year from the exact values."""
        exact = self.exact
        self.peak = np.max(self.loading, axis=0, where=exact[:, None], initial=-np.inf)
        self.low = float(np.min(self.vmin[exact], initial=np.inf))
        self.high = float(np.max(self.vmax[exact], initial=-np.inf))

    def raise_certain(
        self, loading_lb: np.ndarray | None, vmin_ub: np.ndarray, vmax_lb: np.ndarray
    ) -> None:
        """Raise the certain values by lower bounds of loading and upper bounds of the
        lowest voltage (lower bounds of the highest)."""
        if loading_lb is not None:
            self.peak = np.maximum(self.peak, np.max(loading_lb, axis=0, initial=-np.inf))
        self.low = min(self.low, float(np.min(vmin_ub, initial=np.inf)))
        self.high = max(self.high, float(np.max(vmax_lb, initial=-np.inf)))

    def thresholds(self) -> tuple[np.ndarray, float, float]:
        """``(theta, v_lo, v_hi)``: a step below ``theta`` [%] for every asset and with its
        voltages inside ``(v_lo, v_hi)`` [pu] cannot matter."""
        theta = np.minimum(self.peak, self.basis.limit_pct) - LOADING_EPS_PCT
        v_lo = max(self.low, self.band[0]) + VOLTAGE_EPS_PU
        v_hi = min(self.high, self.band[1]) - VOLTAGE_EPS_PU
        return theta, v_lo, v_hi

    def open_rows(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` could matter given the current values (or whose base step did
        not converge)."""
        theta, v_lo, v_hi = self.thresholds()
        with np.errstate(invalid="ignore"):
            return (
                np.any(~(self.loading[rows] < theta), axis=1)
                | ~(self.vmin[rows] > v_lo)
                | ~(self.vmax[rows] < v_hi)
                | ~self.basis.base_converged[rows]
            )

    def run(self, rows: np.ndarray, solve: SolveFn) -> None:
        """Solve ``rows``: their values become exact."""
        if rows.size == 0:
            return
        ld, lo_v, hi_v, conv = solve(rows)
        self.loading[rows] = ld
        self.vmin[rows] = lo_v
        self.vmax[rows] = hi_v
        self.converged[rows] = conv
        self.solved[rows] = True
        self.exact[rows] = True


def _crude_stage(case: _Case, rows: np.ndarray, ds: np.ndarray) -> None:
    """Stage 1: the crude bound on every changed step ``rows`` (``ds``: their ΔS per node
    [pu], load convention), then the tight bound at the seeds: the steps where each
    extreme most likely is."""
    basis = case.basis
    dl, vmin_lb, vmin_ub, vmax_lb, vmax_ub = _crude_bounds(basis, rows, ds)
    base_l = basis.base_loading_pct[rows]
    case.loading[rows] = base_l + dl
    case.vmin[rows] = vmin_lb
    case.vmax[rows] = vmax_ub
    case.raise_certain(base_l - dl, vmin_ub, vmax_lb)
    loading, vmin, vmax = case.loading[rows], case.vmin[rows], case.vmax[rows]
    finite = np.where(np.isfinite(loading), loading, -np.inf)
    seeds = np.unique(
        np.r_[
            np.argmax(finite, axis=0),
            np.argmin(np.where(np.isfinite(vmin), vmin, np.inf)),
            np.argmax(np.where(np.isfinite(vmax), vmax, -np.inf)),
        ]
    )
    lb, _, _, vmin_ub, vmax_lb, _ = _step_bounds(basis, rows[seeds], -ds[seeds])
    case.raise_certain(lb, vmin_ub, vmax_lb)


def _tight_stage(case: _Case, rows: np.ndarray, ds: np.ndarray, stats: dict[str, int]) -> None:
    """Stage 2: the tight bound where stage 1 leaves a step open (the voltage-only bound
    where only the highest voltage is open); step counts into ``stats``."""
    open1 = case.open_rows(rows)
    theta, v_lo, _ = case.thresholds()
    loading_open = np.any(~(case.loading[rows] < theta), axis=1) | ~(case.vmin[rows] > v_lo)
    for voltage_only in (False, True):
        pick = open1 & (loading_open != voltage_only)
        rows2 = rows[pick]
        stats["voltage" if voltage_only else "tight"] = int(rows2.size)
        if not rows2.size:
            continue
        lb, ub, vmin_lb, vmin_ub, vmax_lb, vmax_ub = _step_bounds(
            case.basis, rows2, -ds[pick], voltage_only=voltage_only
        )
        if not voltage_only:
            case.loading[rows2] = np.where(np.isfinite(ub), ub, np.inf)
        case.vmin[rows2] = vmin_lb
        case.vmax[rows2] = vmax_ub
        case.raise_certain(None if voltage_only else lb, vmin_ub, vmax_lb)


def _solve_recharge(case: _Case, solve: SolveFn) -> None:
    """DER-VET: recharge = min(headroom, peak excess) is exact where the headroom is at
    least the peak excess -> solve the steps whose headroom could be smaller."""
    limit = case.basis.limit_pct
    with np.errstate(invalid="ignore"):
        top = np.max(case.loading, axis=0, where=~np.isnan(case.loading), initial=-np.inf)
    peak_excess = np.clip(top - limit, 0.0, None)  # [% of rating]
    has = peak_excess > 0
    if has.any():
        pending = np.flatnonzero(~case.exact)
        thr = limit - peak_excess - LOADING_EPS_PCT
        case.run(pending[np.any((case.loading[pending] > thr) & has, axis=1)], solve)
