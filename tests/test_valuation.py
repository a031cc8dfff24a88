"""Tests of gridplan.planning (valuation, upgrades, economics, sensitivity): closed forms,
definitions, hand-worked cases, bad input."""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Literal

import numpy as np
import pandas as pd
import pytest

from gridplan.core.errors import ConfigError
from gridplan.grid.catalog import CATALOG_COLUMNS, load_upgrade_catalog
from gridplan.planning.economics import (
    DEFAULT_V2G_ROUNDTRIP_EFFICIENCY,
    ProgramCosts,
    program_economics,
)
from gridplan.planning.sensitivity import TORNADO_COLUMNS, tornado
from gridplan.planning.upgrades import select_transformer_upgrade, upgrade_cost_usd
from gridplan.planning.valuation import (
    annual_deferral_value_usd,
    capacity_value_usd_per_kw_yr,
    deferral_value_usd,
    present_worth_of_shift_usd,
    recc,
    value_per_enrolled_ev_usd_yr,
)

FT_PER_KM = 1000.0 / 0.3048
Timing = Literal["end", "begin"]

# --------------------------------------------------------------------------------------------
# deferral_value_usd
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("r", "i"), [(0.07, 0.02), (0.05, 0.0), (0.10, 0.03), (0.04, 0.06)])
def test_one_year_closed_form(r: float, i: float) -> None:
    cost = 1_000_000.0
    assert deferral_value_usd(cost, 1, r, i) == pytest.approx(cost * (r - i) / (1 + r), rel=1e-12)


def test_hand_value_three_years() -> None:
    # C = 100,000, r = 8 %, i = 3 %, n = 3: q = 1.03/1.08 = 0.9537037, q^3 = 0.8674419,
    # PV = 100,000 * (1 - 0.8674419) = 13,255.81
    expected = 100_000 * (1 - (1.03 / 1.08) ** 3)
    assert expected == pytest.approx(13_255.81, abs=0.01)
    assert deferral_value_usd(100_000, 3, 0.08, 0.03) == pytest.approx(expected, rel=1e-12)


def test_zero_years_is_zero() -> None:
    assert deferral_value_usd(5e5, 0, 0.07, 0.02) == 0.0
    assert deferral_value_usd(5e5, 0.0, 0.02, 0.07) == 0.0


def test_non_integer_years() -> None:
    value = deferral_value_usd(1000.0, 2.5, 0.07, 0.02)
    assert value == pytest.approx(1000.0 * (1 - (1.02 / 1.07) ** 2.5), rel=1e-12)
    assert (
        deferral_value_usd(1000.0, 2, 0.07, 0.02) < value < deferral_value_usd(1000, 3, 0.07, 0.02)
    )


def test_monotone_and_bounded_when_r_above_i() -> None:
    years = np.linspace(0.0, 200.0, 801)
    values = deferral_value_usd(1000.0, years, 0.07, 0.02)
    assert isinstance(values, np.ndarray)
    assert np.all(np.diff(values) > 0)
    assert np.all(values >= 0) and np.all(values < 1000.0)
    assert values[-1] == pytest.approx(1000.0, rel=1e-3)  # tends to C as n -> infinity


def test_negative_when_escalation_exceeds_discount() -> None:
    value = deferral_value_usd(1000.0, 5, 0.04, 0.06)
    assert value < 0
    assert value == pytest.approx(1000.0 * (1 - (1.06 / 1.04) ** 5), rel=1e-12)


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.07, 0.1234567])
def test_equal_rates_give_exactly_zero(rate: float) -> None:
    value = deferral_value_usd(1e6, 7.3, rate, rate)
    assert value == 0.0
    assert math.copysign(1.0, value) == 1.0  # +0.0, not -0.0


def test_near_equal_rates_are_continuous() -> None:
    value = deferral_value_usd(1e6, 10, 0.07, 0.07 + 1e-9)
    # first order: C * n * (r - i)/(1 + r)
    assert value == pytest.approx(-1e6 * 10 * 1e-9 / 1.07, rel=1e-5)


def test_matches_sum_of_recc_payments_for_long_life() -> None:
    # Deferring n years saves n years of carrying charges C(r - i)(1 + i)^(k-1) at t = k.
    cost, r, i, n = 250_000.0, 0.07, 0.025, 6
    charge = annual_deferral_value_usd(cost, r, i, 1e6)
    assert charge == pytest.approx(cost * (r - i), rel=1e-12)
    pv = sum(charge * (1 + i) ** (k - 1) / (1 + r) ** k for k in range(1, n + 1))
    assert deferral_value_usd(cost, n, r, i) == pytest.approx(pv, rel=1e-12)


