"""gridplan: feeder-by-feeder V2G deferral studies.

The data flow (see docs/architecture.md): ``feeders.load_feeder`` -> ``fleet.sample_fleet`` ->
``dispatch`` -> ``powerflow.solve_timeseries`` -> ``needs`` -> ``valuation`` -> ``study.run``.
"""

from gridplan.core.errors import ConfigError, GridplanError

__version__ = "0.1.0"

__all__ = ["ConfigError", "GridplanError", "__version__"]
