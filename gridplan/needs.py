"""Moved to :mod:`gridplan.planning.needs` (this path stays importable; see CHANGELOG.md)."""

from gridplan.planning.needs import (
    asset_loading_pct,
    asset_metrics,
    characterize_need,
    choose_upgrades,
    deferral_requirement,
    excess_kva,
    first_year,
    need_flags,
    need_probability,
    year_quantile,
)

__all__ = [
    "asset_loading_pct",
    "asset_metrics",
    "characterize_need",
    "choose_upgrades",
    "deferral_requirement",
    "excess_kva",
    "first_year",
    "need_flags",
    "need_probability",
    "year_quantile",
]
