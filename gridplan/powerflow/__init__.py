"""powerflow: compile a pandapower net once, solve a whole time series at once, screen steps.

May import :mod:`gridplan.grid` and :mod:`gridplan.core`. Modules, in the order of the
flow: :mod:`~gridplan.powerflow.model` (compile a net: the one module that reads
pandapower's internal model), :mod:`~gridplan.powerflow.zll`,
:mod:`~gridplan.powerflow.blocks` and :mod:`~gridplan.powerflow.sweep` (the forms of
``Z_LL``), :mod:`~gridplan.powerflow.inputs`,
:mod:`~gridplan.powerflow.iteration`, :mod:`~gridplan.powerflow.results`,
:mod:`~gridplan.powerflow.solve` (chunks and threads), :mod:`~gridplan.powerflow.kernels`
(numba), :mod:`~gridplan.powerflow.screening`; :mod:`~gridplan.powerflow.solver` is the
public façade.
"""

from gridplan.powerflow.solver import (
    CompiledNetwork,
    FlowResult,
    UnsupportedElementError,
    compile_network,
    iter_timeseries,
    solve_timeseries,
)

__all__ = [
    "CompiledNetwork",
    "FlowResult",
    "UnsupportedElementError",
    "compile_network",
    "iter_timeseries",
    "solve_timeseries",
]
