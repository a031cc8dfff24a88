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

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from gridplan import __version__
from gridplan.core.config import StrictModel, read_toml, validate
from gridplan.core.errors import ConfigError
from gridplan.core.io import write_csv, write_json, write_text, write_with
from gridplan.ev.dispatch import (
    DispatchContext,
    DispatchResult,
    Strategy,
    dispatch,
)
from gridplan.ev.events import load_rate
from gridplan.ev.fleet import Fleet, FleetScenario, read_zones, sample_fleet, zone_multipliers
from gridplan.grid.feeders import (
    Feeder,
    downstream_buses,
    load_feeder,
    peak_week,
    resolve_feeder_path,
)
from gridplan.planning.needs import (
    asset_loading_pct,
    asset_metrics,
    characterize_need,
    choose_upgrades,
    deferral_requirement,
    excess_kva,
    first_year,
    need_probability,
    year_quantile,
)
from gridplan.powerflow.screening import build_basis, screen

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
    """Charging and V2G strategies (one name or a list each) and the V2G event window.

    The first charging strategy is the "without V2G" case of the deferral; every V2G
    strategy is compared with it.
    """

    charging: str | list[str] = "unmanaged"
    v2g: str | list[str] = "v2g_event"
    window_start_h: float = Field(default=16.0, ge=0, lt=24)
    window_end_h: float = Field(default=21.0, gt=0, le=24)
    event_months: list[int] = Field(default_factory=lambda: list(range(1, 13)))
    # v2g_event days: "every_day" (the window on every day of event_months), "elrp" (event
    # days drawn per planning year and draw within the ELRP rules), or a CSV calendar
    # (date, start_h, end_h; dates are matched by month and day to the profile year).
    events: str = "every_day"
    # tou: a bundled rate name or a rate TOML file (default PG&E EV2-A, peak 4-9 pm).
    rate: str = "pge-ev2a"
    # v2g_optimal: minimize the peak or the energy over the limit.
    objective: Literal["peak", "overload"] = "peak"
    # Grid-aware strategies (smart, v2g_peak_shave, v2g_optimal) plan in kW against this
    # fraction of each asset's planning limit: the margin covers the reactive power and
    # voltage drop that a kW plan does not see (loads at power factor 0.95 draw 5 % more
    # kVA than kW). Assumption; the power flow then checks the result.
    target_fraction: float = Field(default=0.95, gt=0.5, le=1.0)

    @field_validator("charging", "v2g")
    @classmethod
    def _known(cls, value: str | list[str]) -> str | list[str]:
        valid = [s.value for s in Strategy]
        names = [value] if isinstance(value, str) else value
        if not names:
            raise ValueError("give at least one strategy")
        for name in names:
            if name not in valid:
                raise ValueError(f"unknown strategy '{name}' (expected one of: {', '.join(valid)})")
        if len(set(names)) != len(names):
            raise ValueError("a strategy is listed twice")
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

    def strategies(self) -> list[Strategy]:
        """Every strategy of the study."""
        return [Strategy(s) for s in [*self.charging_list(), *self.v2g_list()]]

    def charging_list(self) -> list[str]:
        """Charging strategies, primary first."""
        return [self.charging] if isinstance(self.charging, str) else list(self.charging)

    def v2g_list(self) -> list[str]:
        """V2G strategies, primary first."""
        return [self.v2g] if isinstance(self.v2g, str) else list(self.v2g)


class HorizonSpec(StrictModel):
    """Planning years and Monte Carlo draws.

    Each planning year is simulated over the study period with the base load grown to that
    year and a fleet drawn for that year, ``draws`` times. Defaults: the single planning
    ``year``, one draw.

    ``screening`` (default on): solve an EV case only at the steps whose results could
    matter, proven step by step from the year's base case (:mod:`gridplan.powerflow.screening`);
    every figure of the study (peak loading, hours and energy over the limit, need and its
    size, extreme voltages, hours outside the band) is the same as solving every step.
    The detail draw's time series are always solved in full.
    """

    start: int | None = Field(default=None, ge=2000, le=2100)
    end: int | None = Field(default=None, ge=2000, le=2100)
    draws: int = Field(default=1, ge=1, le=10_000)
    confidence: float = Field(default=0.9, gt=0, lt=1)
    screening: bool = True

    @model_validator(mode="after")
    def _order(self) -> HorizonSpec:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"horizon end {self.end} is before start {self.start}")
        return self


class CriteriaSpec(StrictModel):
    """Planning criteria.

    Loading: an asset needs an upgrade in a year when it is over its planning limit (% of
    rating, from the feeder spec) for more than the allowed hours in the simulated period.
    Voltage: service points (load buses) must stay within ``vm_min_pu``-``vm_max_pu``;
    default ANSI C84.1 Range A service voltage, 0.95-1.05 pu.
    """

    allowed_hours_trafo: float = Field(default=0.0, ge=0, le=8784)
    allowed_hours_line: float = Field(default=0.0, ge=0, le=8784)
    vm_min_pu: float = Field(default=0.95, gt=0.5, lt=1.0)
    vm_max_pu: float = Field(default=1.05, gt=1.0, lt=1.5)
    allowed_hours_voltage: float = Field(default=0.0, ge=0, le=8784)


class LoadGrowthSpec(StrictModel):
    """Base-load growth: a rate (default: the feeder's) or a year -> factor table.

    Factors are relative to the feeder's profiles (``base_year`` = 1.0), linearly
    interpolated between table years and held flat outside; they must be > 0.
    """

    rate: float | None = Field(default=None, ge=-0.5, le=1.0, allow_inf_nan=False)
    factors: dict[str, Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]] | None = None

    @model_validator(mode="after")
    def _one(self) -> LoadGrowthSpec:
        if self.rate is not None and self.factors is not None:
            raise ValueError("give either 'rate' or 'factors', not both")
        for key in self.factors or {}:
            if not key.isdigit():
                raise ValueError(f"factor key '{key}' is not a year")
        return self

    def factor(self, year: int, base_year: int, feeder_rate: float) -> float:
        """Load factor of ``year`` relative to the profiles [-]."""
        if self.factors:
            points = sorted((int(k), v) for k, v in self.factors.items())
            years, values = zip(*points, strict=True)
            return float(np.interp(year, years, values))
        rate = feeder_rate if self.rate is None else self.rate
        return float((1.0 + rate) ** (year - base_year))


class ValuationSpec(StrictModel):
    """Financial assumptions."""

    dollar_year: int = Field(default=2026, ge=1950, le=2100)
    discount_rate: float = Field(default=DEFAULT_DISCOUNT_RATE, gt=-1, lt=1)
    escalation_rate: float = Field(default=DEFAULT_ESCALATION_RATE, gt=-1, lt=1)


class ProgramSpec(StrictModel):
    """V2G program costs and payments (see :class:`gridplan.planning.valuation.ProgramCosts` for the
    defaults and their sources). Without this section the study reports the gross deferral
    value only."""

    charging_energy_price_usd_per_kwh: float = Field(ge=0, le=10, allow_inf_nan=False)
    charging_energy_price_source: str
    upfront_incentive_usd_per_customer: float = Field(default=2500.0, ge=0, le=1e6)
    performance_payment_usd_per_kwh: float = Field(default=0.0, ge=0, le=100)
    event_payment_usd_per_kwh: float = Field(default=2.0, ge=0, le=100)
    event_payments_utility_funded: bool = False
    capacity_payment_usd_per_kw_month: float = Field(default=0.0, ge=0, le=1e4)
    capacity_payment_months_per_yr: float = Field(default=6.0, ge=0, le=12)
    capacity_payments_utility_funded: bool = True
    battery_wear_usd_per_kwh: float = Field(default=0.02, ge=0, le=10)

    def costs(self) -> Any:
        """The :class:`gridplan.planning.valuation.ProgramCosts` of this section."""
        from gridplan.planning.valuation import ProgramCosts

        data = self.model_dump(exclude={"charging_energy_price_source"})
        return ProgramCosts(**data)


Range = tuple[
    Annotated[float, Field(ge=-0.99, le=100, allow_inf_nan=False)],
    Annotated[float, Field(ge=-0.99, le=100, allow_inf_nan=False)],
]


