"""Stochastic EV fleets: who owns which EV, where, and how they drive and plug in.

:func:`sample_fleet` draws a :class:`Fleet` for one feeder, scenario and planning year:

- **Adoption**: EVs per household by planning year from a trajectory
  (:class:`AdoptionSpec`: constant, linear, logistic S-curve, or a year -> value table),
  optionally multiplied inside **adoption zones** (GeoJSON polygons with a ``multiplier``
  property; point-in-polygon with shapely). EVs per load are Poisson with mean
  ``rate × households``: expected totals hold, draws differ.
- **Vehicles and chargers** from the catalogs shipped with the package
  (``gridplan/data/vehicles.csv``, ``chargers.csv``; each row names its source). A scenario
  sets the vehicle mix, the charger mix, the share of V2G-capable vehicles and the
  enrollment share among them. Enrolled EVs use their bidirectional charger; their export
  limit is the smaller of the vehicle's and the charger's (and of ``export_kw_max``).
- **Behaviour** per EV per day: home arrival, departure next morning and daily miles,
  with separate weekday and weekend parameters. The energy need is capped at the usable
  battery less reserve, and a dwell too short to recharge at full power is reported as a
  shortfall per EV-day -- never silently dropped.

Everything is vectorized over EVs and days; every draw goes through one
``numpy.random.Generator``, so the same seed gives the same fleet on any machine.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from gridplan.core.config import StrictModel
from gridplan.core.errors import ConfigError
from gridplan.core.io import require_file
from gridplan.grid.feeders import Feeder

__all__ = [
    "CATALOG_BOUNDS",
    "CHARGER_COLUMNS",
    "CHARGING_BEHAVIOURS",
    "DATA",
    "DEFAULT_CHARGER_MIX",
    "DEFAULT_VEHICLE_MIX",
    "MAX_EVS_PER_HOUSEHOLD",
    "MAX_ZONE_MULTIPLIER",
    "VEHICLE_COLUMNS",
    "AdoptionSpec",
    "DayBehaviour",
    "Fleet",
    "FleetScenario",
    "RNGLike",
    "Share",
    "Zones",
    "as_generator",
    "charger_catalog",
    "read_zones",
    "sample_fleet",
    "vehicle_catalog",
    "zone_multipliers",
]

RNGLike = np.random.Generator | int | None
#: Arrival times are clipped to this part of the day [h] (see :func:`sample_fleet`).
ARRIVAL_MIN_H, ARRIVAL_MAX_H = 0.5, 23.5
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
#: Charging behaviours a customer can have in a mixed fleet (``FleetScenario.charging_mix``):
#: the charging strategies of :class:`gridplan.ev.options.Strategy` that do not export.
CHARGING_BEHAVIOURS: tuple[str, ...] = ("unmanaged", "tou", "smart")
DATA = Path(__file__).resolve().parents[1] / "data"


def as_generator(rng: RNGLike) -> np.random.Generator:
    """Return ``rng`` if it is a Generator, else ``numpy.random.default_rng(rng)``."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


# --------------------------------------------------------------------------- catalogs
#: Allowed ranges of catalog columns: (lowest, highest, lowest is exclusive).
CATALOG_BOUNDS = {
    "battery_kwh": (0.0, 1000.0, True),
    "efficiency_kwh_per_mi": (0.0, 5.0, True),
    "max_ac_charge_kw": (0.0, 500.0, True),
    "v2g_export_kw": (0.0, 500.0, False),
    "power_kw": (0.0, 1000.0, True),
    "export_kw": (0.0, 1000.0, False),
}


def _read_catalog(path: str, key: str, required: tuple[str, ...]) -> pd.DataFrame:
    file = Path(path)
    require_file(file, "a CSV", what="catalog file")
    return _read_catalog_cached(str(file.resolve()), file.stat().st_mtime_ns, key, required)


def _check_catalog_values(frame: pd.DataFrame, file: Path) -> None:
    """Numbers within :data:`CATALOG_BOUNDS` (made floats) and true/false flags."""
    for col, (low, high, open_low) in CATALOG_BOUNDS.items():
        if col not in frame.columns:
            continue
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        too_low = values <= low if open_low else values < low
        bad = ~np.isfinite(values) | too_low | (values > high)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            bracket = "(" if open_low else "["
            raise ConfigError(
                f"row {row + 2}: expected a number in {bracket}{low:g}, {high:g}] "
                f"(got {frame[col].iloc[row]!r})",
                file=file,
                field=col,
            )
        frame[col] = values
    if "bidirectional" in frame.columns:
        flags = frame["bidirectional"].astype(str).str.strip().str.lower()
        bad = ~flags.isin(["true", "false"])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ConfigError(
                f"row {row + 2}: expected true or false (got {frame['bidirectional'].iloc[row]!r})",
                file=file,
                field="bidirectional",
            )


