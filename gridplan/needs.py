"""Moved to :mod:`gridplan.planning.needs`, :mod:`gridplan.planning.upgrades` and
:mod:`gridplan.planning.deferral` (this path stays importable; see CHANGELOG.md)."""

from gridplan.planning.deferral import deferral_per_draw, deferral_rank
from gridplan.planning.needs import (
    MonitoredAssets,
    asset_loading_pct,
    asset_metrics,
    characterize_need,
    deferral_requirement,
    excess_kva,
    first_year,
    need_flags,
    need_probability,
    year_quantile,
)
from gridplan.planning.upgrades import choose_upgrades

__all__ = [
    "MonitoredAssets",
    "asset_loading_pct",
    "asset_metrics",
    "characterize_need",
    "choose_upgrades",
    "deferral_per_draw",
    "deferral_rank",
    "deferral_requirement",
    "excess_kva",
    "first_year",
    "need_flags",
    "need_probability",
    "year_quantile",
]
