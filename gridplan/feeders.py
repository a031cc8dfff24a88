"""Moved to :mod:`gridplan.grid.feeders`, :mod:`gridplan.grid.topology` and
:mod:`gridplan.study.overview` (this path stays importable; see CHANGELOG.md)."""

from gridplan.grid.feeders import (
    DE_HOUSEHOLD_ANNUAL_KWH,
    AssetSpec,
    Feeder,
    FeederSpec,
    HouseholdSpec,
    NetworkSpec,
    ProfileSpec,
    UpgradeSpec,
    build_feeder,
    bundled_feeders,
    load_feeder,
    peak_step,
    peak_week,
    read_feeder_spec,
    read_profile_table,
    resolve_feeder_path,
)
from gridplan.grid.topology import downstream_buses
from gridplan.study.overview import feeder_overview

__all__ = [
    "DE_HOUSEHOLD_ANNUAL_KWH",
    "AssetSpec",
    "Feeder",
    "FeederSpec",
    "HouseholdSpec",
    "NetworkSpec",
    "ProfileSpec",
    "UpgradeSpec",
    "build_feeder",
    "bundled_feeders",
    "downstream_buses",
    "feeder_overview",
    "load_feeder",
    "peak_step",
    "peak_week",
    "read_feeder_spec",
    "read_profile_table",
    "resolve_feeder_path",
]
