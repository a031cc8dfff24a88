"""The study's tables: per asset, per asset-case-year, and per V2G case (economics).

Each statistic across draws is stated where it is computed: detail-year figures are medians
over draws; years of need are the P50 and P90 across draws; the deferral is the one
reached in at least ``horizon.confidence`` of the draws (:mod:`gridplan.planning.deferral`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridplan.grid.feeders import Feeder
from gridplan.planning.deferral import deferral_statistics, firmness
from gridplan.planning.economics import annuity_factor, program_economics_by_year
from gridplan.planning.needs import need_probability, year_quantile
from gridplan.planning.upgrades import choose_upgrades
from gridplan.planning.valuation import (
    capacity_value_usd_per_kw_yr,
    present_worth_of_shift_usd,
    value_per_enrolled_ev_usd_yr,
)
from gridplan.study.config import StudyConfig
from gridplan.study.horizon import HorizonResult

__all__ = [
    "asset_table",
    "deferral_cases",
    "economics_table",
    "headline_value",
    "horizon_peak_kva",
    "lower_median",
    "need_characterization",
    "need_year_peak_kva",
    "needs_table",
    "reference_case",
]


def asset_table(
    feeder: Feeder, config: StudyConfig, h: HorizonResult, cost_factor: float = 1.0
) -> pd.DataFrame:
    """Per-asset results: loading in the detail year, years of need, need, V2G, deferral.

    ``cost_factor`` scales every upgrade cost (sensitivity runs)."""
    val = config.valuation
    conf = config.horizon.confidence
    end = int(h.years[-1])
    y_detail = int(np.flatnonzero(h.years == config.year)[0])
    table = feeder.assets[["kind", "element", "name", "rating_kva", "limit_pct"]].copy()
    rating = table.rating_kva.to_numpy()
    for c, case in enumerate(h.cases):
        table[f"peak_loading_pct_{case}"] = lower_median(h.peak_loading_pct[y_detail, :, c])
        table[f"hours_over_limit_{case}"] = lower_median(h.hours_over_limit[y_detail, :, c])
        table[f"overload_energy_kvah_{case}"] = lower_median(h.overload_energy_kvah[y_detail, :, c])
    table["peak_kva_charging"] = table.peak_loading_pct_charging / 100.0 * rating
    table["evs_downstream"] = lower_median(h.evs_downstream[y_detail])
    table["v2g_enrolled_evs_downstream"] = lower_median(h.enrolled_downstream[y_detail])
    yon = {case: h.year_of_need(case) for case in h.cases}
    for case in h.cases:
        table[f"year_of_need_{case}_p50"] = year_quantile(yon[case], 0.5, end)
        table[f"year_of_need_{case}_p90"] = year_quantile(yon[case], 0.9, end)
        table[f"need_probability_{case}"] = need_probability(yon[case], h.years)[-1]
    for case in h.cases:
        table[f"need_from_non_convergence_{case}"] = _unsolved_at(
            h, case, table[f"year_of_need_{case}_p50"].to_numpy()
        )
    # Need in the P50 year of need without V2G (charging case), median over draws.
    need_year = table["year_of_need_charging_p50"].to_numpy()
    table["need_year"] = need_year
    need_characterization(table, h, need_year)
    # Managed-charging (v1g) and V2G cases: deferral from their reference case, firmness.
    v2g_cases = deferral_cases(h.cases)
    for case in v2g_cases:
        ref = reference_case(config, h.cases, case)
        stats = deferral_statistics(yon[ref], yon[case], end, conf)
        table[f"deferral_years_{case}_p50"] = stats.median_years
        table[f"deferral_years_{case}"] = stats.at_confidence_years
        table[f"deferral_capped_{case}"] = stats.capped_at_confidence
        table[f"firmness_{case}_end"] = firmness(h.need[:, :, h.case(case), :])[-1]
        if case != "v1g" and "v1g" in h.cases:  # the split: V1G's part, export's increment
            for part, (a, b) in {"v1g": ("charging", "v1g"), "export": ("v1g", case)}.items():
                split = deferral_statistics(yon[a], yon[b], end, conf)
                table[f"deferral_years_{case}_{part}_part_p50"] = split.median_years
                table[f"deferral_years_{case}_{part}_part"] = split.at_confidence_years
    sizing_kva = need_year_peak_kva(table, h) * (1.0 + val.upgrade_margin)
    upgrades = choose_upgrades(feeder.upgrades, feeder.assets.limit_pct, sizing_kva)
    table = table.join(upgrades)
    escalate = (1.0 + val.escalation_rate) ** (
        val.dollar_year - table.dollar_year.fillna(val.dollar_year)
    )
    table["cost_usd_dollar_year"] = table.cost_usd * escalate * cost_factor
    for case in v2g_cases:
        ref = reference_case(config, h.cases, case)
        t1 = table[f"year_of_need_{ref}_p50"].to_numpy() - val.dollar_year
        n = table[f"deferral_years_{case}"].to_numpy()
        ok = table.cost_usd_dollar_year.notna().to_numpy() & ~np.isnan(t1) & ~np.isnan(n)
        value = np.full(len(table), np.nan)
        if ok.any():
            t1c = np.maximum(t1[ok], 0.0)
            value[ok] = present_worth_of_shift_usd(
                table.cost_usd_dollar_year.to_numpy()[ok],
                t1c,
                np.maximum(t1c + n[ok], 0.0),
                val.discount_rate,
                val.escalation_rate,
            )
        # No need inside the horizon: nothing to defer.
        value[np.isnan(t1)] = 0.0
        table[f"deferral_value_usd_{case}"] = value
    # Short names for the primary cases.
    table["year_of_need_charging"] = table.year_of_need_charging_p50
    table["year_of_need_v2g"] = table.year_of_need_v2g_p50
    table["deferral_years"] = table.deferral_years_v2g
    table["deferral_value_usd"] = table.deferral_value_usd_v2g
    return table


def lower_median(values: np.ndarray) -> np.ndarray:
    """Lower median over draws (axis 0), NaN last: always one draw's value, the rule every
    statistic across draws uses (:mod:`gridplan.planning.deferral`)."""
    x = np.asarray(values, dtype=float)
    if x.shape[0] == 0:
        return np.full(x.shape[1:], np.nan)
    ordered = np.sort(x, axis=0)  # NaN sort last
    n_valid = np.sum(~np.isnan(x), axis=0)
    pick = np.maximum((n_valid - 1) // 2, 0)
    return np.take_along_axis(ordered, pick[None, ...], axis=0)[0]


def deferral_cases(cases: list[str]) -> list[str]:
    """The cases that defer a need: the managed-charging case ``v1g`` and the V2G cases."""
    return [c for c in cases if c == "v1g" or c.startswith("v2g")]


def reference_case(config: StudyConfig, cases: list[str], case: str) -> str:
    """The case whose year of need a case's deferral counts from: ``charging`` for ``v1g``;
    for a V2G case the study's baseline (``charging``, or ``v1g`` for "V2G beyond V1G")."""
    if case != "v1g" and config.dispatch.baseline == "v1g" and "v1g" in cases:
        return "v1g"
    return "charging"


