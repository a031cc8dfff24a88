"""Draws are futures (issue 19): a draw is one trajectory through the horizon.

Adopters stay adopters, enrollment persists, and the year of need is the first year of
need along each trajectory; with independent draws per year the first year of need is
biased early (the minimum over years of independent draws), which this test reproduces.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from gridplan.core.config import validate
from gridplan.ev.fleet import FleetScenario, sample_fleet
from gridplan.grid.feeders import load_feeder
from gridplan.planning.needs import year_quantile
from gridplan.study import run
from gridplan.study.config import StudyConfig

SCENARIO = {
    "adoption": {"kind": "logistic", "midpoint_year": 2033, "ceiling": 1.2, "steepness": 0.35},
    "v2g_capable_share": 0.5,
    "v2g_enrolled_share": 0.5,
}
YEARS = list(range(2026, 2041))
ADOPTION = {
    "kind": "linear",
    "start_year": 2030,
    "end_year": 2038,
    "start_value": 1.5,
    "end_value": 1.8,
}


def _keys(fleet):
    return {
        (int(p), str(v), float(a), bool(e), float(m))
        for p, v, a, e, m in zip(
            fleet.load_pos,
            fleet.vehicle,
            fleet.arrival_h[0],
            fleet.v2g_enrolled,
            fleet.trip_kwh[3],
            strict=True,
        )
    }


def test_a_trajectory_keeps_its_adopters_and_their_enrollment():
    feeder = load_feeder("lv-semiurban")
    scenario = validate(FleetScenario, SCENARIO)
    for draw in range(3):
        fleets = [
            sample_fleet(
                feeder,
                scenario,
                y,
                np.random.default_rng(np.random.SeedSequence([5, draw])),
                horizon=YEARS,
            )
            for y in YEARS
        ]
        for early, late in itertools.pairwise(fleets):
            assert early.n_ev <= late.n_ev
            assert _keys(early) <= _keys(late)  # same homes, vehicles, schedules, enrollment
        assert fleets[0].n_ev < fleets[-1].n_ev


def test_a_trajectory_year_has_the_distribution_of_a_fleet_drawn_alone():
    """Thinning keeps the count Poisson with the year's mean (mean and variance agree)."""
    feeder = load_feeder("lv-semiurban")
    scenario = validate(FleetScenario, SCENARIO)
    year = 2030
    expected = scenario.adoption_spec().evs_per_household(year) * feeder.households.sum()
    counts = np.array(
        [
            sample_fleet(feeder, scenario, year, np.random.default_rng(seed), horizon=YEARS).n_ev
            for seed in range(300)
        ]
    )
    se = np.sqrt(expected / counts.size)
    assert abs(counts.mean() - expected) < 4 * se
    assert counts.var(ddof=1) == pytest.approx(expected, rel=0.3)
    with pytest.raises(ValueError, match="not in the trajectory"):
        sample_fleet(feeder, scenario, 2050, np.random.default_rng(0), horizon=YEARS)


def _study(draws_as: str) -> StudyConfig:
    return validate(
        StudyConfig,
        {
            "name": f"futures-{draws_as}",
            "feeder": "lv-semiurban",
            "year": 2034,
            "base_year": 2026,
            "seed": 3,
            "horizon": {"start": 2030, "end": 2038, "draws": 10, "draws_as": draws_as},
            "period": {"kind": "peak_week"},
            "fleet": {"adoption": ADOPTION, "v2g_capable_share": 0.5, "v2g_enrolled_share": 0.5},
            "targeting": {"enabled": False},  # not under test here (suite time)
        },
    )


def _first_majority_year(need: np.ndarray, years: np.ndarray) -> np.ndarray:
    """Per asset, the first year in which at least half the draws have the need in that
    year itself (NaN: never)."""
    share = need.mean(axis=1)  # (year, asset)
    out = np.full(share.shape[1], np.nan)
    for a in range(share.shape[1]):
        hit = np.flatnonzero(share[:, a] >= 0.5)
        if hit.size:
            out[a] = years[hit[0]]
    return out


@pytest.fixture(scope="module")
def both():
    return run(_study("trajectories")), run(_study("independent"))


def test_year_of_need_along_trajectories_is_not_biased_early(both):
    futures, independent = both
    h = futures.horizon
    years = np.asarray(h.years)
    need = h.need[:, :, h.case("charging"), :]  # (year, draw, asset)
    assert need.any(), "the test study has no need"
    # along a trajectory the charging-case need never disappears (more EVs, more load)
    assert (need[1:] >= need[:-1]).all()
    p50 = year_quantile(h.year_of_need("charging"), 0.5, int(years[-1]))
    np.testing.assert_array_equal(p50, _first_majority_year(need, years))
    # independent draws: the P50 of the first year of need comes before the first year in
    # which half the draws need the upgrade (the bias the trajectories remove)
    hi = independent.horizon
    need_i = hi.need[:, :, hi.case("charging"), :]
    p50_i = year_quantile(hi.year_of_need("charging"), 0.5, int(years[-1]))
    majority_i = _first_majority_year(need_i, years)
    early = np.nan_to_num(p50_i, nan=9999) < np.nan_to_num(majority_i, nan=9999)
    assert early.any()
    assert (np.nan_to_num(p50_i, nan=9999) <= np.nan_to_num(majority_i, nan=9999)).all()
    assert futures.summary.to_dict()["horizon"]["draws_as"] == "trajectories"


def test_sessions_are_drawn_for_the_period_and_its_lead_days_only():
    from gridplan.ev.fleet import SESSION_LEAD_DAYS

    feeder = load_feeder("lv-semiurban")
    scenario = validate(FleetScenario, SCENARIO)
    period = feeder.time_index[
        (feeder.time_index >= "2016-07-10") & (feeder.time_index < "2016-07-17")
    ]
    full = sample_fleet(feeder, scenario, 2030, np.random.default_rng(1), horizon=YEARS)
    short = sample_fleet(
        feeder, scenario, 2030, np.random.default_rng(1), horizon=YEARS, period=period
    )
    assert len(full.days) == 366
    assert len(short.days) == 7 + SESSION_LEAD_DAYS
    assert short.days[0] == pd.Timestamp("2016-07-07")
    assert short.arrival_h.shape == (len(short.days), short.n_ev)
    # everything drawn before the sessions is the same fleet
    np.testing.assert_array_equal(short.load_pos, full.load_pos)
    np.testing.assert_array_equal(short.vehicle, full.vehicle)
    np.testing.assert_array_equal(short.v2g_enrolled, full.v2g_enrolled)
