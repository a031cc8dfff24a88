"""The study's summary: the figures a planner reads first, typed.

:class:`StudySummary` is what ``summary.json`` holds (:meth:`StudySummary.to_dict`), what the
report and the batch's results table read, and what the CLI prints. Each figure states its
statistic: detail-year figures are the median over draws; years of need are P50 / P90
across draws; the deferral is the one reached in at least ``confidence`` of the draws.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridplan import __version__
from gridplan.ev.dispatch import DispatchResult
from gridplan.ev.fleet import Fleet
from gridplan.grid.feeders import Feeder
from gridplan.grid.profile_year import profile_year
from gridplan.study.config import StudyConfig
from gridplan.study.horizon import HorizonResult

__all__ = [
    "CaseEconomics",
    "CriticalAsset",
    "FleetSummary",
    "HorizonInfo",
    "PeriodInfo",
    "PowerFlowCase",
    "StudySummary",
    "build_summary",
    "case_label",
    "num",
]

ASSUMPTIONS = [
    "Every planning year is simulated over the same study period of the feeder's "
    "profile year ({profile_year}), with base load scaled to that year and a new fleet.",
    "An asset needs an upgrade in a year when it is over its planning limit for more "
    "than the allowed hours of the simulated period.",
    "Deferral years are capped at the horizon: a capped value means 'at least'.",
    "V2G power and energy that meet a need follow EPRI DER-VET's deferral walk: discharge "
    "the excess over the limit, recharge within the headroom, and a recharge restores the "
    "whole deficit after losses; StorageVET caps the recharge at the deficit before losses, "
    "which can ask several percent more energy "
    "(gridplan.planning.needs.deferral_requirement, recovery='storagevet').",
    "Discount rate and escalation default to National Grid/Niagara Mohawk 2025 MCOS "
    "(NY PSC): WACC 6.87 %, inflation 2.1 %.",
]


def num(x: Any) -> Any:
    """A JSON-ready number: ``None`` for missing or non-finite values, else rounded to 6
    decimals; non-numbers pass through."""
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return x
    return None if not math.isfinite(x) else round(x, 6)


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _plain(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict (nested dataclasses too, dicts kept in order)."""
    return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return to_dict() if to_dict is not None else _plain(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class HorizonInfo:
    """The planning horizon: years [year], draws, deferral confidence [-], the base-load
    factor of each year relative to the profiles [-], and what a draw is (``trajectories``:
    one future followed through the horizon; ``independent``: a fleet per year)."""

    start: int
    end: int
    draws: int
    confidence: float
    load_factor: dict[str, float | None]
    draws_as: str = "trajectories"


@dataclass(frozen=True)
class PeriodInfo:
    """The simulated period of each planning year (first and last step, steps, step [h])."""

    kind: str
    start: str
    end: str
    steps: int
    step_h: float


@dataclass(frozen=True)
class FleetSummary:
    """The detail draw's fleet in the detail year (and the median EV count of each year).

    Energies [kWh] are over the simulated period; ``*_kwh_yr`` over the fleet's year.
    """

    households: int
    evs_per_household: float | None
    evs: int
    v2g_enrolled_evs: int
    evs_by_year_p50: dict[str, float | None]
    charging_energy_kwh: float | None
    v2g_export_kwh: float | None
    v2g_case_charging_energy_kwh: float | None
    departure_shortfall_kwh: float | None
    departures_short: int
    trip_shortfall_kwh_yr: float | None
    dwell_shortfall_kwh_yr: float | None


@dataclass(frozen=True)
class PowerFlowCase:
    """Power-flow figures of one case over every year and draw: steps that did not
    converge, extreme service voltages [pu], share of draws with a voltage need in the last
    year [-]."""

    non_converged_steps: int
    min_vm_pu: float | None
    max_vm_pu: float | None
    voltage_need_probability_end: float | None


@dataclass(frozen=True)
class CriticalAsset:
    """The asset whose charging-case peak (detail year, median draw) is highest relative to
    its limit, with its need, deferral and value.

    ``peak_loading_pct`` [%] and ``hours_over_limit`` [h] are per case (medians over the
    draws of the detail year); years of need are P50 (and P90 without V2G); the deferral
    [years] is reached in at least ``confidence`` of the draws (``deferral_capped``: at
    least, capped by the horizon).
    """

    asset_id: str
    name: str
    rating_kva: float | None
    limit_pct: float | None
    evs_downstream: float | None
    v2g_enrolled_evs_downstream: float | None
    peak_loading_pct: dict[str, float | None]
    hours_over_limit: dict[str, float | None]
    year_of_need_charging: int | None
    year_of_need_charging_p90: int | None
    year_of_need_v2g: int | None
    deferral_years: float | None
    deferral_capped: bool
    firmness_v2g_end: float | None
    peak_excess_kw: float | None
    v2g_required_kw: float | None
    v2g_required_kwh: float | None
    v2g_evs_required: float | None
    upgrade_new_rating_kva: float | None
    upgrade_cost_usd: float | None
    deferral_value_usd: float | None
    need_from_non_convergence: dict[str, bool] = field(default_factory=dict)
    #: With the V1G case: its year of need (P50), and the V2G deferral's managed-charging
    #: part and export increment [years], each reached in ``confidence`` of the draws
    #: (quantiles of the parts need not add up; the parts of one trajectory do).
    year_of_need_v1g: int | None = None
    deferral_years_v1g_part: float | None = None
    deferral_years_export_part: float | None = None
    #: With the perfect-availability case: its year of need (P50), deferral [years] and
    #: firmness in the last horizon year [-] -- the V2G figures without opt-outs,
    #: overrides, lost communications and derates.
    year_of_need_v2g_perfect: int | None = None
    deferral_years_perfect: float | None = None
    firmness_v2g_perfect_end: float | None = None

    #: Fields holding one value per case (flat in JSON: ``<field>_<case>``).
    PER_CASE = ("peak_loading_pct", "hours_over_limit", "need_from_non_convergence")

    @classmethod
    def from_dict(cls, data: dict[str, Any], cases: list[str]) -> CriticalAsset:
        """From its JSON form (:meth:`to_dict`) and the study's case keys."""
        per_case: dict[str, Any] = {
            name: {c: data[f"{name}_{c}"] for c in cases if f"{name}_{c}" in data}
            for name in cls.PER_CASE
        }
        names = [f.name for f in dataclasses.fields(cls) if f.name not in per_case]
        plain: dict[str, Any] = {k: data.get(k) for k in names}
        return cls(**plain, **per_case)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON form: per-case figures as ``<field>_<case>`` (e.g.
        ``peak_loading_pct_v2g``)."""
        flat: dict[str, Any] = {}
        for key, value in _plain(self).items():
            if key in self.PER_CASE:
                flat.update({f"{key}_{c}": v for c, v in value.items()})
            else:
                flat[key] = value
        return flat


@dataclass(frozen=True)
class CaseEconomics:
    """Economics of one V2G case (see :func:`gridplan.study.tables.economics_table`).

    Gross deferral value [USD, present worth] over all assets with a need, its annual value
    [USD/yr], per kW of V2G capacity [USD/kW-yr] and per enrolled EV [USD/EV-yr], export and
    extra charging energy [kWh/yr]; with a ``[program]`` section, the program's economics
    (:class:`~gridplan.planning.economics.ProgramEconomics` fields, in ``program``).
    """

    strategy: str | None
    deferral_value_usd: float | None
    annual_deferral_value_usd: float | None
    v2g_capacity_kw: float | None
    value_usd_per_kw_yr: float | None
    enrolled_evs: float | None
    value_usd_per_enrolled_ev_yr: float | None
    v2g_export_kwh_per_yr: float | None
    extra_charging_kwh_per_yr: float | None
    program: dict[str, Any] | None = None

    @property
    def ratepayer_cost_pv_usd(self) -> float | None:
        """Ratepayer cost of the program [USD, present worth] (``None``: no program)."""
        return None if self.program is None else self.program["ratepayer_cost_pv_usd"]

    @property
    def ratepayer_net_benefit_pv_usd(self) -> float | None:
        """Ratepayer net benefit [USD, present worth] (``None``: no program)."""
        return None if self.program is None else self.program["ratepayer_net_benefit_pv_usd"]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseEconomics:
        """From its JSON form (:meth:`to_dict`)."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "program"]
        program = {k: v for k, v in data.items() if k not in names}
        return cls(**{k: data.get(k) for k in names}, program=program or None)

    @classmethod
    def from_row(cls, row: pd.Series) -> CaseEconomics:
        """From a row of the economics table (values made JSON-ready)."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "program"]
        base = {k: (row[k] if k == "strategy" else num(row[k])) for k in names}
        program = {
            k: (v if isinstance(v, bool | str) else num(v))
            for k, v in row.items()
            if k not in names
        }
        return cls(**base, program=program or None)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON form (the program's fields beside the others)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        program = data.pop("program") or {}
        return {**data, **program}


@dataclass(frozen=True)
class StudySummary:
    """The study's headline figures (the content of ``summary.json``).

    Attributes
    ----------
    study, feeder, feeder_description, gridplan_version
        Names and version.
    year, base_year, seed
        Detail (planning) year, the profiles' year and the seed.
    horizon, period
        The horizon and the simulated period.
    cases
        Case key -> strategy (``"no EVs"`` for the base case).
    detail_draw
        The detail year's median draw (time series, figures, fleet).
    fleet
        The detail draw's fleet.
    power_flow
        Per case: non-converged steps and extreme voltages over all years and draws.
    assets_monitored, assets_over_limit, assets_with_need_in_horizon
        Monitored assets; per case, those over their limit in the detail year (median
        peak); those with a P50 year of need without V2G inside the horizon.
    critical_asset
        The critical asset.
    deferral_value_usd_total
        Per V2G case: deferral value of all assets with a need [USD, present worth].
    detail_year
        Detail-year counts.
    valuation
        Method and financial assumptions.
    notes, assumptions
        Warnings to read with the numbers; the study's standing assumptions.
    economics
        Per V2G case: :class:`CaseEconomics`.
    screening
        Whether screening was on and the steps per screening stage.
    sensitivity
        Tornado rows when ``[sensitivity]`` is enabled.
    """

    study: str
    feeder: str
    feeder_description: str
    gridplan_version: str
    year: int
    base_year: int
    seed: int
    horizon: HorizonInfo
    cases: dict[str, str]
    period: PeriodInfo
    detail_draw: int
    fleet: FleetSummary
    power_flow: dict[str, PowerFlowCase]
    assets_monitored: int
    assets_over_limit: dict[str, int]
    assets_with_need_in_horizon: int
    critical_asset: CriticalAsset
    deferral_value_usd_total: dict[str, float | None]
    detail_year: dict[str, Any]
    valuation: dict[str, Any]
    notes: list[str]
    assumptions: list[str]
    economics: dict[str, CaseEconomics] = field(default_factory=dict)
    screening: dict[str, Any] = field(default_factory=dict)
    sensitivity: list[dict[str, Any]] | None = None

    @property
    def primary_economics(self) -> CaseEconomics | None:
        """The economics of the primary V2G case (``v2g``)."""
        return self.economics.get("v2g")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudySummary:
        """From the JSON content of ``summary.json`` (:meth:`to_dict`; other keys such as
        ``files`` are ignored)."""
        cases = list(data["cases"])
        nested: dict[str, Any] = {
            "horizon": HorizonInfo(**data["horizon"]),
            "period": PeriodInfo(**data["period"]),
            "fleet": FleetSummary(**data["fleet"]),
            "power_flow": {c: PowerFlowCase(**v) for c, v in data["power_flow"].items()},
            "critical_asset": CriticalAsset.from_dict(data["critical_asset"], cases),
            "economics": {
                c: CaseEconomics.from_dict(v) for c, v in data.get("economics", {}).items()
            },
        }
        names = {f.name for f in dataclasses.fields(cls)}
        plain: dict[str, Any] = {k: v for k, v in data.items() if k in names and k not in nested}
        return cls(**plain, **nested)

    def to_dict(self) -> dict[str, Any]:
        """The JSON content of ``summary.json``."""
        data = _plain(self)
        if self.sensitivity is None:
            data.pop("sensitivity")
        return data


# --------------------------------------------------------------------------- building it
def _profile_year(feeder: Feeder) -> str:
    """The profiles' year as data, not history: a calendar year (SimBench's 2016), or a
    typical (weather) or nominal year whose dates are not history, as the feeder's spec
    states it (:func:`gridplan.grid.profile_year.profile_year`)."""
    return profile_year(feeder.spec, feeder.time_index).label


def _assumptions(feeder: Feeder) -> list[str]:
    """The study's standing assumptions, with the profiles' climate, data sources and
    diversity method where the feeder's spec states them."""
    year = profile_year(feeder.spec, feeder.time_index)
    out = [a.format(profile_year=year.label) for a in ASSUMPTIONS]
    if year.climate:
        out.append(f"Climate of the load and PV profiles: {year.climate}.")
    if year.sources:
        out.append("Profile data: " + "; ".join(year.sources) + ".")
    if year.diversity:
        out.append(f"Customer diversity: {year.diversity}.")
    return out