@lru_cache(maxsize=8)
def _read_catalog_cached(
    path: str, _mtime: int, key: str, required: tuple[str, ...]
) -> pd.DataFrame:
    file = Path(path)
    try:
        frame = pd.read_csv(file, encoding="utf-8", dtype={key: str})
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text (expected a UTF-8 CSV)", file=file) from None
    except pd.errors.EmptyDataError:
        raise ConfigError("file is empty (expected a CSV with a header row)", file=file) from None
    except (OSError, pd.errors.ParserError) as exc:
        raise ConfigError(f"cannot read catalog: {exc}", file=file) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"missing column (expected {', '.join(required)})", file=file, field=missing[0]
        )
    unknown = [c for c in frame.columns if c not in required]
    if unknown:
        raise ConfigError(
            f"unknown column (expected {', '.join(required)})", file=file, field=str(unknown[0])
        )
    if frame.empty:
        raise ConfigError("catalog has no rows", file=file)
    ids = frame[key].astype(str).str.strip()
    if (frame[key].isna() | (ids == "")).any():
        row = int(np.flatnonzero(frame[key].isna() | (ids == ""))[0]) + 2
        raise ConfigError(f"row {row}: empty id", file=file, field=key)
    if ids.duplicated().any():
        raise ConfigError(f"duplicate id '{ids[ids.duplicated()].iloc[0]}'", file=file, field=key)
    frame[key] = ids
    _check_catalog_values(frame, file)
    no_source = frame["source"].isna() | (frame["source"].astype(str).str.strip() == "")
    if no_source.any():
        row = int(np.flatnonzero(no_source)[0]) + 2
        raise ConfigError(f"row {row}: every row needs a source", file=file, field="source")
    return frame.set_index(key)


VEHICLE_COLUMNS = (
    "vehicle_id", "description", "battery_kwh", "efficiency_kwh_per_mi", "max_ac_charge_kw",
    "v2g_export_kw", "bidirectional_charger", "source",
)  # fmt: skip
CHARGER_COLUMNS = ("charger_id", "level", "power_kw", "bidirectional", "export_kw", "source")


def vehicle_catalog(path: str | Path | None = None) -> pd.DataFrame:
    """The vehicle catalog, indexed by ``vehicle_id``.

    Columns: ``battery_kwh`` (usable) [kWh], ``efficiency_kwh_per_mi`` [kWh/mi],
    ``max_ac_charge_kw`` [kW], ``v2g_export_kw`` [kW] (0 where not V2G-capable),
    ``bidirectional_charger`` (charger id used for V2G), ``source``.
    """
    frame = _read_catalog(str(path or DATA / "vehicles.csv"), "vehicle_id", VEHICLE_COLUMNS)
    return frame.copy()


def charger_catalog(path: str | Path | None = None) -> pd.DataFrame:
    """The charger catalog, indexed by ``charger_id``: ``level``, ``power_kw`` [kW],
    ``bidirectional``, ``export_kw`` [kW], ``source``."""
    frame = _read_catalog(str(path or DATA / "chargers.csv"), "charger_id", CHARGER_COLUMNS)
    frame = frame.copy()
    frame["bidirectional"] = frame["bidirectional"].astype(str).str.lower() == "true"
    return frame


#: Default vehicle mix (shares of EVs) [-]: an assumption spanning the catalog, weighted to
#: the best-selling sedans and crossovers, with bidirectional models as the V2G-capable part.
DEFAULT_VEHICLE_MIX = {
    "tesla_model_3": 0.35,
    "chevy_bolt_ev": 0.15,
    "tesla_model_x": 0.05,
    "audi_e_tron": 0.05,
    "nissan_leaf": 0.15,
    "ford_f150_lightning": 0.15,
    "kia_ev9": 0.10,
}

#: Default home charger mix for EVs not in V2G [-]: mostly Level 2 (assumption; AFDC lists
#: Level 1 at 1.4-1.9 kW and Level 2 at 3.3-11.5 kW by vehicle).
DEFAULT_CHARGER_MIX = {"l1_1.4": 0.1, "l2_7.2": 0.6, "l2_9.6": 0.2, "l2_11.5": 0.1}


# --------------------------------------------------------------------------- adoption
class AdoptionSpec(StrictModel):
    """EVs per household by planning year.

    - ``constant``: ``value`` every year.
    - ``linear``: from ``start_value`` in ``start_year`` to ``end_value`` in ``end_year``,
      held flat outside.
    - ``logistic``: ``ceiling / (1 + exp(-steepness · (year − midpoint_year)))``.
    - ``table``: ``{year = value}`` pairs, linearly interpolated, held flat outside;
      values must not decrease with the year.
    """

    kind: Literal["constant", "linear", "logistic", "table"] = "constant"
    value: float | None = Field(default=None, ge=0, le=10, allow_inf_nan=False)
    start_year: int | None = None
    start_value: float | None = Field(default=None, ge=0, le=10, allow_inf_nan=False)
    end_year: int | None = None
    end_value: float | None = Field(default=None, ge=0, le=10, allow_inf_nan=False)
    midpoint_year: float | None = Field(default=None, allow_inf_nan=False)
    ceiling: float | None = Field(default=None, gt=0, le=10, allow_inf_nan=False)
    steepness: float | None = Field(default=None, gt=0, le=5, allow_inf_nan=False)
    table: dict[str, Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)]] | None = None

    @model_validator(mode="after")
    def _complete(self) -> AdoptionSpec:
        need = {
            "constant": ("value",),
            "linear": ("start_year", "start_value", "end_year", "end_value"),
            "logistic": ("midpoint_year", "ceiling", "steepness"),
            "table": ("table",),
        }[self.kind]
        for name in need:
            if getattr(self, name) is None:
                raise ValueError(f"adoption kind '{self.kind}' needs field '{name}'")
        if self.kind == "linear" and (self.end_year or 0) <= (self.start_year or 0):
            raise ValueError("end_year must be after start_year")
        if self.kind == "table":
            points = self.points()
            if len(points) < 1:
                raise ValueError("table needs at least one year")
            values = [v for _, v in points]
            if any(b < a for a, b in itertools.pairwise(values)):
                raise ValueError("table values must not decrease from year to year")
        return self

    def scaled(self, factor: float) -> AdoptionSpec:
        """The same trajectory with every level multiplied by ``factor`` (sensitivity)."""
        update: dict[str, object] = {}
        for name in ("value", "start_value", "end_value", "ceiling"):
            if getattr(self, name) is not None:
                update[name] = getattr(self, name) * factor
        if self.table is not None:
            update["table"] = {k: v * factor for k, v in self.table.items()}
        return self.model_copy(update=update)

    def points(self) -> list[tuple[int, float]]:
        """Table points sorted by year (``table`` kind)."""
        out = []
        for key, value in (self.table or {}).items():
            try:
                out.append((int(key), float(value)))
            except ValueError:
                raise ValueError(f"table key '{key}' is not a year") from None
        return sorted(out)

    def evs_per_household(self, year: float) -> float:
        """EVs per household in ``year`` [EV/household]."""
        if self.kind == "constant":
            return float(self.value or 0.0)
        if self.kind == "linear":
            return float(
                np.interp(
                    year,
                    [self.start_year or 0, self.end_year or 0],
                    [self.start_value or 0.0, self.end_value or 0.0],
                )
            )
        if self.kind == "logistic":
            k, mid = self.steepness or 0.0, self.midpoint_year or 0.0
            return float((self.ceiling or 0.0) / (1.0 + math.exp(-k * (year - mid))))
        years, values = zip(*self.points(), strict=True)
        return float(np.interp(year, years, values))