def test_scalar_inputs_return_float_and_arrays_broadcast() -> None:
    assert type(deferral_value_usd(1.0, 1, 0.07, 0.02)) is float
    assert type(deferral_value_usd(np.float64(1.0), np.int64(1), 0.07, 0.02)) is float
    assert type(deferral_value_usd(np.array(1.0), 1, 0.07, 0.02)) is float
    one = deferral_value_usd([1.0], 1, 0.07, 0.02)
    assert isinstance(one, np.ndarray) and one.shape == (1,)

    costs = np.array([[1e5], [2e5], [3e5]])  # (3, 1)
    years = np.array([0.0, 1.0, 2.0, 3.0])  # (4,)
    out = np.asarray(deferral_value_usd(costs, years, 0.07, 0.02))
    assert out.shape == (3, 4)
    assert out[2, 3] == pytest.approx(3e5 * (1 - (1.02 / 1.07) ** 3), rel=1e-12)
    assert np.all(out[:, 0] == 0)

    rates = np.array([0.05, 0.07, 0.09])[:, None, None]  # (3, 1, 1) draws of r
    out3 = np.asarray(
        deferral_value_usd(1e5, years, rates, np.array([0.02, 0.07]).reshape(1, 2, 1))
    )
    assert out3.shape == (3, 2, 4)
    assert np.all(out3[1, 1] == 0)  # r == i == 0.07


def test_shapes_that_do_not_broadcast_raise() -> None:
    with pytest.raises(ConfigError, match="broadcast"):
        deferral_value_usd(np.ones(3), np.ones(4), 0.07, 0.02)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((1e5, 1, -1.0, 0.02), "discount_rate"),
        ((1e5, 1, -1.5, 0.02), "discount_rate"),
        ((1e5, 1, 0.07, -1.0), "escalation_rate"),
        ((-1.0, 1, 0.07, 0.02), "cost_usd"),
        ((1e5, -0.5, 0.07, 0.02), "deferral_years"),
        ((float("nan"), 1, 0.07, 0.02), "cost_usd"),
        ((1e5, float("nan"), 0.07, 0.02), "deferral_years"),
        ((1e5, 1, float("nan"), 0.02), "discount_rate"),
        ((1e5, 1, 0.07, np.array([0.02, np.nan])), "escalation_rate"),
        ((1e5, 1, 0.07, np.inf), "escalation_rate"),
        ((1e5, "three", 0.07, 0.02), "deferral_years"),
    ],
)
def test_deferral_bad_inputs_raise(args: tuple, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        deferral_value_usd(*args)
    assert info.value.field == field
    assert field in str(info.value)


def test_bad_value_inside_array_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"-2\.0"):
        deferral_value_usd(1e5, np.array([1.0, -2.0, 3.0]), 0.07, 0.02)


# --------------------------------------------------------------------------------------------
# present_worth_of_shift_usd
# --------------------------------------------------------------------------------------------


def test_shift_from_base_year_equals_deferral() -> None:
    for n in (0.0, 1.0, 2.5, 10.0):
        assert present_worth_of_shift_usd(1e5, 0, n, 0.07, 0.02) == pytest.approx(
            deferral_value_usd(1e5, n, 0.07, 0.02), rel=1e-12, abs=1e-9
        )


def test_shift_hand_value_and_additivity() -> None:
    q = 1.02 / 1.07
    value = present_worth_of_shift_usd(1e5, 4, 7, 0.07, 0.02)
    assert value == pytest.approx(1e5 * (q**4 - q**7), rel=1e-12)
    # the need in year 4, deferred 3 years, is the 3-year deferral discounted by q^4
    assert value == pytest.approx(q**4 * deferral_value_usd(1e5, 3, 0.07, 0.02), rel=1e-12)
    split = present_worth_of_shift_usd(1e5, 4, 5, 0.07, 0.02) + present_worth_of_shift_usd(
        1e5, 5, 7, 0.07, 0.02
    )
    assert value == pytest.approx(split, rel=1e-12)
    assert present_worth_of_shift_usd(1e5, 7, 4, 0.07, 0.02) == pytest.approx(-value, rel=1e-12)
    assert present_worth_of_shift_usd(1e5, 3, 8, 0.05, 0.05) == 0.0


def test_shift_broadcasts_and_validates() -> None:
    out = present_worth_of_shift_usd(1e5, np.array([0.0, 2.0]), np.array([[3.0], [5.0]]), 0.07, 0.0)
    assert isinstance(out, np.ndarray)
    assert out.shape == (2, 2)
    with pytest.raises(ConfigError, match="year_from"):
        present_worth_of_shift_usd(1e5, -1, 3, 0.07, 0.02)
    with pytest.raises(ConfigError, match="year_to"):
        present_worth_of_shift_usd(1e5, 1, float("nan"), 0.07, 0.02)


# --------------------------------------------------------------------------------------------
# recc and annual values
# --------------------------------------------------------------------------------------------


def _pv_of_charges(rate: float, r: float, i: float, life: int, timing: Timing) -> float:
    """Present value at r of RECC·(1 + i)^(k−1) for k = 1..L (per dollar invested)."""
    shift = 0 if timing == "end" else 1
    return sum(rate * (1 + i) ** (k - 1) / (1 + r) ** (k - shift) for k in range(1, life + 1))


@pytest.mark.parametrize("timing", ["end", "begin"])
@pytest.mark.parametrize(
    ("r", "i", "life"),
    [(0.07, 0.02, 30), (0.0687, 0.021, 40), (0.05, 0.05, 25), (0.04, 0.06, 20), (0.1, 0.0, 1)],
)
def test_recc_matches_its_definition(r: float, i: float, life: int, timing: Timing) -> None:
    rate = recc(r, i, life, timing)
    assert _pv_of_charges(rate, r, i, life, timing) == pytest.approx(1.0, rel=1e-12)


