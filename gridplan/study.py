"""One feeder study end to end: fleet -> dispatch -> power flow -> needs -> valuation -> files.

``run(STUDY.toml)`` validates the whole config before any computation, then for the
feeder and planning year it

1. grows the feeder's base load to the planning year and draws an EV fleet;
2. dispatches the fleet twice: unmanaged charging, and charging with V2G export;
3. solves the time-series power flow for three cases -- no EVs (``base``), EV charging
   (``charging``) and EV charging with V2G (``v2g``) -- over the study period;
4. computes per-asset peak loading, hours over limit and overload energy per case, the
   year of need with and without V2G, the upgrade the overload calls for, and the present
   worth of deferring it;
5. writes ``outputs/<study-name>/``: the resolved config, ``summary.json``, per-asset
   tables (CSV), an EV table and a figure of the critical asset's loading.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from gridplan import __version__
from gridplan._io import write_csv, write_json, write_text, write_with
from gridplan.config import StrictModel, read_toml, validate
from gridplan.dispatch import DispatchResult, Strategy, dispatch, load_power_kw
from gridplan.errors import ConfigError
from gridplan.feeders import (
    Feeder,
    downstream_buses,
    load_feeder,
    peak_week,
    resolve_feeder_path,
)
from gridplan.fleet import Fleet, FleetScenario, read_zones, sample_fleet
from gridplan.needs import asset_loading_pct, asset_metrics, choose_upgrades, years_to_need

log = logging.getLogger(__name__)

#: Default discount rate (nominal WACC) and cost escalation: National Grid / Niagara Mohawk
#: 2025 marginal cost of service study, NY PSC (WACC 6.87 %, inflation 2.1 %).
DEFAULT_DISCOUNT_RATE = 0.0687
DEFAULT_ESCALATION_RATE = 0.021

CASES = ("base", "charging", "v2g")


# --------------------------------------------------------------------------- config
class PeriodSpec(StrictModel):
    """The simulated period inside the feeder's profile year."""

    kind: Literal["peak_week", "range", "year"] = "peak_week"
    # TOML dates (2016-07-01) or ISO strings ("2016-07-01")
    start: date | None = Field(default=None, strict=False)
    end: date | None = Field(default=None, strict=False)  # exclusive

    @model_validator(mode="after")
    def _range(self) -> PeriodSpec:
        if self.kind == "range":
            if self.start is None or self.end is None:
                raise ValueError("period kind 'range' needs 'start' and 'end' dates")
            if self.end <= self.start:
                raise ValueError(f"period end {self.end} must be after start {self.start}")
        return self


class DispatchSpec(StrictModel):
    """Charging and V2G strategies and the V2G event window."""

    charging: str = "unmanaged"
    v2g: str = "v2g_event"
    window_start_h: float = Field(default=16.0, ge=0, lt=24)
    window_end_h: float = Field(default=21.0, gt=0, le=24)
    event_months: list[int] = Field(default_factory=lambda: list(range(1, 13)))

    @field_validator("charging", "v2g")
    @classmethod
    def _known(cls, value: str) -> str:
        valid = [s.value for s in Strategy]
        if value not in valid:
            raise ValueError(f"unknown strategy '{value}' (expected one of: {', '.join(valid)})")
        return value

    @field_validator("event_months")
    @classmethod
    def _months(cls, value: list[int]) -> list[int]:
        bad = [m for m in value if not 1 <= m <= 12]
        if bad:
            raise ValueError(f"months must be 1-12 (got {bad[0]})")
        return value

    @model_validator(mode="after")
    def _window(self) -> DispatchSpec:
        if self.window_end_h <= self.window_start_h:
            raise ValueError("window_end_h must be after window_start_h")
        return self


class ValuationSpec(StrictModel):
    """Financial assumptions."""

    dollar_year: int = Field(default=2026, ge=1950, le=2100)
    discount_rate: float = Field(default=DEFAULT_DISCOUNT_RATE, gt=-1, lt=1)
    escalation_rate: float = Field(default=DEFAULT_ESCALATION_RATE, gt=-1, lt=1)
    horizon_years: float = Field(default=30.0, gt=0, le=100)