def _unsolved_at(h: HorizonResult, case: str, need_year: np.ndarray) -> np.ndarray:
    """Whether each asset's need in ``need_year`` rests, in at least one draw, on power-flow
    steps that did not converge: "need (non-convergence)", unless proven otherwise."""
    c = h.case(case)
    flags = np.zeros(len(need_year), dtype=bool)
    for a, year in enumerate(need_year):
        if not np.isnan(year):
            y = int(np.flatnonzero(h.years == year)[0])
            flags[a] = bool(h.need_unsolved[y, :, c, a].any())
    return flags


def horizon_peak_kva(table: pd.DataFrame, h: HorizonResult) -> pd.Series:
    """Median over draws of each asset's highest charging-case peak in the horizon [kVA]."""
    peak = np.nanmax(h.peak_loading_pct[:, :, h.case("charging"), :], axis=0)  # (D, A)
    return pd.Series(
        np.median(peak, axis=0) / 100.0 * table.rating_kva.to_numpy(), index=table.index
    )


def need_year_peak_kva(table: pd.DataFrame, h: HorizonResult) -> pd.Series:
    """Peak an upgrade is sized for [kVA]: the median over draws of the charging-case peak
    in the asset's P50 year of need (``table.year_of_need_charging_p50``); the horizon's
    highest peak (:func:`horizon_peak_kva`) where there is no need in the horizon."""
    peak = h.peak_loading_pct[:, :, h.case("charging"), :]  # (Y, D, A)
    sizing = horizon_peak_kva(table, h).copy()
    rating = table.rating_kva.to_numpy()
    for a, year in enumerate(table.year_of_need_charging_p50.to_numpy()):
        if not np.isnan(year):
            y = int(np.flatnonzero(h.years == year)[0])
            sizing.iloc[a] = float(np.nanmedian(peak[y, :, a])) / 100.0 * rating[a]
    return sizing