def _mix_text(mix: dict[str, float]) -> str:
    return ", ".join(f"{share:.0%} {name}" for name, share in mix.items())


def case_label(config: StudyConfig, case: str, strategy: str | None) -> str:
    """What a case dispatches, in words: the strategy, or with a charging mix
    (``fleet.charging_mix``) the customers' shares and who follows the V2G strategy."""
    mix = config.fleet.charging_mix
    if strategy is None:
        return "no EVs"
    if mix is None or case.startswith("charging:"):
        return strategy
    if case == "charging":
        return f"mixed charging ({_mix_text(mix)})"
    return f"{strategy} for V2G-enrolled EVs, the others their own charging ({_mix_text(mix)})"


def _mix_assumptions(config: StudyConfig) -> list[str]:
    """The charging mix, when the study has one."""
    mix = config.fleet.charging_mix
    if mix is None:
        return []
    return [
        f"Charging behaviours: {_mix_text(mix)} of EV customers (each EV drawn once, kept "
        "along its trajectory; an input of the study, not a published split). In the V2G "
        "cases V2G-enrolled EVs follow the V2G strategy; grid-aware groups (smart, then "
        "V2G) plan on the base load plus the other customers' charging. An enrolled EV that "
        "opts out, overrides or loses communications charges as the V2G strategy's "
        "non-enrolled EVs do (unmanaged) that day, not by its own behaviour: where TOU or "
        "smart customers are enrolled, this can advance a need in some trajectories "
        "(a negative deferral at the confidence level)."
    ]


