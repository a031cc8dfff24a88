"""The IEEE C57.91 Clause 7 transformer thermal model and the planning criteria on it.

Reference values: the aging acceleration factor against IEC 60076-7:2005 Table 2 (relative
ageing rate of thermally upgraded paper, the same Arrhenius expression as C57.91-2011
Eq. 2, printed to three figures); the C57.91 rated conditions (65 °C rise: 110 °C hot spot
at rated load over a 30 °C ambient, F_AA = 1, 0.0133 % loss of life a day against a
180 000 h life); the step response against the closed-form exponential of Clause 7.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridplan.core.errors import ConfigError
from gridplan.planning import thermal
from gridplan.planning.needs import need_flags
from gridplan.planning.thermal import (
    HOURS_PER_YEAR,
    NORMAL_INSULATION_LIFE_H,
    THERMAL_PARAMETER_NAMES,
    ThermalCriterion,
    ThermalParameters,
    aging_acceleration_factor,
    default_criteria,
    evaluate_criteria,
    evaluate_criterion,
    load_thermal_parameters,
    thermal_needs,
    thermal_response,
    ultimate_rises,
)

PARAMS = load_thermal_parameters()
POLE = PARAMS["pole_mount"]
PAD = PARAMS["pad_mount"]


def _params(**changes: float) -> ThermalParameters:
    values = {n: getattr(POLE, n) for n in THERMAL_PARAMETER_NAMES}
    values.update(changes)
    return ThermalParameters(kind="test", **values)


# --------------------------------------------------------------------------- aging
#: IEC 60076-7:2005 Table 2, relative ageing rate V of thermally upgraded paper.
IEC_TABLE_2 = {
    80: 0.036,
    86: 0.073,
    92: 0.145,
    98: 0.282,
    104: 0.536,
    110: 1.0,
    116: 1.83,
    122: 3.29,
    128: 5.8,
    134: 10.1,
    140: 17.2,
}


@pytest.mark.parametrize(("hot_spot_c", "expected"), sorted(IEC_TABLE_2.items()))
def test_aging_factor_matches_the_published_table(hot_spot_c, expected):
    faa = float(aging_acceleration_factor(hot_spot_c))
    assert faa == pytest.approx(expected, rel=0.006)


def test_aging_factor_is_one_at_110_and_doubles_about_every_six_to_seven_degrees():
    assert float(aging_acceleration_factor(110.0)) == pytest.approx(1.0, abs=1e-12)
    assert 1.8 < float(aging_acceleration_factor(116.0)) < 2.0
    assert float(aging_acceleration_factor(117.0)) == pytest.approx(2.0, rel=0.03)
    theta = np.linspace(-20, 200, 111)
    assert np.all(np.diff(aging_acceleration_factor(theta)) > 0)


# --------------------------------------------------------------------------- steady state
@pytest.mark.parametrize("params", [POLE, PAD], ids=["pole_mount", "pad_mount"])
@pytest.mark.parametrize(("step_h", "warmup_h"), [(1.0, 24.0), (0.25, 0.0), (1 / 60, 2.0)])
def test_rated_load_at_30c_gives_the_rated_rises(params, step_h, warmup_h):
    n = round(48 / step_h)
    res = thermal_response(np.ones((n, 3)), 30.0, step_h, params, warmup_h=warmup_h)
    assert np.allclose(res.top_oil_c, 30.0 + params.top_oil_rise_c)
    assert np.allclose(res.hot_spot_c, 110.0)
    assert np.allclose(res.hot_spot_c, 30.0 + params.top_oil_rise_c + params.hot_spot_rise_c)
    assert np.allclose(res.aging_factor, 1.0)
    assert np.allclose(res.equivalent_aging, 1.0)
    assert np.allclose(res.loss_of_life_h, 48.0)
    assert np.allclose(res.loss_of_life_h_per_year, HOURS_PER_YEAR)


def test_a_day_at_the_reference_hot_spot_uses_0_0133_percent_of_life():
    res = thermal_response(np.ones((24, 1)), 30.0, 1.0, POLE)
    pct_of_life = res.loss_of_life_h / NORMAL_INSULATION_LIFE_H * 100.0
    assert pct_of_life == pytest.approx([0.0133], abs=5e-5)
    assert res.loss_of_life_pct_per_year == pytest.approx([8760 / 180_000 * 100])


def test_ultimate_rises_follow_clause_7_by_hand():
    # K = 1.5, R = 5, n = m = 0.8: ((2.25·5 + 1)/6)^0.8 = 1.77010, 1.5^1.6 = 1.91310
    top, hot = ultimate_rises(np.array([[1.5]]), POLE)
    assert float(top[0, 0]) == pytest.approx(55.0 * 1.77010, abs=0.01)
    assert float(hot[0, 0]) == pytest.approx(25.0 * 1.91310, abs=0.01)
    # no load: only the no-load loss heats the oil, 55 · (1/6)^0.8; no winding gradient
    top0, hot0 = ultimate_rises(np.array([[0.0]]), POLE)
    assert float(top0[0, 0]) == pytest.approx(55.0 * (1 / 6) ** 0.8)
    assert float(hot0[0, 0]) == 0.0


# --------------------------------------------------------------------------- dynamics
@pytest.mark.parametrize("step_h", [1.0, 0.25])
def test_step_load_follows_the_closed_form_exponential(step_h):
    """From steady state at K1, a step to K2 at t = 0: Δθ(t) = U2 + (U1 − U2)·exp(−t/τ)
    for the oil (τ_TO) and the winding (τ_w), sampled at the end of each step."""
    k1, k2, ambient = 0.5, 1.5, 25.0
    n_before, n_after = round(2 / step_h), round(10 / step_h)
    load = np.r_[np.full(n_before, k1), np.full(n_after, k2)][:, None]
    res = thermal_response(load, ambient, step_h, POLE, warmup_h=0.0)
    (u1_top, u1_hot), (u2_top, u2_hot) = (
        (float(a[0, 0]) for a in ultimate_rises(np.array([[k]]), POLE)) for k in (k1, k2)
    )
    t = step_h * np.arange(1, n_after + 1)
    top = u2_top + (u1_top - u2_top) * np.exp(-t / POLE.oil_time_constant_h)
    hot = u2_hot + (u1_hot - u2_hot) * np.exp(-t / POLE.winding_time_constant_h)
    assert np.allclose(res.top_oil_c[:n_before, 0], ambient + u1_top)
    assert np.allclose(res.top_oil_c[n_before:, 0], ambient + top, atol=1e-9)
    assert np.allclose(res.hot_spot_c[n_before:, 0], ambient + top + hot, atol=1e-9)
    # one oil time constant after the step: 63.2 % of the way to the new ultimate rise
    j = round(POLE.oil_time_constant_h / step_h) - 1
    frac = (res.top_oil_c[n_before + j, 0] - ambient - u1_top) / (u2_top - u1_top)
    assert frac == pytest.approx(1 - math.exp(-1), abs=1e-9)


def test_result_does_not_depend_on_step_length_for_held_loads():
    """Temperatures are exact at step ends; aging integrates the response inside each step
    (5-min sub-steps), so hourly, 15-min and 1-min steps of one held load agree."""
    rng = np.random.default_rng(7)
    hourly = rng.uniform(0.2, 1.6, size=(72, 4))
    amb_hourly = 20 + 10 * np.sin(np.arange(72) / 24 * 2 * np.pi)
    coarse = thermal_response(hourly, amb_hourly, 1.0, POLE)
    fine = thermal_response(np.repeat(hourly, 4, axis=0), np.repeat(amb_hourly, 4), 0.25, POLE)
    minute = thermal_response(
        np.repeat(hourly, 60, axis=0), np.repeat(amb_hourly, 60), 1 / 60, POLE
    )
    assert np.allclose(coarse.top_oil_c, fine.top_oil_c[3::4])
    assert np.allclose(coarse.hot_spot_c, fine.hot_spot_c[3::4])
    assert np.allclose(coarse.hot_spot_c, minute.hot_spot_c[59::60])
    assert np.allclose(coarse.loss_of_life_h, fine.loss_of_life_h)
    assert np.allclose(coarse.loss_of_life_h, minute.loss_of_life_h, rtol=0.015)
    assert np.allclose(coarse.peak_hot_spot_c, minute.peak_hot_spot_c, atol=0.5)
    # the peak inside a step is never below the end-of-step temperatures
    assert np.all(coarse.peak_hot_spot_c >= coarse.hot_spot_c.max(axis=0))
    # one midpoint per hour is coarser, still within 5 % of the 1-min run
    crude = thermal_response(hourly, amb_hourly, 1.0, POLE, aging_substep_h=1.0)
    assert np.allclose(crude.loss_of_life_h, minute.loss_of_life_h, rtol=0.05)


def test_monotonic_in_load_and_ambient():
    rng = np.random.default_rng(3)
    load = rng.uniform(0.0, 1.2, size=(96, 5))
    ambient = rng.uniform(5, 35, size=96)
    base = thermal_response(load, ambient, 0.5, POLE)
    more = thermal_response(load * 1.1 + 0.01, ambient, 0.5, POLE)
    hotter = thermal_response(load, ambient + 3.0, 0.5, POLE)
    assert np.all(more.top_oil_c > base.top_oil_c)
    assert np.all(more.hot_spot_c > base.hot_spot_c)
    assert np.all(more.loss_of_life_h > base.loss_of_life_h)
    # the rises do not depend on the ambient: +3 °C ambient is +3 °C everywhere
    assert np.allclose(hotter.top_oil_c, base.top_oil_c + 3.0)
    assert np.allclose(hotter.hot_spot_c, base.hot_spot_c + 3.0)
    assert np.all(hotter.loss_of_life_h_per_year > base.loss_of_life_h_per_year)


def test_vectorised_equals_a_loop_over_assets():
    rng = np.random.default_rng(11)
    load = rng.uniform(0.1, 1.5, size=(200, 6))
    ambient = rng.uniform(0, 40, size=(200, 6))
    kinds = [POLE, PAD, _params(oil_time_constant_h=5.0), POLE, _params(loss_ratio=3.2), PAD]
    whole = thermal_response(load, ambient, 0.25, kinds)
    for a, p in enumerate(kinds):
        one = thermal_response(load[:, [a]], ambient[:, a], 0.25, p)
        assert np.allclose(whole.hot_spot_c[:, a], one.hot_spot_c[:, 0])
        assert np.allclose(whole.top_oil_c[:, a], one.top_oil_c[:, 0])
        assert np.allclose(whole.loss_of_life_h[a], one.loss_of_life_h[0])
        assert np.allclose(whole.equivalent_aging[a], one.equivalent_aging[0])
    # the same recursion written out step by step
    a_oil = np.exp(-0.25 / np.array([p.oil_time_constant_h for p in kinds]))
    top_u, _ = ultimate_rises(load, kinds)
    x = top_u[0].copy()
    for t in range(96):  # warm-up: the first day once
        x = top_u[t] + (x - top_u[t]) * a_oil
    for t in range(200):
        x = top_u[t] + (x - top_u[t]) * a_oil
        assert np.allclose(whole.top_oil_c[t] - ambient[t], x)


def test_warmup_runs_the_first_day_twice():
    day = np.r_[np.full(16, 0.4), np.full(5, 1.3), np.full(3, 0.6)]
    load = np.tile(day, 10)[:, None]
    warm = thermal_response(load, 20.0, 1.0, POLE)  # default: one day of warm-up
    cold = thermal_response(load, 20.0, 1.0, POLE, warmup_h=0.0)
    # steady start at the night load underestimates the first evening; the warm-up does not
    last_day = warm.top_oil_c[-24:, 0]
    assert np.max(np.abs(warm.top_oil_c[:24, 0] - last_day)) < 0.5
    assert np.max(np.abs(cold.top_oil_c[:24, 0] - last_day)) > 2.0
    # warm-up = the first day run once: its end state is the start of the period
    twice = thermal_response(np.tile(day, 11)[:, None], 20.0, 1.0, POLE, warmup_h=0.0)
    assert np.allclose(warm.top_oil_c, twice.top_oil_c[24:])
    assert np.allclose(warm.hot_spot_c, twice.hot_spot_c[24:])


def test_nan_steps_hold_the_previous_load():
    load = np.array([[0.5], [1.2], [np.nan], [np.nan], [0.8]])
    held = np.array([[0.5], [1.2], [1.2], [1.2], [0.8]])
    a = thermal_response(load, 25.0, 1.0, POLE)
    b = thermal_response(held, 25.0, 1.0, POLE)
    assert np.allclose(a.hot_spot_c, b.hot_spot_c)
    assert np.isfinite(thermal_response(np.full((3, 1), np.nan), 25.0, 1.0, POLE).hot_spot_c).all()


def test_year_weights_scale_the_loss_of_life():
    load = np.r_[np.full(24, 1.0), np.full(24, 1.3)][:, None]
    res = thermal_response(
        load, 30.0, 1.0, POLE, year_weight_h=np.r_[np.full(24, 300.0), np.full(24, 65.0)]
    )
    expected = (res.aging_factor[:, 0] * np.r_[np.full(24, 300.0), np.full(24, 65.0)]).sum()
    assert res.loss_of_life_h_per_year[0] == pytest.approx(expected)
    even = thermal_response(load, 30.0, 1.0, POLE)
    assert even.loss_of_life_h_per_year[0] == pytest.approx(even.equivalent_aging[0] * 8760)
    with pytest.raises(ConfigError, match="year_weight_h"):
        thermal_response(load, 30.0, 1.0, POLE, year_weight_h=np.ones(3))


def test_empty_period_and_bad_step():
    res = thermal_response(np.zeros((0, 2)), 20.0, 1.0, POLE)
    assert res.hot_spot_c.shape == (0, 2)
    assert np.all(res.loss_of_life_h == 0)
    with pytest.raises(ConfigError, match="step_h"):
        thermal_response(np.ones((3, 1)), 20.0, 0.0, POLE)


# --------------------------------------------------------------------------- parameters
def test_bundled_parameters_have_every_figure_with_a_source():
    assert set(PARAMS) == {"pole_mount", "pad_mount"}
    for p in PARAMS.values():
        assert p.oil_exponent == 0.8 and p.winding_exponent == 0.8  # C57.91 ONAN
        assert p.rated_hot_spot_c == pytest.approx(110.0)  # 65 °C rise insulation
        assert set(p.sources) == set(THERMAL_PARAMETER_NAMES)
        assert all(len(s) > 20 for s in p.sources.values())


def test_a_bad_parameter_table_names_the_row_and_column(tmp_path):
    good = tmp_path / "good.csv"
    text = "kind,parameter,value,unit,source,status\n" + "".join(
        f"mine,{n},{getattr(POLE, n)},x,my utility,assumption\n" for n in THERMAL_PARAMETER_NAMES
    )
    good.write_text(text)
    assert load_thermal_parameters(good)["mine"].loss_ratio == POLE.loss_ratio
    bad = tmp_path / "bad.csv"
    bad.write_text(text.replace("mine,loss_ratio,5.0", "mine,loss_ratio,-1"))
    with pytest.raises(ConfigError, match=r"row 4/value"):
        load_thermal_parameters(bad)
    bad.write_text(text.replace("my utility,assumption\n", ",assumption\n", 1))
    with pytest.raises(ConfigError, match=r"row 2/source"):
        load_thermal_parameters(bad)
    bad.write_text(text.replace("mine,oil_exponent", "mine,oil_exponnet"))
    with pytest.raises(ConfigError, match=r"oil_exponnet"):
        load_thermal_parameters(bad)
    bad.write_text("\n".join(text.splitlines()[:-1]) + "\n")
    with pytest.raises(ConfigError, match=r"lacks parameters \['hot_spot_limit_c'\]"):
        load_thermal_parameters(bad)
    with pytest.raises(ConfigError, match="finite number > 0"):
        _params(oil_time_constant_h=0.0)


# --------------------------------------------------------------------------- criteria
def test_loading_criterion_is_todays_rule():
    rng = np.random.default_rng(5)
    loading = rng.uniform(40, 130, size=(48, 7))
    loading[3, 2] = np.nan
    limit = np.full(7, 100.0)
    for unsolved in (False, True):
        res = evaluate_criterion(
            ThermalCriterion("loading", 100.0, allowed_hours=4.0),
            loading_pct=loading,
            step_h=0.5,
            unsolved_over=unsolved,
        )
        expected = need_flags(loading, limit, np.full(7, 4.0), 0.5, unsolved_over=unsolved)
        assert np.array_equal(res.need, expected)
        assert np.array_equal(res.need, res.value > 4.0 + 1e-9)
    own = evaluate_criterion(
        ThermalCriterion("loading"), loading_pct=loading, step_h=0.5, asset_limit_pct=limit + 20
    )
    assert np.all(own.limit == 120.0)
    with pytest.raises(ConfigError, match="asset_limit_pct"):
        evaluate_criterion(ThermalCriterion("loading"), loading_pct=loading, step_h=0.5)


def test_thermal_criteria_flag_by_hot_spot_and_by_loss_of_life():
    # an evening at 140 % on a 35 °C day: 1 h over nameplate
    day = np.full(24, 0.6)
    day[18] = 1.4
    load = np.column_stack([day, day * 0.8, np.full(24, 1.0)])
    res = thermal_response(load, 35.0, 1.0, POLE)
    hot = evaluate_criterion(ThermalCriterion("hot_spot", 120.0), thermal=res)
    assert np.array_equal(hot.value, res.peak_hot_spot_c)
    assert hot.need.tolist() == [True, False, False]
    lol = evaluate_criterion(ThermalCriterion("loss_of_life", 8760.0), thermal=res)
    assert np.array_equal(lol.value, res.loss_of_life_h_per_year)
    assert lol.need.tolist() == [False, False, True]  # rated load at 35 °C ages fastest
    with pytest.raises(ConfigError, match="thermal result"):
        evaluate_criterion(ThermalCriterion("hot_spot", 120.0))


def test_each_asset_by_its_own_criterion():
    rng = np.random.default_rng(9)
    loading = rng.uniform(50, 150, size=(24, 5))
    res = thermal_response(loading / 100, 30.0, 1.0, POLE)
    loading_c = ThermalCriterion("loading", 100.0, allowed_hours=2.0)
    hot_c = ThermalCriterion("hot_spot", 140.0)
    lol_c = ThermalCriterion("loss_of_life", 20_000.0)
    criteria = [loading_c, hot_c, lol_c, hot_c, loading_c]
    out = evaluate_criteria(criteria, loading_pct=loading, thermal=res, step_h=1.0)
    assert out.criterion.tolist() == ["loading", "hot_spot", "loss_of_life", "hot_spot", "loading"]
    for a, c in enumerate(criteria):
        one = evaluate_criterion(
            c,
            loading_pct=loading[:, [a]],
            thermal=None
            if c.kind == "loading"
            else thermal_response(loading[:, [a]] / 100, 30.0, 1.0, POLE),
            step_h=1.0,
        )
        assert out.need[a] == one.need[0]
        assert out.value[a] == pytest.approx(one.value[0])
        assert out.limit[a] == one.limit[0]


def test_criterion_config_is_checked_and_defaults_are_sourced():
    with pytest.raises(ConfigError, match=r"valid: \['loading', 'hot_spot', 'loss_of_life'\]"):
        ThermalCriterion("hotspot", 120.0)
    with pytest.raises(ConfigError, match="needs a limit"):
        ThermalCriterion("hot_spot")
    with pytest.raises(ConfigError, match="allowed_hours"):
        ThermalCriterion("loading", 100.0, allowed_hours=-1.0)
    defaults = default_criteria()
    assert set(defaults) == {"pole_mount", "pad_mount"}
    for kind, c in defaults.items():
        assert c.kind == "hot_spot"
        assert c.limit == PARAMS[kind].hot_spot_limit_c
        assert "C57.91" in c.source
        assert c.unit == "degC"


def test_thermal_needs_models_the_transformers_and_judges_every_asset_by_its_kind():
    rng = np.random.default_rng(21)
    loading = rng.uniform(30, 150, size=(48, 5))
    loading[7, 1] = np.nan
    ambient = 25 + 8 * np.sin(np.arange(48) / 24 * 2 * np.pi)
    kinds = ["pole_mount", "line", "pad_mount", "pole_mount", "line"]
    criteria = {
        "pole_mount": ThermalCriterion("hot_spot", 125.0, source="test"),
        "pad_mount": ThermalCriterion("loss_of_life", 8760.0),
        "line": ThermalCriterion("loading", None, allowed_hours=1.0),
    }
    limits = np.array([100.0, 90.0, 100.0, 100.0, 110.0])
    out = thermal_needs(loading, ambient, 1.0, kinds, criteria, asset_limit_pct=limits)
    assert out.thermal_columns.tolist() == [0, 2, 3]
    assert out.criteria.criterion.tolist() == [
        "hot_spot", "loading", "loss_of_life", "hot_spot", "loading",
    ]  # fmt: skip
    for pos, a in enumerate(out.thermal_columns):
        alone = thermal_response(loading[:, [a]] / 100, ambient, 1.0, PARAMS[kinds[a]])
        assert out.thermal.peak_hot_spot_c[pos] == pytest.approx(alone.peak_hot_spot_c[0])
        one = evaluate_criterion(criteria[kinds[a]], thermal=alone)
        assert out.criteria.need[a] == one.need[0]
        assert out.criteria.value[a] == pytest.approx(one.value[0])
    lines = [1, 4]
    expected = need_flags(loading[:, lines], limits[lines], np.ones(2), 1.0)
    assert np.array_equal(out.criteria.need[lines], expected)
    assert np.array_equal(out.criteria.limit[lines], limits[lines])
    with pytest.raises(ConfigError, match=r"no criterion for asset kind 'line'"):
        thermal_needs(loading, ambient, 1.0, kinds, {k: criteria[k] for k in PARAMS})
    with pytest.raises(ConfigError, match=r"needs thermal parameters"):
        thermal_needs(loading, ambient, 1.0, kinds, {**criteria, "line": criteria["pole_mount"]})
    only_lines = thermal_needs(
        loading[:, lines], ambient, 1.0, ["line", "line"], criteria, asset_limit_pct=limits[lines]
    )
    assert only_lines.thermal is None and only_lines.thermal_columns.size == 0


def test_bad_ambient_is_a_config_error():
    with pytest.raises(ConfigError, match="ambient_c"):
        thermal_response(np.ones((5, 2)), np.ones(4), 1.0, POLE)
    with pytest.raises(ConfigError, match="finite"):
        thermal_response(np.ones((3, 1)), np.array([20.0, np.nan, 20.0]), 1.0, POLE)


@settings(max_examples=40, deadline=None)
@given(
    base=st.lists(st.floats(0.0, 1.8), min_size=4, max_size=30),
    extra=st.floats(0.0, 0.5),
    ambient=st.floats(-20.0, 45.0),
    step_h=st.sampled_from([0.25, 0.5, 1.0]),
)
def test_more_load_never_runs_cooler(base, extra, ambient, step_h):
    load = np.array(base)[:, None]
    low = thermal_response(load, ambient, step_h, POLE)
    high = thermal_response(load + extra, ambient, step_h, POLE)
    assert np.all(high.top_oil_c >= low.top_oil_c - 1e-9)
    assert np.all(high.hot_spot_c >= low.hot_spot_c - 1e-9)
    assert np.all(high.loss_of_life_h >= low.loss_of_life_h * (1 - 1e-12))
    # temperatures stay between the ambient and the steady state at the period's peak load
    top_max, hot_max = ultimate_rises(np.array([[load.max()]]), POLE)
    assert np.all(low.top_oil_c >= ambient - 1e-9)
    assert np.all(low.hot_spot_c <= ambient + top_max[0, 0] + hot_max[0, 0] + 1e-9)


def test_summaries_only_and_column_chunks_give_the_same_numbers(monkeypatch):
    rng = np.random.default_rng(13)
    load = rng.uniform(0.1, 1.5, size=(60, 3, 4))  # (time, draw, asset)
    ambient = rng.uniform(0, 40, size=60)
    kinds = [POLE, PAD, _params(oil_time_constant_h=4.5), PAD]
    whole = thermal_response(load, ambient, 0.5, kinds)
    assert whole.hot_spot_c.shape == (60, 3, 4) and whole.peak_hot_spot_c.shape == (3, 4)
    lean = thermal_response(load, ambient, 0.5, kinds, keep_series=False)
    assert lean.top_oil_c is None and lean.hot_spot_c is None and lean.aging_factor is None
    monkeypatch.setattr(thermal, "_CHUNK_ELEMENTS", 100)  # one column at a time
    chunked = thermal_response(load, ambient, 0.5, kinds)
    for res in (lean, chunked):
        for name in ("equivalent_aging", "loss_of_life_h", "loss_of_life_h_per_year"):
            assert np.allclose(getattr(res, name), getattr(whole, name))
        assert np.allclose(res.peak_hot_spot_c, whole.peak_hot_spot_c)
        assert np.allclose(res.peak_top_oil_c, whole.peak_top_oil_c)
    assert np.allclose(chunked.hot_spot_c, whole.hot_spot_c)
    for d in range(3):
        one = thermal_response(load[:, d, :], ambient, 0.5, kinds)
        assert np.allclose(one.hot_spot_c, whole.hot_spot_c[:, d, :])
