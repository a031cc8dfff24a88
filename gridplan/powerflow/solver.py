"""Fast balanced AC power flow over many time steps on one network topology.

The network is compiled once from pandapower's own internal model (the ``ppc`` that
``pandapower.runpp`` builds), so switches, open lines, out-of-service elements,
transformer taps and phase shifts, shunts and ext_grid set-points mean exactly what they
mean in ``runpp``. All time steps are then solved together, in chunks of columns, by a
fixed-point (Z-bus) iteration on the non-slack buses::

    V_L = W + Z_LL · conj(S_L / V_L)      with  Z_LL = Y_LL⁻¹,  W = -Z_LL · Y_Ls · V_s

where ``S_L`` is the complex power injected at the non-slack buses and ``V_s`` the fixed
ext_grid voltages. ``Z_LL`` is applied — the usual choice, with numba — as a sweep: the
sparse LU factors of ``Y_LL`` in minimum-degree elimination order (no fill on a radial
feeder), by forward and backward substitution in one numba kernel that runs each step's
whole iteration, four steps side by side, so that the work per step grows linearly with
the feeder (:mod:`gridplan.powerflow.sweep`). The other forms: a dense matrix (one BLAS
product), SuperLU solves of the same factorisation, or block form: dense inverses of
the small blocks left when a few separator nodes are removed, plus a low-rank coupling
through those nodes. There is no Python loop over time steps: the sweep kernel takes a
whole chunk, and the other forms update every still-unconverged step of a chunk at once
in each iteration. Results are computed once per step after convergence, for all or
only the requested buses, lines and transformers;
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

Where the parts live
--------------------
This module is the public façade: it re-exports the entry points from the modules that
implement them, in the order the data flows.

:mod:`gridplan.powerflow.model`
    :func:`compile_network`: pandapower net -> :class:`CompiledNetwork` (the one module
    that reads pandapower's internal model), and :class:`UnsupportedElementError`.
:mod:`gridplan.powerflow.zll`, :mod:`gridplan.powerflow.blocks`, :mod:`gridplan.powerflow.sweep`
    ``Z_LL`` as a dense inverse, a sparse LU, in block form or as LU factors for the
    sweep kernel, and the choice for ``method="auto"``.
:mod:`gridplan.powerflow.inputs`
    The (time × element) inputs and the node injections of a chunk.
:mod:`gridplan.powerflow.iteration`
    The fixed-point iteration of a chunk (the kernels are in
    :mod:`gridplan.powerflow.kernels`).
:mod:`gridplan.powerflow.results`
    :class:`FlowResult` and the results of a chunk.
:mod:`gridplan.powerflow.solve`
    :func:`solve_timeseries` and :func:`iter_timeseries`: checks, chunks, threads.
"""

from __future__ import annotations

from gridplan.powerflow.model import CompiledNetwork, UnsupportedElementError, compile_network
from gridplan.powerflow.results import FlowResult
from gridplan.powerflow.solve import DEFAULT_CHUNK_SIZE, iter_timeseries, solve_timeseries
from gridplan.powerflow.zll import BLOCK_MAX_NODES, DENSE_MAX_BUSES, Method

__all__ = [
    "BLOCK_MAX_NODES",
    "DEFAULT_CHUNK_SIZE",
    "DENSE_MAX_BUSES",
    "CompiledNetwork",
    "FlowResult",
    "Method",
    "UnsupportedElementError",
    "compile_network",
    "iter_timeseries",
    "solve_timeseries",
]
