"""powerflow: compile a pandapower net once, solve a whole time series at once, screen steps.

May import :mod:`gridplan.grid` and :mod:`gridplan.core`. pandapower's internal model is
read in :mod:`gridplan.powerflow.solver` only.
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