def test_recc_closed_forms_and_equal_rate_limits() -> None:
    q = 1.02 / 1.07
    assert recc(0.07, 0.02, 30) == pytest.approx(0.05 / (1 - q**30), rel=1e-12)
    assert recc(0.07, 0.02, 30, "begin") == pytest.approx(0.05 / (1 - q**30) / 1.07, rel=1e-12)
    # r == i: end-of-year (1 + r)/L, beginning-of-year 1/L
    assert recc(0.07, 0.07, 30) == pytest.approx(1.07 / 30, rel=1e-15)
    assert recc(0.07, 0.07, 30, "begin") == pytest.approx(1 / 30, rel=1e-15)
    assert recc(0.0, 0.0, 10) == pytest.approx(0.1, rel=1e-15)


@pytest.mark.parametrize("timing", ["end", "begin"])
@pytest.mark.parametrize("eps", [1e-9, -1e-9, 1e-12])
def test_recc_continuous_across_equal_rates(timing: Timing, eps: float) -> None:
    at = recc(0.07, 0.07, 30, timing)
    near = recc(0.07, 0.07 + eps, 30, timing)
    assert near == pytest.approx(at, rel=1e-6)


def test_recc_long_life_tends_to_one_year_deferral() -> None:
    cost, r, i = 1e6, 0.07, 0.02
    one_year = deferral_value_usd(cost, 1, r, i)
    assert annual_deferral_value_usd(cost, r, i, 1e5) / (1 + r) == pytest.approx(one_year)
    assert annual_deferral_value_usd(cost, r, i, 1e5, "begin") == pytest.approx(one_year)


def test_recc_broadcasts_and_validates() -> None:
    out = recc(np.array([0.05, 0.07]), 0.02, np.array([[10.0], [20.0], [30.0]]))
    assert isinstance(out, np.ndarray) and out.shape == (3, 2)
    mixed = np.asarray(recc(np.array([0.05, 0.07, 0.09]), 0.07, 30))
    assert mixed[1] == pytest.approx(1.07 / 30)
    assert np.all(np.isfinite(mixed))
    assert type(recc(0.07, 0.02, 30)) is float
    with pytest.raises(ConfigError, match="timing"):
        recc(0.07, 0.02, 30, "middle")  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="life_years"):
        recc(0.07, 0.02, 0)
    with pytest.raises(ConfigError, match="discount_rate"):
        recc(-1.0, 0.02, 30)


def test_annual_deferral_value() -> None:
    value = annual_deferral_value_usd(69_600.0, 0.0687, 0.021, 40)
    assert value == pytest.approx(69_600.0 * recc(0.0687, 0.021, 40), rel=1e-12)
    arr = np.asarray(annual_deferral_value_usd(np.array([1e5, 2e5]), 0.07, 0.02, 30))
    assert arr.shape == (2,)
    assert arr[1] == pytest.approx(2 * arr[0])
    with pytest.raises(ConfigError, match="cost_usd"):
        annual_deferral_value_usd(-5.0, 0.07, 0.02, 30)


def test_capacity_and_per_ev_values() -> None:
    assert capacity_value_usd_per_kw_yr(5_703.0, 100.0) == pytest.approx(57.03)
    assert value_per_enrolled_ev_usd_yr(12_000.0, 10) == pytest.approx(1_200.0)
    assert value_per_enrolled_ev_usd_yr(-300.0, 3) == pytest.approx(-100.0)
    # zero capacity / no EVs: undefined -> NaN (documented), not inf and not an error
    assert math.isnan(capacity_value_usd_per_kw_yr(5_000.0, 0.0))
    assert math.isnan(value_per_enrolled_ev_usd_yr(0.0, 0))
    arr = capacity_value_usd_per_kw_yr(np.array([100.0, 200.0, 300.0]), np.array([10.0, 0.0, 30.0]))
    np.testing.assert_array_equal(arr, [10.0, np.nan, 10.0])
    with pytest.raises(ConfigError, match="capacity_kw"):
        capacity_value_usd_per_kw_yr(100.0, -1.0)
    with pytest.raises(ConfigError, match="n_enrolled"):
        value_per_enrolled_ev_usd_yr(100.0, -2)
    with pytest.raises(ConfigError, match="annual_value_usd"):
        value_per_enrolled_ev_usd_yr(float("nan"), 2)


# --------------------------------------------------------------------------------------------
# Upgrade cost catalog
# --------------------------------------------------------------------------------------------


