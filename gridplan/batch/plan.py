"""The batch config and its plan: feeders x scenario points x draws, validated and
expanded into units (each with its seed and input hash) before anything runs."""

from __future__ import annotations

import copy
import difflib
import fnmatch
import glob as globlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from gridplan.core.config import StrictModel, read_toml, validate
from gridplan.core.errors import ConfigError, GridplanError
from gridplan.grid.feeders import bundled_feeders, read_feeder_spec, resolve_feeder_path
from gridplan.study import StudyConfig

__all__ = [
    "DEFAULT_MAX_UNITS",
    "MANIFEST_INTERVAL_S",
    "BatchConfig",
    "BatchPlan",
    "ExecutionSpec",
    "FeederRef",
    "Scenario",
    "Unit",
    "load_batch_config",
    "plan_batch",
    "unit_seed",
    "unit_stem",
]

log = logging.getLogger(__name__)

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
#: Study fields a batch sets itself (per unit), so neither the base study nor the grid may.
_BATCH_SET = ("name", "feeder", "seed", "output_dir")
#: Most units a batch may hold unless raised (``execution.max_units``, ``--max-units``): a
#: grid of this size at ~10 s per unit keeps two cores busy for more than a week.
DEFAULT_MAX_UNITS = 100_000
#: Seconds between rewrites of the manifest while the batch runs.
MANIFEST_INTERVAL_S = 2.0


# --------------------------------------------------------------------------- config
class ExecutionSpec(StrictModel):
    """Where the units run (the command line's ``--workers``/``--scheduler`` win)."""

    workers: int | None = Field(default=None, ge=1, le=4096)  # None: all cores
    scheduler: str | None = None  # address of a running Dask scheduler
    connect_timeout_s: float = Field(default=5.0, gt=0, le=600)
    # most units a batch may hold (feeders x scenario points x draws); --max-units wins
    max_units: int = Field(default=DEFAULT_MAX_UNITS, ge=1, le=100_000_000)


class BatchConfig(StrictModel):
    """A batch as written in ``BATCH.toml``."""

    name: str = Field(pattern=_NAME)
    description: str = ""
    feeders: str | list[str]
    study: str | dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, Any] = Field(default_factory=dict)
    scenarios: list[dict[str, Any]] = Field(default_factory=list)
    draws: int = Field(default=1, ge=1, le=100_000)
    seed: int = Field(default=0, ge=0)
    common_random_numbers: bool = True
    output_dir: str = "outputs"
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)


def load_batch_config(path: str | Path) -> BatchConfig:
    """Read and validate a batch TOML (the units are expanded by :func:`plan_batch`).

    Raises
    ------
    ConfigError
        Missing, malformed or invalid file; the message names the file and field.
    """
    path = Path(path)
    return validate(BatchConfig, read_toml(path), file=path)


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class FeederRef:
    """One feeder of a batch.

    Attributes
    ----------
    name
        Feeder name: the spec's ``name`` (or the file stem when the spec is unreadable).
    ref
        What the unit configs name: a bundled name, or the absolute spec path.
    spec_path
        The spec file.
    entry
        The ``feeders`` entry it came from.
    spec_digest
        SHA-256 (first 16 hex digits) of the spec file; part of each unit's config hash.
    """

    name: str
    ref: str
    spec_path: Path
    entry: str
    spec_digest: str


@dataclass(frozen=True)
class Scenario:
    """One scenario point: study overrides (dotted field -> value)."""

    index: int
    name: str
    overrides: dict[str, Any]
    origin: dict[str, str]  # dotted field -> where the batch file sets it


@dataclass(frozen=True)
class Unit:
    """One (feeder, scenario point, draw) study."""

    index: int
    unit_id: str
    feeder: str
    feeder_ref: str
    scenario: int
    scenario_name: str
    draw: int
    seed: int
    config: StudyConfig
    config_hash: str
    params: dict[str, Any]


