"""The results of a solve: :class:`FlowResult`, and how a chunk's voltages become results.

:func:`selection` turns the ``lines`` / ``trafos`` a call asks for into the branch data of
those columns; :func:`write_results` computes, once per step after convergence, the bus
voltages, the network losses (from the power balance of the solution) and the currents
and loadings of the selected branches (the fused ``branch_max`` kernel of
:mod:`gridplan.powerflow.kernels`), into a full-length result's rows or a chunk's own.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from gridplan.core.errors import ConfigError
from gridplan.powerflow import kernels
from gridplan.powerflow.arraytypes import BoolArray, ComplexArray, FloatArray, IntArray
from gridplan.powerflow.model import CompiledNetwork

__all__ = [
    "PER_STEP",
    "BranchSet",
    "FlowResult",
    "Selection",
    "empty_result",
    "selection",
    "step_rows",
    "write_results",
]


@dataclass(frozen=True)
class FlowResult:
    """Results of a time-series power flow; arrays are ``(time, element)``.

    Element order follows the net's tables (``bus_index``, ``line_index``,
    ``trafo_index``), or the ``buses`` / ``lines`` / ``trafos`` a call asked for. Steps that did not
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
        ``net.bus.index``, or the requested ``buses`` (columns of ``vm_pu`` and
        ``va_degree``).
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


@dataclass(frozen=True)
class BranchSet:
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
class Selection:
    """What a call reports: the selected buses, lines and transformers."""

    bus_pos: IntArray  # positions in net.bus.index order
    bus_node: IntArray  # node of each reported bus (-1: unsolved)
    line_pos: IntArray  # positions in net.line.index order
    trafo_pos: IntArray
    lines: BranchSet
    trafos: BranchSet
    line_scale: FloatArray
    line_unrated: IntArray  # output columns of lines with max_i_ka = 0
    line_i_const: FloatArray
    trafo_loading_const: FloatArray


def _positions(index: IntArray, wanted: Any, field: str) -> IntArray:
    """Positions of the labels ``wanted`` in ``index`` (all for None)."""
    if wanted is None:
        return np.arange(index.size, dtype=np.int64)
    table = {"buses": "bus", "lines": "line", "trafos": "trafo"}[field]
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
) -> BranchSet:
    """Branch data of the selected elements; ``current=False`` for apparent power."""
    on = np.flatnonzero(branch >= 0)
    br = branch[on]
    if current:
        sf = cn.i_base_f_ka[br] * scale_f[on]
        st = cn.i_base_t_ka[br] * scale_t[on]
    else:
        sf = cn.base_mva * scale_f[on]
        st = cn.base_mva * scale_t[on]
    return BranchSet(
        on=on,
        all_on=bool(on.size == branch.size),
        f=cn.br_f[br],
        t=cn.br_t[br],
        y=np.ascontiguousarray(cn.y_branch[:, br]),
        scale_f=sf,
        scale_t=st,
    )


def selection(cn: CompiledNetwork, lines: Any, trafos: Any, buses: Any = None) -> Selection:
    """The :class:`Selection` of a call's ``lines`` / ``trafos`` / ``buses`` (labels, or
    ``None`` for all); :class:`~gridplan.core.errors.ConfigError` for unknown or repeated
    labels."""
    bus_pos = _positions(cn.bus_index, buses, "buses")
    line_pos = _positions(cn.line_index, lines, "lines")
    trafo_pos = _positions(cn.trafo_index, trafos, "trafos")
    ones = np.ones(line_pos.size)
    trafo_scale = cn.trafo_scale[trafo_pos]
    return Selection(
        bus_pos=bus_pos,
        bus_node=np.ascontiguousarray(cn.bus_node[bus_pos]),
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


_madvise_lock = threading.Lock()


@contextlib.contextmanager
def _no_hugepage_advice() -> Iterator[None]:
    """numpy allocations inside the block without ``madvise(MADV_HUGEPAGE)``.

    numpy advises the kernel to back every array of 4 MB or more with huge pages. Where
    transparent huge pages are defragmented on demand for advised memory (the Linux
    default ``defrag=madvise``), each first write to such a page may wait for the kernel
    to compact memory: on the benchmark machine the first write of a year's results on
    epri-ckt5 cost 0.7-0.9 ms of system time per step, 4-5× the whole solve; without the
    advice 0.03-0.05 ms. Results are written once, row by row, so huge pages buy nothing
    here. The setting is process-wide in numpy; it is switched off only while the result
    arrays are allocated (under a lock), and left alone if this numpy has no such switch.
    """
    multiarray = getattr(np, "_core", None)
    switch = getattr(getattr(multiarray, "multiarray", None), "_set_madvise_hugepage", None)
    if switch is None:
        yield
        return
    with _madvise_lock:
        previous = switch(False)
        try:
            yield
        finally:
            switch(previous)


def empty_result(cn: CompiledNetwork, n_steps: int, sel: Selection) -> FlowResult:
    """A result with uninitialised arrays for ``n_steps`` steps (see
    :func:`_no_hugepage_advice`)."""
    with _no_hugepage_advice():
        return _empty_result(cn, n_steps, sel)


def _empty_result(cn: CompiledNetwork, n_steps: int, sel: Selection) -> FlowResult:
    n_line, n_trafo = sel.line_pos.size, sel.trafo_pos.size
    return FlowResult(
        vm_pu=np.empty((n_steps, sel.bus_pos.size)),
        va_degree=np.empty((n_steps, sel.bus_pos.size)),
        line_loading_pct=np.empty((n_steps, n_line)),
        line_i_ka=np.empty((n_steps, n_line)),
        trafo_loading_pct=np.empty((n_steps, n_trafo)),
        losses_kw=np.empty(n_steps),
        converged=np.empty(n_steps, dtype=bool),
        iterations=np.empty(n_steps, dtype=np.int64),
        bus_index=cn.bus_index[sel.bus_pos],
        line_index=cn.line_index[sel.line_pos],
        trafo_index=cn.trafo_index[sel.trafo_pos],
    )


def step_rows(res: FlowResult, steps: slice) -> FlowResult:
    """Views of the rows ``steps`` of every per-step array of ``res``."""
    return FlowResult(
        **{
            f.name: getattr(res, f.name)[steps] if f.name in PER_STEP else getattr(res, f.name)
            for f in fields(FlowResult)
        }
    )


PER_STEP = frozenset(
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


def write_results(
    cn: CompiledNetwork,
    sel: Selection,
    v: ComplexArray,
    cur: ComplexArray,
    converged: BoolArray,
    iterations: IntArray,
    out: FlowResult,
) -> FlowResult:
    """Write bus, line and trafo results and losses of one chunk into ``out``.

    ``v`` is (steps, nodes), non-slack nodes first; ``cur`` the injected currents of the
    last iteration (:func:`gridplan.powerflow.iteration.iterate`).
    """
    n_l = cn.nonslack.size

    # buses
    kernels.bus_voltages(v, sel.bus_node, out.vm_pu, out.va_degree)

    # losses: Re Σ V·conj(I) over all nodes minus the bus shunts (see gridplan.powerflow.model)
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
        kernels.branch_max(v, bs.f, bs.t, bs.y, bs.scale_f, bs.scale_t, False, bs.on, out.line_i_ka)
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
        kernels.branch_max(
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