class StudyConfig(StrictModel):
    """A study as written in ``STUDY.toml``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    feeder: str
    year: int = Field(default=2030, ge=2000, le=2100)
    base_year: int = Field(default=2026, ge=2000, le=2100)
    seed: int = Field(default=0, ge=0)
    output_dir: str = "outputs"
    period: PeriodSpec = Field(default_factory=PeriodSpec)
    fleet: FleetScenario = Field(default_factory=FleetScenario)
    dispatch: DispatchSpec = Field(default_factory=DispatchSpec)
    valuation: ValuationSpec = Field(default_factory=ValuationSpec)

    @model_validator(mode="after")
    def _years(self) -> StudyConfig:
        if self.year < self.base_year:
            raise ValueError(f"year {self.year} is before base_year {self.base_year}")
        return self


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate a study TOML; the feeder name is checked too (not yet built)."""
    path = Path(path)
    config = validate(StudyConfig, read_toml(path), file=path)
    if config.fleet.zones:
        zones = Path(config.fleet.zones)
        if not zones.is_absolute():
            zones = path.parent / zones
        try:
            read_zones(zones)
        except ConfigError as exc:
            raise ConfigError(exc.reason, file=exc.file, field=exc.field or "fleet.zones") from None
        fleet = config.fleet.model_copy(update={"zones": str(zones)})
        config = config.model_copy(update={"fleet": fleet})
    feeder = _feeder_ref(config, path)
    try:
        resolve_feeder_path(feeder)
    except ConfigError as exc:
        raise ConfigError(exc.reason, file=path, field="feeder") from None
    return config


def _feeder_ref(config: StudyConfig, path: Path | None) -> str | Path:
    """A feeder given as a relative .toml path is relative to the study file."""
    ref = config.feeder
    if ref.endswith(".toml") and path is not None and not Path(ref).is_absolute():
        candidate = path.parent / ref
        if candidate.exists():
            return candidate
    return ref


# --------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class StudyResult:
    """Everything a study computed (also written to ``output_path``).

    Attributes
    ----------
    config
        The validated study config.
    feeder
        The feeder studied.
    fleet
        The EV fleet drawn.
    time_index
        Steps of the study period.
    ev_dispatch
        Per case (``charging``, ``v2g``) the EV dispatch.
    loading_pct
        Per case (``base``, ``charging``, ``v2g``) asset loading [%], (time, asset).
    converged
        Per case, whether each step's power flow converged, (time,).
    min_vm_pu
        Per case, lowest bus voltage of each step [pu], (time,).
    assets
        Per-asset table: metrics of every case, year of need, upgrade, deferral value.
    summary
        The content of ``summary.json``.
    output_path
        Folder the files were written to (``None`` if not written).
    """

    config: StudyConfig
    feeder: Feeder
    fleet: Fleet
    time_index: pd.DatetimeIndex
    ev_dispatch: dict[str, DispatchResult]
    loading_pct: dict[str, np.ndarray]
    converged: dict[str, np.ndarray]
    min_vm_pu: dict[str, np.ndarray]
    assets: pd.DataFrame
    summary: dict[str, Any]
    output_path: Path | None = None
    files: list[str] = field(default_factory=list)


def period_slice(feeder: Feeder, period: PeriodSpec, file: Path | None = None) -> slice:
    """Steps of the feeder's profile year covered by ``period``."""
    if period.kind == "peak_week":
        return peak_week(feeder)
    if period.kind == "year":
        return slice(0, len(feeder.time_index))
    index = feeder.time_index
    start = index.searchsorted(pd.Timestamp(period.start))
    stop = index.searchsorted(pd.Timestamp(period.end))
    if stop - start < 2:
        raise ConfigError(
            f"period {period.start}..{period.end} holds fewer than two steps of the feeder's "
            f"profiles ({index[0]:%Y-%m-%d} to {index[-1]:%Y-%m-%d})",
            file=file,
            field="period",
        )
    return slice(int(start), int(stop))