@dataclass(frozen=True, eq=False)
class BatchPlan:
    """A validated batch expanded into units (nothing run yet).

    Attributes
    ----------
    config
        The batch config.
    file
        The batch TOML (``None`` for a config given in Python).
    feeders, scenarios, units
        Feeders, scenario points and units, units feeder-major (feeder, scenario, draw).
    config_hash
        SHA-256 (16 hex digits) of the config, the base study and the feeder specs.
    base_study
        The base study (dict) every unit starts from.
    """

    config: BatchConfig
    file: Path | None
    feeders: list[FeederRef]
    scenarios: list[Scenario]
    units: list[Unit]
    config_hash: str
    base_study: dict[str, Any]

    @property
    def param_columns(self) -> list[str]:
        """The study fields the scenarios vary, in order of first appearance."""
        seen: dict[str, None] = {}
        for s in self.scenarios:
            seen.update(dict.fromkeys(s.overrides))
        return list(seen)


def plan_batch(
    config: BatchConfig | Mapping[str, Any] | str | Path,
    *,
    base_dir: str | Path | None = None,
    max_units: int | None = None,
) -> BatchPlan:
    """Validate a batch and expand it into units, before anything runs.

    Parameters
    ----------
    config
        A :class:`BatchConfig`, a dict of the same fields, or the path of a batch TOML.
    base_dir
        Folder that relative feeder and study paths are relative to; default the batch
        file's folder (the working directory for a config given in Python).
    max_units
        Most units the batch may hold; default ``execution.max_units``
        (:data:`DEFAULT_MAX_UNITS`). Checked before the scenario grid is expanded.

    Returns
    -------
    BatchPlan

    Raises
    ------
    ConfigError
        A glob that matches nothing, an unknown feeder name, duplicate feeder names, an
        unknown or batch-set study field, or a value the study rejects; the message names
        the batch file (or study file) and the field.
    """
    file: Path | None = None
    if isinstance(config, str | Path):
        file = Path(config)
        config = load_batch_config(file)
    elif not isinstance(config, BatchConfig):
        config = validate(BatchConfig, dict(config))
    if base_dir is None:
        base_dir = file.parent if file is not None else Path.cwd()
    base_dir = Path(base_dir)

    feeders = _resolve_feeders(config.feeders, base_dir, file)
    _check_size(config, len(feeders), max_units, file)
    base, study_file, base_field = _base_study(config.study, base_dir, file)
    scenarios = _scenarios(config, file)
    validated = [
        _validate_scenario(base, s, file=file, study_file=study_file, base_field=base_field)
        for s in scenarios
    ]

    width_s = len(str(max(len(scenarios) - 1, 0)))
    width_d = len(str(max(config.draws - 1, 0)))
    digests = _InputDigests()
    units: list[Unit] = []
    for feeder in feeders:
        stem = unit_stem(feeder.name)
        for scenario, scenario_config in zip(scenarios, validated, strict=True):
            for draw in range(config.draws):
                unit_id = f"{stem}__s{scenario.index:0{width_s}d}_d{draw:0{width_d}d}"
                seed = unit_seed(
                    config.seed,
                    feeder.name,
                    draw,
                    None if config.common_random_numbers else scenario.index,
                )
                unit_config = scenario_config.model_copy(
                    update={"name": unit_id, "feeder": feeder.ref, "seed": seed}
                )
                units.append(
                    Unit(
                        index=len(units),
                        unit_id=unit_id,
                        feeder=feeder.name,
                        feeder_ref=feeder.ref,
                        scenario=scenario.index,
                        scenario_name=scenario.name,
                        draw=draw,
                        seed=seed,
                        config=unit_config,
                        config_hash=_digest(
                            _config_json(unit_config),
                            feeder.spec_digest,
                            digests.of_unit(unit_config, feeder.spec_path),
                        ),
                        params=dict(scenario.overrides),
                    )
                )
    config_hash = _digest(
        config.model_dump_json(exclude={"execution"}),
        json.dumps(base, sort_keys=True, default=str),
        *(f"{f.name}={f.spec_digest}" for f in feeders),
    )
    return BatchPlan(
        config=config,
        file=file,
        feeders=feeders,
        scenarios=scenarios,
        units=units,
        config_hash=config_hash,
        base_study=base,
    )