def test_bundled_catalog_loads_and_is_valid() -> None:
    cat = load_upgrade_catalog()
    assert list(cat.columns[: len(CATALOG_COLUMNS)]) == list(CATALOG_COLUMNS)
    assert cat["upgrade_id"].is_unique
    assert (cat["cost_usd"] >= 0).all()
    assert set(cat["unit"]) == {"each", "per_km"}
    assert (cat["source"].str.len() > 0).all()
    by_id = cat.set_index("upgrade_id")
    # spot checks against Horowitz et al. 2019 (DOI 10.7799/1491263)
    assert by_id.loc["xfmr_3ph_pge_750kva", "cost_usd"] == 69_600
    assert by_id.loc["xfmr_3ph_pge_750kva", "dollar_year"] == 2016
    assert by_id.loc["xfmr_3ph_sce_2500kva", "cost_usd"] == 173_000
    assert by_id.loc["xfmr_3ph_sdge_150kva", "cost_usd"] == 51_000
    assert by_id.loc["xfmr_1ph_aps_50kva", "cost_usd"] == 4_178
    assert by_id.loc["xfmr_1ph_aps_50kva", "dollar_year"] == 2017
    assert by_id.loc["xfmr_3ph_aps_750kva", "cost_usd"] == 25_603
    n_xfmr = (cat["kind"] == "transformer").sum()
    assert n_xfmr == 5 + 6 + 7 + 4 + 2
    # PG&E Unit Cost Guide 2023, per ft converted to per km
    assert by_id.loc["line_oh_pge_2023_low", "cost_usd"] == pytest.approx(165 * FT_PER_KM, abs=0.01)
    assert by_id.loc["line_oh_pge_2023_high", "cost_usd"] == pytest.approx(
        227 * FT_PER_KM, abs=0.01
    )
    assert by_id.loc["line_ug_pge_2023", "cost_usd"] == pytest.approx(268 * FT_PER_KM, abs=0.01)
    assert by_id.loc["line_oh_pge_2023", "unit"] == "per_km"
    # NREL DISCO: per m -> per km, no dollar year stated
    assert by_id.loc["reconductor_oh_445a_disco", "cost_usd"] == 919_000
    assert by_id.loc["reconductor_oh_445a_disco", "ampacity_a"] == 445
    assert pd.isna(by_id.loc["reconductor_oh_960a_disco", "dollar_year"])


def test_catalog_copy_is_independent() -> None:
    cat = load_upgrade_catalog()
    cat.loc[0, "cost_usd"] = -1.0
    assert load_upgrade_catalog().loc[0, "cost_usd"] >= 0


def test_escalation_arithmetic() -> None:
    cost = upgrade_cost_usd("xfmr_3ph_pge_750kva", dollar_year=2026, escalation_rate=0.03)
    assert cost == pytest.approx(69_600 * 1.03**10, rel=1e-12)
    assert upgrade_cost_usd(
        "xfmr_3ph_pge_750kva", dollar_year=2016, escalation_rate=0.03
    ) == pytest.approx(69_600)
    back = upgrade_cost_usd("xfmr_1ph_aps_25kva", dollar_year=2015, escalation_rate=0.02)
    assert back == pytest.approx(3_853 / 1.02**2, rel=1e-12)
    line = upgrade_cost_usd(
        "line_ug_pge_2023", dollar_year=2025, escalation_rate=0.04, length_km=1.5
    )
    assert line == pytest.approx(268 * FT_PER_KM * 1.5 * 1.04**2, rel=1e-6)
    disco = upgrade_cost_usd(
        "reconductor_oh_445a_disco",
        dollar_year=2025,
        escalation_rate=0.03,
        length_km=2.0,
        assumed_dollar_year=2020,
    )
    assert disco == pytest.approx(919_000 * 2.0 * 1.03**5, rel=1e-12)


def test_upgrade_cost_argument_errors() -> None:
    with pytest.raises(ConfigError, match="length_km"):
        upgrade_cost_usd("line_oh_pge_2023", dollar_year=2025, escalation_rate=0.03)
    with pytest.raises(ConfigError, match="length_km"):
        upgrade_cost_usd(
            "xfmr_3ph_pge_750kva", dollar_year=2025, escalation_rate=0.03, length_km=1.0
        )
    with pytest.raises(ConfigError, match="assumed_dollar_year"):
        upgrade_cost_usd(
            "reconductor_ug_445a_disco", dollar_year=2025, escalation_rate=0.03, length_km=1.0
        )
    with pytest.raises(ConfigError, match="escalation_rate"):
        upgrade_cost_usd("xfmr_3ph_pge_750kva", dollar_year=2025, escalation_rate=-1.0)
    with pytest.raises(ConfigError, match="dollar_year"):
        upgrade_cost_usd("xfmr_3ph_pge_750kva", dollar_year=2025.5, escalation_rate=0.03)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="length_km"):
        upgrade_cost_usd("line_oh_pge_2023", dollar_year=2025, escalation_rate=0.03, length_km=-2.0)


def test_unknown_id_suggests_closest() -> None:
    with pytest.raises(ConfigError) as info:
        upgrade_cost_usd("xfmr_3ph_pge_750kv", dollar_year=2025, escalation_rate=0.03)
    message = str(info.value)
    assert "did you mean" in message
    assert "'xfmr_3ph_pge_750kva'" in message
    assert info.value.field == "upgrade_id"
    with pytest.raises(ConfigError, match="did you mean 'line_oh_pge_2023'"):
        upgrade_cost_usd("line_oh_pge_2032", dollar_year=2025, escalation_rate=0.0, length_km=1)