# --------------------------------------------------------------------------- run
def run(
    config: StudyConfig | str | Path,
    *,
    output_dir: str | Path | None = None,
    write: bool = True,
) -> StudyResult:
    """Run one feeder study.

    Parameters
    ----------
    config
        A :class:`StudyConfig` or the path of a study TOML (validated before anything runs).
    output_dir
        Parent folder of the study's output folder; default ``config.output_dir``
        (``outputs``). Results go to ``<output_dir>/<study name>/``.
    write
        Write the output files (default) or only return the result.

    Returns
    -------
    StudyResult
    """
    from gridplan.powerflow import solve_timeseries

    path: Path | None = None
    if not isinstance(config, StudyConfig):
        path = Path(config)
        config = load_study_config(path)
    feeder = load_feeder(_feeder_ref(config, path))
    steps = period_slice(feeder, config.period, path)
    time_index = feeder.time_index[steps]
    step_h = feeder.step_h
    growth = (1.0 + feeder.growth_rate) ** (config.year - config.base_year)
    base_p = feeder.load_p_kw[steps] * growth
    base_q = feeder.load_q_kvar[steps] * growth
    sgen_p = feeder.sgen_p_kw[steps]
    rng = np.random.default_rng(config.seed)
    fleet = sample_fleet(feeder, config.fleet, config.year, rng)
    log.info(
        "study %s: %d EVs (%d V2G-enrolled)", config.name, fleet.n_ev, fleet.v2g_enrolled.sum()
    )

    spec = config.dispatch
    ev_dispatch = {
        case: dispatch(
            fleet,
            time_index,
            strategy,
            window_start_h=spec.window_start_h,
            window_end_h=spec.window_end_h,
            event_months=tuple(spec.event_months),
        )
        for case, strategy in (("charging", spec.charging), ("v2g", spec.v2g))
    }
    n_loads = len(feeder.net.load)
    ev_load = {case: load_power_kw(r.power_kw, fleet, n_loads) for case, r in ev_dispatch.items()}
    ev_load["base"] = np.zeros_like(base_p)

    loading, converged, min_vm, metrics = {}, {}, {}, {}
    for case in CASES:
        flow = solve_timeseries(
            feeder.net, base_p + ev_load[case], load_q_kvar=base_q, sgen_p_kw=sgen_p
        )
        loading[case] = asset_loading_pct(feeder, flow)
        converged[case] = np.asarray(flow.converged, dtype=bool)
        with np.errstate(all="ignore"):
            min_vm[case] = np.nanmin(np.where(np.isfinite(flow.vm_pu), flow.vm_pu, np.inf), axis=1)
        metrics[case] = asset_metrics(feeder, loading[case], time_index, step_h)

    assets = _asset_table(feeder, config, metrics, fleet)
    summary = _summary(config, feeder, fleet, time_index, ev_dispatch, converged, min_vm, assets)
    result = StudyResult(
        config=config,
        feeder=feeder,
        fleet=fleet,
        time_index=time_index,
        ev_dispatch=ev_dispatch,
        loading_pct=loading,
        converged=converged,
        min_vm_pu=min_vm,
        assets=assets,
        summary=summary,
    )
    if not write:
        return result
    out = Path(output_dir if output_dir is not None else config.output_dir) / config.name
    files = write_outputs(result, out)
    return StudyResult(**{**result.__dict__, "output_path": out, "files": files})


