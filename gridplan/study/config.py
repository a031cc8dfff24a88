"""The study config: what a ``STUDY.toml`` may say, validated before anything runs."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from gridplan.core.config import StrictModel, read_toml, validate
from gridplan.core.errors import ConfigError
from gridplan.ev.availability import AvailabilityParameters
from gridplan.ev.dispatch import Strategy
from gridplan.ev.events import ELRP, EventCalendar, load_rate
from gridplan.ev.fleet import FleetScenario, read_zones
from gridplan.ev.options import DEFAULT_DISPATCH_OPTIONS
from gridplan.grid.feeders import Feeder, peak_week, resolve_feeder_path
from gridplan.planning.economics import ProgramCosts

__all__ = [
    "CASES",
    "DEFAULT_DISCOUNT_RATE",
    "DEFAULT_ESCALATION_RATE",
    "CriteriaSpec",
    "DispatchSpec",
    "HorizonSpec",
    "LoadGrowthSpec",
    "PeriodSpec",
    "ProgramSpec",
    "SensitivitySpec",
    "StudyConfig",
    "ValuationSpec",
    "case_strategies",
    "feeder_ref",
    "load_study_config",
    "period_slice",
]

#: Default discount rate (nominal WACC) and cost escalation: National Grid / Niagara Mohawk
#: 2025 marginal cost of service study, NY PSC (WACC 6.87 %, inflation 2.1 %).
DEFAULT_DISCOUNT_RATE = 0.0687
DEFAULT_ESCALATION_RATE = 0.021

CASES = ("base", "charging", "v2g")

#: Most (planning year, draw) units one study may hold [-]: 25 years x 2,000 draws. At the
#: benchmarked ~1 s per full-year unit on two cores that is about half a day.
MAX_STUDY_UNITS = 50_000


# --------------------------------------------------------------------------- config
class PeriodSpec(StrictModel):
    """The simulated period inside the feeder's profile year."""

    kind: Literal["peak_week", "range", "year"] = "peak_week"
    # TOML dates (2016-07-01) or ISO strings ("2016-07-01")
    start: date | None = Field(default=None, strict=False)
    end: date | None = Field(default=None, strict=False)  # exclusive
    #: Days of a year the period stands for in annual export and program payments
    #: (default: its own days -- exports outside the period are not counted; e.g. 365 to
    #: scale a representative period to a year, a stated assumption) [d].
    represents_days: float | None = Field(default=None, gt=0, le=366)

    @model_validator(mode="after")
    def _range(self) -> PeriodSpec:
        if self.kind == "range":
            if self.start is None or self.end is None:
                raise ValueError("period kind 'range' needs 'start' and 'end' dates")
            if self.end <= self.start:
                raise ValueError(f"period end {self.end} must be after start {self.start}")
        return self


#: The dispatch defaults (each written once, in :mod:`gridplan.ev.options`).
_DISPATCH = DEFAULT_DISPATCH_OPTIONS


class DispatchSpec(StrictModel):
    """Charging and V2G strategies (one name or a list each) and the V2G event window.

    Window, months and objective default to :data:`gridplan.ev.options.DEFAULT_DISPATCH_OPTIONS`
    (the event window is the ELRP window, 4-9 p.m.).

    The first charging strategy is the "without V2G" case of the deferral; every V2G
    strategy is compared with it.

    ``v1g_case`` (default on): a case ``v1g`` runs the first V2G strategy with every EV's
    export set to zero -- the same enrolled EVs, managed the same way, without export. It
    splits each V2G deferral into what managed charging (V1G) achieves (charging -> v1g)
    and the increment that export adds (v1g -> v2g), per asset and trajectory.
    ``baseline = "v1g"`` values V2G *beyond* V1G: the deferral value of a V2G case is
    counted from the V1G case's year of need instead of the unmanaged one's.
    """

    charging: str | list[str] = "unmanaged"
    v2g: str | list[str] = "v2g_event"
    window_start_h: float = Field(default=_DISPATCH.window_start_h, ge=0, lt=24)
    window_end_h: float = Field(default=_DISPATCH.window_end_h, gt=0, le=24)
    event_months: list[int] = Field(default_factory=lambda: list(_DISPATCH.event_months))
    # v2g_event days: "every_day" (the window on every day of event_months), "elrp" (event
    # days drawn per planning year and draw within the ELRP rules), or a CSV calendar
    # (date, start_h, end_h; dates are matched by month and day to the profile year).
    events: str = "every_day"
    # tou: a bundled rate name or a rate TOML file (default PG&E EV2-A, peak 4-9 pm).
    rate: str = "pge-ev2a"
    # v2g_optimal: minimize the peak or the energy over the limit.
    objective: Literal["peak", "overload"] = _DISPATCH.objective
    # Grid-aware strategies (smart, v2g_peak_shave, v2g_optimal) plan in kW against this
    # fraction of each asset's planning limit: the margin covers the reactive power and
    # voltage drop that a kW plan does not see (loads at power factor 0.95 draw 5 % more
    # kVA than kW). Assumption; the power flow then checks the result.
    target_fraction: float = Field(default=0.95, gt=0.5, le=1.0)
    v1g_case: bool = True
    baseline: Literal["unmanaged", "v1g"] = "unmanaged"

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
        if self.baseline == "v1g" and not self.v1g_case:
            raise ValueError("baseline 'v1g' needs the V1G case (v1g_case = true)")
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