def need_characterization(table: pd.DataFrame, h: HorizonResult, need_year: np.ndarray) -> None:
    """Add the need (charging case) and the V2G resource that meets it, in the need year.

    Need figures and the V2G resource (DER-VET power and energy, EVs it takes) are medians
    over the draws that have an excess in that year; the share of draws whose enrolled
    downstream fleet has that resource is over all draws.
    """
    fields = [
        "peak_excess_kw", "max_daily_excess_kwh", "longest_excess_h", "days_with_excess",
    ]  # fmt: skip
    out = {f: np.full(len(table), np.nan) for f in fields}
    months = [""] * len(table)
    hours = [""] * len(table)
    req_kw = np.full(len(table), np.nan)
    req_kwh = np.full(len(table), np.nan)
    evs_required = np.full(len(table), np.nan)
    has_resource = np.full(len(table), np.nan)
    detail = h.need_detail
    for a, asset_id in enumerate(table.index):
        if np.isnan(need_year[a]):
            continue
        y = int(np.flatnonzero(h.years == need_year[a])[0])
        rows = detail[(detail.year == need_year[a]) & (detail.asset_id == asset_id)]
        for f in fields:  # median over the draws with an excess that year
            out[f][a] = float(np.median(rows[f].to_numpy())) if not rows.empty else 0.0
        if not rows.empty:
            months[a] = " ".join(
                sorted({m for s in rows.excess_months for m in s.split()}, key=int)
            )
            hours[a] = " ".join(sorted({x for s in rows.excess_hours for x in s.split()}, key=int))
        kw, kwh = h.requirement_kw[y, :, a], h.requirement_kwh[y, :, a]
        short = kw > 0
        if short.any():
            req_kw[a], req_kwh[a] = np.median(kw[short]), np.median(kwh[short])
        n_enr = h.enrolled_downstream[y, :, a]
        per_ev_kw = np.where(n_enr > 0, h.export_kw_downstream[y, :, a] / np.maximum(n_enr, 1), 0)
        per_ev_kwh = np.where(n_enr > 0, h.usable_kwh_downstream[y, :, a] / np.maximum(n_enr, 1), 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            need_evs = np.maximum(
                np.where(kw > 0, np.ceil(kw / per_ev_kw), 0),
                np.where(kwh > 0, np.ceil(kwh / per_ev_kwh), 0),
            )
        if short.any():
            need_evs = np.where(np.isfinite(need_evs), need_evs, np.inf)[short]
            evs_required[a] = np.median(need_evs)
        enough = (h.export_kw_downstream[y, :, a] >= kw) & (h.usable_kwh_downstream[y, :, a] >= kwh)
        has_resource[a] = enough.mean()
    for f in fields:
        table[f] = out[f]
    table["excess_months"] = months
    table["excess_hours"] = hours
    table["v2g_required_kw"] = req_kw
    table["v2g_required_kwh"] = req_kwh
    table["v2g_evs_required"] = evs_required
    table["v2g_resource_available_share"] = has_resource


def needs_table(h: HorizonResult) -> pd.DataFrame:
    """Long table: per asset, case and year, probability of need across draws (in that year,
    by that year, and resting on steps that did not converge) and firmness."""
    rows = []
    for case in h.cases:
        c = h.case(case)
        prob_year = h.need[:, :, c, :].mean(axis=1)  # need in that year (Y, A)
        prob_unsolved = h.need_unsolved[:, :, c, :].mean(axis=1)  # resting on divergence
        prob_by = need_probability(h.year_of_need(case), h.years)  # need by that year
        peak = np.median(h.peak_loading_pct[:, :, c, :], axis=1)
        for y, year in enumerate(h.years):
            for a, asset_id in enumerate(h.asset_ids):
                rows.append(
                    {
                        "asset_id": asset_id,
                        "case": case,
                        "strategy": h.strategies[case] or "none",
                        "year": int(year),
                        "peak_loading_pct_p50": peak[y, a],
                        "need_probability": prob_year[y, a],
                        "need_by_year_probability": prob_by[y, a],
                        "non_convergence_need_probability": prob_unsolved[y, a],
                        "firmness": 1.0 - prob_year[y, a] if case.startswith("v2g") else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def economics_table(
    config: StudyConfig,
    h: HorizonResult,
    assets: pd.DataFrame,
    time_index: pd.DatetimeIndex,
    step_h: float,
) -> pd.DataFrame:
    """Per V2G case: gross deferral value, its annual and unit values, program economics.

    - Gross deferral value: sum of the assets' present-worth deferral values (assets with a
      need inside the horizon).
    - Annual value: the gross value levelized over the horizon years at the discount rate
      (end-of-year annuity), and per kW of V2G capacity that meets the needs (sum of the
      assets' DER-VET power requirement) and per enrolled EV (median, last horizon year):
      :func:`gridplan.planning.valuation.capacity_value_usd_per_kw_yr`,
      :func:`gridplan.planning.valuation.value_per_enrolled_ev_usd_yr`.
    - With ``[program]``: :func:`gridplan.planning.economics.program_economics_by_year`
      over the horizon years, each flow in its year (medians over draws per year):
      incentives paid when customers enroll (the increase of the median enrolled count),
      export, payments, wear and energy at the end of each year, discounted to the dollar
      year. A year's export is the study period's export times
      ``period.represents_days / period days`` (default: the period stands for itself only,
      so exports outside it are not counted; a full-year period counts the whole year).
      Exports of ``v2g_event`` count as emergency-event exports (ELRP-paid), exports of
      other strategies as local relief.
    """
    r = config.valuation.discount_rate
    n_years = len(h.years)
    annuity = annuity_factor(r, n_years)
    period_days = len(time_index) * step_h / 24.0
    to_year = (config.period.represents_days or period_days) / period_days
    n_enrolled_y = np.maximum.accumulate(np.median(h.n_enrolled, axis=1))  # (year,)
    new_enrolled = np.diff(np.r_[0.0, n_enrolled_y])
    enrolled_kw_y = np.median(h.enrolled_kw, axis=1)
    with_need = assets.year_of_need_charging_p50.notna()
    capacity_kw = float(assets.v2g_required_kw[with_need].fillna(0).sum())
    n_enrolled = float(np.median(h.n_enrolled[-1]))
    rows = []
    for case in [c for c in h.cases if c.startswith("v2g")]:
        gross = float(assets[f"deferral_value_usd_{case}"][with_need].sum())
        annual = gross / annuity
        sign = -1.0 if annual < 0 else 1.0
        c = h.case(case)
        export_y = np.median(h.export_kwh[:, :, c], axis=1) * to_year  # (year,) [kWh]
        extra_y = (
            np.median(h.charge_kwh[:, :, c] - h.charge_kwh[:, :, h.case("charging")], axis=1)
            * to_year
        )
        export_yr, extra_charge_yr = float(export_y.mean()), float(extra_y.mean())
        row: dict[str, Any] = {
            "case": case,
            "strategy": h.strategies[case],
            "deferral_value_usd": gross,
            "annual_deferral_value_usd": annual,
            "v2g_capacity_kw": capacity_kw,
            # The unit values keep the sign of the annual value (negative: V2G costs).
            "value_usd_per_kw_yr": sign * capacity_value_usd_per_kw_yr(abs(annual), capacity_kw),
            "enrolled_evs": n_enrolled,
            "value_usd_per_enrolled_ev_yr": sign
            * value_per_enrolled_ev_usd_yr(abs(annual), n_enrolled),
            "v2g_export_kwh_per_yr": export_yr,
            "extra_charging_kwh_per_yr": extra_charge_yr,
        }
        if config.program is not None:
            event_y = export_y if h.strategies[case] == "v2g_event" else np.zeros_like(export_y)
            econ = program_economics_by_year(
                gross,
                years=h.years,
                base_year=config.valuation.dollar_year,
                new_enrolled=new_enrolled,
                v2g_export_kwh=export_y,
                event_export_kwh=event_y,
                enrolled_capacity_kw=enrolled_kw_y,
                discount_rate=r,
                costs=config.program.costs(),
                charging_loss_kwh=np.maximum(extra_y - export_y, 0.0),
            )
            row.update(
                {k: v for k, v in econ.__dict__.items() if k not in ("years", "annuity_factor")}
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("case")


def headline_value(economics: pd.DataFrame) -> float:
    """The sensitivity metric: ratepayer net benefit of the primary V2G case when program
    costs are given, else its gross deferral value [USD]."""
    row = economics.loc["v2g"]
    if "ratepayer_net_benefit_pv_usd" in economics.columns:
        return float(row.ratepayer_net_benefit_pv_usd)
    return float(row.deferral_value_usd)