def _asset_table(
    feeder: Feeder, config: StudyConfig, metrics: dict[str, pd.DataFrame], fleet: Fleet
) -> pd.DataFrame:
    """Per-asset metrics of every case, EVs downstream, year of need, upgrade, deferral value."""
    from gridplan.valuation import present_worth_of_shift_usd

    val = config.valuation
    table = feeder.assets[["kind", "element", "name", "rating_kva", "limit_pct"]].copy()
    downstream = downstream_buses(feeder)
    evs, enrolled, export = [], [], []
    for asset_id in table.index:
        below = np.isin(fleet.bus, downstream[str(asset_id)])
        evs.append(int(below.sum()))
        enrolled.append(int((below & fleet.v2g_enrolled).sum()))
        export.append(float(fleet.export_kw[below].sum()))
    table["evs_downstream"] = evs
    table["v2g_enrolled_evs_downstream"] = enrolled
    table["v2g_export_kw_downstream"] = export
    for case in CASES:
        m = metrics[case].drop(columns=["nan_steps"])
        table = table.join(m.add_suffix(f"_{case}"))
    limit = table.limit_pct.to_numpy()
    g = feeder.growth_rate
    horizon = val.horizon_years
    t_charging = np.minimum(years_to_need(table.peak_loading_pct_charging, limit, g), horizon)
    t_v2g = np.minimum(years_to_need(table.peak_loading_pct_v2g, limit, g), horizon)
    table["years_to_need_charging"] = t_charging
    table["years_to_need_v2g"] = t_v2g
    table["over_limit_charging"] = table.peak_loading_pct_charging > limit
    table["year_of_need_charging"] = pd.array(
        _year_of_need(config.year, t_charging, horizon), dtype="Int64"
    )
    table["year_of_need_v2g"] = pd.array(_year_of_need(config.year, t_v2g, horizon), dtype="Int64")
    table["deferral_years"] = t_v2g - t_charging
    upgrades = choose_upgrades(feeder, table.peak_kva_charging)
    table = table.join(upgrades)
    escalate = (1.0 + val.escalation_rate) ** (
        val.dollar_year - table.dollar_year.fillna(val.dollar_year)
    )
    table["cost_usd_dollar_year"] = table.cost_usd * escalate
    # Years after the base (dollar) year; the need is no earlier than the planning year.
    offset = max(0, config.year - val.dollar_year)
    has_cost = table.cost_usd_dollar_year.notna().to_numpy()
    value = np.zeros(len(table))
    if has_cost.any():
        value[has_cost] = present_worth_of_shift_usd(
            table.cost_usd_dollar_year.to_numpy()[has_cost],
            offset + t_charging[has_cost],
            offset + t_v2g[has_cost],
            val.discount_rate,
            val.escalation_rate,
        )
    table["deferral_value_usd"] = np.where(has_cost, value, np.nan)
    return table


def _year_of_need(year: int, years: np.ndarray, horizon: float) -> list[int | None]:
    """Planning year of need (first year at or over the limit); None beyond the horizon."""
    return [None if t >= horizon else year + math.ceil(t - 1e-9) for t in years]


def _int_or_none(value: Any) -> int | None:
    return None if pd.isna(value) else int(value)


def _critical_asset(assets: pd.DataFrame) -> str:
    """The asset whose charging-case peak is highest relative to its limit."""
    ratio = assets.peak_loading_pct_charging / assets.limit_pct
    return str(ratio.fillna(-np.inf).idxmax())