def _check_units(years: int, draws: int) -> None:
    """Refuse a study of more than :data:`MAX_STUDY_UNITS` (year, draw) units."""
    if years * draws > MAX_STUDY_UNITS:
        raise ValueError(
            f"{years} planning years x {draws} draws is {years * draws:,} (year, draw) units, "
            f"over {MAX_STUDY_UNITS:,}; expected fewer draws or years (a batch runs larger grids)"
        )


class HorizonSpec(StrictModel):
    """Planning years and Monte Carlo draws.

    Each planning year is simulated over the study period with the base load grown to that
    year and a fleet drawn for that year, ``draws`` times. Defaults: the single planning
    ``year``, one draw.

    ``screening`` (default on, where it pays): solve an EV case only at the steps whose
    results could matter, proven step by step from the year's base case
    (:mod:`gridplan.powerflow.screening`); every figure of the study (peak loading, hours
    and energy over the limit, need and its size, extreme voltages, hours outside the band)
    is the same as solving every step. The detail draw's time series are always solved in
    full. With the sweep solver, screening pays only when its per-year basis is shared by
    many draws of a long period on a small feeder
    (:func:`gridplan.study.simulate.use_screening`, ``benchmarks/results/screening.md``);
    elsewhere the study solves every step whatever this says.

    ``draws_as`` (default ``"trajectories"``): draw d is one future followed through the
    horizon, seeded once: adopters stay adopters (year t+1's fleet contains year t's, same
    homes, vehicles and schedules), enrollment persists, and growth compounds on the same
    base (:func:`gridplan.ev.fleet.sample_fleet` with ``horizon``). The year of need is the
    first year of need along each trajectory and its P50/P90 are taken over trajectories.
    ``"independent"`` draws every (year, draw) fleet on its own (gridplan before 0.3): a
    draw then has no path through the horizon and the first year of need is biased early.
    """

    start: int | None = Field(default=None, ge=2000, le=2100)
    end: int | None = Field(default=None, ge=2000, le=2100)
    draws: int = Field(default=1, ge=1, le=10_000)
    confidence: float = Field(default=0.9, gt=0, lt=1)
    screening: bool = True
    draws_as: Literal["trajectories", "independent"] = "trajectories"

    @model_validator(mode="after")
    def _order(self) -> HorizonSpec:
        if self.start is not None and self.end is not None:
            if self.end < self.start:
                raise ValueError(f"horizon end {self.end} is before start {self.start}")
            _check_units(self.end - self.start + 1, self.draws)
        return self