def _write_catalog(tmp_path, rows: list[dict]) -> str:
    path = tmp_path / "costs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _row(**overrides) -> dict:
    row = {
        "upgrade_id": "xfmr_test_100kva",
        "kind": "transformer",
        "description": "test",
        "rating_kva": 100,
        "ampacity_a": "",
        "unit": "each",
        "cost_usd": 1000,
        "dollar_year": 2020,
        "source": "test fixture",
        "utility": "pge",
        "phases": 3,
    }
    row.update(overrides)
    return row


def test_custom_catalog_file_and_dataframe(tmp_path) -> None:
    path = _write_catalog(tmp_path, [_row(), _row(upgrade_id="xfmr_test_200kva", rating_kva=200)])
    cat = load_upgrade_catalog(path)
    assert len(cat) == 2
    assert upgrade_cost_usd(
        "xfmr_test_200kva", dollar_year=2021, escalation_rate=0.1, catalog=cat
    ) == pytest.approx(1100.0)
    assert select_transformer_upgrade(150, catalog=cat).upgrade_id == "xfmr_test_200kva"


@pytest.mark.parametrize(
    ("rows", "field", "text"),
    [
        ([_row(cost_usd=-5)], "row 2/cost_usd", "xfmr_test_100kva"),
        ([_row(), _row(upgrade_id="b", cost_usd="")], "row 3/cost_usd", "expected a number"),
        ([_row(), _row(upgrade_id="b", cost_usd="cheap")], "row 3/cost_usd", "cheap"),
        ([_row(), _row()], "row 3/upgrade_id", "duplicate"),
        ([_row(unit="per_mile")], "row 2/unit", "per_km"),
        ([_row(kind="fuse")], "row 2/kind", "transformer"),
        ([_row(rating_kva="")], "row 2/rating_kva", "kVA"),
        ([_row(dollar_year=16)], "row 2/dollar_year", "year"),
        ([_row(source="")], "row 2/source", "source"),
    ],
)
def test_bad_catalog_rows_name_file_row_and_column(
    tmp_path, rows: list[dict], field: str, text: str
) -> None:
    path = _write_catalog(tmp_path, rows)
    with pytest.raises(ConfigError) as info:
        load_upgrade_catalog(path)
    assert info.value.file == path
    assert info.value.field == field
    assert text in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_catalog_missing_column_and_file(tmp_path) -> None:
    rows = [{k: v for k, v in _row().items() if k != "dollar_year"}]
    path = _write_catalog(tmp_path, rows)
    with pytest.raises(ConfigError, match="dollar_year") as info:
        load_upgrade_catalog(path)
    assert info.value.field == "columns"
    with pytest.raises(ConfigError, match="not found"):
        load_upgrade_catalog(tmp_path / "nope.csv")


def test_bad_catalog_dataframe_is_rejected() -> None:
    cat = load_upgrade_catalog()
    cat.loc[3, "cost_usd"] = -1.0
    with pytest.raises(ConfigError, match="cost_usd"):
        upgrade_cost_usd("xfmr_3ph_pge_150kva", dollar_year=2025, escalation_rate=0.0, catalog=cat)


def test_select_transformer_upgrade() -> None:
    pick = select_transformer_upgrade(600.0)
    assert pick.found and pick.upgrade_id == "xfmr_3ph_pge_750kva" and not pick.is_fallback
    assert pick.cost_usd == 69_600 and pick.dollar_year == 2016
    assert select_transformer_upgrade(750.0).upgrade_id == "xfmr_3ph_pge_750kva"  # >= is enough
    assert select_transformer_upgrade(0.0).upgrade_id == "xfmr_3ph_pge_150kva"
    assert select_transformer_upgrade(200, utility="SCE").upgrade_id == "xfmr_3ph_sce_300kva"
    assert select_transformer_upgrade(100, utility="sce").upgrade_id == "xfmr_3ph_sce_300kva"
    # PG&E's set stops at 1,000 kVA: fall back to the others, smallest rating first
    big = select_transformer_upgrade(1200.0)
    assert big.found and big.is_fallback and big.rating_kva == 1500
    assert big.upgrade_id == "xfmr_3ph_sce_1500kva"  # sce before sdge in catalog order
    assert "fell back" in big.message
    assert select_transformer_upgrade(1200.0, utility="sdge").upgrade_id == "xfmr_3ph_sdge_1500kva"
    # single-phase: only APS has them
    one = select_transformer_upgrade(60.0, phases=1)
    assert one.upgrade_id == "xfmr_1ph_aps_75kva" and one.is_fallback


def test_select_transformer_none_big_enough() -> None:
    pick = select_transformer_upgrade(3000.0)
    assert not pick.found
    assert pick.upgrade_id is None and math.isnan(pick.cost_usd)
    assert pick.largest_kva == 2500
    assert "3000" in pick.message and "2500" in pick.message


def test_select_transformer_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="pge"):
        select_transformer_upgrade(500, utility="ladwp")
    with pytest.raises(ConfigError, match="required_kva"):
        select_transformer_upgrade(-1.0)
    with pytest.raises(ConfigError, match="phases"):
        select_transformer_upgrade(100, phases=2)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Program economics