def _summary(
    config: StudyConfig,
    feeder: Feeder,
    fleet: Fleet,
    time_index: pd.DatetimeIndex,
    ev_dispatch: dict[str, DispatchResult],
    converged: dict[str, np.ndarray],
    min_vm: dict[str, np.ndarray],
    assets: pd.DataFrame,
) -> dict[str, Any]:
    critical = _critical_asset(assets)
    row = assets.loc[critical]
    over = assets.peak_loading_pct_charging > assets.limit_pct

    def num(x: Any) -> Any:
        if x is None:
            return None
        try:
            x = float(x)
        except (TypeError, ValueError):
            return x
        return None if not math.isfinite(x) else round(x, 6)

    v2g = ev_dispatch["v2g"]
    shortfall = v2g.departure_shortfall_kwh
    return {
        "study": config.name,
        "feeder": feeder.name,
        "feeder_description": feeder.description,
        "gridplan_version": __version__,
        "year": config.year,
        "base_year": config.base_year,
        "seed": config.seed,
        "period": {
            "kind": config.period.kind,
            "start": str(time_index[0]),
            "end": str(time_index[-1]),
            "steps": len(time_index),
            "step_h": feeder.step_h,
        },
        "fleet": {
            "households": int(feeder.households.sum()),
            "evs": fleet.n_ev,
            "v2g_enrolled_evs": int(fleet.v2g_enrolled.sum()),
            "charging_energy_kwh": num(ev_dispatch["charging"].charge_kwh.sum()),
            "v2g_export_kwh": num(v2g.export_kwh.sum()),
            "v2g_case_charging_energy_kwh": num(v2g.charge_kwh.sum()),
            "departure_shortfall_kwh": num(np.nansum(shortfall)),
            "departures_short": int(np.nansum(shortfall > 1e-6)),
            "evs_per_household": num(fleet.evs_per_household),
            "trip_shortfall_kwh_yr": num(fleet.trip_shortfall_kwh.sum()),
            "dwell_shortfall_kwh_yr": num(fleet.dwell_shortfall_kwh.sum()),
        },
        "power_flow": {
            case: {
                "non_converged_steps": int((~converged[case]).sum()),
                "min_vm_pu": num(np.min(min_vm[case][np.isfinite(min_vm[case])], initial=np.inf)),
            }
            for case in CASES
        },
        "assets_monitored": len(assets),
        "assets_over_limit": {
            case: int((assets[f"peak_loading_pct_{case}"] > assets.limit_pct).sum())
            for case in CASES
        },
        "critical_asset": {
            "asset_id": critical,
            "name": str(row["name"]),
            "rating_kva": num(row.rating_kva),
            "limit_pct": num(row.limit_pct),
            "evs_downstream": int(row.evs_downstream),
            "v2g_enrolled_evs_downstream": int(row.v2g_enrolled_evs_downstream),
            **{f"peak_loading_pct_{c}": num(row[f"peak_loading_pct_{c}"]) for c in CASES},
            **{f"hours_over_limit_{c}": num(row[f"hours_over_limit_{c}"]) for c in CASES},
            "year_of_need_charging": _int_or_none(row.year_of_need_charging),
            "year_of_need_v2g": _int_or_none(row.year_of_need_v2g),
            "deferral_years": num(row.deferral_years),
            "upgrade_new_rating_kva": num(row.new_rating_kva),
            "upgrade_cost_usd": num(row.cost_usd_dollar_year),
            "deferral_value_usd": num(row.deferral_value_usd),
        },
        "deferral_value_usd_total": num(assets.deferral_value_usd[over].sum()),
        "valuation": {
            "method": "present worth of moving the upgrade: C·(q^t1 − q^t2), q=(1+i)/(1+r)",
            "dollar_year": config.valuation.dollar_year,
            "discount_rate": config.valuation.discount_rate,
            "escalation_rate": config.valuation.escalation_rate,
            "horizon_years": config.valuation.horizon_years,
            "load_growth_rate": feeder.growth_rate,
        },
        "assumptions": [
            "Year of need from the study-period peak grown at the feeder's load growth rate "
            "(EV adoption held at the planning year's level).",
            "The deferral value counts assets over their limit in the charging case; an asset "
            "whose peak V2G raises gets a negative value.",
            "Discount rate and escalation default to National Grid/Niagara Mohawk 2025 MCOS "
            "(NY PSC): WACC 6.87 %, inflation 2.1 %.",
        ],
    }