class SensitivitySpec(StrictModel):
    """One-at-a-time sensitivity (tornado): each parameter at its low and high value with the
    others at base. Financial parameters re-value the result; load growth, EV adoption and
    enrollment re-run the study (with ``draws`` draws each), so they cost a full run each.
    Ranges: discount and escalation as absolute rates, the others as multipliers of base."""

    enabled: bool = False
    draws: int | None = Field(default=None, ge=1, le=10_000)
    discount_rate: Range = Field(default=(0.05, 0.09), strict=False)
    escalation_rate: Range = Field(default=(0.01, 0.03), strict=False)
    upgrade_cost: Range = Field(default=(0.7, 1.5), strict=False)
    load_growth: Range = Field(default=(0.5, 1.5), strict=False)
    ev_adoption: Range = Field(default=(0.7, 1.3), strict=False)
    enrollment: Range = Field(default=(0.5, 1.5), strict=False)


class StudyConfig(StrictModel):
    """A study as written in ``STUDY.toml``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    feeder: str
    year: int = Field(default=2030, ge=2000, le=2100)
    base_year: int = Field(default=2026, ge=2000, le=2100)
    seed: int = Field(default=0, ge=0)
    output_dir: str = "outputs"
    period: PeriodSpec = Field(default_factory=PeriodSpec)
    horizon: HorizonSpec = Field(default_factory=HorizonSpec)
    criteria: CriteriaSpec = Field(default_factory=CriteriaSpec)
    load_growth: LoadGrowthSpec = Field(default_factory=LoadGrowthSpec)
    fleet: FleetScenario = Field(default_factory=FleetScenario)
    dispatch: DispatchSpec = Field(default_factory=DispatchSpec)
    valuation: ValuationSpec = Field(default_factory=ValuationSpec)
    program: ProgramSpec | None = None
    sensitivity: SensitivitySpec = Field(default_factory=SensitivitySpec)

    @model_validator(mode="after")
    def _years(self) -> StudyConfig:
        if self.year < self.base_year:
            raise ValueError(f"year {self.year} is before base_year {self.base_year}")
        start, end = self.years()[0], self.years()[-1]
        if start < self.base_year:
            raise ValueError(f"horizon start {start} is before base_year {self.base_year}")
        if not start <= self.year <= end:
            raise ValueError(f"year {self.year} is outside the horizon {start}-{end}")
        return self

    def years(self) -> list[int]:
        """The planning years of the horizon."""
        start = self.horizon.start if self.horizon.start is not None else self.year
        end = self.horizon.end if self.horizon.end is not None else max(start, self.year)
        return list(range(start, end + 1))


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate a study TOML; the feeder name is checked too (not yet built)."""
    path = Path(path)
    config = validate(StudyConfig, read_toml(path), file=path)
    # Files named by the fleet section are relative to the study file; check them now.
    update = {}
    for name in ("zones", "vehicle_catalog", "charger_catalog"):
        value = getattr(config.fleet, name)
        if value:
            file = Path(value)
            update[name] = str(file if file.is_absolute() else path.parent / file)
    if update:
        fleet = config.fleet.model_copy(update=update)
        try:
            if fleet.zones:
                read_zones(fleet.zones)
            fleet.catalogs()
            fleet.check_catalogs()
        except ConfigError as exc:
            raise ConfigError(exc.reason, file=exc.file, field=exc.field or "fleet") from None
        except ValueError as exc:
            raise ConfigError(str(exc), file=path, field="fleet.vehicle_mix") from None
        config = config.model_copy(update={"fleet": fleet})
    config = _resolve_dispatch_files(config, path)
    feeder = _feeder_ref(config, path)
    try:
        resolve_feeder_path(feeder)
    except ConfigError as exc:
        raise ConfigError(exc.reason, file=path, field="feeder") from None
    return config


def _resolve_dispatch_files(config: StudyConfig, path: Path) -> StudyConfig:
    """Resolve the event calendar and rate files relative to the study and check them."""
    from gridplan.ev.events import ELRP, EventCalendar, load_rate

    spec = config.dispatch
    update: dict[str, str] = {}
    if spec.events not in ("every_day", "elrp"):
        file = Path(spec.events)
        file = file if file.is_absolute() else path.parent / file
        if not file.is_file():
            raise ConfigError(
                f"expected 'every_day', 'elrp' or an event calendar CSV (file not found: {file})",
                file=path,
                field="dispatch.events",
            )
        EventCalendar.read_csv(file, program=ELRP)
        update["events"] = str(file)
    rate_file = Path(spec.rate)
    if rate_file.suffix == ".toml":
        rate_file = rate_file if rate_file.is_absolute() else path.parent / rate_file
        update["rate"] = str(rate_file)
    try:
        load_rate(update.get("rate", spec.rate))
    except ConfigError as exc:
        raise ConfigError(
            exc.reason, file=exc.file or path, field=exc.field or "dispatch.rate"
        ) from None
    if not update:
        return config
    return config.model_copy(update={"dispatch": spec.model_copy(update=update)})


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
class HorizonResult:
    """Per planning year, draw, case and asset: what the criteria see.

    Axes: year (Y), draw (D), case (C, see ``cases``), asset (A, ``asset_ids`` order).

    Attributes
    ----------
    years
        Planning years, shape (Y,).
    cases
        Case keys: ``base`` (no EVs), ``charging`` (first charging strategy), ``v2g``
        (first V2G strategy), then ``charging:<name>`` / ``v2g:<name>`` for further ones.
    strategies
        Strategy of each case (``None`` for ``base``).
    asset_ids
        Monitored assets.
    load_factor
        Base-load factor of each year relative to the profiles [-], (Y,).
    peak_loading_pct, hours_over_limit, overload_energy_kvah
        Peak loading [%], hours over the limit [h], energy over the limit [kVA·h],
        each (Y, D, C, A).
    need
        Loading criterion violated, (Y, D, C, A).
    min_vm_pu, max_vm_pu, voltage_hours_out
        Lowest/highest service-point voltage [pu] and hours any service point is outside
        the band [h], (Y, D, C).
    voltage_need
        Voltage criterion violated, (Y, D, C).
    non_converged_steps
        Power-flow steps that did not converge, (Y, D, C).
    n_ev, n_enrolled
        EVs and V2G-enrolled EVs in the fleet, (Y, D).
    enrolled_kw
        Export limit of all enrolled EVs together [kW], (Y, D).
    export_kwh, charge_kwh
        V2G export and charging energy of the whole fleet per case [kWh], (Y, D, C).
    evs_downstream, enrolled_downstream
        EVs / enrolled EVs downstream of each asset, (Y, D, A).
    export_kw_downstream, usable_kwh_downstream
        Export limit [kW] and usable energy (target − reserve) [kWh] of the enrolled EVs
        downstream of each asset, (Y, D, A).
    requirement_kw, requirement_kwh
        V2G power [kW] and energy [kWh] that would hold each asset within its limit in the
        ``charging`` case (EPRI DER-VET deferral logic), (Y, D, A).
    need_detail
        Need characterization in the ``charging`` case: one row per (year, draw, asset) with
        an excess (see :func:`gridplan.planning.needs.characterize_need`).
    """

    years: np.ndarray
    cases: list[str]
    strategies: dict[str, str | None]
    asset_ids: list[str]
    load_factor: np.ndarray
    peak_loading_pct: np.ndarray
    hours_over_limit: np.ndarray
    overload_energy_kvah: np.ndarray
    need: np.ndarray
    min_vm_pu: np.ndarray
    max_vm_pu: np.ndarray
    voltage_hours_out: np.ndarray
    voltage_need: np.ndarray
    non_converged_steps: np.ndarray
    n_ev: np.ndarray
    n_enrolled: np.ndarray
    enrolled_kw: np.ndarray
    export_kwh: np.ndarray
    charge_kwh: np.ndarray
    evs_downstream: np.ndarray
    enrolled_downstream: np.ndarray
    export_kw_downstream: np.ndarray
    usable_kwh_downstream: np.ndarray
    requirement_kw: np.ndarray
    requirement_kwh: np.ndarray
    need_detail: pd.DataFrame

    def case(self, key: str) -> int:
        """Position of a case key."""
        return self.cases.index(key)

    def year_of_need(self, case: str) -> np.ndarray:
        """First year with a loading need per draw and asset (NaN: none), (D, A)."""
        return first_year(self.need[:, :, self.case(case), :], self.years)


