"""planning: needs (criteria), deferral statistics and firmness, upgrades and their costs,
valuation and program economics. Pure functions on arrays and small dataclasses.

May import :mod:`gridplan.powerflow`, :mod:`gridplan.ev`, :mod:`gridplan.grid` and
:mod:`gridplan.core`.
"""

__all__: list[str] = []