def critical_asset_id(assets: pd.DataFrame) -> str:
    """The asset whose charging-case peak (detail year) is highest relative to its limit."""
    ratio = assets.peak_loading_pct_charging / assets.limit_pct
    return str(ratio.fillna(-np.inf).idxmax())


def notes(config: StudyConfig, h: HorizonResult) -> list[str]:
    """Warnings a planner must read with the numbers."""
    out = []
    val = config.valuation
    if val.escalation_rate > val.discount_rate:
        out.append(
            f"Cost escalation ({val.escalation_rate:.2%}) exceeds the discount rate "
            f"({val.discount_rate:.2%}): deferring an upgrade raises its present cost, so "
            "deferral values are negative."
        )
    bad = int(h.non_converged_steps.sum())
    if bad:
        out.append(
            f"{bad} power-flow steps did not converge; their loading and voltages are left "
            "out of peaks and voltages (NaN), and in the EV cases each counts as over every "
            "asset's limit: divergence under added load is a sign of overload or voltage "
            "collapse -- see power_flow in this summary."
        )
    unsolved = [
        f"{asset} ({case})"
        for case in h.cases
        for a, asset in enumerate(h.asset_ids)
        if h.need_unsolved[:, :, h.case(case), a].any()
    ]
    if unsolved:
        shown = ", ".join(unsolved[:8]) + (
            f" and {len(unsolved) - 8} more" if len(unsolved) > 8 else ""
        )
        out.append(
            "Need (non-convergence): the need of "
            f"{shown} rests on power-flow steps that did not converge in some year and draw; "
            "treat it as a need unless a finer study proves otherwise."
        )
    return out


