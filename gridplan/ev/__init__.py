"""ev: EV fleets (catalogs, zones, sampling), event calendars and rates, dispatch strategies.

May import :mod:`gridplan.grid` and :mod:`gridplan.core`.
"""

__all__: list[str] = []