class CriteriaSpec(StrictModel):
    """Planning criteria.

    Loading: an asset needs an upgrade in a year when it is over its planning limit (% of
    rating, from the feeder spec) for more than the allowed hours in the simulated period.
    Voltage: service points (load buses) must stay within ``vm_min_pu``-``vm_max_pu``;
    default ANSI C84.1 Range A service voltage, 0.95-1.05 pu.

    Transformers (``trafo_criterion``): ``"loading"`` (% of nameplate with
    ``allowed_hours_trafo``, the default), or a thermal criterion of the IEEE C57.91 Clause 7
    model (:mod:`gridplan.planning.thermal`, liquid-filled ``trafo_thermal_kind``
    parameters from its sourced table): ``"hot_spot"`` (peak winding hottest-spot
    temperature over ``hot_spot_limit_c``, default the table's planning limit) or
    ``"loss_of_life"`` (equivalent aging over ``loss_of_life_limit_h_per_yr``, default
    8,760 h/yr: normal aging, F_EQA = 1). Ambient temperature: ``ambient = "constant"``
    at ``ambient_c`` (default 30 °C, the C57.91 rating ambient) or ``"long_beach_tmy3"``
    (the bundled NREL TMY3 dry-bulb series, matched by month, day and hour). A thermal
    criterion needs every step's loading: screening is then off. Lines keep the loading
    rule.
    """

    allowed_hours_trafo: float = Field(default=0.0, ge=0, le=8784)
    allowed_hours_line: float = Field(default=0.0, ge=0, le=8784)
    vm_min_pu: float = Field(default=0.95, gt=0.5, lt=1.0)
    vm_max_pu: float = Field(default=1.05, gt=1.0, lt=1.5)
    allowed_hours_voltage: float = Field(default=0.0, ge=0, le=8784)
    trafo_criterion: Literal["loading", "hot_spot", "loss_of_life"] = "loading"
    trafo_thermal_kind: Literal["pole_mount", "pad_mount"] = "pole_mount"
    hot_spot_limit_c: float | None = Field(default=None, gt=50, le=250)
    loss_of_life_limit_h_per_yr: float = Field(default=8760.0, gt=0, le=1e7)
    ambient: Literal["constant", "long_beach_tmy3"] = "constant"
    ambient_c: float = Field(default=30.0, ge=-50, le=60)


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


class AvailabilitySpec(StrictModel):
    """Whether enrolled EVs answer a V2G dispatch (issue 19): opt-outs, overrides, lost
    communications and derated power, drawn per (year, draw) by
    :func:`gridplan.ev.availability.draw_availability`.

    ``preset``: ``"published"`` (the sourced table ``gridplan/data/v2g_availability.csv``,
    the default) or ``"perfect"`` (every EV always answers at full power: gridplan before
    0.3). Any parameter given here replaces the preset's. With ``compare_perfect`` (default
    on) a case ``v2g_perfect`` runs the primary V2G strategy with perfect availability, so
    the deferral and firmness are reported with and without these effects.
    """

    preset: Literal["published", "perfect"] = "published"
    opt_out_probability: float | None = Field(default=None, ge=0, le=1)
    override_probability: float | None = Field(default=None, ge=0, le=1)
    override_window_h: float | None = Field(default=None, gt=0, le=24)
    comms_failure_probability: float | None = Field(default=None, ge=0, le=1)
    comms_scope: Literal["ev", "fleet"] | None = None
    derate_mean: float | None = Field(default=None, ge=0, le=1)
    derate_sd: float | None = Field(default=None, ge=0, le=0.5)
    compare_perfect: bool = True

    @model_validator(mode="after")
    def _valid(self) -> AvailabilitySpec:
        self.parameters()  # the combination must be valid (e.g. the derate's spread)
        return self

    def parameters(self) -> AvailabilityParameters:
        """The availability parameters: the preset's, with the fields given here."""
        base = AvailabilityParameters.preset(self.preset).model_dump()
        given = {
            k: v
            for k, v in self.model_dump(exclude={"preset", "compare_perfect"}).items()
            if v is not None
        }
        return AvailabilityParameters.model_validate({**base, **given})

    @property
    def perfect_case(self) -> bool:
        """Whether a ``v2g_perfect`` case runs beside the V2G case."""
        return self.compare_perfect and not self.parameters().is_perfect


class TargetingSpec(StrictModel):
    """The targeted V2G search per constrained asset (issue 20,
    :mod:`gridplan.study.opportunities`): ``enabled`` (default on) runs it when the primary
    V2G case exports and few enough assets have a need; off, the study reports the
    feeder-wide program only (and runs faster)."""

    enabled: bool = True


class ValuationSpec(StrictModel):
    """Financial assumptions.

    ``upgrade_margin``: an upgrade is sized to the smallest standard option that carries
    the asset's peak in its year of need (P50, median over draws) times ``1 + margin``
    (default 0.25: assumption, headroom for growth after the upgrade; a utility states its
    own sizing rule here).
    """

    dollar_year: int = Field(default=2026, ge=1950, le=2100)
    discount_rate: float = Field(default=DEFAULT_DISCOUNT_RATE, gt=-1, lt=1)
    escalation_rate: float = Field(default=DEFAULT_ESCALATION_RATE, gt=-1, lt=1)
    upgrade_margin: float = Field(default=0.25, ge=0, le=5)