# --------------------------------------------------------------------------- behaviour
class DayBehaviour(StrictModel):
    """Plug-in behaviour for one kind of day (weekday or weekend).

    Arrival home is the end of the last trip home and departure the start of the first trip
    from home (NHTS 2017 trip records: ENDTIME/STRTTIME with WHYTO/WHYFROM = home). Daily
    miles are gamma-distributed with the given mean and spread; about 30 mi/day for a
    one-vehicle household (US DOE VTO Fact of the Week #1047, from NHTS 2017). Times are
    normal: arrivals clipped to 00:30-23:30 of the day, departures (next morning) wrapped
    to the clock; spreads and weekend shifts are assumptions.
    """

    arrival_mean_h: float = Field(ge=0, lt=24)
    arrival_sd_h: float = Field(ge=0, le=12)
    departure_mean_h: float = Field(ge=0, lt=24)
    departure_sd_h: float = Field(ge=0, le=12)
    daily_miles_mean: float = Field(ge=0, le=1000)
    daily_miles_sd: float = Field(ge=0, le=1000)


def _weekday() -> DayBehaviour:
    return DayBehaviour(
        arrival_mean_h=17.5, arrival_sd_h=2.0, departure_mean_h=7.5, departure_sd_h=1.0,
        daily_miles_mean=30.0, daily_miles_sd=15.0,
    )  # fmt: skip


def _weekend() -> DayBehaviour:
    return DayBehaviour(
        arrival_mean_h=17.0, arrival_sd_h=3.0, departure_mean_h=9.5, departure_sd_h=2.0,
        daily_miles_mean=25.0, daily_miles_sd=15.0,
    )  # fmt: skip