# --------------------------------------------------------------------------- outputs
def write_outputs(result: StudyResult, out: Path) -> list[str]:
    """Write the study's files into ``out`` (each atomically); return their names."""
    import tomli_w

    out.mkdir(parents=True, exist_ok=True)
    files = []
    config = result.config.model_dump(mode="json", exclude_none=True)
    write_text(out / "config.toml", tomli_w.dumps(config))
    files.append("config.toml")
    assets = result.assets.copy()
    assets["peak_time_charging"] = assets.peak_time_charging.astype(str)
    write_csv(out / "assets.csv", assets.reset_index(), index=False, float_format="%.6g")
    files.append("assets.csv")
    write_csv(out / "evs.csv", _ev_table(result), index=False, float_format="%.6g")
    files.append("evs.csv")
    write_csv(out / "timeseries.csv", _timeseries_table(result), float_format="%.6g")
    files.append("timeseries.csv")
    write_with(out / "critical_asset_loading.png", lambda tmp: _plot_critical(result, tmp))
    files.append("critical_asset_loading.png")
    summary = {**result.summary, "files": [*files, "summary.json"]}
    write_json(out / "summary.json", summary)
    files.append("summary.json")
    return files


def _ev_table(result: StudyResult) -> pd.DataFrame:
    fleet = result.fleet
    names = result.feeder.net.load.name.to_numpy()
    charging, v2g = result.ev_dispatch["charging"], result.ev_dispatch["v2g"]
    return pd.DataFrame(
        {
            "ev": np.arange(fleet.n_ev),
            "load": names[fleet.load_pos] if fleet.n_ev else [],
            "bus": fleet.bus,
            "vehicle": fleet.vehicle,
            "charger": fleet.charger,
            "battery_kwh": fleet.battery_kwh,
            "charger_kw": fleet.charger_kw,
            "export_kw": fleet.export_kw,
            "v2g_capable": fleet.v2g_capable,
            "v2g_enrolled": fleet.v2g_enrolled,
            "charging_kwh": charging.charge_kwh,
            "v2g_case_charging_kwh": v2g.charge_kwh,
            "v2g_export_kwh": v2g.export_kwh,
            "departure_shortfall_kwh": np.nansum(v2g.departure_shortfall_kwh, axis=0),
            "trip_shortfall_kwh_yr": fleet.trip_shortfall_kwh.sum(axis=0),
            "dwell_shortfall_kwh_yr": fleet.dwell_shortfall_kwh.sum(axis=0),
        }
    )


def _timeseries_table(result: StudyResult) -> pd.DataFrame:
    critical = result.summary["critical_asset"]["asset_id"]
    col = result.feeder.assets.index.get_loc(critical)
    frame = pd.DataFrame(index=result.time_index)
    for case in CASES:
        frame[f"critical_loading_pct_{case}"] = result.loading_pct[case][:, col]
        frame[f"min_vm_pu_{case}"] = result.min_vm_pu[case]
        frame[f"converged_{case}"] = result.converged[case]
    for case, r in result.ev_dispatch.items():
        frame[f"ev_power_kw_{case}"] = r.power_kw.sum(axis=1)
    return frame


def _plot_critical(result: StudyResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = result.summary["critical_asset"]
    col = result.feeder.assets.index.get_loc(info["asset_id"])
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    styles = {
        "base": ("no EVs", "0.55", 1.0),
        "charging": ("EV charging (unmanaged)", "tab:red", 1.2),
        "v2g": ("EV charging with V2G", "tab:blue", 1.2),
    }
    for case, (label, color, width) in styles.items():
        ax.plot(
            result.time_index, result.loading_pct[case][:, col], label=label, color=color, lw=width
        )
    ax.axhline(
        info["limit_pct"], color="k", ls="--", lw=1, label=f"planning limit {info['limit_pct']:g} %"
    )
    ax.set_ylabel("loading [% of rating]")
    ax.set_title(
        f"{result.feeder.name} {result.config.year}: {info['name']} "
        f"(rating {info['rating_kva']:.0f} kVA; {info['evs_downstream']} EVs downstream, "
        f"{info['v2g_enrolled_evs_downstream']} V2G-enrolled), study '{result.config.name}'"
    )
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
