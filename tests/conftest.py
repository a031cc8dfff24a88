"""Shared fixtures: bundled feeders are loaded once per test session."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

os.environ.setdefault("MPLBACKEND", "Agg")

# The default run is deterministic: a landed commit never fails CI at random. Exploration
# with fresh random examples is opt-in (GRIDPLAN_HYPOTHESIS_PROFILE=explore); each failure
# it finds becomes an explicit @example.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("GRIDPLAN_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def us_feeder():
    """The US residential feeder on California shapes (``ca-residential``; ``us-residential``
    is its deprecated second name, same network and profiles)."""
    from gridplan.grid.feeders import load_feeder

    return load_feeder("ca-residential")


@pytest.fixture(scope="session")
def lv_feeder():
    from gridplan.grid.feeders import load_feeder

    return load_feeder("lv-semiurban")