def _period_notes(config: StudyConfig, time_index: pd.DatetimeIndex, step_h: float) -> list[str]:
    """What the simulated period stands for in annual export and program payments."""
    if config.program is None:
        return []
    days = len(time_index) * step_h / 24.0
    weight = config.period.represents_days
    if weight is None and days < 365.0:
        return [
            f"Annual V2G export and program payments count only the {days:g} simulated days "
            "of each year (period.represents_days not set): exports outside the period are "
            "not counted; simulate a full year, or state what the period represents."
        ]
    if weight is not None and abs(weight - days) > 1e-9:
        return [
            f"Annual V2G export and program payments scale the {days:g} simulated days to "
            f"{weight:g} days (period.represents_days, a stated assumption)."
        ]
    return []


def _critical(assets: pd.DataFrame, h: HorizonResult, y: int, draw: int) -> CriticalAsset:
    """The critical asset: its detail-year figures from its representative draw ``draw``
    (the figures' draw), its years of need and deferral across draws."""
    cases = list(h.cases)
    critical = critical_asset_id(assets)
    row = assets.loc[critical]
    a = list(h.asset_ids).index(critical)
    return CriticalAsset(
        asset_id=critical,
        name=str(row["name"]),
        rating_kva=num(row.rating_kva),
        limit_pct=num(row.limit_pct),
        evs_downstream=num(h.evs_downstream[y, draw, a]),
        v2g_enrolled_evs_downstream=num(h.enrolled_downstream[y, draw, a]),
        peak_loading_pct={c: num(h.peak_loading_pct[y, draw, h.case(c), a]) for c in cases},
        hours_over_limit={c: num(h.hours_over_limit[y, draw, h.case(c), a]) for c in cases},
        year_of_need_charging=_int_or_none(row.year_of_need_charging_p50),
        year_of_need_charging_p90=_int_or_none(row.year_of_need_charging_p90),
        year_of_need_v2g=_int_or_none(row.year_of_need_v2g_p50),
        deferral_years=num(row.deferral_years_v2g),
        deferral_capped=bool(row.deferral_capped_v2g),
        firmness_v2g_end=num(row.firmness_v2g_end),
        peak_excess_kw=num(row.peak_excess_kw),
        v2g_required_kw=num(row.v2g_required_kw),
        v2g_required_kwh=num(row.v2g_required_kwh),
        v2g_evs_required=num(row.v2g_evs_required),
        upgrade_new_rating_kva=num(row.new_rating_kva),
        upgrade_cost_usd=num(row.cost_usd_dollar_year),
        deferral_value_usd=num(row.deferral_value_usd_v2g),
        need_from_non_convergence={c: bool(row[f"need_from_non_convergence_{c}"]) for c in cases},
        year_of_need_v1g=_int_or_none(row.get("year_of_need_v1g_p50")),
        deferral_years_v1g_part=num(row.get("deferral_years_v2g_v1g_part")),
        deferral_years_export_part=num(row.get("deferral_years_v2g_export_part")),
        year_of_need_v2g_perfect=_int_or_none(row.get("year_of_need_v2g_perfect_p50")),
        deferral_years_perfect=num(row.get("deferral_years_v2g_perfect")),
        firmness_v2g_perfect_end=num(row.get("firmness_v2g_perfect_end")),
    )