# --------------------------------------------------------------------------------------------


def _hand_case(**cost_overrides) -> tuple[ProgramCosts, dict]:
    prices = {
        "charging_energy_price_usd_per_kwh": 0.30,
        "performance_payment_usd_per_kwh": 0.10,
        "capacity_payment_usd_per_kw_month": 5.0,
    }
    costs = ProgramCosts(**{**prices, **cost_overrides})
    kwargs = dict(
        n_enrolled=10,
        v2g_export_kwh_per_yr=10_000.0,
        event_export_kwh_per_yr=2_000.0,
        enrolled_capacity_kw=100.0,
        years=2,
        discount_rate=0.10,
        costs=costs,
        charging_loss_kwh_per_yr=1_000.0,
    )
    return costs, kwargs


def test_program_economics_hand_worked() -> None:
    _, kwargs = _hand_case()
    out = program_economics(100_000.0, **kwargs)
    # end-of-year annuity, 2 years at 10 %: 1/1.1 + 1/1.21 = 2.1/1.21
    af = 2.1 / 1.21
    assert out.annuity_factor == pytest.approx(1.7355371900826446, rel=1e-14)
    assert out.years == 2
    # upfront: 10 x $2,500 (PG&E V2X default) at t = 0
    assert out.upfront_incentives_pv_usd == pytest.approx(25_000.0)
    # performance: (10,000 - 2,000) kWh x $0.10 = $800/yr (event kWh not paid twice)
    assert out.performance_payments_pv_usd == pytest.approx(800 * af)
    # event (ELRP $2/kWh): 2,000 x 2 = $4,000/yr
    assert out.event_payments_pv_usd == pytest.approx(4_000 * af)
    # capacity: 100 kW x $5/kW-month x 6 months = $3,000/yr
    assert out.capacity_payments_pv_usd == pytest.approx(3_000 * af)
    # ratepayer: ELRP not utility funded by default -> 25,000 + (800 + 3,000) af = 31,595.04
    assert out.ratepayer_cost_pv_usd == pytest.approx(31_595.041322314, rel=1e-12)
    assert out.ratepayer_benefit_pv_usd == 100_000.0
    assert out.ratepayer_net_benefit_pv_usd == pytest.approx(68_404.958677686, rel=1e-12)
    assert out.ratepayer_benefit_cost_ratio == pytest.approx(100_000 / 31_595.041322314)
    assert not out.event_payments_in_ratepayer_cost and out.capacity_payments_in_ratepayer_cost
    # participant revenue: 25,000 + (800 + 4,000 + 3,000) af = 38,537.19
    assert out.participant_revenue_pv_usd == pytest.approx(38_537.190082645, rel=1e-12)
    # wear 10,000 x 0.02 = $200/yr; energy (10,000 + 1,000) x 0.30 = $3,300/yr
    assert out.participant_battery_wear_pv_usd == pytest.approx(200 * af)
    assert out.participant_energy_cost_pv_usd == pytest.approx(3_300 * af)
    assert out.participant_cost_pv_usd == pytest.approx(6_074.380165289, rel=1e-12)
    assert out.participant_net_benefit_pv_usd == pytest.approx(32_462.809917355, rel=1e-12)
    assert out.participant_net_per_ev_pv_usd == pytest.approx(3_246.2809917355, rel=1e-12)
    assert out.participant_benefit_cost_ratio == pytest.approx(38_537.190082645 / 6_074.380165289)


def test_program_economics_utility_funded_events_and_state_funded_capacity() -> None:
    _, kwargs = _hand_case(event_payments_utility_funded=True)
    out = program_economics(100_000.0, **kwargs)
    af = 2.1 / 1.21
    assert out.ratepayer_cost_pv_usd == pytest.approx(25_000 + (800 + 4_000 + 3_000) * af)
    assert out.event_payments_in_ratepayer_cost
    _, kwargs = _hand_case(capacity_payments_utility_funded=False)
    out2 = program_economics(100_000.0, **kwargs)
    assert out2.ratepayer_cost_pv_usd == pytest.approx(25_000 + 800 * af)
    # who funds a payment changes the ratepayer side only, never the participant's revenue
    assert out2.participant_revenue_pv_usd == pytest.approx(out.participant_revenue_pv_usd)


def test_event_kwh_are_never_paid_twice() -> None:
    # moving kWh from local (performance) to event payment changes pay per kWh, not the total kWh
    _, kwargs = _hand_case(performance_payment_usd_per_kwh=2.0)
    all_event = program_economics(0.0, **{**kwargs, "event_export_kwh_per_yr": 10_000.0})
    no_event = program_economics(0.0, **{**kwargs, "event_export_kwh_per_yr": 0.0})
    assert all_event.participant_revenue_pv_usd == pytest.approx(
        no_event.participant_revenue_pv_usd
    )
    assert all_event.performance_payments_pv_usd == 0.0
    assert no_event.event_payments_pv_usd == 0.0


