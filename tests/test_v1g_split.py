"""V1G versus V2G (issue 19): the managed-charging part of a V2G deferral and the increment
export adds, and "V2G beyond V1G" as the baseline."""

from __future__ import annotations

import numpy as np
import pytest

from gridplan.core.config import validate
from gridplan.core.errors import ConfigError
from gridplan.study import run
from gridplan.study.config import StudyConfig


def _config(**dispatch: object) -> StudyConfig:
    return validate(
        StudyConfig,
        {
            "name": "v1g-split",
            "feeder": "lv-semiurban",
            "year": 2034,
            "seed": 3,
            "horizon": {"start": 2030, "end": 2038, "draws": 6},
            "period": {"kind": "peak_week"},
            "fleet": {
                "adoption": {
                    "kind": "linear",
                    "start_year": 2030,
                    "end_year": 2038,
                    "start_value": 2.2,
                    "end_value": 2.8,
                },
                "v2g_capable_share": 0.6,
                "v2g_enrolled_share": 0.6,
            },
            "dispatch": {"charging": "unmanaged", "v2g": "v2g_peak_shave", **dispatch},
            "targeting": {"enabled": False},  # not under test here (suite time)
        },
    )


@pytest.fixture(scope="module")
def split():
    return run(_config())


def test_v1g_case_is_the_v2g_strategy_without_export(split):
    h = split.horizon
    assert h.cases == ["base", "charging", "v1g", "v2g", "v2g_perfect"]
    assert h.strategies["v1g"] == "v2g_peak_shave"
    assert not h.export_kwh[:, :, h.case("v1g")].any()
    assert h.export_kwh[:, :, h.case("v2g")].sum() > 0
    # an asset with no enrolled EV downstream sees neither management nor export: its
    # loading moves only through the voltage at its terminals (well under 0.5 %-pt)
    none = h.enrolled_downstream == 0  # (year, draw, asset)
    for case in ("v1g", "v2g"):
        np.testing.assert_allclose(
            h.peak_loading_pct[:, :, h.case(case)][none],
            h.peak_loading_pct[:, :, h.case("charging")][none],
            atol=0.5,
        )


def test_deferral_split_and_v2g_beyond_v1g(split):
    t = split.assets
    need = t.year_of_need_charging_p50.notna()
    assert need.any(), "the test study has no need"
    for column in ("deferral_years_v2g_v1g_part", "deferral_years_v2g_export_part"):
        assert column in t.columns
    # the V1G part is the v1g case's own deferral
    np.testing.assert_array_equal(
        t.deferral_years_v2g_v1g_part.to_numpy(), t.deferral_years_v1g.to_numpy()
    )
    beyond = run(_config(baseline="v1g")).assets
    # V2G beyond V1G: the V2G deferral counts from the V1G case's year of need
    np.testing.assert_array_equal(
        beyond.deferral_years_v2g.to_numpy(), t.deferral_years_v2g_export_part.to_numpy()
    )
    with pytest.raises(ConfigError, match="v1g_case"):
        validate(StudyConfig, {"name": "x", "feeder": "lv-semiurban",
                               "dispatch": {"baseline": "v1g", "v1g_case": False}})  # fmt: skip