def _fleet(
    feeder: Feeder, fleet: Fleet, dispatched: dict[str, DispatchResult], h: HorizonResult
) -> FleetSummary:
    v2g = dispatched["v2g"]
    shortfall = v2g.departure_shortfall_kwh
    return FleetSummary(
        households=int(feeder.households.sum()),
        evs_per_household=num(fleet.evs_per_household),
        evs=fleet.n_ev,
        v2g_enrolled_evs=int(fleet.v2g_enrolled.sum()),
        evs_by_year_p50={str(int(y)): num(np.median(h.n_ev[i])) for i, y in enumerate(h.years)},
        charging_energy_kwh=num(dispatched["charging"].charge_kwh.sum()),
        v2g_export_kwh=num(v2g.export_kwh.sum()),
        v2g_case_charging_energy_kwh=num(v2g.charge_kwh.sum()),
        departure_shortfall_kwh=num(np.nansum(shortfall)),
        departures_short=int(np.nansum(shortfall > 1e-6)),
        trip_shortfall_kwh_yr=num(fleet.trip_shortfall_kwh.sum()),
        dwell_shortfall_kwh_yr=num(fleet.dwell_shortfall_kwh.sum()),
    )


def _power_flow(h: HorizonResult) -> dict[str, PowerFlowCase]:
    return {
        case: PowerFlowCase(
            non_converged_steps=int(h.non_converged_steps[:, :, c].sum()),
            min_vm_pu=num(np.nanmin(h.min_vm_pu[:, :, c])),
            max_vm_pu=num(np.nanmax(h.max_vm_pu[:, :, c])),
            voltage_need_probability_end=num(h.voltage_need[-1, :, c].mean()),
        )
        for c, case in enumerate(h.cases)
    }