def test_program_economics_defaults_and_edge_cases() -> None:
    costs = ProgramCosts(charging_energy_price_usd_per_kwh=0.25)
    assert costs.upfront_incentive_usd_per_customer == 2500.0
    assert costs.event_payment_usd_per_kwh == 2.0
    assert costs.capacity_payment_usd_per_kw_month == 0.0
    assert costs.battery_wear_usd_per_kwh == 0.02
    out = program_economics(
        50_000.0,
        n_enrolled=4,
        v2g_export_kwh_per_yr=1_000.0,
        event_export_kwh_per_yr=0.0,
        enrolled_capacity_kw=40.0,
        years=1,
        discount_rate=0.0,
        costs=costs,
    )
    assert out.annuity_factor == 1.0
    loss = 1_000.0 * (1 / DEFAULT_V2G_ROUNDTRIP_EFFICIENCY - 1)
    assert out.participant_energy_cost_pv_usd == pytest.approx((1_000.0 + loss) * 0.25)
    assert out.ratepayer_cost_pv_usd == pytest.approx(10_000.0)
    # zero years: only the upfront incentive; zero enrolled: per-EV value undefined (NaN)
    zero = program_economics(
        0.0,
        n_enrolled=0,
        v2g_export_kwh_per_yr=0.0,
        event_export_kwh_per_yr=0.0,
        enrolled_capacity_kw=0.0,
        years=0,
        discount_rate=0.07,
        costs=costs,
    )
    assert zero.ratepayer_cost_pv_usd == 0.0
    assert math.isnan(zero.ratepayer_benefit_cost_ratio)
    assert math.isnan(zero.participant_net_per_ev_pv_usd)
    free = program_economics(
        1.0,
        n_enrolled=0,
        v2g_export_kwh_per_yr=0.0,
        event_export_kwh_per_yr=0.0,
        enrolled_capacity_kw=0.0,
        years=3,
        discount_rate=0.07,
        costs=costs,
    )
    assert free.ratepayer_benefit_cost_ratio == math.inf


def test_program_economics_bad_inputs() -> None:
    _, kwargs = _hand_case()
    with pytest.raises(ConfigError, match="event_export_kwh_per_yr"):
        program_economics(1.0, **{**kwargs, "event_export_kwh_per_yr": 20_000.0})
    with pytest.raises(ConfigError, match="years"):
        program_economics(1.0, **{**kwargs, "years": 2.5})
    with pytest.raises(ConfigError, match="years"):
        program_economics(1.0, **{**kwargs, "years": -1})
    with pytest.raises(ConfigError, match="n_enrolled"):
        program_economics(1.0, **{**kwargs, "n_enrolled": -1})
    with pytest.raises(ConfigError, match="discount_rate"):
        program_economics(1.0, **{**kwargs, "discount_rate": -1.0})
    with pytest.raises(ConfigError, match="deferral_value_usd"):
        program_economics(float("nan"), **kwargs)
    with pytest.raises(ConfigError, match="costs"):
        program_economics(1.0, **{**kwargs, "costs": {"charging_energy_price_usd_per_kwh": 0.3}})
    with pytest.raises(ConfigError, match="charging_loss_kwh_per_yr"):
        program_economics(1.0, **{**kwargs, "charging_loss_kwh_per_yr": -1.0})


