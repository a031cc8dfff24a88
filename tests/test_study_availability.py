"""Firmness with real availability in a study (issue 19): the V2G case with opt-outs,
overrides, lost communications and derates, beside the same case with perfect response."""

from __future__ import annotations

import numpy as np
import pytest

from gridplan.core.config import validate
from gridplan.core.errors import ConfigError
from gridplan.study import run
from gridplan.study.config import StudyConfig, load_study_config


def _config(**availability: object) -> StudyConfig:
    return validate(
        StudyConfig,
        {
            "name": "availability",
            "feeder": "lv-semiurban",
            "year": 2034,
            "seed": 7,
            "horizon": {"start": 2032, "end": 2036, "draws": 4},
            "period": {"kind": "peak_week"},
            "fleet": {"evs_per_household": 4.0, "v2g_enrolled_share": 0.5},
            "dispatch": {"v2g": "v2g_peak_shave", "v1g_case": False},
            "targeting": {"enabled": False},  # not under test here (suite time)
            "availability": availability,
        },
    )


def test_v2g_with_and_without_availability_effects():
    published = run(_config())
    h = published.horizon
    assert h.cases == ["base", "charging", "v2g", "v2g_perfect"]
    perfect = run(_config(preset="perfect")).horizon
    assert perfect.cases == ["base", "charging", "v2g"]  # nothing to compare with
    # the perfect case of the published study is the V2G case of a perfect study
    for name in ("peak_loading_pct", "export_kwh", "need"):
        a = getattr(h, name)[:, :, h.case("v2g_perfect")]
        b = getattr(perfect, name)[:, :, perfect.case("v2g")]
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), atol=1e-9)
    # and the effects change the dispatch
    assert not np.allclose(
        h.export_kwh[:, :, h.case("v2g")], h.export_kwh[:, :, h.case("v2g_perfect")]
    )
    t = published.assets
    assert {"deferral_years_v2g", "deferral_years_v2g_perfect", "firmness_v2g_perfect_end"} <= set(
        t.columns
    )


def test_availability_section_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="availability"):
        _config(derate_mean=0.5, derate_sd=0.5)
    with pytest.raises(ConfigError, match=r"availability\.preset"):
        _config(preset="optimistic")
    study = tmp_path / "s.toml"
    study.write_text(
        'name = "s"\nfeeder = "lv-semiurban"\n[availability]\nopt_out_probability = 0.2\n',
        encoding="utf-8",
    )
    config = load_study_config(study)
    assert config.availability.parameters().opt_out_probability == 0.2
    assert config.availability.perfect_case