def _check_size(
    config: BatchConfig, n_feeders: int, max_units: int | None, file: Path | None
) -> None:
    """Refuse a batch over its unit ceiling before its grid is expanded."""
    limit = max_units if max_units is not None else config.execution.max_units
    n_points = max(len(config.scenarios), 1)
    for values in _flatten(config.grid).values():
        n_points *= len(values) if isinstance(values, list) else 1
    n_units = n_feeders * n_points * config.draws
    if n_units > limit:
        raise ConfigError(
            f"the batch holds {n_units:,} units ({n_feeders} feeders x {n_points:,} scenario "
            f"points x {config.draws} draws), over the ceiling of {limit:,}; raise it with "
            "--max-units (execution.max_units) if you mean it",
            file=file,
            field="grid",
        )


#: Characters a unit id keeps from a feeder name (others become ``_``).
_UNIT_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def unit_stem(feeder: str) -> str:
    """The feeder part of a unit id: the name made file-safe (at most 60 characters) and a
    hash of the full name, so that different names never share an id (on case-insensitive
    file systems too)."""
    safe = _UNIT_CHARS.sub("_", feeder)[:60].lstrip(".") or "feeder"
    return f"{safe}-{_digest(feeder)[:8]}"


class _InputDigests:
    """Digests of the files a unit reads besides its feeder spec: the spec's profile and
    network files, the study's zones, catalogs, event calendar and rate (each file hashed
    once per plan)."""

    def __init__(self) -> None:
        self._files: dict[Path, str] = {}
        self._specs: dict[Path, list[Path]] = {}

    def _file(self, path: Path) -> str:
        if path not in self._files:
            self._files[path] = _file_digest(path)
        return f"{path}={self._files[path]}"

    def _spec_files(self, spec_path: Path) -> list[Path]:
        if spec_path not in self._specs:
            files: list[Path] = []
            try:
                spec = read_feeder_spec(spec_path)
            except GridplanError:
                spec = None  # the unit records the loader's error
            if spec is not None:
                named = [spec.profiles.path, spec.profiles.pv_path, spec.network.path]
                files = [spec_path.parent / name for name in named if name]
            self._specs[spec_path] = files
        return self._specs[spec_path]

    def of_unit(self, config: StudyConfig, spec_path: Path) -> str:
        """One digest over every input file of the unit (``unreadable`` for a missing one)."""
        named = [config.fleet.zones, config.fleet.vehicle_catalog, config.fleet.charger_catalog]
        if config.dispatch.events not in ("every_day", "elrp"):
            named.append(config.dispatch.events)
        if config.dispatch.rate.endswith(".toml"):
            named.append(config.dispatch.rate)
        files = self._spec_files(spec_path) + [Path(n) for n in named if n]
        return _digest(*(self._file(f) for f in files))


def unit_seed(batch_seed: int, feeder: str, draw: int, scenario: int | None = None) -> int:
    """The seed of one unit, from the batch seed and the unit's key (stable across machines).

    ``numpy.random.SeedSequence(batch_seed, spawn_key=(hash(feeder), draw[, scenario]))``
    with a SHA-256 hash of the feeder name, reduced to 63 bits. Without ``scenario``
    (the default, ``common_random_numbers = true``) every scenario point of a feeder and
    draw shares the seed, so scenario differences are not masked by sampling noise.
    """
    name_key = int.from_bytes(hashlib.sha256(feeder.encode("utf-8")).digest()[:8], "big")
    key = (name_key, draw) if scenario is None else (name_key, draw, scenario)
    words = np.random.SeedSequence(batch_seed, spawn_key=key).generate_state(2, np.uint32)
    return (int(words[0]) << 31) | (int(words[1]) >> 1)


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def _config_json(config: StudyConfig) -> str:
    return json.dumps(config.model_dump(mode="json"), sort_keys=True)


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"


