"""A study never holds (time × every bus) for a big feeder (issue 21): the power flows of a
study without screening are solved chunk by chunk and reduced before the next chunk. The
reduced figures equal those of one whole solve."""

from __future__ import annotations

import numpy as np

from gridplan.core.config import validate
from gridplan.grid.feeders import load_feeder
from gridplan.powerflow import solve_timeseries
from gridplan.powerflow.solve import DEFAULT_CHUNK_SIZE
from gridplan.study import run
from gridplan.study.config import StudyConfig, period_slice


def test_chunked_bus_minimum_equals_one_whole_solve():
    config = validate(
        StudyConfig,
        {
            "name": "chunks",
            "feeder": "ca-residential",
            "year": 2026,
            "base_year": 2026,
            "seed": 1,
            "horizon": {"start": 2026, "end": 2026, "draws": 1},
            "fleet": {"evs_per_household": 0.5},
            "dispatch": {"v1g_case": False},
            "availability": {"preset": "perfect"},
            "targeting": {"enabled": False},
        },
    )
    result = run(config)
    feeder = load_feeder("ca-residential")
    steps = period_slice(feeder, config.period)
    assert steps.stop - steps.start > DEFAULT_CHUNK_SIZE  # the study solved several chunks
    assert not result.summary.screening.get("enabled", False)
    factor = config.load_growth.factor(2026, 2026, feeder.growth_rate)
    whole = solve_timeseries(
        feeder.net,
        feeder.load_p_kw[steps] * factor,
        load_q_kvar=feeder.load_q_kvar[steps] * factor,
        sgen_p_kw=feeder.sgen_p_kw[steps],
    )
    np.testing.assert_allclose(
        result.bus_min_vm_pu["base"], np.nanmin(whole.vm_pu, axis=0), atol=1e-9
    )