def test_program_costs_validation() -> None:
    with pytest.raises(TypeError):
        ProgramCosts()  # type: ignore[call-arg]  # the energy price is required
    with pytest.raises(ConfigError, match="battery_wear_usd_per_kwh"):
        ProgramCosts(charging_energy_price_usd_per_kwh=0.3, battery_wear_usd_per_kwh=-0.01)
    with pytest.raises(ConfigError, match="charging_energy_price_usd_per_kwh"):
        ProgramCosts(charging_energy_price_usd_per_kwh=float("nan"))
    with pytest.raises(ConfigError, match="capacity_payment_months_per_yr"):
        ProgramCosts(charging_energy_price_usd_per_kwh=0.3, capacity_payment_months_per_yr=13)
    with pytest.raises(ConfigError, match="event_payments_utility_funded"):
        ProgramCosts(charging_energy_price_usd_per_kwh=0.3, event_payments_utility_funded="no")  # type: ignore[arg-type]
    costs = ProgramCosts(charging_energy_price_usd_per_kwh=0.3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        costs.battery_wear_usd_per_kwh = 0.0  # type: ignore[misc]


def test_elrp_hour_cap_warning(caplog: pytest.LogCaptureFixture) -> None:
    _, kwargs = _hand_case()
    with caplog.at_level(logging.WARNING, logger="gridplan.planning.economics"):
        program_economics(1.0, **{**kwargs, "enrolled_capacity_kw": 10.0})  # 2,000 > 60 x 10
    assert "ELRP" in caplog.text


# --------------------------------------------------------------------------------------------
# Tornado
# --------------------------------------------------------------------------------------------


def test_tornado_order_and_values() -> None:
    calls: list[dict] = []

    def f(a: float, b: float, c: float, d: float) -> float:
        calls.append({"a": a, "b": b, "c": c, "d": d})
        return 3 * a + b**2 - c + 0 * d

    base = {"a": 1.0, "b": 2.0, "c": 5.0, "d": 7.0}
    table = tornado(f, base, {"c": (4.0, 6.0), "a": (0.0, 2.0), "b": (1.0, 3.0)})
    assert list(table.columns) == list(TORNADO_COLUMNS)
    assert list(table["parameter"]) == ["b", "a", "c"]
    assert list(table["swing"]) == [8.0, 6.0, 2.0]
    assert (table["result_base"] == 2.0).all()
    b = table.iloc[0]
    assert (b["low_value"], b["high_value"], b["result_low"], b["result_high"]) == (1, 3, -1, 7)
    c = table.iloc[2]
    assert (c["result_low"], c["result_high"]) == (3.0, 1.0)  # decreasing in c
    assert len(calls) == 7
    assert all(call["d"] == 7.0 for call in calls)  # d not varied, always at base
    # one at a time: every call differs from the base in at most one parameter
    assert all(sum(call[k] != base[k] for k in base) <= 1 for call in calls)


def test_tornado_ties_nan_and_empty() -> None:
    table = tornado(lambda x, y: x + y, {"x": 0.0, "y": 0.0}, {"y": (-1, 1), "x": (-1, 1)})
    assert list(table["parameter"]) == ["y", "x"]  # equal swings keep the given order
    nan_table = tornado(
        lambda x, y: math.nan if x > 0 else x + 10 * y,
        {"x": 0.0, "y": 0.0},
        {"x": (-1, 1), "y": (0, 1)},
    )
    assert list(nan_table["parameter"]) == ["y", "x"]  # NaN swing last
    empty = tornado(lambda x: x, {"x": 1.0}, {})
    assert empty.empty and list(empty.columns) == list(TORNADO_COLUMNS)


def test_tornado_with_deferral_value() -> None:
    base = {"cost_usd": 1e5, "deferral_years": 3.0, "discount_rate": 0.07, "escalation_rate": 0.02}
    table = tornado(
        deferral_value_usd,
        base,
        {"discount_rate": (0.05, 0.09), "cost_usd": (5e4, 2e5), "escalation_rate": (0.0, 0.04)},
    )
    assert table.loc[0, "parameter"] == "cost_usd"
    assert table.loc[0, "result_base"] == pytest.approx(deferral_value_usd(1e5, 3, 0.07, 0.02))
    assert (table["swing"].diff().dropna() <= 0).all()


def test_tornado_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="base"):
        tornado(lambda x: x, {"x": 1.0}, {"y": (0, 1)})
    with pytest.raises(ConfigError, match=r"ranges\.x"):
        tornado(lambda x: x, {"x": 1.0}, {"x": (0, 1, 2)})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match=r"ranges\.x"):
        tornado(lambda x: x, {"x": 1.0}, {"x": (0, float("nan"))})
    with pytest.raises(ConfigError, match="evaluate"):
        tornado(lambda x: "high", {"x": 1.0}, {"x": (0, 1)})
    with pytest.raises(ConfigError, match="evaluate"):
        tornado(42, {"x": 1.0}, {"x": (0, 1)})  # type: ignore[arg-type]


def test_program_economics_by_year_equals_the_constant_form_and_pays_at_enrollment() -> None:
    from gridplan.planning.economics import program_economics_by_year

    costs, kwargs = _hand_case()
    constant = program_economics(100_000.0, **kwargs)
    by_year = program_economics_by_year(
        100_000.0,
        years=[2026, 2027],
        base_year=2026,
        new_enrolled=[10, 0],
        v2g_export_kwh=[10_000.0, 10_000.0],
        event_export_kwh=[2_000.0, 2_000.0],
        enrolled_capacity_kw=[100.0, 100.0],
        discount_rate=0.10,
        costs=costs,
        charging_loss_kwh=[1_000.0, 1_000.0],
    )
    for name in [f.name for f in dataclasses.fields(constant)]:
        a, b = getattr(constant, name), getattr(by_year, name)
        assert a == pytest.approx(b, rel=1e-12), name
    # staggered: 4 enroll in 2026 (t = 0), 6 in 2028 (t = 2); export only from 2028
    late = program_economics_by_year(
        0.0,
        years=[2026, 2027, 2028],
        base_year=2026,
        new_enrolled=[4, 0, 6],
        v2g_export_kwh=[0.0, 0.0, 10_000.0],
        event_export_kwh=[0.0, 0.0, 0.0],
        enrolled_capacity_kw=[0.0, 0.0, 0.0],
        discount_rate=0.10,
        costs=costs,
        charging_loss_kwh=[0.0, 0.0, 0.0],
    )
    assert late.upfront_incentives_pv_usd == pytest.approx(2_500 * (4 + 6 / 1.21))
    # the 2028 export is paid at the end of 2028: t = 3
    assert late.performance_payments_pv_usd == pytest.approx(10_000 * 0.10 / 1.331)
    assert late.annuity_factor == pytest.approx(1 / 1.1 + 1 / 1.21 + 1 / 1.331)
    with pytest.raises(ConfigError, match="one per program year"):
        program_economics_by_year(
            0.0, years=[2026], base_year=2026, new_enrolled=[1, 2], v2g_export_kwh=[0.0],
            event_export_kwh=[0.0], enrolled_capacity_kw=[0.0], discount_rate=0.1, costs=costs,
        )  # fmt: skip