@dataclass(frozen=True, eq=False)
class StudyResult:
    """Everything a study computed (also written to ``output_path``).

    Attributes
    ----------
    config
        The validated study config.
    feeder
        The feeder studied.
    horizon
        Per year, draw, case and asset results (:class:`HorizonResult`).
    fleet
        The fleet of the detail year (``config.year``), median draw (the draw whose worst
        charging-case asset loading is the median across draws; ``summary["detail_draw"]``).
    time_index
        Steps of the study period.
    ev_dispatch
        EV dispatch per EV case of the detail year, median draw.
    loading_pct
        Asset loading [%] per case of the detail year, median draw, (time, asset).
    converged
        Per case, whether each step's power flow converged, (time,).
    min_vm_pu
        Per case, lowest service-point voltage of each step [pu], (time,).
    assets
        Per-asset table: loading, year of need, need, V2G resource, firmness, deferral,
        upgrade, deferral value.
    needs
        Per asset, case and year: probability of need across draws and, for V2G cases,
        firmness.
    summary
        The content of ``summary.json``.
    economics
        Per V2G case (rows): gross deferral value and, with a ``[program]`` section, the
        ratepayer and participant economics
        (:func:`~gridplan.planning.valuation.program_economics`).
    sensitivity
        Tornado table (:func:`~gridplan.planning.valuation.tornado`) when ``[sensitivity]``
        is enabled.
    bus_min_vm_pu
        Per case of the detail year, median draw: lowest voltage of each bus over the period
        [pu], shape (bus,), ``net.bus.index`` order (NaN: never solved).
    output_path
        Folder the files were written to (``None`` if not written).
    """

    config: StudyConfig
    feeder: Feeder
    horizon: HorizonResult
    fleet: Fleet
    time_index: pd.DatetimeIndex
    ev_dispatch: dict[str, DispatchResult]
    loading_pct: dict[str, np.ndarray]
    converged: dict[str, np.ndarray]
    min_vm_pu: dict[str, np.ndarray]
    assets: pd.DataFrame
    needs: pd.DataFrame
    summary: dict[str, Any]
    economics: pd.DataFrame | None = None
    sensitivity: pd.DataFrame | None = None
    bus_min_vm_pu: dict[str, np.ndarray] = field(default_factory=dict)
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


def case_strategies(config: StudyConfig) -> dict[str, str | None]:
    """Case key -> strategy name (``None``: no EVs), in evaluation order."""
    cases: dict[str, str | None] = {"base": None}
    charging, v2g = config.dispatch.charging_list(), config.dispatch.v2g_list()
    cases["charging"] = charging[0]
    cases["v2g"] = v2g[0]
    for name in charging[1:]:
        cases[f"charging:{name}"] = name
    for name in v2g[1:]:
        cases[f"v2g:{name}"] = name
    return cases


# --------------------------------------------------------------------------- run
def run(
    config: StudyConfig | str | Path,
    *,
    output_dir: str | Path | None = None,
    write: bool = True,
    progress: bool = False,
    overwrite: bool = False,
    workers: int = 1,
) -> StudyResult:
    """Run one feeder study over its planning horizon and Monte Carlo draws.

    Parameters
    ----------
    config
        A :class:`StudyConfig` or the path of a study TOML (validated before anything runs).
    output_dir
        Parent folder of the study's output folder; default ``config.output_dir``
        (``outputs``). Results go to ``<output_dir>/<study name>/``.
    write
        Write the output files (default) or only return the result.
    progress
        Show a progress bar over (year, draw) units.
    overwrite
        Replace the files of an existing output folder; without it, an existing non-empty
        folder is an error (raised before any computation).
    workers
        Processes that evaluate (year, draw) units in parallel [-]; ``0`` = one per CPU.
        Results do not depend on it (every draw has its own seed). Each process solves
        the base case of the years it works on.

    Returns
    -------
    StudyResult
    """
    from gridplan.powerflow.solver import compile_network

    path: Path | None = None
    if not isinstance(config, StudyConfig):
        path = Path(config)
        config = load_study_config(path)
    out_dir = Path(output_dir if output_dir is not None else config.output_dir) / config.name
    if write and not overwrite and out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(
            f"output folder {out_dir} already holds results; use --overwrite (Python: "
            "overwrite=True) to replace them or choose another study name or --output-dir",
            file=path,
            field="name",
        )
    if workers < 0:
        raise ConfigError(f"workers must be >= 0 (0 = one per CPU), got {workers}", field="workers")
    feeder = load_feeder(_feeder_ref(config, path))
    steps = period_slice(feeder, config.period, path)
    time_index = feeder.time_index[steps]
    zones = read_zones(config.fleet.zones) if config.fleet.zones else None
    if zones is not None:
        zone_multipliers(feeder, zones, file=config.fleet.zones)  # fail before computing
    compiled = compile_network(feeder.net)
    cases = case_strategies(config)
    years = np.array(config.years())
    draws = config.horizon.draws
    shape = (len(years), draws, len(cases), len(feeder.assets))
    acc = _Accumulator(shape, list(feeder.assets.index))
    detail: dict[str, Any] = {}
    downstream = downstream_buses(feeder)
    context = _Context(
        config,
        feeder,
        steps,
        time_index,
        compiled,
        cases,
        downstream,
        zones,
        rate=load_rate(config.dispatch.rate),
        calendar=_calendar_file(config, feeder),
        screening=config.horizon.screening,
    )

    n_proc = (os.cpu_count() or 1) if workers == 0 else workers
    _evaluate_units(context, years, draws, acc, min(n_proc, len(years) * draws), progress)

    horizon = acc.result(years, cases, config, feeder)
    # The detail (time series, figures) is the median draw of the detail year: the draw
    # whose worst charging-case loading (relative to the limit) is the median.
    y_detail = int(np.flatnonzero(years == config.year)[0])
    detail_draw = _median_draw(horizon, y_detail, feeder.assets.limit_pct.to_numpy())
    detail = _evaluate(context, config.year, detail_draw, keep_detail=True)["detail"]
    detail["draw"] = detail_draw
    assets = _asset_table(feeder, config, horizon)
    needs = _needs_table(horizon)
    economics = _economics(config, horizon, assets, time_index, feeder.step_h)
    summary = _summary(config, feeder, horizon, detail, assets, time_index)
    summary["economics"] = _economics_summary(economics)
    summary["screening"] = {
        "enabled": config.horizon.screening,
        **{k: int(v) for k, v in sorted(context.screen_stats.items())},
    }
    sensitivity = None
    if config.sensitivity.enabled:
        sensitivity = _sensitivity(config, feeder, horizon, economics, path)
        summary["sensitivity"] = sensitivity.to_dict(orient="records")
    result = StudyResult(
        config=config,
        feeder=feeder,
        horizon=horizon,
        fleet=detail["fleet"],
        time_index=time_index,
        ev_dispatch=detail["dispatch"],
        loading_pct=detail["loading"],
        converged=detail["converged"],
        min_vm_pu=detail["min_vm"],
        assets=assets,
        needs=needs,
        summary=summary,
        economics=economics,
        sensitivity=sensitivity,
        bus_min_vm_pu=detail["bus_min_vm"],
    )
    if not write:
        return result
    files = write_outputs(result, out_dir)
    return StudyResult(**{**result.__dict__, "output_path": out_dir, "files": files})