def _resolve_feeders(
    feeders: str | list[str], base_dir: Path, file: Path | None
) -> list[FeederRef]:
    entries = [feeders] if isinstance(feeders, str) else list(feeders)
    if not entries:
        raise ConfigError(
            "no feeders given (expected bundled names, spec paths or globs)",
            file=file,
            field="feeders",
        )
    bundled = bundled_feeders()
    found: list[FeederRef] = []
    for i, entry in enumerate(entries):
        where = "feeders" if isinstance(feeders, str) else f"feeders[{i}]"
        if entry.endswith(".toml") or "/" in entry or os.sep in entry:
            found.extend(_spec_feeders(entry, base_dir, file, where))
        else:
            found.extend(_bundled_feeders(entry, bundled, file, where))
    seen: dict[str, FeederRef] = {}
    for ref in found:
        if ref.name in seen:
            first = seen[ref.name]
            raise ConfigError(
                f"duplicate feeder name '{ref.name}': {first.spec_path} (from '{first.entry}') "
                f"and {ref.spec_path} (from '{ref.entry}'); feeder names must be unique, they "
                "key the units and their seeds",
                file=file,
                field="feeders",
            )
        seen[ref.name] = ref
    return found


def _spec_feeders(entry: str, base_dir: Path, file: Path | None, where: str) -> list[FeederRef]:
    """The feeders of a spec path or glob (relative to the batch file)."""
    pattern = Path(entry) if Path(entry).is_absolute() else base_dir / entry
    if any(c in entry for c in "*?["):
        matches = sorted(
            Path(p) for p in globlib.glob(str(pattern), recursive=True) if Path(p).is_file()
        )
        if not matches:
            raise ConfigError(
                f"glob '{entry}' matches no feeder spec (searched {pattern})",
                file=file,
                field=where,
            )
    elif not pattern.is_file():
        raise ConfigError(f"feeder spec '{pattern}' not found", file=file, field=where)
    else:
        matches = [pattern]
    return [_path_feeder(m, entry) for m in matches]


def _bundled_feeders(
    entry: str, bundled: dict[str, Path], file: Path | None, where: str
) -> list[FeederRef]:
    """The bundled feeders of a name or glob."""
    if any(c in entry for c in "*?["):
        names = sorted(fnmatch.filter(bundled, entry))
        if not names:
            raise ConfigError(
                f"glob '{entry}' matches no bundled feeder "
                f"(bundled: {', '.join(bundled)}; end a pattern with .toml to match "
                "spec files)",
                file=file,
                field=where,
            )
    else:
        try:
            resolve_feeder_path(entry)
        except ConfigError as exc:
            raise ConfigError(exc.reason, file=file, field=where) from None
        names = [entry]
    return [
        FeederRef(name, name, bundled[name], entry, _file_digest(bundled[name])) for name in names
    ]


def _path_feeder(path: Path, entry: str) -> FeederRef:
    """A feeder given by spec path; an unreadable spec is named by its file stem (its
    units fail with the loader's error, the rest of the batch runs)."""
    path = path.resolve()
    name: Any = None
    try:
        name = read_toml(path).get("name")
    except ConfigError:
        pass
    if not (isinstance(name, str) and re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name)):
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem).lstrip("-_.") or "feeder"
    return FeederRef(name, str(path), path, entry, _file_digest(path))


def _base_study(
    study: str | dict[str, Any], base_dir: Path, file: Path | None
) -> tuple[dict[str, Any], Path | None, str]:
    """The base study as a dict, the file it came from, and its field prefix in errors."""
    if isinstance(study, str):
        path = Path(study) if Path(study).is_absolute() else base_dir / study
        if not path.is_file():
            raise ConfigError(f"study file '{path}' not found", file=file, field="study")
        data = read_toml(path)
        validate(StudyConfig, data, file=path)
        dropped = [k for k in _BATCH_SET if k in data]
        if dropped:
            log.info("batch replaces %s of base study %s", ", ".join(dropped), path)
        return {k: v for k, v in data.items() if k not in _BATCH_SET}, path, ""
    for key in _BATCH_SET:
        if key in study:
            raise ConfigError(
                "set by the batch (per unit from 'name', 'feeders', 'seed' and 'output_dir' "
                "of the batch), not in the base study",
                file=file,
                field=f"study.{key}",
            )
    return copy.deepcopy(study), None, "study."


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables -> dotted keys (TOML ``fleet.x = 1`` and ``"fleet.x" = 1`` alike)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


@lru_cache(maxsize=1)
def _study_fields() -> frozenset[str]:
    return frozenset(_field_paths(StudyConfig))


