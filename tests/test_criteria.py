"""Transformer criteria in a study (issue 19): the loading rule or the C57.91 thermal model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridplan.core.config import validate
from gridplan.planning.thermal import thermal_needs
from gridplan.study import run
from gridplan.study.config import CriteriaSpec, StudyConfig
from gridplan.study.criteria import ambient_series_c, criteria_description


def _config(**criteria: object) -> StudyConfig:
    return validate(
        StudyConfig,
        {
            "name": "criteria",
            "feeder": "lv-semiurban",
            "year": 2040,
            "seed": 4,
            "horizon": {"start": 2040, "end": 2040, "draws": 2, "screening": True},
            "period": {"kind": "peak_week"},
            "fleet": {"evs_per_household": 6.0},
            "criteria": criteria,
            "targeting": {"enabled": False},  # not under test here (suite time)
        },
    )


@pytest.fixture(scope="module")
def loading_run():
    return run(_config())


def test_thermal_criterion_decides_transformer_needs(loading_run):
    h0 = loading_run.horizon
    trafo = np.asarray(loading_run.feeder.assets.kind) == "trafo"
    charging = h0.case("charging")
    assert h0.need[:, :, charging, trafo].any(), "no transformer need by loading"
    lenient = run(_config(trafo_criterion="hot_spot", hot_spot_limit_c=250.0))
    strict = run(_config(trafo_criterion="hot_spot", hot_spot_limit_c=60.0))
    assert not lenient.horizon.need[:, :, :, trafo].any()
    assert strict.horizon.need[:, :, charging, trafo].all()
    # lines keep the loading rule whatever the transformers' criterion
    np.testing.assert_array_equal(lenient.horizon.need[:, :, :, ~trafo], h0.need[:, :, :, ~trafo])
    assert "hot_spot" in lenient.summary.screening["reason"]
    assert "C57.91" in criteria_description(lenient.config.criteria)


def test_study_need_equals_the_thermal_kernel_on_the_detail_loading(loading_run):
    """The detail draw's solved loading, judged by the kernel directly, gives the study's
    transformer need for that draw (independent path: no study code in between)."""
    config = _config(trafo_criterion="hot_spot", hot_spot_limit_c=110.0)
    result = run(config)
    loading = np.asarray(result.loading_pct["charging"], dtype=float)
    trafo = np.asarray(result.feeder.assets.kind) == "trafo"
    kinds = ["pole_mount" if t else "line" for t in trafo]
    from gridplan.planning.thermal import ThermalCriterion

    out = thermal_needs(
        loading,
        30.0,
        result.feeder.step_h,
        kinds,
        {
            "pole_mount": ThermalCriterion("hot_spot", 110.0),
            "line": ThermalCriterion("loading", None),
        },
        asset_limit_pct=result.feeder.assets.limit_pct.to_numpy(),
    )
    h = result.horizon
    d = result.summary.detail_draw
    np.testing.assert_array_equal(h.need[0, d, h.case("charging"), trafo], out.criteria.need[trafo])


def test_ambient_series_follows_the_calendar_of_the_weather_file():
    spec = validate(CriteriaSpec, {"ambient": "long_beach_tmy3"})
    index = pd.date_range("2016-07-15 00:00", periods=96, freq="15min")
    series = ambient_series_c(spec, index)
    assert series.shape == (96,)
    assert np.isfinite(series).all()
    assert 10.0 < series.min() < series.max() < 45.0
    assert series[14 * 4] > series[4 * 4]  # afternoon warmer than 4 am in July
    leap = ambient_series_c(spec, pd.date_range("2016-02-29", periods=24, freq="h"))
    same = ambient_series_c(spec, pd.date_range("2017-02-28", periods=24, freq="h"))
    np.testing.assert_allclose(leap, same)
    constant = ambient_series_c(validate(CriteriaSpec, {"ambient_c": 25.0}), index)
    assert (constant == 25.0).all()