def _evaluate_units(
    ctx: _Context,
    years: np.ndarray,
    draws: int,
    acc: _Accumulator,
    n_proc: int,
    progress: bool,
) -> None:
    """Evaluate every (year, draw) unit into ``acc``, in this process or in ``n_proc``.

    Tasks are blocks of draws of one year, in year order, so that a process solves each
    year's base case once (or a few times). BLAS runs on one thread: the products here are
    small, and threads would only compete with the processes.
    """
    from threadpoolctl import threadpool_limits

    tasks = _unit_tasks(len(years), draws, n_proc)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(years) * draws, desc=f"study {ctx.config.name}", unit="draw", leave=False
        )
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            if n_proc <= 1:
                for y, block in tasks:
                    for d in block:
                        acc.add(y, d, _evaluate(ctx, int(years[y]), d, keep_detail=False))
                        if bar is not None:
                            bar.update(1)
                return
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # fork shares the loaded feeder with the workers at no cost; elsewhere the
            # context is sent once per worker process (initializer), not per task
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(
                max_workers=n_proc,
                mp_context=mp.get_context(method),
                initializer=_init_worker,
                initargs=(ctx,),
            ) as pool:
                futures = [pool.submit(_run_task, y, int(years[y]), block) for y, block in tasks]
                for future in as_completed(futures):
                    y, outs, stats = future.result()
                    for d, out in outs:
                        acc.add(y, d, out)
                    for key, value in stats.items():
                        ctx.screen_stats[key] = ctx.screen_stats.get(key, 0) + value
                    if bar is not None:
                        bar.update(len(outs))
    finally:
        if bar is not None:
            bar.close()


def _unit_tasks(n_years: int, draws: int, n_proc: int) -> list[tuple[int, list[int]]]:
    """(year position, draws) blocks: whole years when there are enough of them to keep
    ``n_proc`` processes busy, else each year split into about ``4 × n_proc / years``."""
    per_year = 1 if n_proc <= 1 else max(1, math.ceil(4 * n_proc / max(n_years, 1)))
    size = math.ceil(draws / min(per_year, draws))
    return [
        (y, list(range(start, min(start + size, draws))))
        for y in range(n_years)
        for start in range(0, draws, size)
    ]


#: The study context of a worker process (set by :func:`_init_worker`).
_WORKER_CTX: _Context | None = None


def _init_worker(ctx: _Context) -> None:
    global _WORKER_CTX
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    ctx.screen_stats.clear()
    ctx.base_cache.clear()
    _WORKER_CTX = ctx


def _run_task(
    y: int, year: int, block: list[int]
) -> tuple[int, list[tuple[int, dict[str, Any]]], dict[str, int]]:
    """Evaluate one block of draws of one year in a worker process."""
    ctx = _WORKER_CTX
    assert ctx is not None
    before = dict(ctx.screen_stats)
    outs = [(d, _evaluate(ctx, year, d, keep_detail=False)) for d in block]
    stats = {k: v - before.get(k, 0) for k, v in ctx.screen_stats.items()}
    return y, outs, stats


@dataclass(frozen=True, eq=False)
class _Context:
    """What every (year, draw) evaluation shares."""

    config: StudyConfig
    feeder: Feeder
    steps: slice
    time_index: pd.DatetimeIndex
    compiled: Any
    cases: dict[str, str | None]
    downstream: dict[str, np.ndarray]
    zones: Any
    rate: Any = None
    calendar: Any = None
    # The no-EV case depends on the year only: solved once per year, reused by every draw
    # (with the year's screening basis when screening is on).
    base_cache: dict[int, Any] = field(default_factory=dict)
    asset_base_cache: dict[int, np.ndarray] = field(default_factory=dict)
    screening: bool = True
    # steps per stage of the screening, summed over units (see gridplan.powerflow.screening)
    screen_stats: dict[str, int] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # for worker processes started by "spawn": the compiled network holds a sparse LU
        # factorisation that does not pickle; it is rebuilt from the net on arrival
        skip = {"compiled", "base_cache", "screen_stats", "asset_base_cache"}
        state = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip
        }
        return (_rebuild_context, (state,))


def _rebuild_context(state: dict[str, Any]) -> _Context:
    from gridplan.powerflow.solver import compile_network

    return _Context(compiled=compile_network(state["feeder"].net), **state)


def _evaluate(ctx: _Context, year: int, draw: int, *, keep_detail: bool) -> dict[str, Any]:
    """Simulate one planning year and draw: fleet, dispatch, power flow, criteria."""
    from gridplan.powerflow.solver import solve_timeseries

    config, feeder = ctx.config, ctx.feeder
    factor = config.load_growth.factor(year, config.base_year, feeder.growth_rate)
    base_p = feeder.load_p_kw[ctx.steps] * factor
    base_q = feeder.load_q_kvar[ctx.steps] * factor
    sgen_p = feeder.sgen_p_kw[ctx.steps]
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, year, draw]))
    fleet = sample_fleet(feeder, config.fleet, year, rng, zones=ctx.zones)
    step_h = feeder.step_h
    assets = feeder.assets
    rating = assets.rating_kva.to_numpy()
    limit = assets.limit_pct.to_numpy()
    crit = config.criteria
    allowed = np.where(
        assets.kind.to_numpy() == "trafo", crit.allowed_hours_trafo, crit.allowed_hours_line
    )
    service = _service_bus_positions(feeder)
    spec = config.dispatch
    n_loads = len(feeder.net.load)
    out: dict[str, Any] = {"factor": factor, "cases": {}}
    dispatched: dict[str, DispatchResult] = {}
    context: DispatchContext | None = None
    events = _event_calendar(ctx, rng)
    loading_detail, conv_detail, vm_detail, bus_vm_detail = {}, {}, {}, {}
    screened_mode = ctx.screening and not keep_detail
    basis = None
    known: tuple[np.ndarray, Any] | None = None  # the charging case, reused by V2G cases
    band = (crit.vm_min_pu, crit.vm_max_pu)

    def solve_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        flow = solve_timeseries(
            ctx.compiled, base_p[rows] + ev[rows], load_q_kvar=base_q[rows], sgen_p_kw=sgen_p[rows]
        )
        lo, hi = _service_extremes(flow.vm_pu[:, service])
        return asset_loading_pct(feeder, flow), lo, hi, np.asarray(flow.converged, dtype=bool)

    for case, strategy in ctx.cases.items():
        if strategy is None and year in ctx.base_cache:
            record, loading, converged, vm_min, bus_vm, basis = ctx.base_cache[year]
        else:
            if strategy is None:
                ev = np.zeros_like(base_p)
                export = charge = 0.0
            else:
                if Strategy(strategy).needs_context and context is None:
                    context = DispatchContext.from_feeder(
                        feeder,
                        fleet,
                        base_p,
                        ctx.time_index,
                        sgen_p_kw=sgen_p,
                        asset_base_kw=ctx.asset_base_cache.get(year),
                    )
                    if year not in ctx.asset_base_cache:  # the same for every draw
                        ctx.asset_base_cache.clear()
                        ctx.asset_base_cache[year] = context.asset_base_kw
                    context = dataclasses.replace(
                        context, asset_limit_kw=context.asset_limit_kw * spec.target_fraction
                    )
                result = dispatch(
                    fleet,
                    ctx.time_index,
                    strategy,
                    window_start_h=spec.window_start_h,
                    window_end_h=spec.window_end_h,
                    event_months=tuple(spec.event_months),
                    context=context,
                    rate=ctx.rate,
                    events=events,
                    objective=spec.objective,
                    n_loads=n_loads,
                    # per-EV series only for the detail draw, and only while they are
                    # small (a full year of a large MV fleet would take gigabytes);
                    # figures fall back to the per-load series
                    keep_ev_series=keep_detail and len(base_p) * fleet.n_ev <= _MAX_EV_SERIES,
                )
                dispatched[case] = result
                ev = np.asarray(result.power_by_load_kw, dtype=float)
                export, charge = float(result.export_kwh.sum()), float(result.charge_kwh.sum())
            bus_vm = None
            if screened_mode and strategy is not None and basis is not None:
                sc = screen(
                    basis,
                    ev,
                    solve_rows,
                    vm_band_pu=band,
                    requirement=case == "charging",
                    known=known,
                )
                if known is None:
                    known = (ev, sc)
                for key, value in sc.stats.items():
                    ctx.screen_stats[key] = ctx.screen_stats.get(key, 0) + value
                ctx.screen_stats["steps"] = ctx.screen_stats.get("steps", 0) + len(ev)
                loading, converged = sc.loading_pct, sc.converged
                vm_min, vm_max = sc.vm_min_pu, sc.vm_max_pu
            else:
                flow = solve_timeseries(
                    ctx.compiled, base_p + ev, load_q_kvar=base_q, sgen_p_kw=sgen_p
                )
                loading = asset_loading_pct(feeder, flow)
                converged = np.asarray(flow.converged, dtype=bool)
                vm_min, vm_max = _service_extremes(flow.vm_pu[:, service])
                with np.errstate(all="ignore"):
                    bus_vm = np.where(np.isfinite(flow.vm_pu), flow.vm_pu, np.inf).min(axis=0)
                bus_vm[np.isinf(bus_vm)] = np.nan
                if strategy is None and ctx.screening:
                    basis = build_basis(
                        ctx.compiled,
                        flow,
                        base_p,
                        base_q,
                        sgen_p,
                        None,
                        assets.kind.to_numpy(),
                        assets.element.to_numpy(),
                        limit,
                        service,
                    )
            out_band = (vm_min < crit.vm_min_pu) | (vm_max > crit.vm_max_pu)
            metrics = asset_metrics(feeder, loading, ctx.time_index, step_h)
            record = {
                "peak": metrics.peak_loading_pct.to_numpy(),
                "hours": metrics.hours_over_limit.to_numpy(),
                "energy": metrics.overload_energy_kvah.to_numpy(),
                # need_flags(loading, limit, allowed, step_h), from the hours already counted
                "need": metrics.hours_over_limit.to_numpy() > allowed + 1e-9,
                "vm_min": float(np.min(vm_min, initial=np.inf)),
                "vm_max": float(np.max(vm_max, initial=-np.inf)),
                "v_hours": float(out_band.sum() * step_h),
                "non_converged": int((~converged).sum()),
                "export": export,
                "charge": charge,
            }
            record["v_need"] = record["v_hours"] > crit.allowed_hours_voltage + 1e-9
            if strategy is None:
                ctx.base_cache.clear()
                ctx.base_cache[year] = (record, loading, converged, vm_min, bus_vm, basis)
        if case == "charging" and not record["hours"].any():
            # never over any limit: no need to describe, nothing to supply
            out["need_detail"] = _NO_NEED_DETAIL
            out["requirement"] = (np.zeros(len(assets)), np.zeros(len(assets)))
        elif case == "charging":
            excess = excess_kva(loading, rating, limit)
            detail_rows = characterize_need(excess, ctx.time_index, step_h)
            detail_rows.insert(0, "asset_id", list(assets.index))
            out["need_detail"] = detail_rows[detail_rows.peak_excess_kw > 0]
            load_kva = np.nan_to_num(loading, nan=0.0) / 100.0 * rating
            power, energy = deferral_requirement(
                load_kva,
                rating * limit / 100.0,
                step_h,
                roundtrip_efficiency=config.fleet.charge_efficiency
                * config.fleet.discharge_efficiency,
            )
            out["requirement"] = (power, energy)
        out["cases"][case] = record
        if keep_detail:
            loading_detail[case] = loading
            conv_detail[case] = converged
            vm_detail[case] = vm_min
            bus_vm_detail[case] = bus_vm
    usable = np.where(fleet.v2g_enrolled, fleet.target_kwh - fleet.reserve_kwh, 0.0)
    per_asset = []
    for asset_id in assets.index:
        below = np.isin(fleet.bus, ctx.downstream[str(asset_id)])
        enrolled = below & fleet.v2g_enrolled
        per_asset.append(
            (below.sum(), enrolled.sum(), fleet.export_kw[enrolled].sum(), usable[below].sum())
        )
    out["downstream"] = np.array(per_asset, dtype=float).reshape(len(assets), 4)
    out["n_ev"], out["n_enrolled"] = fleet.n_ev, int(fleet.v2g_enrolled.sum())
    out["enrolled_kw"] = float(fleet.export_kw.sum())
    if keep_detail:
        out["detail"] = {
            "fleet": fleet,
            "dispatch": dispatched,
            "loading": loading_detail,
            "converged": conv_detail,
            "min_vm": vm_detail,
            "bus_min_vm": bus_vm_detail,
        }
    return out


