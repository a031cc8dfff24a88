"""Feeder library: TOML specs -> :class:`Feeder` (network, profiles, assets, upgrades, geodata).

A feeder spec (``feeders/<name>.toml``) names

- its network source: a SimBench code, a ``pandapower.networks`` function, a pandapower
  JSON file next to the spec (read through gridplan's checked loader), or a gridplan
  builder (:mod:`gridplan.grid.builders`);
- its base-load and PV profiles: SimBench's own year of 15-minute profiles, a CSV/Parquet
  file of kW per load with a time column, or the builder's;
- the assets to monitor (transformers and lines) with the planning limit in % of rating;
- households per load (given, or derived from annual energy with the rule stated);
- the annual load growth and the upgrade options per monitored asset.

:func:`load_feeder` validates the spec before building anything and returns a
:class:`Feeder` whose arrays use gridplan's units (kW, kvar, kVA).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandapower as pp
import pandas as pd
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gridplan.core.config import StrictModel, read_toml, validate
from gridplan.core.errors import ConfigError, GridplanError
from gridplan.core.io import require_file
from gridplan.grid import builders, california, network_sources
from gridplan.grid.catalog import load_upgrade_catalog
from gridplan.grid.profiles import ProfileMatrix

__all__ = [
    "DE_HOUSEHOLD_ANNUAL_KWH",
    "PROFILE_STEPS_MIN",
    "AssetSpec",
    "Feeder",
    "FeederSpec",
    "HouseholdSpec",
    "NetworkSpec",
    "NonNeg",
    "Pos",
    "ProfileSpec",
    "UpgradeSpec",
    "build_feeder",
    "bundled_feeders",
    "load_feeder",
    "peak_step",
    "peak_week",
    "read_feeder_spec",
    "read_profile_table",
    "resolve_feeder_path",
]

log = logging.getLogger(__name__)

#: Annual consumption of a typical German household [kWh/yr], used to derive household
#: counts from SimBench load energy. BDEW, "Stromverbrauch im Haushalt" (2021): about
#: 3,100-3,500 kWh/yr for a 2-3 person household; 3,500 is taken as the default.
DE_HOUSEHOLD_ANNUAL_KWH = 3500.0

NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]


# --------------------------------------------------------------------------- spec models
class NetworkSpec(StrictModel):
    """Where the network comes from.

    ``function`` must be one of the ``pandapower.networks`` builders allow-listed in
    :data:`gridplan.grid.network_sources.PANDAPOWER_NETWORKS` (never ``from_json``: a JSON
    net is ``source = "json"``, read through :mod:`gridplan.grid.safe_json`), and
    ``options`` are plain values that function or the gridplan builder takes
    (:data:`gridplan.grid.builders.BUILDER_OPTIONS`); SimBench and JSON sources take none.
    """

    source: Literal["simbench", "pandapower", "json", "builder", "opendss"]
    code: str | None = None  # simbench code
    function: str | None = None  # pandapower.networks function
    path: str | None = None  # json file, relative to the spec
    builder: str | None = None  # gridplan builder name
    master: str | None = None  # OpenDSS master .dss file, relative to the spec
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("master")
    @classmethod
    def _relative_dss(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if info.data.get("source") != "opendss":
            raise ValueError("field 'master' needs network source 'opendss'")
        if (
            not value.lower().endswith(".dss")
            or Path(value).is_absolute()
            or ".." in Path(value).parts
        ):
            raise ValueError(
                f"expected a .dss file inside the spec's folder (relative path), got '{value}'"
            )
        return value

    @field_validator("function")
    @classmethod
    def _allowed_function(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("source") == "pandapower":
            if value not in network_sources.PANDAPOWER_NETWORKS:
                message = network_sources.unknown_function_message(value)
                raise PydanticCustomError("network_function", "{reason}", {"reason": message})
        return value

    @field_validator("options")
    @classmethod
    def _plain_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        source = info.data.get("source")
        if source == "pandapower":
            function = info.data.get("function")
            if function not in network_sources.PANDAPOWER_NETWORKS:
                return value  # reported on network.function
            allowed = network_sources.PANDAPOWER_NETWORKS[function]
            owner = f"pandapower.networks.{function}"
        elif source == "builder":
            builder = info.data.get("builder")
            if builder not in builders.BUILDER_OPTIONS:
                return value  # reported as an unknown builder
            allowed, owner = builders.BUILDER_OPTIONS[builder], f"builder '{builder}'"
        elif value and source is not None:
            reason = f"network source '{source}' takes no options"
            raise PydanticCustomError("network_options", "{reason}", {"reason": reason})
        else:
            return value
        try:
            network_sources.check_options(value, allowed, owner)
        except network_sources.OptionError as exc:
            raise PydanticCustomError(
                "network_options", "{reason}", {"reason": exc.reason}
            ) from None
        return value

    @model_validator(mode="after")
    def _needs_reference(self) -> NetworkSpec:
        need = {
            "simbench": "code",
            "pandapower": "function",
            "json": "path",
            "builder": "builder",
            "opendss": "master",
        }
        key = need[self.source]
        if not getattr(self, key):
            raise ValueError(f"network source '{self.source}' needs field '{key}'")
        if self.source == "builder" and self.builder not in builders.BUILDERS:
            raise ValueError(
                f"unknown builder '{self.builder}' "
                f"(expected one of: {', '.join(builders.BUILDERS)})"
            )
        return self


class ProfileSpec(StrictModel):
    """Where the base-load and PV profiles come from."""

    source: Literal["simbench", "builder", "csv", "parquet", "opendss", "doe_tmy3"] = "simbench"
    path: str | None = None  # load profiles [kW], one column per load (name or index)
    time_column: str = "time"
    pv_path: str | None = None  # sgen profiles [kW], one column per sgen
    power_factor: float = Field(default=0.95, gt=0, le=1)
    #: OpenDSS networks: loadshape name -> load class (overrides gridplan.grid.opendss's rule)
    loadshape_classes: dict[str, Literal["residential", "commercial", "primary"]] = Field(
        default_factory=dict, max_length=10_000
    )
    #: source "doe_tmy3": California load shapes per class and rooftop PV, on any network
    doe_tmy3: california.DoeTmy3Spec = Field(default_factory=california.DoeTmy3Spec)

    @model_validator(mode="after")
    def _needs_path(self) -> ProfileSpec:
        if self.source in ("csv", "parquet") and not self.path:
            raise ValueError(f"profile source '{self.source}' needs field 'path'")
        return self


class HouseholdSpec(StrictModel):
    """How many households each load serves.

    Rules: ``annual_energy`` (a load with a residential profile serves its annual kWh /
    ``household_annual_kwh`` homes, at least one), ``given`` (a count per load name),
    ``builder`` (the builder's count) and ``customers`` (the customer count the network model
    gives, e.g. an OpenDSS load's ``NumCust``, for loads with a residential profile).
    """

    rule: Literal["annual_energy", "given", "builder", "customers"] = "annual_energy"
    household_annual_kwh: Pos = DE_HOUSEHOLD_ANNUAL_KWH
    residential_profiles: list[str] = Field(default_factory=lambda: ["H0", "L1", "L2", "lv_"])
    values: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


class AssetSpec(StrictModel):
    """A group of monitored assets."""

    kind: Literal["trafo", "line"]
    select: Literal["all"] | list[str] = Field(default="all", max_length=100_000)
    limit_pct: float = Field(default=100.0, gt=0, le=1000)
    #: monitor only elements of at least this nominal voltage [kV]: a line's from-bus, a
    #: transformer's HV side (e.g. 20.0: the MV feeders of a combined MV/LV grid)
    min_kv: float | None = Field(default=None, gt=0)

    @field_validator("select")
    @classmethod
    def _names(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("an empty list selects no asset; give element names or 'all'")
        return value


class UpgradeSpec(StrictModel):
    """An upgrade option for monitored assets of one kind (or for named assets).

    Either ``catalog_id`` names a row of the packaged upgrade cost catalog
    (:func:`gridplan.grid.catalog.load_upgrade_catalog`: rating or ampacity, cost, dollar year
    and source come from it), or the option is given in full (``cost_usd`` or
    ``cost_usd_per_km``, ``dollar_year``, ``source``). Values given beside a
    ``catalog_id`` override the catalog's for the selected assets; a catalog row without a
    dollar year needs ``dollar_year`` (the assumed one).
    """

    kind: Literal["trafo", "line"]
    assets: Literal["all"] | list[str] = "all"
    catalog_id: str | None = None
    new_rating_kva: Pos | None = None  # trafos
    new_max_i_ka: Pos | None = None  # lines
    cost_usd: NonNeg | None = None  # per unit
    cost_usd_per_km: NonNeg | None = None  # lines: per km of the asset
    dollar_year: int | None = Field(default=None, ge=1950, le=2100)
    source: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> UpgradeSpec:
        if self.cost_usd is not None and self.cost_usd_per_km is not None:
            raise ValueError("give at most one of 'cost_usd' or 'cost_usd_per_km'")
        if self.cost_usd_per_km is not None and self.kind != "line":
            raise ValueError("'cost_usd_per_km' applies to lines only")
        if self.catalog_id is not None:
            return self
        if self.kind == "trafo" and self.new_rating_kva is None:
            raise ValueError("a trafo upgrade needs 'new_rating_kva' (or a 'catalog_id')")
        if self.kind == "line" and self.new_max_i_ka is None:
            raise ValueError("a line upgrade needs 'new_max_i_ka' (or a 'catalog_id')")
        if self.cost_usd is None and self.cost_usd_per_km is None:
            raise ValueError("give 'cost_usd' or 'cost_usd_per_km' (or a 'catalog_id')")
        if self.dollar_year is None or not self.source:
            raise ValueError("an upgrade given in full needs 'dollar_year' and 'source'")
        return self

    def resolved(self, field: str, path: Path | None) -> UpgradeSpec:
        """This option with the catalog row's values filled in (explicit values win)."""
        if self.catalog_id is None:
            return self
        catalog = load_upgrade_catalog().set_index("upgrade_id")
        if self.catalog_id not in catalog.index:
            close = difflib.get_close_matches(self.catalog_id, list(catalog.index), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(
                f"unknown upgrade id '{self.catalog_id}' ({hint}see gridplan/data/"
                "upgrade_costs.csv)",
                file=path,
                field=f"{field}.catalog_id",
            )
        row = catalog.loc[self.catalog_id]
        kind = "trafo" if row.kind == "transformer" else "line"
        if kind != self.kind:
            raise ConfigError(
                f"catalog row '{self.catalog_id}' is a {row.kind} upgrade, not a {self.kind} one",
                file=path,
                field=f"{field}.catalog_id",
            )
        update: dict[str, Any] = {}
        if self.new_rating_kva is None and kind == "trafo":
            update["new_rating_kva"] = float(row.rating_kva)
        if self.new_max_i_ka is None and kind == "line":
            if pd.isna(row.ampacity_a):
                raise ConfigError(
                    f"catalog row '{self.catalog_id}' has no ampacity; give 'new_max_i_ka'",
                    file=path,
                    field=field,
                )
            update["new_max_i_ka"] = float(row.ampacity_a) / 1000.0
        if self.cost_usd is None and self.cost_usd_per_km is None:
            key = "cost_usd_per_km" if row.unit == "per_km" else "cost_usd"
            update[key] = float(row.cost_usd)
        if self.dollar_year is None:
            if pd.isna(row.dollar_year):
                raise ConfigError(
                    f"catalog row '{self.catalog_id}' states no dollar year; give the assumed "
                    "one as 'dollar_year'",
                    file=path,
                    field=f"{field}.dollar_year",
                )
            update["dollar_year"] = int(row.dollar_year)
        if not self.source:
            update["source"] = f"{row.source} (catalog id {self.catalog_id})"
        return self.model_copy(update=update)


class FeederSpec(StrictModel):
    """A feeder spec as written in ``feeders/<name>.toml``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    network: NetworkSpec
    profiles: ProfileSpec = Field(default_factory=ProfileSpec)
    households: HouseholdSpec = Field(default_factory=HouseholdSpec)
    growth_rate: float = Field(default=0.01, ge=-0.5, le=1.0, allow_inf_nan=False)
    assets: list[AssetSpec] = Field(min_length=1)
    upgrades: list[UpgradeSpec] = Field(default_factory=list)

    @field_validator("description")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())


# --------------------------------------------------------------------------- the Feeder
@dataclass(frozen=True, eq=False)
class Feeder:
    """A loaded feeder: pandapower network, profiles, monitored assets and upgrade options.

    Attributes
    ----------
    name
        Feeder name.
    description
        One-line description.
    spec_path
        The TOML spec it came from (``None`` when built in Python).
    net
        pandapower network (MW/MVA inside; gridplan converts at the boundary).
    time_index
        Time stamps of the profile rows, fixed step.
    load_p, load_q
        Base load [kW], [kvar], (time, load) in ``net.load.index`` order, as a
        :class:`~gridplan.grid.profiles.ProfileMatrix`: read row by row (a SimBench grid
        keeps its relative profiles and each load's nominal power, not the product).
        :attr:`load_p_kw` and :attr:`load_q_kvar` give the whole arrays.
    sgen_p
        Generation (PV) [kW], (time, sgen), ``net.sgen.index`` order; positive
        (:attr:`sgen_p_kw` as an array).
    households
        Households served by each load, ``net.load.index`` order.
    assets
        Monitored assets, one row each, indexed by ``asset_id``: ``kind`` (trafo|line),
        ``element`` (index in ``net.trafo``/``net.line``), ``name``, ``rating_kva``
        [kVA], ``limit_pct`` [% of rating], ``length_km`` (lines) [km].
    upgrades
        Upgrade options per asset: ``asset_id``, ``option``, ``new_rating_kva``, ``cost_usd``,
        ``dollar_year``, ``source``.
    growth_rate
        Annual growth of base load [fraction/yr].
    bus_geo, line_geo
        GeoDataFrames of buses (points) and lines (linestrings) in EPSG:4326, or ``None``
        when the network has no geographic coordinates.
    bus_xy
        Schematic bus coordinates of the source model (columns ``x``, ``y``, indexed by
        ``net.bus`` index; unprojected, no CRS: e.g. an OpenDSS circuit's ``BusCoords``), or
        ``None``. Maps draw them as a schematic; GIS layers never label them with a CRS.
    notes
        What a planner must know about how the network was built (e.g. an OpenDSS
        conversion report: elements not converted, fixed taps); a study copies them into
        ``summary.notes``.
    """

    name: str
    description: str
    spec_path: Path | None
    net: pp.pandapowerNet
    time_index: pd.DatetimeIndex
    load_p: ProfileMatrix
    load_q: ProfileMatrix
    sgen_p: ProfileMatrix
    households: np.ndarray
    assets: pd.DataFrame
    upgrades: pd.DataFrame
    growth_rate: float
    bus_geo: Any = None
    line_geo: Any = None
    spec: FeederSpec | None = field(default=None, repr=False)
    bus_xy: pd.DataFrame | None = None
    notes: tuple[str, ...] = ()

    @property
    def step_h(self) -> float:
        """Time step of the profiles [h]."""
        return float((self.time_index[1] - self.time_index[0]) / pd.Timedelta(hours=1))

    @property
    def load_p_kw(self) -> np.ndarray:
        """Base load [kW], shape (time, load), ``net.load.index`` order (the whole array:
        ``time × load × 8`` bytes, read-only when the feeder holds it as such, else built
        on each call; :attr:`load_p` reads rows)."""
        return self.load_p.to_array()

    @property
    def load_q_kvar(self) -> np.ndarray:
        """Base reactive load [kvar], shape (time, load) (the whole array, as
        :attr:`load_p_kw`)."""
        return self.load_q.to_array()

    @property
    def sgen_p_kw(self) -> np.ndarray:
        """Generation (PV) [kW], shape (time, sgen), positive (the whole array)."""
        return self.sgen_p.to_array()

    @property
    def net_load_kw(self) -> np.ndarray:
        """Total base load minus generation per step [kW], shape (time,)."""
        return self.load_p.total() - self.sgen_p.total()

    @property
    def load_bus(self) -> np.ndarray:
        """Bus index of each load, ``net.load.index`` order."""
        return self.net.load.bus.to_numpy()

    def load_p_kw_frame(self, *, label: Literal["name", "index"] = "name") -> pd.DataFrame:
        """Base load [kW] (:attr:`load_p_kw`) indexed by :attr:`time_index`, one column per
        load: its ``net.load`` name (``label="name"``) or index (``label="index"``)."""
        return self.element_frame(self.load_p_kw, "load", label=label)

    def load_q_kvar_frame(self, *, label: Literal["name", "index"] = "name") -> pd.DataFrame:
        """Base reactive load [kvar] (:attr:`load_q_kvar`), labelled as
        :meth:`load_p_kw_frame`."""
        return self.element_frame(self.load_q_kvar, "load", label=label)

    def sgen_p_kw_frame(self, *, label: Literal["name", "index"] = "name") -> pd.DataFrame:
        """Generation (PV) [kW] (:attr:`sgen_p_kw`, positive) indexed by :attr:`time_index`,
        one column per ``net.sgen`` element (no columns on a feeder without generation)."""
        return self.element_frame(self.sgen_p_kw, "sgen", label=label)

    def element_frame(
        self,
        values: np.ndarray,
        element: Literal["load", "sgen"],
        *,
        label: Literal["name", "index"] = "name",
        index: pd.DatetimeIndex | None = None,
    ) -> pd.DataFrame:
        """A (time, element) array as a DataFrame with labelled rows and columns.

        Parameters
        ----------
        values
            One column per element of ``net.<element>``, in its index order.
        element
            ``"load"`` or ``"sgen"``: the pandapower table the columns follow.
        label
            ``"name"``: the element names (columns named ``<element>``); ``"index"``: the
            ``net.<element>`` index (columns named ``<element>_index``).
        index
            Time stamps of the rows; default :attr:`time_index`.

        Raises
        ------
        GridplanError
            ``label="name"`` while names are missing or repeated, or a shape that does
            not match.
        """
        table = self.net[element]
        times = self.time_index if index is None else index
        if values.shape != (len(times), len(table)):
            raise GridplanError(
                f"expected a (time, {element}) array of shape {(len(times), len(table))}, "
                f"got {values.shape}"
            )
        if label == "index":
            columns = pd.Index(table.index, name=f"{element}_index")
        else:
            names = table["name"]
            if names.isna().any() or not names.is_unique:
                raise GridplanError(
                    f"the {element}s of feeder '{self.name}' have missing or repeated names; "
                    "use label='index'"
                )
            columns = pd.Index(names.astype(str), name=element)
        return pd.DataFrame(values, index=times, columns=columns)


# --------------------------------------------------------------------------- discovery
def _bundled_dirs() -> list[Path]:
    here = Path(__file__).resolve().parents[1]  # the gridplan package
    return [p for p in (here / "_feeders", here.parent / "feeders") if p.is_dir()]


def bundled_feeders() -> dict[str, Path]:
    """Names and spec paths of the feeders shipped with gridplan."""
    found: dict[str, Path] = {}
    for folder in _bundled_dirs():
        for spec in sorted(folder.glob("*.toml")):
            found.setdefault(spec.stem, spec)
    return found


def resolve_feeder_path(name_or_path: str | Path) -> Path:
    """Find a feeder spec by bundled name or by path.

    Raises
    ------
    ConfigError
        Unknown name (with the bundled names listed) or missing file.
    """
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix == ".toml" or candidate.exists():
        return require_file(candidate, "a feeder spec TOML", what="feeder spec file")
    bundled = bundled_feeders()
    if text in bundled:
        return bundled[text]
    import difflib

    close = difflib.get_close_matches(text, list(bundled), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(
        f"unknown feeder '{text}'{hint} (expected a bundled feeder: {', '.join(bundled)}, "
        "or a path to a .toml spec)"
    )


def read_feeder_spec(path: str | Path) -> FeederSpec:
    """Read and validate a feeder spec without building the network."""
    path = Path(path)
    return validate(FeederSpec, read_toml(path), file=path)


# --------------------------------------------------------------------------- loading
def load_feeder(name_or_path: str | Path) -> Feeder:
    """Load a feeder by bundled name (``"us-residential"``) or spec path.

    Parameters
    ----------
    name_or_path
        A bundled feeder name (see :func:`bundled_feeders`) or a path to a TOML spec.

    Returns
    -------
    Feeder
        The network, profiles [kW], monitored assets, upgrade options and geodata.

    Raises
    ------
    ConfigError
        Unknown feeder, invalid spec, or profiles that do not fit the network; the message
        names the file and the field.
    """
    path = resolve_feeder_path(name_or_path)
    read_feeder_spec(path)  # validate before anything is built (and on every call)
    cached = _load_cached(str(path.resolve()), path.stat().st_mtime_ns)
    # Each caller gets its own net; the read-only profile arrays are shared.
    return dataclasses.replace(cached, net=copy.deepcopy(cached.net))


@lru_cache(maxsize=8)
def _load_cached(path_str: str, _mtime: int) -> Feeder:
    path = Path(path_str)
    feeder = build_feeder(read_feeder_spec(path), path)
    for profile in (feeder.load_p, feeder.load_q, feeder.sgen_p):
        profile.freeze()
    feeder.households.flags.writeable = False
    return feeder


def build_feeder(spec: FeederSpec, path: Path | None = None) -> Feeder:
    """Build a :class:`Feeder` from a validated spec (``path`` resolves relative files)."""
    base_dir = path.parent if path is not None else Path.cwd()
    built: builders.BuiltFeeder | None = None
    dss_conv = None
    net_spec = spec.network
    if net_spec.source == "opendss":
        from gridplan.grid import opendss

        classes = spec.profiles.loadshape_classes
        dss_conv = opendss.convert(base_dir / (net_spec.master or ""), dict(classes))
        net = dss_conv.net
    elif net_spec.source == "simbench":
        net = _simbench_net(net_spec.code or "", path)
    elif net_spec.source == "pandapower":
        net = _pandapower_net(net_spec.function or "", net_spec.options, path)
    elif net_spec.source == "json":
        from gridplan.grid.safe_json import load_pandapower_json

        net = load_pandapower_json(base_dir / (net_spec.path or ""))
    else:
        try:
            built = builders.BUILDERS[net_spec.builder or ""](**net_spec.options)
        except TypeError as exc:
            raise ConfigError(
                f"bad builder option: {exc}", file=path, field="network.options"
            ) from None
        net = built.net
    if net_spec.source != "json":  # the JSON loader checks its net itself
        from gridplan.grid.safe_json import check_net

        check_net(net, file=path)

    doe = None
    if spec.profiles.source == "doe_tmy3":  # adds its rooftop PV to the net
        doe = california.feeder_profiles(spec.profiles, net, dss_conv, built, path)
    assets = _assets(spec, net, path)
    upgrades = _upgrades(spec, net, assets, path)
    time_index, load_p, load_q, sgen_p = _profiles(spec, net, built, base_dir, path, dss_conv, doe)
    households = _households(spec, net, built, load_p, time_index, path)
    bus_geo, line_geo = _geodata(net)
    return Feeder(
        name=spec.name,
        description=spec.description,
        spec_path=path,
        net=net,
        time_index=time_index,
        load_p=ProfileMatrix.of(load_p),
        load_q=ProfileMatrix.of(load_q),
        sgen_p=ProfileMatrix.of(sgen_p),
        households=households,
        assets=assets,
        upgrades=upgrades,
        growth_rate=spec.growth_rate,
        bus_geo=bus_geo,
        line_geo=line_geo,
        spec=spec,
        bus_xy=_schematic_xy(dss_conv, net, bus_geo),
        notes=tuple(f"OpenDSS conversion: {line}" for line in dss_conv.report) if dss_conv else (),
    )


def _schematic_xy(dss_conv: Any, net: pp.pandapowerNet, bus_geo: Any) -> pd.DataFrame | None:
    """The model's schematic bus coordinates (no CRS), when it has no geographic ones."""
    if dss_conv is None or bus_geo is not None or dss_conv.bus_xy.empty:
        return None
    xy = dss_conv.bus_xy.loc[dss_conv.bus_xy.index.isin(net.bus.index), ["x", "y"]]
    return xy.astype(float) if len(xy) else None


@lru_cache(maxsize=8)
def _simbench_raw(code: str) -> Any:
    """SimBench net ``code``, built by ``simbench.get_simbench_net`` from its own data (cached).

    Raises
    ------
    ValueError
        ``code`` is not one of ``simbench.collect_all_simbench_codes()`` (nothing else ever
        reaches SimBench).
    """
    import simbench as sb

    if not isinstance(code, str) or code not in network_sources.simbench_codes():
        raise ValueError(f"not a SimBench code: {code!r}")
    return sb.get_simbench_net(code)


def _simbench_net(code: str, path: Path | None) -> pp.pandapowerNet:
    """A private copy of SimBench net ``code`` (a code listed by SimBench itself).

    Raises
    ------
    ConfigError
        Unknown code (with a close match, field ``network.code``), or SimBench fails.
    """
    codes = network_sources.simbench_codes()
    if not isinstance(code, str) or code not in codes:
        close = difflib.get_close_matches(str(code), sorted(codes), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"not a valid SimBench code '{code}' ({hint}expected a code listed by "
            "simbench.collect_all_simbench_codes(), e.g. '1-LV-semiurb4--0-sw')",
            file=path,
            field="network.code",
        )
    try:
        net = _simbench_raw(code)
    except Exception as exc:
        raise ConfigError(
            f"SimBench could not build '{code}': {exc}", file=path, field="network.code"
        ) from None
    return copy.deepcopy(net)


def _pandapower_net(function: str, options: dict[str, Any], path: Path | None) -> Any:
    """Build a net with an allow-listed ``pandapower.networks`` function and plain options.

    The name and options were checked when the spec was read (:class:`NetworkSpec`); they
    are checked again here, so no other function and no other option can be reached (see
    :mod:`gridplan.grid.network_sources`).

    Raises
    ------
    ConfigError
        A function not on the allow-list (field ``network.function``), an option it does not
        take or of the wrong kind (field ``network.options.<name>``), or pandapower failing to
        build the net with these options (field ``network.options``).
    """
    try:
        fn = network_sources.pandapower_network_function(function)
    except network_sources.OptionError as exc:
        raise ConfigError(exc.reason, file=path, field="network.function") from None
    owner = f"pandapower.networks.{function}"
    try:
        network_sources.check_options(options, network_sources.PANDAPOWER_NETWORKS[function], owner)
    except network_sources.OptionError as exc:
        field = "network.options" if exc.option is None else f"network.options.{exc.option}"
        raise ConfigError(exc.reason, file=path, field=field) from None
    try:
        return fn(**options)
    except Exception as exc:  # pandapower raises many types on options it cannot use
        text = " ".join(str(exc).split())
        text = text if len(text) <= 200 else text[:197] + "..."
        raise ConfigError(
            f"{owner} could not build the net with these options: {type(exc).__name__}: {text}",
            file=path,
            field="network.options",
        ) from None


def _profiles(
    spec: FeederSpec,
    net: pp.pandapowerNet,
    built: builders.BuiltFeeder | None,
    base_dir: Path,
    path: Path | None,
    dss_conv: Any = None,
    doe: california.DoeProfiles | None = None,
) -> tuple[
    pd.DatetimeIndex,
    np.ndarray | ProfileMatrix,
    np.ndarray | ProfileMatrix,
    np.ndarray | ProfileMatrix,
]:
    prof = spec.profiles
    if doe is not None:  # source "doe_tmy3" (gridplan.grid.california)
        return doe.time_index, doe.load_p_kw, doe.load_q_kvar, doe.sgen_p_kw
    n_sgen = len(net.sgen)
    tan_phi = float(np.tan(np.arccos(prof.power_factor)))
    if prof.source == "opendss":
        if dss_conv is None or dss_conv.time_index is None:
            raise ConfigError(
                "profile source 'opendss' needs network source 'opendss'",
                file=path,
                field="profiles.source",
            )
        return dss_conv.time_index, dss_conv.load_p_kw, dss_conv.load_q_kvar, dss_conv.sgen_p_kw
    if prof.source == "builder":
        if built is None:
            raise ConfigError(
                "profile source 'builder' needs network source 'builder'",
                file=path,
                field="profiles.source",
            )
        return built.time_index, built.load_p_kw, built.load_q_kvar, built.sgen_p_kw
    if prof.source == "simbench":
        if "profiles" not in net or "load" not in net.profiles:
            raise ConfigError(
                "profile source 'simbench' needs a SimBench network",
                file=path,
                field="profiles.source",
            )
        time_index = builders.simbench_time_index(net.profiles["load"]["time"])
        no_sgen = ProfileMatrix.dense(np.zeros((len(time_index), 0)))
        return (
            time_index,
            _simbench_profile(net, "load", "p_mw", path),
            _simbench_profile(net, "load", "q_mvar", path),
            _simbench_profile(net, "sgen", "p_mw", path) if n_sgen else no_sgen,
        )
    # csv / parquet
    file = base_dir / (prof.path or "")
    time_index, load_p = read_profile_table(
        file, prof.source, prof.time_column, list(net.load.name), field="profiles.path"
    )
    load_q = load_p * tan_phi
    if prof.pv_path:
        pv_file = base_dir / prof.pv_path
        pv_index, sgen_p = read_profile_table(
            pv_file, prof.source, prof.time_column, list(net.sgen.name), field="profiles.pv_path"
        )
        if not pv_index.equals(time_index):
            raise ConfigError(
                f"time column differs from the load profiles in {file}",
                file=pv_file,
                field=prof.time_column,
            )
    else:  # no PV file: no generation (never a constant nameplate output, night included)
        sgen_p = np.zeros((len(time_index), len(net.sgen)))
    return time_index, load_p, load_q, sgen_p


def _simbench_profile(
    net: pp.pandapowerNet, table: str, column: str, path: Path | None
) -> ProfileMatrix:
    """A SimBench element table's year [kW or kvar] as SimBench's own
    ``get_absolute_profiles_from_relative_profiles`` computes it (relative profile × the
    element's ``p_mw``/``q_mvar``; an element without a profile at 1), kept as factors: the
    relative profiles (time, profile) and one nominal power per element."""
    if table == "load":
        relative = net.profiles["load"]
        suffix = "_pload" if column == "p_mw" else "_qload"
    else:  # sgen and gen profiles come from the power-plant and renewable tables
        frames = [net.profiles[k] for k in ("powerplants", "renewables") if k in net.profiles]
        relative = pd.concat([f.drop(columns="time", errors="ignore") for f in frames], axis=1)
        relative = relative.loc[:, ~relative.columns.duplicated()]
        suffix = ""
    elements = net[table]
    if "profile" in elements:
        names = elements["profile"].astype(object).where(elements["profile"].notna(), None)
        names = names.map(lambda n: None if n is None else f"{n}{suffix}")
    else:
        names = pd.Series([None] * len(elements), index=elements.index, dtype=object)
    wanted = sorted({n for n in names if n is not None})
    missing = [n for n in wanted if n not in relative.columns]
    if missing:
        raise ConfigError(
            f"{len(missing)} {table} profile(s) missing from the SimBench profiles, e.g. "
            f"'{missing[0]}'",
            file=path,
            field="profiles.source",
        )
    basis = relative[wanted].to_numpy(dtype=np.float64)
    if names.isna().any():  # elements without a profile: relative 1 all year
        basis = np.column_stack([basis, np.ones(len(basis))])
    position = {n: k for k, n in enumerate(wanted)}
    col = np.array([position[n] if n is not None else len(wanted) for n in names], dtype=np.int64)
    nominal = elements[column].to_numpy(dtype=np.float64)
    profile = ProfileMatrix.factored(basis, col, nominal, unit=1e3)
    if not profile.is_finite():  # checked once here, not when a study's chunk reaches it
        raise ConfigError(
            f"the SimBench {table} profiles or '{column}' values are not all finite numbers",
            file=path,
            field="profiles.source",
        )
    return profile


#: Time steps a profile may have [min]: the quarter-hour of SimBench and AMI data, and the
#: hour of most US load shapes (DESIGN: a fixed step of 15 min or 1 h).
PROFILE_STEPS_MIN = (15, 60)


def _profile_times(column: pd.Series, file: Path, field: str) -> pd.DatetimeIndex:
    """Parse a profile's time column into a naive, fixed-step index.

    Timestamps must be text (``2016-01-01 00:15``): numbers are refused rather than guessed
    as epoch seconds or nanoseconds. Timestamps with UTC offsets (``...-08:00``, ``Z``) are
    read on the clock of the first row's offset, held all year (local standard time when a
    profile starts in winter, so daylight-saving shifts do not break the step), and the
    offset is dropped. The step must be one of :data:`PROFILE_STEPS_MIN`.
    """
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise ConfigError(
            "time values are numbers; expected timestamps such as '2016-01-01 00:15' "
            "(epoch numbers are not guessed)",
            file=file,
            field=field,
        )
    text = column.astype(str).str.strip()
    try:
        if text.str.contains(r"(?:[+-]\d{2}:?\d{2}|Z)$", regex=True).any():
            aware = pd.to_datetime(text, utc=True)
            first = pd.Timestamp(text.iloc[0])
            offset = first.utcoffset() if first.tzinfo is not None else pd.Timedelta(0)
            times = pd.DatetimeIndex((aware + offset).dt.tz_localize(None), name="time")
        else:
            times = pd.DatetimeIndex(pd.to_datetime(text), name="time")
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"time values do not parse: {exc}", file=file, field=field) from None
    if len(times) < 2:
        raise ConfigError("needs at least two rows", file=file)
    steps = np.diff(times.asi8)
    if (steps <= 0).any() or (steps != steps[0]).any():
        bad = int(np.flatnonzero((steps <= 0) | (steps != steps[0]))[0]) + 1
        raise ConfigError(
            f"time steps must be increasing and fixed (row {bad + 1} breaks the step)",
            file=file,
            field=field,
        )
    step_min = steps[0] / 60e9
    if step_min not in PROFILE_STEPS_MIN:
        raise ConfigError(
            f"time step is {step_min:g} min; expected one of "
            f"{', '.join(f'{m} min' for m in PROFILE_STEPS_MIN)}",
            file=file,
            field=field,
        )
    return times


def read_profile_table(
    file: Path, kind: str, time_column: str, element_names: list[str], *, field: str
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Read a CSV/Parquet profile table: a time column plus one kW column per element.

    Columns are matched to elements by name (``net.load.name``) or, if the names do not
    match, by position (0..n-1 as column labels). The time column must parse as timestamps
    with a fixed step; values must be finite.

    Returns
    -------
    (DatetimeIndex, ndarray)
        Time index and values [kW], shape (time, element).
    """
    require_file(file, f"a {kind} profile table", what="profile file", field=field)
    try:
        frame = pd.read_csv(file) if kind == "csv" else pd.read_parquet(file)
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text (expected a UTF-8 CSV)", file=file) from None
    except Exception as exc:
        raise ConfigError(f"cannot read {kind} file: {exc}", file=file) from None
    if time_column not in frame.columns:
        raise ConfigError(
            f"no time column '{time_column}' (columns: {', '.join(map(str, frame.columns[:6]))})",
            file=file,
            field=time_column,
        )
    times = _profile_times(frame.pop(time_column), file, time_column)
    n = len(element_names)
    if frame.shape[1] != n:
        raise ConfigError(
            f"has {frame.shape[1]} value columns; expected {n} (one per element of the network)",
            file=file,
            field="columns",
        )
    cols = [str(c) for c in frame.columns]
    if sorted(cols) == sorted(map(str, element_names)) and len(set(element_names)) == n:
        frame.columns = cols
        frame = frame[[str(e) for e in element_names]]
    elif cols != [str(i) for i in range(n)]:
        unmatched = next(c for c in cols if c not in map(str, element_names))
        raise ConfigError(
            "value columns must be the element names or 0..n-1 "
            f"(first unmatched column: '{unmatched}')",
            file=file,
        )
    values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad_mask = ~np.isfinite(values)
    if bad_mask.any():
        r, c = np.argwhere(bad_mask)[0]
        raise ConfigError(
            f"row {r + 1}: value is missing, not a number or infinite (expected kW)",
            file=file,
            field=str(frame.columns[c]),
        )
    return times, values


def _households(
    spec: FeederSpec,
    net: pp.pandapowerNet,
    built: builders.BuiltFeeder | None,
    load_p_kw: np.ndarray | ProfileMatrix,
    time_index: pd.DatetimeIndex,
    path: Path | None,
) -> np.ndarray:
    rule = spec.households
    names = net.load.name.astype(str).to_numpy()
    if rule.rule == "builder":
        if built is None:
            raise ConfigError(
                "rule 'builder' needs network source 'builder'", file=path, field="households.rule"
            )
        return built.households
    if rule.rule == "given":
        missing = [n for n in names if n not in rule.values]
        unknown = [k for k in rule.values if k not in set(names)]
        if unknown:
            raise ConfigError(
                f"no load named '{unknown[0]}' in the network",
                file=path,
                field=f"households.values.{unknown[0]}",
            )
        if missing:
            raise ConfigError(
                f"no household count for load '{missing[0]}' ({len(missing)} missing)",
                file=path,
                field="households.values",
            )
        return np.array([rule.values[n] for n in names], dtype=int)
    profile = (
        net.load["profile"].astype(str).to_numpy()
        if "profile" in net.load
        else np.array(["H0"] * len(net.load))
    )
    residential = np.array(
        [any(p.startswith(pref) for pref in rule.residential_profiles) for p in profile]
    )
    if rule.rule == "customers":
        if "customers" not in net.load:
            raise ConfigError(
                "rule 'customers' needs a network whose loads carry a customer count (an "
                "OpenDSS model's NumCust)",
                file=path,
                field="households.rule",
            )
        counts = net.load["customers"].fillna(0).to_numpy(dtype=float)
        return np.where(residential, np.maximum(counts, 0), 0).astype(int)
    # annual_energy: loads with a residential profile serve annual kWh / household kWh homes
    step_h = (time_index[1] - time_index[0]) / pd.Timedelta(hours=1)
    years = len(time_index) * step_h / 8760.0
    annual_kwh = load_p_kw.sum(axis=0) * step_h / years
    counts = np.where(
        residential, np.maximum(1, np.round(annual_kwh / rule.household_annual_kwh)), 0
    )
    return counts.astype(int)


def _select(
    table: pd.DataFrame, select: str | list[str], kind: str, path: Path | None, where: str
) -> pd.Index:
    if select == "all":
        return table.index
    names = table.name.astype(str)
    idx = []
    for name in select:
        hits = table.index[names == name]
        if len(hits) == 0:
            import difflib

            close = difflib.get_close_matches(name, list(names), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"no {kind} named '{name}' in the network{hint}", file=path, field=where
            )
        idx.extend(hits)
    return pd.Index(idx)


def _assets(spec: FeederSpec, net: pp.pandapowerNet, path: Path | None) -> pd.DataFrame:
    rows = []
    for n, group in enumerate(spec.assets):
        table = net[group.kind]
        for element in _select(table, group.select, group.kind, path, f"assets[{n}].select"):
            row = table.loc[element]
            if not bool(row.in_service):
                continue
            kv = float(row.vn_hv_kv if group.kind == "trafo" else net.bus.vn_kv.at[row.from_bus])
            if group.min_kv is not None and kv < group.min_kv - 1e-9:
                continue
            if group.kind == "trafo":
                rating = float(row.sn_mva) * 1e3 * float(row.get("parallel", 1))
                length = np.nan
            else:
                vn = float(net.bus.vn_kv.at[row.from_bus])
                rating = (
                    np.sqrt(3)
                    * vn
                    * float(row.max_i_ka)
                    * float(row.parallel)
                    * float(row.df)
                    * 1e3
                )
                length = float(row.length_km)
            rows.append(
                {
                    "asset_id": f"{group.kind}_{element}",
                    "kind": group.kind,
                    "element": int(element),
                    "name": str(row["name"]),
                    "rating_kva": rating,
                    "limit_pct": group.limit_pct,
                    "length_km": length,
                }
            )
    if not rows:
        raise ConfigError(
            "no in-service asset selected (check 'select' and 'min_kv')", file=path, field="assets"
        )
    return pd.DataFrame(rows).drop_duplicates("asset_id", keep="last").set_index("asset_id")


def _upgrades(
    spec: FeederSpec, net: pp.pandapowerNet, assets: pd.DataFrame, path: Path | None
) -> pd.DataFrame:
    rows = []
    for n, raw in enumerate(spec.upgrades):
        up = raw.resolved(f"upgrades[{n}]", path)
        table = net[up.kind]
        chosen = _select(table, up.assets, up.kind, path, f"upgrades[{n}].assets")
        for asset_id, asset in assets[assets.kind == up.kind].iterrows():
            if asset.element not in chosen:
                continue
            if up.kind == "trafo":
                new_rating = float(up.new_rating_kva or 0.0)
            else:
                ratio = float(up.new_max_i_ka or 0.0) / float(table.max_i_ka.at[asset.element])
                new_rating = float(asset.rating_kva) * ratio
            if new_rating <= asset.rating_kva:
                continue  # not an upgrade for this asset
            cost = (
                float(up.cost_usd)
                if up.cost_usd is not None
                else float(up.cost_usd_per_km or 0.0) * float(asset.length_km)
            )
            rows.append(
                {
                    "asset_id": asset_id,
                    "option": n,
                    "new_rating_kva": new_rating,
                    "cost_usd": cost,
                    "dollar_year": up.dollar_year,
                    "source": up.source,
                }
            )
    columns = ["asset_id", "option", "new_rating_kva", "cost_usd", "dollar_year", "source"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["asset_id", "new_rating_kva"]).reset_index(drop=True)


def _geodata(net: pp.pandapowerNet) -> tuple[Any, Any]:
    """Bus points and line strings as GeoDataFrames, or (None, None) without coordinates."""
    if "geo" not in net.bus or net.bus.geo.isna().all():
        return None, None
    import geopandas as gpd
    import shapely

    geo = net.bus.geo.dropna()
    points = shapely.from_geojson(geo.to_numpy())
    bus_geo = gpd.GeoDataFrame(
        {"bus": geo.index, "name": net.bus.name.loc[geo.index].to_numpy()},
        geometry=points,
        crs="EPSG:4326",
    ).set_index("bus")
    lines = []
    for idx, row in net.line.iterrows():
        line_geo = row.get("geo")
        if isinstance(line_geo, str):
            shape = shapely.from_geojson(line_geo)
        elif row.from_bus in bus_geo.index and row.to_bus in bus_geo.index:
            shape = shapely.LineString(
                [bus_geo.geometry.at[row.from_bus], bus_geo.geometry.at[row.to_bus]]
            )
        else:
            continue
        lines.append({"line": idx, "name": row["name"], "geometry": shape})
    line_geo = (
        gpd.GeoDataFrame(lines, geometry="geometry", crs="EPSG:4326").set_index("line")
        if lines
        else None
    )
    return bus_geo, line_geo


def peak_step(feeder: Feeder) -> int:
    """Step of the feeder's highest total net base load (load minus generation)."""
    return int(np.argmax(feeder.net_load_kw))


def peak_week(feeder: Feeder) -> slice:
    """The 7 days around the feeder's net base-load peak, as a slice of profile steps.

    Starts at midnight three days before the peak day, clipped to the profile year.
    """
    k = peak_step(feeder)
    steps_per_day = round(24 / feeder.step_h)
    start_day = max(0, k // steps_per_day - 3)
    n = len(feeder.time_index)
    start = min(start_day * steps_per_day, max(0, n - 7 * steps_per_day))
    return slice(start, min(n, start + 7 * steps_per_day))