def _field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of every field of ``model``, tables included (``period``, ``period.kind``)."""
    paths = []
    for name, info in model.model_fields.items():
        paths.append(prefix + name)
        sub = _submodel(info.annotation)
        if sub is not None:
            paths.extend(_field_paths(sub, prefix=f"{prefix}{name}."))
    return paths


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The config model inside an annotation (``X``, ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _check_key(key: str, file: Path | None, where: str) -> None:
    if key in _BATCH_SET:
        raise ConfigError(
            f"'{key}' is set by the batch per unit and cannot vary", file=file, field=where
        )
    if key not in _study_fields():
        close = difflib.get_close_matches(key, sorted(_study_fields()), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown study field '{key}'{hint}", file=file, field=where)


def _scenarios(config: BatchConfig, file: Path | None) -> list[Scenario]:
    import itertools

    grid = _flatten(config.grid)
    for key, values in grid.items():
        _check_key(key, file, f"grid.{key}")
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"expected a non-empty list of values (got {values!r})",
                file=file,
                field=f"grid.{key}",
            )
    named: list[tuple[str | None, dict[str, Any], dict[str, str]]] = []
    for i, raw in enumerate(config.scenarios):
        raw = dict(raw)
        label = raw.pop("name", None)
        if label is not None and not isinstance(label, str):
            raise ConfigError(
                f"expected a string (got {label!r})", file=file, field=f"scenarios[{i}].name"
            )
        flat = _flatten(raw)
        for key in flat:
            _check_key(key, file, f"scenarios[{i}].{key}")
            if key in grid:
                raise ConfigError(
                    f"'{key}' is also a grid field", file=file, field=f"scenarios[{i}].{key}"
                )
        named.append((label, flat, {k: f"scenarios[{i}].{k}" for k in flat}))
    if not named:
        named = [(None, {}, {})]

    points = list(itertools.product(*grid.values())) if grid else [()]
    scenarios: list[Scenario] = []
    for label, flat, origin in named:
        for point in points:
            overrides = {**flat, **dict(zip(grid, point, strict=True))}
            where = {**origin, **{k: f"grid.{k}" for k in grid}}
            auto = ", ".join(
                f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in zip(grid, point, strict=True)
            )
            name = ", ".join(p for p in (label, auto) if p) or "base"
            scenarios.append(Scenario(len(scenarios), name, overrides, where))
    return scenarios


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def _validate_scenario(
    base: dict[str, Any],
    scenario: Scenario,
    *,
    file: Path | None,
    study_file: Path | None,
    base_field: str,
) -> StudyConfig:
    """Base study + overrides -> StudyConfig (:meth:`StudyConfig.with_overrides`, the one
    implementation of dotted overrides); errors name the batch (or study) field."""
    data = {**copy.deepcopy(base), "name": "unit", "feeder": "unit", "seed": 0}
    try:
        base_config = validate(StudyConfig, data)
    except ConfigError as exc:  # the base study alone is invalid
        raise _base_error(exc, file, study_file, base_field) from None
    try:
        return base_config.with_overrides(scenario.overrides)
    except ConfigError as exc:
        bad = exc.field if exc.field not in (None, "(top level)") else ""
        if bad:
            keys = [
                k
                for k in scenario.overrides
                if bad == k or bad.startswith(k + ".") or k.startswith(bad + ".")
            ]
        else:  # a check across top-level fields (year before base_year)
            keys = [k for k in scenario.overrides if "." not in k]
        if keys:
            source = scenario.origin[keys[0]]
            where = (
                f" (scenario {scenario.index}: {scenario.name})" if source[:5] == "grid." else ""
            )
            raise ConfigError(exc.reason + where, file=file, field=source) from None
        raise _base_error(exc, file, study_file, base_field) from None


def _base_error(
    exc: ConfigError, file: Path | None, study_file: Path | None, base_field: str
) -> ConfigError:
    """An error of the base study, naming the study file or the batch's ``study`` table."""
    if study_file is not None:
        return ConfigError(exc.reason, file=study_file, field=exc.field)
    bad = exc.field if exc.field not in (None, "(top level)") else ""
    return ConfigError(exc.reason, file=file, field=f"{base_field}{bad}".rstrip("."))