def build_summary(
    config: StudyConfig,
    feeder: Feeder,
    h: HorizonResult,
    detail_fleet: Fleet,
    detail_dispatch: dict[str, DispatchResult],
    detail_draw: int,
    assets: pd.DataFrame,
    time_index: pd.DatetimeIndex,
) -> StudySummary:
    """The summary of a study (economics, screening and sensitivity are added by the run)."""
    over = assets.peak_loading_pct_charging > assets.limit_pct
    with_need = assets.year_of_need_charging_p50.notna()
    v2g_cases = [c for c in h.cases if c.startswith("v2g")]
    y_detail = int(np.flatnonzero(np.asarray(h.years) == config.year)[0])
    return StudySummary(
        study=config.name,
        feeder=feeder.name,
        feeder_description=feeder.description,
        gridplan_version=__version__,
        year=config.year,
        base_year=config.base_year,
        seed=config.seed,
        horizon=HorizonInfo(
            start=int(h.years[0]),
            end=int(h.years[-1]),
            draws=int(h.need.shape[1]),
            confidence=config.horizon.confidence,
            load_factor={str(int(y)): num(f) for y, f in zip(h.years, h.load_factor, strict=True)},
            draws_as=config.horizon.draws_as,
        ),
        cases={case: case_label(config, case, h.strategies[case]) for case in h.cases},
        period=PeriodInfo(
            kind=config.period.kind,
            start=str(time_index[0]),
            end=str(time_index[-1]),
            steps=len(time_index),
            step_h=feeder.step_h,
        ),
        detail_draw=int(detail_draw),
        fleet=_fleet(feeder, detail_fleet, detail_dispatch, h),
        power_flow=_power_flow(h),
        assets_monitored=len(assets),
        assets_over_limit={
            case: int((assets[f"peak_loading_pct_{case}"] > assets.limit_pct).sum())
            for case in h.cases
        },
        assets_with_need_in_horizon=int(with_need.sum()),
        critical_asset=_critical(assets, h, y_detail, detail_draw),
        deferral_value_usd_total={
            case: num(assets[f"deferral_value_usd_{case}"][with_need].sum()) for case in v2g_cases
        },
        detail_year={
            "year": config.year,
            "assets_over_limit_charging": int(over.sum()),
            "evs_downstream_total": num(assets.evs_downstream.sum()),
        },
        valuation={
            "method": (
                "present worth of moving the upgrade from the P50 year of need without V2G by "
                f"the deferral reached in {config.horizon.confidence:.0%} of draws: "
                "C·(q^t1 − q^t2), q=(1+i)/(1+r)"
            ),
            "dollar_year": config.valuation.dollar_year,
            "discount_rate": config.valuation.discount_rate,
            "escalation_rate": config.valuation.escalation_rate,
        },
        notes=[*notes(config, h), *_period_notes(config, time_index, feeder.step_h), *feeder.notes],
        assumptions=[*_assumptions(feeder), *_mix_assumptions(config)],
    )
