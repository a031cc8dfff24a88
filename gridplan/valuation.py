"""Moved to :mod:`gridplan.planning.valuation` (deferral value),
:mod:`gridplan.planning.upgrades` and :mod:`gridplan.grid.catalog` (upgrades and their cost
catalog), :mod:`gridplan.planning.economics` (program economics) and
:mod:`gridplan.planning.sensitivity` (tornado). This path stays importable; see CHANGELOG.md.
"""

from gridplan.grid.catalog import CATALOG_COLUMNS, load_upgrade_catalog
from gridplan.planning.economics import (
    DEFAULT_V2G_ROUNDTRIP_EFFICIENCY,
    ELRP_MAX_EVENT_HOURS_PER_YR,
    ProgramCosts,
    ProgramEconomics,
    annuity_factor,
    program_economics,
)
from gridplan.planning.sensitivity import TORNADO_COLUMNS, tornado
from gridplan.planning.upgrades import (
    TransformerSelection,
    select_transformer_upgrade,
    upgrade_cost_usd,
)
from gridplan.planning.valuation import (
    annual_deferral_value_usd,
    capacity_value_usd_per_kw_yr,
    deferral_value_usd,
    present_worth_of_shift_usd,
    recc,
    value_per_enrolled_ev_usd_yr,
)

__all__ = [
    "CATALOG_COLUMNS",
    "DEFAULT_V2G_ROUNDTRIP_EFFICIENCY",
    "ELRP_MAX_EVENT_HOURS_PER_YR",
    "TORNADO_COLUMNS",
    "ProgramCosts",
    "ProgramEconomics",
    "TransformerSelection",
    "annual_deferral_value_usd",
    "annuity_factor",
    "capacity_value_usd_per_kw_yr",
    "deferral_value_usd",
    "load_upgrade_catalog",
    "present_worth_of_shift_usd",
    "program_economics",
    "recc",
    "select_transformer_upgrade",
    "tornado",
    "upgrade_cost_usd",
    "value_per_enrolled_ev_usd_yr",
]
