"""Shared fixtures: bundled feeders are loaded once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def us_feeder():
    from gridplan.feeders import load_feeder

    return load_feeder("us-residential")


@pytest.fixture(scope="session")
def lv_feeder():
    from gridplan.feeders import load_feeder

    return load_feeder("lv-semiurban")