class FleetScenario(StrictModel):
    """EV population, vehicles, chargers, V2G and behaviour of a scenario.

    Defaults and their sources:

    - adoption ``evs_per_household = 0.5`` (constant; an assumption, set per study);
    - vehicle and charger mixes: :data:`DEFAULT_VEHICLE_MIX`, :data:`DEFAULT_CHARGER_MIX`;
      catalogs ``gridplan/data/vehicles.csv`` and ``chargers.csv`` name each figure's source;
    - ``reserve_soc = 0.2``: typical reserve state of charge in V2G programs and studies;
    - ``charge_efficiency = 0.9``: typical AC charging efficiency; discharge the same;
    - ``target_soc = 0.9``: departure target (assumption: daily charging to 90 %);
    - weekday/weekend behaviour: :class:`DayBehaviour` (NHTS 2017 / DOE VTO Fact #1047).

    ``evs_per_household`` is shorthand for a constant :class:`AdoptionSpec`; give one of the
    two. The uniform overrides (``battery_kwh``, ``efficiency_kwh_per_mi``, ``charger_kw``,
    ``export_kw``, and the behaviour fields such as ``arrival_mean_h`` or
    ``daily_miles_mean``) set that value for every EV (behaviour: on every day) instead of
    the catalogs and the weekday/weekend parameters -- for what-if studies.
    ``v2g_capable_share`` overrides the share of bidirectional models implied by the
    vehicle mix (the mix is then split into capable and other models, each renormalized).

    ``charging_mix`` (default ``None``: every EV follows the case's charging strategy)
    gives shares of customers by charging behaviour, e.g. ``{unmanaged = 0.6, tou = 0.3,
    smart = 0.1}`` (:data:`CHARGING_BEHAVIOURS`; the shares sum to 1). Each EV draws its
    behaviour once (it persists along a trajectory). In the study's ``charging`` case every
    EV follows its own behaviour; in the V2G cases (and ``v1g``) the V2G-enrolled EVs follow
    the V2G strategy and the others their own behaviour (see :mod:`gridplan.ev.mixed`).
    The shares are scenario inputs (no published California split is assumed: PG&E's
    EV2-A enrollment and managed-charging pilots are site-specific).
    """

    evs_per_household: float | None = Field(default=None, ge=0, le=10, allow_inf_nan=False)
    adoption: AdoptionSpec | None = None
    zones: str | None = None  # GeoJSON path (relative to the study file)
    vehicle_catalog: str | None = None  # CSV replacing the packaged vehicle catalog
    charger_catalog: str | None = None  # CSV replacing the packaged charger catalog
    vehicle_mix: dict[str, Share] = Field(default_factory=lambda: dict(DEFAULT_VEHICLE_MIX))
    charger_mix: dict[str, Share] = Field(default_factory=lambda: dict(DEFAULT_CHARGER_MIX))
    v2g_capable_share: Share | None = None
    v2g_enrolled_share: Share = 0.5
    charging_mix: dict[str, Share] | None = None
    battery_kwh: float | None = Field(default=None, gt=0, le=1000, allow_inf_nan=False)
    efficiency_kwh_per_mi: float | None = Field(default=None, gt=0, le=5, allow_inf_nan=False)
    charger_kw: float | None = Field(default=None, gt=0, le=500, allow_inf_nan=False)
    export_kw: float | None = Field(default=None, ge=0, le=500, allow_inf_nan=False)
    arrival_mean_h: float | None = Field(default=None, ge=0, lt=24)
    arrival_sd_h: float | None = Field(default=None, ge=0, le=12)
    departure_mean_h: float | None = Field(default=None, ge=0, lt=24)
    departure_sd_h: float | None = Field(default=None, ge=0, le=12)
    daily_miles_mean: float | None = Field(default=None, ge=0, le=1000)
    daily_miles_sd: float | None = Field(default=None, ge=0, le=1000)
    transformer_export_limit_kw: float | None = Field(
        default=None, ge=0, le=1e5, allow_inf_nan=False
    )
    reserve_soc: Share = 0.2
    target_soc: float = Field(default=0.9, gt=0, le=1)
    charge_efficiency: float = Field(default=0.9, gt=0, le=1)
    discharge_efficiency: float = Field(default=0.9, gt=0, le=1)
    weekday: DayBehaviour = Field(default_factory=_weekday)
    weekend: DayBehaviour = Field(default_factory=_weekend)

    @field_validator("vehicle_mix", "charger_mix")
    @classmethod
    def _sums_to_one(cls, mix: dict[str, float]) -> dict[str, float]:
        total = sum(mix.values())
        if not mix or abs(total - 1.0) > 1e-6:
            raise ValueError(f"shares must sum to 1 (got {total:g})")
        return mix

    @field_validator("charging_mix")
    @classmethod
    def _behaviours(cls, mix: dict[str, float] | None) -> dict[str, float] | None:
        if mix is None:
            return None
        for name in mix:
            if name not in CHARGING_BEHAVIOURS:
                raise ValueError(_unknown("charging behaviour", name, list(CHARGING_BEHAVIOURS)))
        return cls._sums_to_one(mix)

    @model_validator(mode="after")
    def _consistent(self) -> FleetScenario:
        if self.target_soc <= self.reserve_soc:
            raise ValueError(
                f"target_soc ({self.target_soc}) must be above reserve_soc ({self.reserve_soc})"
            )
        if self.evs_per_household is not None and self.adoption is not None:
            raise ValueError("give either 'evs_per_household' or 'adoption', not both")
        if self.vehicle_catalog is None and self.charger_catalog is None:
            self.check_catalogs()  # custom catalogs: checked once their paths are resolved
        return self

    def catalogs(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The vehicle and charger catalogs of this scenario (packaged or custom)."""
        return vehicle_catalog(self.vehicle_catalog), charger_catalog(self.charger_catalog)

    def check_catalogs(self) -> None:
        """Check the mixes against the catalogs.

        Raises
        ------
        ValueError
            Unknown vehicle or charger (with a "did you mean"), a V2G model without a
            bidirectional charger, or a capable share the mix cannot meet.
        """
        vehicles, chargers = self.catalogs()
        for name in self.vehicle_mix:
            if name not in vehicles.index:
                raise ValueError(_unknown("vehicle", name, list(vehicles.index)))
        for name in self.charger_mix:
            if name not in chargers.index:
                raise ValueError(_unknown("charger", name, list(chargers.index)))
        if self.v2g_capable_share is not None:
            capable = vehicles.v2g_export_kw.reindex(list(self.vehicle_mix)) > 0
            mix = pd.Series(self.vehicle_mix)
            if self.v2g_capable_share > 0 and mix[capable.to_numpy()].sum() <= 0:
                raise ValueError("v2g_capable_share > 0 but the vehicle mix has no V2G model")
            if self.v2g_capable_share < 1 and mix[~capable.to_numpy()].sum() <= 0:
                raise ValueError("v2g_capable_share < 1 but the vehicle mix has only V2G models")
        for name in self.vehicle_mix:
            if vehicles.v2g_export_kw.at[name] > 0:
                bidi = vehicles.bidirectional_charger.at[name]
                if not isinstance(bidi, str) or bidi not in chargers.index:
                    raise ValueError(
                        f"V2G model '{name}' names bidirectional charger {bidi!r}, which is not "
                        "in the charger catalog"
                    )

    def behaviour(self, weekend: bool) -> DayBehaviour:
        """Weekday or weekend behaviour with the uniform overrides applied."""
        base = self.weekend if weekend else self.weekday
        names = list(DayBehaviour.model_fields)
        update = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        return base.model_copy(update=update) if update else base

    def adoption_spec(self) -> AdoptionSpec:
        """The adoption trajectory (``evs_per_household`` as a constant one; default 0.5)."""
        if self.adoption is not None:
            return self.adoption
        value = 0.5 if self.evs_per_household is None else self.evs_per_household
        return AdoptionSpec(kind="constant", value=value)


def _unknown(kind: str, name: str, valid: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown {kind} '{name}' ({hint}expected one of: {', '.join(valid)})"


# --------------------------------------------------------------------------- zones
@dataclass(frozen=True)
class Zones:
    """Adoption zones: polygons (EPSG:4326) with adoption multipliers."""

    geometries: list[object]
    multipliers: np.ndarray
    names: list[str]


#: Most EVs per household anywhere on a feeder, zones included [-] (the bound of every
#: adoption field).
MAX_EVS_PER_HOUSEHOLD = 10.0

#: Largest adoption multiplier of a zone [-]: twenty times the feeder's adoption rate
#: already puts several EVs in every household of the zone at today's rates (a bound on
#: input, not a forecast: higher values are typing errors, and 1e6 would draw millions).
MAX_ZONE_MULTIPLIER = 20.0


def read_zones(path: str | Path, *, field: str = "fleet.zones") -> Zones:
    """Read adoption zones from a GeoJSON FeatureCollection of (Multi)Polygons.

    Each feature needs a numeric ``multiplier`` property in [0, :data:`MAX_ZONE_MULTIPLIER`]
    (optional ``name``).

    Raises
    ------
    ConfigError
        Missing file, invalid JSON/GeoJSON, non-polygon geometry or a bad multiplier; the
        message names the file and the feature.
    """
    import shapely

    file = Path(path)
    require_file(file, "GeoJSON", what="zone file", field=field)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text (expected GeoJSON)", file=file, field=field) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc}", file=file, field=field) from None
    except RecursionError:
        raise ConfigError(
            "JSON nested too deeply (expected GeoJSON)", file=file, field=field
        ) from None
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise ConfigError("expected a GeoJSON FeatureCollection", file=file, field="type")
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise ConfigError("expected a non-empty list of features", file=file, field="features")
    geoms, mults, names = [], [], []
    for n, feature in enumerate(features):
        where = f"features[{n}]"
        if not isinstance(feature, dict) or not isinstance(feature.get("geometry"), dict):
            raise ConfigError("expected a Feature with a geometry", file=file, field=where)
        try:
            geom = shapely.from_geojson(json.dumps(feature["geometry"]))
        except Exception as exc:
            raise ConfigError(
                f"invalid geometry: {exc}", file=file, field=f"{where}.geometry"
            ) from None
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise ConfigError(
                f"expected a Polygon or MultiPolygon (got {geom.geom_type})",
                file=file,
                field=f"{where}.geometry",
            )
        props = feature.get("properties") or {}
        mult = props.get("multiplier")
        if (
            isinstance(mult, bool)
            or not isinstance(mult, int | float)
            or not math.isfinite(mult)
            or not 0 <= mult <= MAX_ZONE_MULTIPLIER
        ):
            raise ConfigError(
                f"expected a number in [0, {MAX_ZONE_MULTIPLIER:g}] (got {mult!r})",
                file=file,
                field=f"{where}.properties.multiplier",
            )
        geoms.append(geom)
        mults.append(float(mult))
        names.append(str(props.get("name", f"zone {n}")))
    return Zones(geometries=geoms, multipliers=np.array(mults), names=names)


def zone_multipliers(feeder: Feeder, zones: Zones, *, file: str | Path | None = None) -> np.ndarray:
    """Adoption multiplier of each load: the first zone (file order) containing its bus,
    1 outside every zone.

    Raises
    ------
    ConfigError
        When the feeder has no bus coordinates.
    """
    import shapely

    if feeder.bus_geo is None:
        raise ConfigError(
            f"feeder '{feeder.name}' has no bus coordinates, so adoption zones cannot be "
            "applied (remove 'zones' or use a feeder with geodata)",
            file=file,
            field="fleet.zones",
        )
    buses = feeder.load_bus
    points = feeder.bus_geo.geometry.reindex(buses).to_numpy()
    result = np.ones(len(buses))
    assigned = np.zeros(len(buses), dtype=bool)
    for geom, mult in zip(zones.geometries, zones.multipliers, strict=True):
        inside = np.array([p is not None and bool(shapely.covers(geom, p)) for p in points])
        new = inside & ~assigned
        result[new] = mult
        assigned |= new
    return result


# --------------------------------------------------------------------------- the fleet
@dataclass(frozen=True, eq=False)
class Fleet:
    """A sampled EV fleet: arrays over EVs and (day, EV).

    Attributes
    ----------
    year
        Planning year the fleet was drawn for.
    evs_per_household
        Adoption rate of that year before zone multipliers [EV/household].
    load_pos
        Position of each EV's home load in ``net.load.index`` order, shape (ev,).
    bus
        Bus index of each EV's home, shape (ev,).
    vehicle
        Vehicle id of each EV (catalog index), shape (ev,).
    charger
        Charger id of each EV (bidirectional charger for enrolled EVs), shape (ev,).
    battery_kwh
        Usable battery capacity [kWh], shape (ev,).
    charger_kw
        Charging power limit: min(vehicle AC limit, charger power) [kW], shape (ev,).
    export_kw
        V2G export limit [kW], 0 for EVs not enrolled, shape (ev,).
    v2g_capable, v2g_enrolled
        Whether each EV can export, and is enrolled in V2G, shape (ev,).
    reserve_kwh, target_kwh
        Reserve energy (never discharged below by V2G) and departure target [kWh], (ev,).
    charge_efficiency, discharge_efficiency
        Grid-to-battery and battery-to-grid efficiencies [-].
    transformer_export_limit_kw
        Limit on total V2G export behind one service transformer [kW] (inf: none).
    days
        Midnight of each simulated day, shape (day,).
    arrival_h
        Arrival home, hours after that day's midnight [h], shape (day, ev).
    departure_h
        Departure, hours after that day's midnight (> 24 means the next morning) [h],
        shape (day, ev). Always after arrival and before the next day's arrival.
    trip_kwh
        Energy driven before each arrival [kWh], shape (day, ev); capped at target less
        reserve (see ``trip_shortfall_kwh``).
    trip_shortfall_kwh
        Driving energy that the cap removed [kWh], shape (day, ev); reported, never dropped.
    dwell_shortfall_kwh
        Energy of the day's trip that the following dwell cannot recharge even at full
        power [kWh], shape (day, ev).
    charging_behaviour
        Each EV's own charging behaviour (a name of :data:`CHARGING_BEHAVIOURS`), shape
        (ev,); ``None``: the fleet has no mix (every EV follows the case's strategy).
    ev_uniform
        One uniform number in [0, 1) per EV, drawn last, for per-EV properties drawn
        after the fleet that must persist along a trajectory (the V2G performance derate
        of :func:`gridplan.ev.availability.derate_from_uniform`), shape (ev,); ``None``
        for fleets built by hand.
    """

    year: int
    evs_per_household: float
    load_pos: np.ndarray
    bus: np.ndarray
    vehicle: np.ndarray
    charger: np.ndarray
    battery_kwh: np.ndarray
    charger_kw: np.ndarray
    export_kw: np.ndarray
    v2g_capable: np.ndarray
    v2g_enrolled: np.ndarray
    reserve_kwh: np.ndarray
    target_kwh: np.ndarray
    charge_efficiency: float
    discharge_efficiency: float
    transformer_export_limit_kw: float
    days: pd.DatetimeIndex
    arrival_h: np.ndarray
    departure_h: np.ndarray
    trip_kwh: np.ndarray
    trip_shortfall_kwh: np.ndarray
    dwell_shortfall_kwh: np.ndarray
    charging_behaviour: np.ndarray | None = None
    ev_uniform: np.ndarray | None = None

    @property
    def n_ev(self) -> int:
        """Number of EVs."""
        return int(self.load_pos.size)

    def evs_per_load(self, n_loads: int) -> np.ndarray:
        """Count of EVs at each load, shape (load,)."""
        return np.bincount(self.load_pos, minlength=n_loads)

    def take(self, keep: np.ndarray) -> Fleet:
        """The fleet of the EVs where ``keep`` (bool, shape (ev,)) is True, in order."""
        keep = np.asarray(keep, dtype=bool)
        per_ev: dict[str, Any] = {}
        per_day: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.ndim == 1 and value.size == keep.size:
                per_ev[f.name] = value[keep]
            elif isinstance(value, np.ndarray) and value.ndim == 2:
                per_day[f.name] = value[:, keep]
        return dataclasses.replace(self, **per_ev, **per_day)


def _draw_choice(
    gen: np.random.Generator, names: list[str], shares: np.ndarray, n: int
) -> np.ndarray:
    """Draw ``n`` names with the given shares (returned as indices into ``names``)."""
    if n == 0:
        return np.zeros(0, dtype=int)
    return gen.choice(len(names), size=n, p=shares / shares.sum())


def sample_fleet(
    feeder: Feeder,
    scenario: FleetScenario,
    year: int,
    rng: RNGLike = None,
    *,
    zones: Zones | None = None,
    horizon: Sequence[int] | None = None,
    period: pd.DatetimeIndex | None = None,
) -> Fleet:
    """Draw an EV fleet for ``feeder`` in planning ``year``.

    Parameters
    ----------
    feeder
        The feeder (households per load, bus coordinates, profile days).
    scenario
        Adoption, vehicle/charger mixes, V2G shares and behaviour.
    year
        Planning year; sets the adoption rate from the trajectory.
    rng
        Generator or seed; every draw goes through it.
    zones
        Adoption zones already read (:func:`read_zones`); default: read ``scenario.zones``
        if given.
    horizon
        The planning years of one *trajectory* (a future followed through the horizon),
        ``year`` among them. With the same ``rng`` seed, the fleets of these years are
        nested: an EV of year t is in every later year whose adoption is at least year t's,
        at the same home with the same vehicle, charger, V2G capability and enrollment and
        the same daily schedule (adopters stay adopters, a replaced vehicle is the same
        model, enrollment persists). ``None``: a fleet of ``year`` alone.
    period
        The steps the fleet will be dispatched over: sessions are drawn only for their days
        and the :data:`SESSION_LEAD_DAYS` days before (whose sessions and warm-up reach into
        the period); ``None``: every day of the feeder's profiles.

    Returns
    -------
    Fleet

    Notes
    -----
    Draw order (fixed, so a seed means the same fleet everywhere): counts per load,
    (with ``horizon``: one uniform number per EV), V2G capability, vehicle model,
    enrollment, charger, then per (day, EV) arrival, departure and miles, and last (only
    with ``scenario.charging_mix``) each EV's charging behaviour, then one uniform number
    per EV (:attr:`Fleet.ev_uniform`) -- so a mix leaves every other draw of the seed
    unchanged.

    With ``horizon``, the EVs of the trajectory's highest adoption rate ``r_max`` are drawn
    (Poisson counts per load), each with a uniform number ``u``; year t keeps the EVs with
    ``u · r_max < r_t``. Thinning a Poisson count keeps it Poisson, so each year's fleet has
    the same distribution as one drawn for that year alone.
    """
    gen = as_generator(rng)
    adoption = scenario.adoption_spec()
    rate = adoption.evs_per_household(year)
    years = [int(year)] if horizon is None else [int(y) for y in horizon]
    if int(year) not in years:
        raise ValueError(f"year {year} is not in the trajectory's horizon {years}")
    top_rate, top_year = max((adoption.evs_per_household(y), y) for y in years)
    households = np.asarray(feeder.households, dtype=float)
    multiplier = _adoption_multipliers(feeder, scenario, zones, top_rate, top_year)
    counts = gen.poisson(top_rate * multiplier * households)
    load_pos = np.repeat(np.arange(households.size), counts)
    n_ev = load_pos.size
    keep = None if horizon is None else gen.random(n_ev) * top_rate < rate
    bus = feeder.load_bus[load_pos] if n_ev else np.zeros(0, dtype=int)

    vehicles, chargers = scenario.catalogs()
    vehicle, capable = _draw_vehicles(gen, scenario, vehicles, n_ev)
    enrolled = capable & (gen.random(n_ev) < scenario.v2g_enrolled_share)

    charger, battery, efficiency, charger_kw, export = _ev_equipment(
        gen, scenario, vehicles, chargers, vehicle, enrolled
    )

    days, arrival, departure, miles = _draw_sessions(
        gen, scenario, _session_days(feeder.time_index, period), n_ev
    )
    trip = miles * efficiency
    usable = (scenario.target_soc - scenario.reserve_soc) * battery
    trip_capped = np.minimum(trip, usable)
    rechargeable = (departure - arrival) * charger_kw * scenario.charge_efficiency
    fleet = Fleet(
        year=int(year),
        evs_per_household=rate,
        load_pos=load_pos,
        bus=np.asarray(bus),
        vehicle=vehicle,
        charger=charger,
        battery_kwh=battery,
        charger_kw=charger_kw,
        export_kw=export,
        v2g_capable=capable,
        v2g_enrolled=enrolled,
        reserve_kwh=scenario.reserve_soc * battery,
        target_kwh=scenario.target_soc * battery,
        charge_efficiency=scenario.charge_efficiency,
        discharge_efficiency=scenario.discharge_efficiency,
        transformer_export_limit_kw=(
            np.inf
            if scenario.transformer_export_limit_kw is None
            else scenario.transformer_export_limit_kw
        ),
        days=days,
        arrival_h=arrival,
        departure_h=departure,
        trip_kwh=trip_capped,
        trip_shortfall_kwh=trip - trip_capped,
        dwell_shortfall_kwh=np.maximum(trip_capped - rechargeable, 0.0),
        charging_behaviour=_draw_behaviours(gen, scenario.charging_mix, n_ev),
        ev_uniform=gen.random(n_ev),
    )
    return fleet if keep is None else fleet.take(keep)


def _draw_behaviours(
    gen: np.random.Generator, mix: dict[str, float] | None, n_ev: int
) -> np.ndarray | None:
    """Each EV's charging behaviour drawn from ``mix`` (names), or ``None`` without one."""
    if mix is None:
        return None
    names = list(mix)
    return np.asarray(names, dtype=object)[
        _draw_choice(gen, names, np.array([mix[n] for n in names]), n_ev)
    ]


def _ev_equipment(
    gen: np.random.Generator,
    scenario: FleetScenario,
    vehicles: pd.DataFrame,
    chargers: pd.DataFrame,
    vehicle: np.ndarray,
    enrolled: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Charger (bidirectional for enrolled EVs), battery [kWh], efficiency [kWh/mi],
    charging limit [kW] and export limit [kW, 0 unless enrolled] of each EV."""
    n_ev = int(vehicle.size)
    ch_names = list(scenario.charger_mix)
    ch_shares = np.array([scenario.charger_mix[c] for c in ch_names])
    charger = np.array(ch_names, dtype=object)[_draw_choice(gen, ch_names, ch_shares, n_ev)]
    bidi = vehicles.bidirectional_charger.reindex(vehicle).to_numpy(dtype=object)
    charger = np.where(enrolled, bidi, charger) if n_ev else charger

    spec = vehicles.reindex(vehicle)
    ch_spec = chargers.reindex(charger)

    def per_ev(override: float | None, values: np.ndarray) -> np.ndarray:
        return np.full(n_ev, override, dtype=float) if override is not None else values

    battery = per_ev(scenario.battery_kwh, spec.battery_kwh.to_numpy(float))
    efficiency = per_ev(scenario.efficiency_kwh_per_mi, spec.efficiency_kwh_per_mi.to_numpy(float))
    charger_kw = per_ev(
        scenario.charger_kw,
        # AC chargers are limited by the vehicle's on-board charger too; DC ones are not.
        np.where(
            ch_spec.level.astype(str).to_numpy() == "dc",
            ch_spec.power_kw.to_numpy(float),
            np.minimum(spec.max_ac_charge_kw.to_numpy(float), ch_spec.power_kw.to_numpy(float)),
        ),
    )
    export = per_ev(
        scenario.export_kw,
        np.minimum(spec.v2g_export_kw.to_numpy(float), ch_spec.export_kw.to_numpy(float)),
    )
    export = np.where(enrolled, export, 0.0)
    return charger, battery, efficiency, charger_kw, export


def _adoption_multipliers(
    feeder: Feeder, scenario: FleetScenario, zones: Zones | None, rate: float, year: int
) -> np.ndarray:
    """Zone multiplier of each load [-] (1 without zones), within
    :data:`MAX_EVS_PER_HOUSEHOLD` at the year's adoption ``rate`` [EVs per household]."""
    households = np.asarray(feeder.households, dtype=float)
    multiplier = np.ones(households.size)
    if zones is None and scenario.zones:
        zones = read_zones(scenario.zones)
    if zones is not None:
        multiplier = zone_multipliers(feeder, zones, file=scenario.zones)
    if households.size and rate * multiplier.max() > MAX_EVS_PER_HOUSEHOLD:
        raise ConfigError(
            f"{rate:g} EVs per household in {year} times a zone multiplier of "
            f"{multiplier.max():g} is over {MAX_EVS_PER_HOUSEHOLD:g} EVs per household; "
            "expected a lower adoption or multiplier",
            file=scenario.zones,
            field="fleet.zones" if zones is not None else "fleet.evs_per_household",
        )
    return multiplier


def _draw_vehicles(
    gen: np.random.Generator, scenario: FleetScenario, vehicles: pd.DataFrame, n_ev: int
) -> tuple[np.ndarray, np.ndarray]:
    """Vehicle model and V2G capability of each EV (capability first when its share is
    given, then a model of that kind from the mix)."""
    names = list(scenario.vehicle_mix)
    shares = np.array([scenario.vehicle_mix[v] for v in names])
    v2g_model = vehicles.v2g_export_kw.reindex(names).to_numpy() > 0
    if scenario.v2g_capable_share is None:
        vehicle_idx = _draw_choice(gen, names, shares, n_ev)
        capable = v2g_model[vehicle_idx]
    else:
        capable = gen.random(n_ev) < scenario.v2g_capable_share
        vehicle_idx = np.empty(n_ev, dtype=int)
        for flag in (True, False):
            pool = np.flatnonzero(v2g_model == flag)
            mask = capable == flag
            if mask.any():
                pick = _draw_choice(gen, [names[i] for i in pool], shares[pool], int(mask.sum()))
                vehicle_idx[mask] = pool[pick]
    vehicle = np.array(names, dtype=object)[vehicle_idx] if n_ev else np.zeros(0, dtype=object)
    return vehicle, capable


#: Days before a dispatch period whose sessions can reach into it (a plug-in departs up to
#: 48 h after its day's midnight; the dispatch warms up 24 h before the period) [d].
SESSION_LEAD_DAYS = 3


def _session_days(
    time_index: pd.DatetimeIndex, period: pd.DatetimeIndex | None
) -> pd.DatetimeIndex:
    """The profile days sessions are drawn for: all, or the period's and the lead days."""
    days = pd.DatetimeIndex(pd.Index(time_index.normalize()).unique())
    if period is None or len(period) == 0:
        return days
    first = period[0].normalize() - pd.Timedelta(days=SESSION_LEAD_DAYS)
    last = period[-1].normalize()
    return days[(days >= first) & (days <= last)]


def _draw_sessions(
    gen: np.random.Generator,
    scenario: FleetScenario,
    time_index: pd.DatetimeIndex,
    n_ev: int,
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """Days, and per (day, EV) arrival and departure [h after the day's midnight] and
    miles driven [mi]."""
    days = pd.DatetimeIndex(pd.Index(time_index.normalize()).unique(), name="day")
    n_day = days.size
    weekend = np.asarray(days.dayofweek >= 5)[:, None]
    wd, we = scenario.behaviour(weekend=False), scenario.behaviour(weekend=True)

    def param(name: str) -> np.ndarray:
        return np.where(weekend, getattr(we, name), getattr(wd, name))

    shape = (n_day, n_ev)
    # Arrivals stay within the day (clipped to 00:30-23:30) so that each day's session
    # starts after the previous one; departures (next morning) wrap on the clock.
    arrival = np.clip(
        param("arrival_mean_h") + param("arrival_sd_h") * gen.standard_normal(shape),
        ARRIVAL_MIN_H,
        ARRIVAL_MAX_H,
    )
    dep_clock = param("departure_mean_h") + param("departure_sd_h") * gen.standard_normal(shape)
    departure = 24 + dep_clock % 24
    # Keep each plug-in window inside [arrival + 0.5 h, next arrival - 0.5 h].
    next_arrival = np.vstack([arrival[1:] + 24, np.full((1, n_ev), 48.0)])
    departure = np.clip(departure, arrival + 0.5, next_arrival - 0.5)
    miles = _gamma(gen, param("daily_miles_mean"), param("daily_miles_sd"), shape)
    return days, arrival, departure, miles


def _gamma(
    gen: np.random.Generator, mean: np.ndarray, sd: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Gamma draws with given mean and standard deviation (arrays broadcast to ``size``);
    exactly the mean where ``sd`` is 0, zero where the mean is 0."""
    mean = np.broadcast_to(np.asarray(mean, dtype=float), size)
    sd = np.broadcast_to(np.asarray(sd, dtype=float), size)
    # Spread and mean more than 1e6 apart: the gamma shape (mean/sd)^2 would overflow or
    # underflow; use the mean (a degenerate draw) there.
    random = (mean > 0) & (sd > 1e-6 * mean) & (mean > 1e-6 * sd)
    safe_sd = np.where(random, sd, 1.0)
    shape = np.where(random, (mean / safe_sd) ** 2, 1.0)
    draws = gen.standard_gamma(shape) * np.where(random, mean / shape, 0.0)
    return np.where(random, draws, np.maximum(mean, 0.0))
