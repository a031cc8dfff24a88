"""grid: feeder specs, loading and builders, safe pandapower JSON, topology, geometry.

May import :mod:`gridplan.core` only.
"""

__all__: list[str] = []