class ProgramSpec(StrictModel):
    """V2G program costs and payments (see :class:`~gridplan.planning.economics.ProgramCosts`
    for the defaults and their sources). Without this section the study reports the gross
    deferral value only."""

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

    def costs(self) -> ProgramCosts:
        """The :class:`~gridplan.planning.economics.ProgramCosts` of this section."""
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
    availability: AvailabilitySpec = Field(default_factory=AvailabilitySpec)
    targeting: TargetingSpec = Field(default_factory=TargetingSpec)

    @model_validator(mode="after")
    def _years(self) -> StudyConfig:
        if self.year < self.base_year:
            raise ValueError(f"year {self.year} is before base_year {self.base_year}")
        start, end = self.years()[0], self.years()[-1]
        if start < self.base_year:
            raise ValueError(f"horizon start {start} is before base_year {self.base_year}")
        if not start <= self.year <= end:
            raise ValueError(f"year {self.year} is outside the horizon {start}-{end}")
        _check_units(end - start + 1, self.horizon.draws)
        return self

    def years(self) -> list[int]:
        """The planning years of the horizon."""
        start = self.horizon.start if self.horizon.start is not None else self.year
        end = self.horizon.end if self.horizon.end is not None else max(start, self.year)
        return list(range(start, end + 1))

    def trajectory_years(self) -> list[int]:
        """The years a trajectory's fleet is followed through: the horizon and the detail
        year."""
        return sorted({*self.years(), int(self.year)})

    def with_overrides(
        self, overrides: Mapping[str, Any], *, file: str | Path | None = None
    ) -> StudyConfig:
        """A copy with fields replaced by dotted path, validated as a whole like a study file.

        Unlike pydantic's ``model_copy(update=...)``, which skips validation, every value
        is checked, and so are the checks across fields (a ``year`` inside the horizon...).
        The batch's scenario grid builds each scenario point with this method.

        Parameters
        ----------
        overrides
            Dotted field path -> new value, applied in order, e.g.
            ``{"fleet.v2g_enrolled_share": 0.3, "horizon.draws": 20}``. A dict value
            replaces the whole table. File names (``fleet.zones``, ``dispatch.rate``...) are
            taken as given: relative to the working directory, not to a study file.
        file
            The file the overrides came from, named in errors; ``None`` for values given
            in Python.

        Returns
        -------
        StudyConfig
            A new config; ``self`` is unchanged (configs are immutable). Fields not named
            keep their values and whether a study file set them or left the default (the
            report says which assumptions a study set).

        Raises
        ------
        ConfigError
            One line naming the field: an unknown field (with a "did you mean"), a wrong
            type, a value out of range, or a check across fields that the result fails.

        Examples
        --------
        >>> config = load_study_config("studies/quickstart.toml")  # doctest: +SKIP
        >>> config.with_overrides({"fleet.v2g_enrolled_share": 0.3})  # doctest: +SKIP
        """
        data = self.model_dump(mode="python", exclude_unset=True)
        for key, value in overrides.items():
            if not isinstance(key, str) or not all(key.split(".")):
                raise ConfigError(
                    f"override key {key!r} is not a dotted field name "
                    "(expected e.g. 'fleet.v2g_enrolled_share')",
                    file=file,
                )
            _set_dotted(data, key, value)
        return validate(StudyConfig, data, file=file)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``key`` ``"a.b.c"``, making tables on the way (a
    table in the way of a non-table value is replaced; validation then names the field)."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = copy.deepcopy(value)


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
    feeder = feeder_ref(config, path)
    try:
        resolve_feeder_path(feeder)
    except ConfigError as exc:
        raise ConfigError(exc.reason, file=path, field="feeder") from None
    return config


def _resolve_dispatch_files(config: StudyConfig, path: Path) -> StudyConfig:
    """Resolve the event calendar and rate files relative to the study and check them."""
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


def feeder_ref(config: StudyConfig, path: Path | None) -> str | Path:
    """A feeder given as a relative .toml path is relative to the study file."""
    ref = config.feeder
    if ref.endswith(".toml") and path is not None and not Path(ref).is_absolute():
        candidate = path.parent / ref
        if candidate.exists():
            return candidate
    return ref


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
    if config.dispatch.v1g_case:
        cases["v1g"] = v2g[0]  # the V2G strategy without export (see DispatchSpec)
    cases["v2g"] = v2g[0]
    if config.availability.perfect_case:
        cases["v2g_perfect"] = v2g[0]  # every enrolled EV answers, at full power
    for name in charging[1:]:
        cases[f"charging:{name}"] = name
    for name in v2g[1:]:
        cases[f"v2g:{name}"] = name
    return cases