#: Largest (time × EV) per-EV series the detail draw keeps [values] (float64 power, state of
#: charge and plug-in state: about 17 bytes per value, ~8 MB at this size; a peak week of a
#: few hundred EVs). Larger runs keep per-load series and take the dispatch's fast paths.
_MAX_EV_SERIES = 500_000

#: The need detail of a case without any excess (no rows).
_NO_NEED_DETAIL = pd.DataFrame(
    {
        "asset_id": pd.Series(dtype=object),
        "peak_excess_kw": pd.Series(dtype=float),
        "max_daily_excess_kwh": pd.Series(dtype=float),
        "longest_excess_h": pd.Series(dtype=float),
        "days_with_excess": pd.Series(dtype=int),
        "excess_months": pd.Series(dtype=object),
        "excess_hours": pd.Series(dtype=object),
    }
)


def _service_extremes(vm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest service voltage of each step [pu]; ``inf``/``-inf`` where the
    step did not converge (NaN), so that it counts neither as low nor as high."""
    with np.errstate(all="ignore"):
        lo = np.min(np.where(np.isfinite(vm), vm, np.inf), axis=1, initial=np.inf)
        hi = np.max(np.where(np.isfinite(vm), vm, -np.inf), axis=1, initial=-np.inf)
    return lo, hi


def _calendar_file(config: StudyConfig, feeder: Feeder) -> Any:
    """An event calendar file moved onto the profile year (month and day kept)."""
    from gridplan.ev.events import ELRP, EventCalendar

    if config.dispatch.events in ("every_day", "elrp"):
        return None
    calendar = EventCalendar.read_csv(config.dispatch.events, program=ELRP)
    year = int(feeder.time_index[0].year)
    moved = [
        d.replace(year=year) if not (d.month == 2 and d.day == 29) else d.replace(year=year, day=28)
        for d in pd.DatetimeIndex(calendar.date)
    ]
    return EventCalendar(
        date=np.asarray(moved, dtype="datetime64[D]"),
        start_h=calendar.start_h,
        end_h=calendar.end_h,
        source=f"{calendar.source} (dates moved to the profile year {year})",
        file=calendar.file,
    )


def _median_draw(h: HorizonResult, y: int, limit_pct: np.ndarray) -> int:
    """The draw whose worst asset loading (charging case, relative to the limit) in year
    position ``y`` is the (lower) median across draws."""
    worst = np.nanmax(h.peak_loading_pct[y, :, h.case("charging"), :] / limit_pct, axis=1)
    order = np.argsort(worst, kind="stable")
    return int(order[(len(order) - 1) // 2])


def _event_calendar(ctx: _Context, rng: np.random.Generator) -> Any:
    """The V2G event calendar of one (year, draw): every day, drawn (ELRP) or from a file,
    on the profile year's dates."""
    from gridplan.ev.events import ELRP, draw_event_calendar

    spec = ctx.config.dispatch
    if spec.events == "every_day":
        return None
    if spec.events == "elrp":
        return draw_event_calendar(int(ctx.feeder.time_index[0].year), rng, program=ELRP)
    return ctx.calendar


def _service_bus_positions(feeder: Feeder) -> np.ndarray:
    """Positions (in ``net.bus.index`` order) of buses with in-service loads."""
    net = feeder.net
    buses = np.unique(net.load.bus[net.load.in_service].to_numpy())
    return np.flatnonzero(np.isin(net.bus.index.to_numpy(), buses))


class _Accumulator:
    """Collects per (year, draw) outputs into the :class:`HorizonResult` arrays."""

    def __init__(self, shape: tuple[int, int, int, int], asset_ids: list[str]) -> None:
        y, d, c, a = shape
        self.asset_ids = asset_ids
        self.arrays = {
            "peak": np.full(shape, np.nan),
            "hours": np.zeros(shape),
            "energy": np.zeros(shape),
            "need": np.zeros(shape, dtype=bool),
            "vm_min": np.full((y, d, c), np.nan),
            "vm_max": np.full((y, d, c), np.nan),
            "v_hours": np.zeros((y, d, c)),
            "v_need": np.zeros((y, d, c), dtype=bool),
            "non_converged": np.zeros((y, d, c), dtype=int),
            "export": np.zeros((y, d, c)),
            "charge": np.zeros((y, d, c)),
        }
        self.downstream = np.zeros((y, d, a, 4))
        self.requirement = np.zeros((y, d, a, 2))
        self.n_ev = np.zeros((y, d), dtype=int)
        self.n_enrolled = np.zeros((y, d), dtype=int)
        self.enrolled_kw = np.zeros((y, d))
        self.factor = np.zeros(y)
        self.details: list[pd.DataFrame] = []
        self.years_seen: dict[int, int] = {}

    def add(self, y: int, d: int, out: dict[str, Any]) -> None:
        for c, record in enumerate(out["cases"].values()):
            for key, array in self.arrays.items():
                array[y, d, c] = record[key]
        self.downstream[y, d] = out["downstream"]
        self.requirement[y, d] = np.column_stack(out["requirement"])
        self.n_ev[y, d], self.n_enrolled[y, d] = out["n_ev"], out["n_enrolled"]
        self.enrolled_kw[y, d] = out["enrolled_kw"]
        self.factor[y] = out["factor"]
        if out["need_detail"].empty and self.details:
            return  # keep one (empty) frame for the columns; skip the rest
        detail = out["need_detail"].copy()
        detail.insert(0, "draw", d)
        detail.insert(0, "year_pos", y)
        self.details.append(detail)

    def result(
        self, years: np.ndarray, cases: dict[str, str | None], config: StudyConfig, feeder: Feeder
    ) -> HorizonResult:
        a = self.arrays
        frames = [d for d in self.details if not d.empty] or self.details[:1]
        details = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if not details.empty:
            details.insert(0, "year", years[details.pop("year_pos").to_numpy()])
        return HorizonResult(
            years=years,
            cases=list(cases),
            strategies=dict(cases),
            asset_ids=self.asset_ids,
            load_factor=self.factor,
            peak_loading_pct=a["peak"],
            hours_over_limit=a["hours"],
            overload_energy_kvah=a["energy"],
            need=a["need"],
            min_vm_pu=a["vm_min"],
            max_vm_pu=a["vm_max"],
            voltage_hours_out=a["v_hours"],
            voltage_need=a["v_need"],
            non_converged_steps=a["non_converged"],
            n_ev=self.n_ev,
            n_enrolled=self.n_enrolled,
            enrolled_kw=self.enrolled_kw,
            export_kwh=a["export"],
            charge_kwh=a["charge"],
            evs_downstream=self.downstream[..., 0],
            enrolled_downstream=self.downstream[..., 1],
            export_kw_downstream=self.downstream[..., 2],
            usable_kwh_downstream=self.downstream[..., 3],
            requirement_kw=self.requirement[..., 0],
            requirement_kwh=self.requirement[..., 1],
            need_detail=details,
        )


# --------------------------------------------------------------------------- aggregation
def deferral_per_draw(
    yon_without: np.ndarray, yon_with: np.ndarray, horizon_end: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deferral years per draw and whether each is capped by the horizon.

    ``year of need with V2G − year of need without``; a need that V2G keeps beyond the
    horizon counts as ``horizon_end + 1`` (the deferral is then "at least" that, capped).
    NaN where there is no need without V2G inside the horizon.
    """
    capped = np.isnan(yon_with) & ~np.isnan(yon_without)
    with_filled = np.where(np.isnan(yon_with), horizon_end + 1.0, yon_with)
    deferral = np.where(np.isnan(yon_without), np.nan, with_filled - yon_without)
    return deferral, capped


def deferral_rank(n_draws: int, confidence: float) -> int:
    """Index (in ascending order) of the deferral reached in at least ``confidence`` of draws.

    The largest deferral ``n`` with ``P(deferral >= n) >= confidence``: at most
    ``(1 − confidence) · N`` draws may fall below it.
    """
    return min(n_draws - 1, math.floor((1.0 - confidence) * n_draws + 1e-9))


def _asset_table(
    feeder: Feeder, config: StudyConfig, h: HorizonResult, cost_factor: float = 1.0
) -> pd.DataFrame:
    """Per-asset results: loading in the detail year, years of need, need, V2G, deferral.

    ``cost_factor`` scales every upgrade cost (sensitivity runs)."""
    from gridplan.planning.valuation import present_worth_of_shift_usd

    val = config.valuation
    conf = config.horizon.confidence
    end = int(h.years[-1])
    y_detail = int(np.flatnonzero(h.years == config.year)[0])
    table = feeder.assets[["kind", "element", "name", "rating_kva", "limit_pct"]].copy()
    rating = table.rating_kva.to_numpy()
    for c, case in enumerate(h.cases):
        table[f"peak_loading_pct_{case}"] = np.median(h.peak_loading_pct[y_detail, :, c], axis=0)
        table[f"hours_over_limit_{case}"] = np.median(h.hours_over_limit[y_detail, :, c], axis=0)
        table[f"overload_energy_kvah_{case}"] = np.median(
            h.overload_energy_kvah[y_detail, :, c], axis=0
        )
    table["peak_kva_charging"] = table.peak_loading_pct_charging / 100.0 * rating
    table["evs_downstream"] = np.median(h.evs_downstream[y_detail], axis=0)
    table["v2g_enrolled_evs_downstream"] = np.median(h.enrolled_downstream[y_detail], axis=0)
    yon = {case: h.year_of_need(case) for case in h.cases}
    for case in h.cases:
        table[f"year_of_need_{case}_p50"] = year_quantile(yon[case], 0.5, end)
        table[f"year_of_need_{case}_p90"] = year_quantile(yon[case], 0.9, end)
        table[f"need_probability_{case}"] = need_probability(yon[case], h.years)[-1]
    # Need in the P50 year of need without V2G (charging case), median over draws.
    need_year = table["year_of_need_charging_p50"].to_numpy()
    table["need_year"] = need_year
    _need_characterization(table, h, need_year)
    # V2G cases: deferral, firmness.
    v2g_cases = [c for c in h.cases if c.startswith("v2g")]
    for case in v2g_cases:
        deferral, capped = deferral_per_draw(yon["charging"], yon[case], end)
        has = ~np.isnan(deferral)
        median = np.full(deferral.shape[1], np.nan)
        at_conf = np.full(deferral.shape[1], np.nan)
        capped_at_conf = np.zeros(deferral.shape[1], dtype=bool)
        for a in range(deferral.shape[1]):
            values = np.sort(deferral[has[:, a], a])
            if values.size:
                median[a] = values[(values.size - 1) // 2]
                at_conf[a] = values[deferral_rank(values.size, conf)]
                capped_at_conf[a] = bool(capped[has[:, a], a][values == at_conf[a]].any())
        table[f"deferral_years_{case}_p50"] = median
        table[f"deferral_years_{case}"] = at_conf
        table[f"deferral_capped_{case}"] = capped_at_conf
        firm = 1.0 - h.need[:, :, h.case(case), :].mean(axis=1)  # (Y, A)
        table[f"firmness_{case}_end"] = firm[-1]
    upgrades = choose_upgrades(feeder, _horizon_peak_kva(table, h))
    table = table.join(upgrades)
    escalate = (1.0 + val.escalation_rate) ** (
        val.dollar_year - table.dollar_year.fillna(val.dollar_year)
    )
    table["cost_usd_dollar_year"] = table.cost_usd * escalate * cost_factor
    for case in v2g_cases:
        t1 = table.year_of_need_charging_p50.to_numpy() - val.dollar_year
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


def _horizon_peak_kva(table: pd.DataFrame, h: HorizonResult) -> pd.Series:
    """Median over draws of each asset's highest charging-case peak in the horizon [kVA]."""
    peak = np.nanmax(h.peak_loading_pct[:, :, h.case("charging"), :], axis=0)  # (D, A)
    return pd.Series(
        np.median(peak, axis=0) / 100.0 * table.rating_kva.to_numpy(), index=table.index
    )


def _need_characterization(table: pd.DataFrame, h: HorizonResult, need_year: np.ndarray) -> None:
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


def _needs_table(h: HorizonResult) -> pd.DataFrame:
    """Long table: per asset, case and year, probability of need across draws and firmness."""
    rows = []
    for case in h.cases:
        c = h.case(case)
        prob_year = h.need[:, :, c, :].mean(axis=1)  # need in that year (Y, A)
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
                        "firmness": 1.0 - prob_year[y, a] if case.startswith("v2g") else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def _notes(config: StudyConfig, h: HorizonResult) -> list[str]:
    """Warnings a planner must read with the numbers."""
    notes = []
    val = config.valuation
    if val.escalation_rate > val.discount_rate:
        notes.append(
            f"Cost escalation ({val.escalation_rate:.2%}) exceeds the discount rate "
            f"({val.discount_rate:.2%}): deferring an upgrade raises its present cost, so "
            "deferral values are negative."
        )
    bad = int(h.non_converged_steps.sum())
    if bad:
        notes.append(
            f"{bad} power-flow steps did not converge; their loading and voltages are left "
            "out (NaN), so peaks may be understated -- see power_flow in this summary."
        )
    return notes


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _critical_asset(assets: pd.DataFrame) -> str:
    """The asset whose charging-case peak (detail year) is highest relative to its limit."""
    ratio = assets.peak_loading_pct_charging / assets.limit_pct
    return str(ratio.fillna(-np.inf).idxmax())


def _num(x: Any) -> Any:
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return x
    return None if not math.isfinite(x) else round(x, 6)


def _summary(
    config: StudyConfig,
    feeder: Feeder,
    h: HorizonResult,
    detail: dict[str, Any],
    assets: pd.DataFrame,
    time_index: pd.DatetimeIndex,
) -> dict[str, Any]:
    critical = _critical_asset(assets)
    row = assets.loc[critical]
    fleet: Fleet = detail["fleet"]
    dispatched: dict[str, DispatchResult] = detail["dispatch"]
    v2g = dispatched["v2g"]
    shortfall = v2g.departure_shortfall_kwh
    over = assets.peak_loading_pct_charging > assets.limit_pct
    with_need = assets.year_of_need_charging_p50.notna()
    v2g_cases = [c for c in h.cases if c.startswith("v2g")]
    end = int(h.years[-1])
    return {
        "study": config.name,
        "feeder": feeder.name,
        "feeder_description": feeder.description,
        "gridplan_version": __version__,
        "year": config.year,
        "base_year": config.base_year,
        "seed": config.seed,
        "horizon": {
            "start": int(h.years[0]),
            "end": end,
            "draws": int(h.need.shape[1]),
            "confidence": config.horizon.confidence,
            "load_factor": {
                str(int(y)): _num(f) for y, f in zip(h.years, h.load_factor, strict=True)
            },
        },
        "cases": {case: (h.strategies[case] or "no EVs") for case in h.cases},
        "period": {
            "kind": config.period.kind,
            "start": str(time_index[0]),
            "end": str(time_index[-1]),
            "steps": len(time_index),
            "step_h": feeder.step_h,
        },
        "detail_draw": int(detail.get("draw", 0)),
        "fleet": {
            "households": int(feeder.households.sum()),
            "evs_per_household": _num(fleet.evs_per_household),
            "evs": fleet.n_ev,
            "v2g_enrolled_evs": int(fleet.v2g_enrolled.sum()),
            "evs_by_year_p50": {
                str(int(y)): _num(np.median(h.n_ev[i])) for i, y in enumerate(h.years)
            },
            "charging_energy_kwh": _num(dispatched["charging"].charge_kwh.sum()),
            "v2g_export_kwh": _num(v2g.export_kwh.sum()),
            "v2g_case_charging_energy_kwh": _num(v2g.charge_kwh.sum()),
            "departure_shortfall_kwh": _num(np.nansum(shortfall)),
            "departures_short": int(np.nansum(shortfall > 1e-6)),
            "trip_shortfall_kwh_yr": _num(fleet.trip_shortfall_kwh.sum()),
            "dwell_shortfall_kwh_yr": _num(fleet.dwell_shortfall_kwh.sum()),
        },
        "power_flow": {
            case: {
                "non_converged_steps": int(h.non_converged_steps[:, :, c].sum()),
                "min_vm_pu": _num(np.nanmin(h.min_vm_pu[:, :, c])),
                "max_vm_pu": _num(np.nanmax(h.max_vm_pu[:, :, c])),
                "voltage_need_probability_end": _num(h.voltage_need[-1, :, c].mean()),
            }
            for c, case in enumerate(h.cases)
        },
        "assets_monitored": len(assets),
        "assets_over_limit": {
            case: int((assets[f"peak_loading_pct_{case}"] > assets.limit_pct).sum())
            for case in h.cases
        },
        "assets_with_need_in_horizon": int(with_need.sum()),
        "critical_asset": {
            "asset_id": critical,
            "name": str(row["name"]),
            "rating_kva": _num(row.rating_kva),
            "limit_pct": _num(row.limit_pct),
            "evs_downstream": _num(row.evs_downstream),
            "v2g_enrolled_evs_downstream": _num(row.v2g_enrolled_evs_downstream),
            **{f"peak_loading_pct_{c}": _num(row[f"peak_loading_pct_{c}"]) for c in h.cases},
            **{f"hours_over_limit_{c}": _num(row[f"hours_over_limit_{c}"]) for c in h.cases},
            "year_of_need_charging": _int_or_none(row.year_of_need_charging_p50),
            "year_of_need_charging_p90": _int_or_none(row.year_of_need_charging_p90),
            "year_of_need_v2g": _int_or_none(row.year_of_need_v2g_p50),
            "deferral_years": _num(row.deferral_years_v2g),
            "deferral_capped": bool(row.deferral_capped_v2g),
            "firmness_v2g_end": _num(row.firmness_v2g_end),
            "peak_excess_kw": _num(row.peak_excess_kw),
            "v2g_required_kw": _num(row.v2g_required_kw),
            "v2g_required_kwh": _num(row.v2g_required_kwh),
            "v2g_evs_required": _num(row.v2g_evs_required),
            "upgrade_new_rating_kva": _num(row.new_rating_kva),
            "upgrade_cost_usd": _num(row.cost_usd_dollar_year),
            "deferral_value_usd": _num(row.deferral_value_usd_v2g),
        },
        "deferral_value_usd_total": {
            case: _num(assets[f"deferral_value_usd_{case}"][with_need].sum()) for case in v2g_cases
        },
        "detail_year": {
            "year": config.year,
            "assets_over_limit_charging": int(over.sum()),
            "evs_downstream_total": _num(assets.evs_downstream.sum()),
        },
        "valuation": {
            "method": (
                "present worth of moving the upgrade from the P50 year of need without V2G by "
                f"the deferral reached in {config.horizon.confidence:.0%} of draws: "
                "C·(q^t1 − q^t2), q=(1+i)/(1+r)"
            ),
            "dollar_year": config.valuation.dollar_year,
            "discount_rate": config.valuation.discount_rate,
            "escalation_rate": config.valuation.escalation_rate,
        },
        "notes": _notes(config, h),
        "assumptions": [
            "Every planning year is simulated over the same study period of the feeder's "
            "profile year (2016 calendar), with base load scaled to that year and a new fleet.",
            "An asset needs an upgrade in a year when it is over its planning limit for more "
            "than the allowed hours of the simulated period.",
            "Deferral years are capped at the horizon: a capped value means 'at least'.",
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
    write_csv(out / "assets.csv", assets.reset_index(), index=False, float_format="%.6g")
    files.append("assets.csv")
    write_csv(out / "needs.csv", result.needs, index=False, float_format="%.6g")
    files.append("needs.csv")
    write_csv(out / "valuation.csv", _valuation_table(result), index=False, float_format="%.6g")
    files.append("valuation.csv")
    if result.economics is not None:
        write_csv(out / "economics.csv", result.economics.reset_index(), index=False)
        files.append("economics.csv")
    if result.sensitivity is not None:
        write_csv(out / "sensitivity.csv", result.sensitivity, index=False)
        files.append("sensitivity.csv")
    write_csv(out / "evs.csv", _ev_table(result), index=False, float_format="%.6g")
    files.append("evs.csv")
    write_csv(out / "timeseries.csv", _timeseries_table(result), float_format="%.6g")
    files.append("timeseries.csv")
    write_with(out / "critical_asset_loading.png", lambda tmp: _plot_critical(result, tmp))
    files.append("critical_asset_loading.png")
    from gridplan.outputs.figures import write_figures
    from gridplan.outputs.gis import export_assets
    from gridplan.outputs.report import write_report

    figures = write_figures(result, out)
    files += figures
    files += export_assets(result, out)
    files += write_report(result, out, figures)
    summary = {**result.summary, "files": [*files, "summary.json"]}
    write_json(out / "summary.json", summary)
    files.append("summary.json")
    return files


def _valuation_table(result: StudyResult) -> pd.DataFrame:
    """Per-asset valuation: need, upgrade, its cost and source, deferral and its value."""
    a = result.assets
    columns = [
        "kind", "name", "rating_kva", "limit_pct", "year_of_need_charging_p50",
        "year_of_need_charging_p90", "upgrade_option", "new_rating_kva", "upgrade_sufficient",
        "cost_usd", "dollar_year", "cost_usd_dollar_year", "cost_source",
    ]  # fmt: skip
    for case in [c for c in result.horizon.cases if c.startswith("v2g")]:
        columns += [
            f"year_of_need_{case}_p50", f"deferral_years_{case}", f"deferral_capped_{case}",
            f"firmness_{case}_end", f"deferral_value_usd_{case}",
        ]  # fmt: skip
    return a[[c for c in columns if c in a.columns]].reset_index()


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
    for case in result.loading_pct:
        frame[f"critical_loading_pct_{case}"] = result.loading_pct[case][:, col]
        frame[f"min_vm_pu_{case}"] = result.min_vm_pu[case]
        frame[f"converged_{case}"] = result.converged[case]
    for case, r in result.ev_dispatch.items():
        frame[f"ev_power_kw_{case}"] = np.asarray(r.power_by_load_kw).sum(axis=1)
    return frame


def _plot_critical(result: StudyResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = result.summary["critical_asset"]
    col = result.feeder.assets.index.get_loc(info["asset_id"])
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    colors = {"base": "0.55", "charging": "tab:red", "v2g": "tab:blue"}
    for case, loading in result.loading_pct.items():
        strategy = result.horizon.strategies[case]
        label = "no EVs" if strategy is None else f"{case} ({strategy})"
        ax.plot(result.time_index, loading[:, col], label=label, color=colors.get(case), lw=1.1)
    ax.axhline(
        info["limit_pct"], color="k", ls="--", lw=1, label=f"planning limit {info['limit_pct']:g} %"
    )
    ax.set_ylabel("loading [% of rating]")
    ax.set_title(
        f"{result.feeder.name} {result.config.year}: {info['name']} "
        f"(rating {info['rating_kva']:.0f} kVA; {info['evs_downstream']:.0f} EVs downstream, "
        f"{info['v2g_enrolled_evs_downstream']:.0f} V2G-enrolled)",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


# --------------------------------------------------------------------------- valuation
def _economics(
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
    - With ``[program]``: :func:`gridplan.planning.valuation.program_economics` over the horizon
      years. Export energy per year is the study period's export scaled to a year
      (exact when the period is the whole year). Exports of ``v2g_event`` count as
      emergency-event exports (ELRP-paid), exports of other strategies as local relief.
    """
    from gridplan.planning.valuation import (
        annuity_factor,
        capacity_value_usd_per_kw_yr,
        program_economics,
        value_per_enrolled_ev_usd_yr,
    )

    r = config.valuation.discount_rate
    n_years = len(h.years)
    annuity = annuity_factor(r, n_years)
    period_days = len(time_index) * step_h / 24.0
    to_year = 365.0 / period_days
    with_need = assets.year_of_need_charging_p50.notna()
    capacity_kw = float(assets.v2g_required_kw[with_need].fillna(0).sum())
    n_enrolled = float(np.median(h.n_enrolled[-1]))
    enrolled_kw = float(np.median(h.enrolled_kw[-1]))
    rows = []
    for case in [c for c in h.cases if c.startswith("v2g")]:
        gross = float(assets[f"deferral_value_usd_{case}"][with_need].sum())
        annual = gross / annuity
        sign = -1.0 if annual < 0 else 1.0
        c = h.case(case)
        export_yr = float(np.median(h.export_kwh[:, :, c], axis=1).mean() * to_year)
        extra_charge_yr = float(
            np.median(h.charge_kwh[:, :, c] - h.charge_kwh[:, :, h.case("charging")], axis=1).mean()
            * to_year
        )
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
            event = export_yr if h.strategies[case] == "v2g_event" else 0.0
            econ = program_economics(
                gross,
                n_enrolled=n_enrolled,
                v2g_export_kwh_per_yr=export_yr,
                event_export_kwh_per_yr=event,
                enrolled_capacity_kw=enrolled_kw,
                years=n_years,
                discount_rate=r,
                costs=config.program.costs(),
                charging_loss_kwh_per_yr=max(extra_charge_yr - export_yr, 0.0),
            )
            row.update(
                {k: v for k, v in econ.__dict__.items() if k not in ("years", "annuity_factor")}
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("case")


def _economics_summary(economics: pd.DataFrame) -> dict[str, Any]:
    return {
        case: {k: (_num(v) if not isinstance(v, bool | str) else v) for k, v in row.items()}
        for case, row in economics.iterrows()
    }


def _headline(economics: pd.DataFrame) -> float:
    """The sensitivity metric: ratepayer net benefit of the primary V2G case when program
    costs are given, else its gross deferral value [USD]."""
    row = economics.loc["v2g"]
    if "ratepayer_net_benefit_pv_usd" in economics.columns:
        return float(row.ratepayer_net_benefit_pv_usd)
    return float(row.deferral_value_usd)


def _sensitivity(
    config: StudyConfig,
    feeder: Feeder,
    h: HorizonResult,
    economics: pd.DataFrame,
    path: Path | None,
) -> pd.DataFrame:
    """One-at-a-time tornado over discount rate, escalation, upgrade cost (re-valued) and
    load growth, EV adoption, enrollment (re-run with ``sensitivity.draws`` draws)."""
    from gridplan.planning.valuation import tornado

    spec = config.sensitivity
    draws = spec.draws or config.horizon.draws
    growth_rate = (
        config.load_growth.rate if config.load_growth.rate is not None else feeder.growth_rate
    )
    base = {
        "discount_rate": config.valuation.discount_rate,
        "escalation_rate": config.valuation.escalation_rate,
        "upgrade_cost": 1.0,
        "load_growth": 1.0,
        "ev_adoption": 1.0,
        "enrollment": 1.0,
    }
    ranges = {name: tuple(getattr(spec, name)) for name in base}
    rerun_base = config.model_copy(
        update={
            "horizon": config.horizon.model_copy(update={"draws": draws}),
            "sensitivity": SensitivitySpec(),
        }
    )
    cache: dict[tuple[float, float, float], HorizonResult] = {}

    def horizon_for(growth: float, adoption: float, enrollment: float) -> HorizonResult:
        key = (growth, adoption, enrollment)
        if key == (1.0, 1.0, 1.0) and draws == config.horizon.draws:
            return h
        if key not in cache:
            fleet = rerun_base.fleet
            fleet = fleet.model_copy(
                update={
                    "adoption": fleet.adoption_spec().scaled(adoption),
                    "evs_per_household": None,
                    "v2g_enrolled_share": min(1.0, fleet.v2g_enrolled_share * enrollment),
                }
            )
            growth_spec = rerun_base.load_growth
            if growth_spec.factors:
                factors = {k: 1.0 + (v - 1.0) * growth for k, v in growth_spec.factors.items()}
                growth_spec = LoadGrowthSpec(factors=factors)
            else:
                growth_spec = LoadGrowthSpec(rate=growth_rate * growth)
            variant = rerun_base.model_copy(update={"fleet": fleet, "load_growth": growth_spec})
            cache[key] = run(variant, write=False).horizon
        return cache[key]

    def evaluate(
        discount_rate: float,
        escalation_rate: float,
        upgrade_cost: float,
        load_growth: float,
        ev_adoption: float,
        enrollment: float,
    ) -> float:
        horizon = horizon_for(load_growth, ev_adoption, enrollment)
        valuation = config.valuation.model_copy(
            update={"discount_rate": discount_rate, "escalation_rate": escalation_rate}
        )
        variant = config.model_copy(update={"valuation": valuation})
        table = _asset_table(feeder, variant, horizon, cost_factor=upgrade_cost)
        econ = _economics(variant, horizon, table, _period_index(config, feeder), feeder.step_h)
        return _headline(econ)

    return tornado(evaluate, base, ranges)


def _period_index(config: StudyConfig, feeder: Feeder) -> pd.DatetimeIndex:
    return feeder.time_index[period_slice(feeder, config.period)]
