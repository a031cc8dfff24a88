"""Batch studies across feeders: feeders × scenario grid × draws, on Dask or in this process.

A batch config (``BATCH.toml``, see ``batches/screen.toml``) names

- ``feeders``: bundled feeder names, spec paths, or globs of either (``"lv-*"`` matches
  bundled names, ``"specs/*.toml"`` matches files relative to the batch file);
- ``study``: the base study, an inline table or the path of a study TOML whose ``name``,
  ``feeder``, ``seed`` and ``output_dir`` the batch replaces;
- ``grid``: dotted study fields and the values each takes (``"fleet.evs_per_household" =
  [0.4, 0.8]``); every combination is a scenario point. ``[[scenarios]]`` lists named
  points instead (or in addition: each is combined with each grid point);
- ``draws``: Monte Carlo draws of the EV fleet per (feeder, scenario point);
- ``seed``: the batch seed every unit's seed derives from.

A *unit* is one (feeder, scenario point, draw): one :func:`gridplan.study.run` with the
unit's :class:`~gridplan.study.StudyConfig` (the base study, the scenario's overrides,
the feeder and the unit's seed, validated like a study file).

Execution
    With one worker the units run in this process. Otherwise they run on Dask: a
    ``LocalCluster`` of single-threaded worker processes (all cores by default; see
    :func:`local_client` for its settings), a running scheduler (``scheduler =
    "tcp://host:8786"``), or a ``distributed.Client`` passed in. This process places the
    units itself, a few at a time, longest expected run time first, each on a worker that
    already holds its feeder while there is one (:class:`_Dispatcher`). Seeds depend on
    the unit only, so results are the same whatever the worker count or the order units
    finish in. Use single-threaded worker processes (as the ``LocalCluster`` here does).

Shared inputs
    Feeders (network, year-long profiles) are never shipped with tasks from this process:
    a task carries the unit's config, a few kB. Each feeder is loaded from its spec once,
    by a warm-up task on one worker (:func:`warm_feeder`); Dask keeps the loaded feeder
    there and sends it once to each other worker that runs one of its units (unpickling
    it takes a fraction of the 1-4 s of loading it), where :func:`run_unit` hands it to
    :func:`gridplan.study.run`. Workers must see
    the feeder specs: bundled feeders ship with gridplan; custom specs need a shared file
    system.

Durability
    A lock file (``batch.lock``, :func:`output_lock`) keeps two runs from writing the same
    output folder at once; a killed run's lock is taken over by the next run. Workers
    return each unit's summary and asset table; this process writes them to
    ``<output_dir>/<batch>/units/<unit-id>/`` (``summary.json``, ``assets.csv``,
    ``study.toml``, then ``unit.json``, the unit's record, each file atomically) as soon
    as the unit finishes, so workers need no access to the output folder and a killed
    batch loses only the units in flight. A unit that raises (a bad feeder file, any
    study error) is recorded as ``failed`` with its error and the batch goes on (power-flow
    steps that did not converge are counted in the ``non_converged_steps`` column);
    a unit whose worker dies is rescheduled by Dask on another worker (up to
    ``distributed.scheduler.allowed-failures`` times, then recorded as failed).
    ``manifest.parquet``/``.csv`` (rewritten atomically while the batch runs) lists every
    unit with its seed, config hash, status, error, timing, worker and package versions.
    ``resume=True`` keeps the units whose ``unit.json`` says ``ok`` for the same config
    hash and runs the failed and missing ones.

Results
    ``results.parquet``/``.csv``: one row per unit (:data:`RESULT_COLUMNS`, read from the
    study summary as :data:`SUMMARY_COLUMNS` lists); ``ranking.parquet``/``.csv``: feeders
    ranked by net deferral value.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import fnmatch
import glob as globlib
import hashlib
import json
import logging
import math
import os
import platform
import re
import socket
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from gridplan import __version__
from gridplan.core.config import StrictModel, read_toml, validate
from gridplan.core.errors import ConfigError, GridplanError
from gridplan.core.io import write_csv, write_json, write_text, write_with
from gridplan.grid.feeders import Feeder, bundled_feeders, read_feeder_spec, resolve_feeder_path
from gridplan.study import StudyConfig, StudySummary
from gridplan.study import run as run_study

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


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _validate_scenario(
    base: dict[str, Any],
    scenario: Scenario,
    *,
    file: Path | None,
    study_file: Path | None,
    base_field: str,
) -> StudyConfig:
    """Base study + overrides -> StudyConfig; errors name the batch (or study) field."""
    data = copy.deepcopy(base)
    for key, value in scenario.overrides.items():
        _set_dotted(data, key, value)
    data.update(name="unit", feeder="unit", seed=0)
    try:
        return validate(StudyConfig, data)
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
        if study_file is not None:
            raise ConfigError(exc.reason, file=study_file, field=exc.field) from None
        raise ConfigError(exc.reason, file=file, field=f"{base_field}{bad}".rstrip(".")) from None


# --------------------------------------------------------------------------- results
#: Columns of the results table read from each unit's study summary
#: (:func:`summary_metrics`): the critical asset's figures, the primary V2G case's
#: economics (``v2g``), counts of assets over their limit.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "year",
    "evs",
    "v2g_enrolled_evs",
    "critical_asset_id",
    "critical_asset",
    "peak_loading_pct_base",
    "peak_loading_pct_charging",
    "peak_loading_pct_v2g",
    "year_of_need_charging",
    "year_of_need_v2g",
    "year_of_need_p90_charging",
    "year_of_need_p90_v2g",
    "deferral_years",
    "upgrade_cost_usd",
    "deferral_value_usd_critical",
    "deferral_value_usd",
    "value_usd_per_kw_yr",
    "program_cost_usd",
    "net_benefit_usd",
    "firmness",
    "assets_over_limit_charging",
    "assets_over_limit_v2g",
)
#: Key of the primary V2G case in summary tables per case.
PRIMARY_CASE = "v2g"
_TEXT_COLUMNS = ("critical_asset_id", "critical_asset")
_INT_COLUMNS = (
    "year",
    "evs",
    "v2g_enrolled_evs",
    "year_of_need_charging",
    "year_of_need_v2g",
    "year_of_need_p90_charging",
    "year_of_need_p90_v2g",
    "assets_over_limit_charging",
    "assets_over_limit_v2g",
    "non_converged_steps",
)
#: Identity columns of the results table (then one column per scenario field).
ID_COLUMNS = ["unit_id", "feeder", "scenario", "scenario_name", "draw", "seed", "status", "error"]
#: Result columns after the scenario fields: :data:`SUMMARY_COLUMNS`, the power-flow steps
#: that did not converge (all cases), the net deferral value (net benefit when the summary
#: has one, else the deferral value) and its basis, and bookkeeping.
RESULT_COLUMNS = [
    *SUMMARY_COLUMNS,
    "non_converged_steps",
    "net_deferral_value_usd",
    "net_value_basis",
    "duration_s",
    "attempts",
    "worker",
    "config_hash",
]


def summary_metrics(summary: StudySummary) -> dict[str, Any]:
    """The results-table values of one study summary (NaN/None for absent figures).

    Parameters
    ----------
    summary
        A study's summary (:attr:`gridplan.study.StudyResult.summary`).

    Returns
    -------
    dict
        :data:`SUMMARY_COLUMNS` plus ``non_converged_steps``, ``net_deferral_value_usd``
        [USD] and ``net_value_basis``.
    """
    c = summary.critical_asset
    econ = summary.primary_economics
    values: dict[str, Any] = {
        "year": summary.year,
        "evs": summary.fleet.evs,
        "v2g_enrolled_evs": summary.fleet.v2g_enrolled_evs,
        "critical_asset_id": c.asset_id,
        "critical_asset": c.name,
        **{f"peak_loading_pct_{k}": c.peak_loading_pct.get(k) for k in ("base", "charging")},
        "peak_loading_pct_v2g": c.peak_loading_pct.get(PRIMARY_CASE),
        "year_of_need_charging": c.year_of_need_charging,
        "year_of_need_v2g": c.year_of_need_v2g,
        "year_of_need_p90_charging": c.year_of_need_charging_p90,
        "year_of_need_p90_v2g": None,  # the summary has no P90 with V2G
        "deferral_years": c.deferral_years,
        "upgrade_cost_usd": c.upgrade_cost_usd,
        "deferral_value_usd_critical": c.deferral_value_usd,
        "deferral_value_usd": (
            econ.deferral_value_usd
            if econ is not None
            else summary.deferral_value_usd_total.get(PRIMARY_CASE)
        ),
        "value_usd_per_kw_yr": None if econ is None else econ.value_usd_per_kw_yr,
        "program_cost_usd": None if econ is None else econ.ratepayer_cost_pv_usd,
        "net_benefit_usd": None if econ is None else econ.ratepayer_net_benefit_pv_usd,
        "firmness": c.firmness_v2g_end,
        "assets_over_limit_charging": summary.assets_over_limit.get("charging"),
        "assets_over_limit_v2g": summary.assets_over_limit.get(PRIMARY_CASE),
    }
    row: dict[str, Any] = {}
    for column in SUMMARY_COLUMNS:
        value = values[column]
        if column not in _TEXT_COLUMNS:
            value = _number(value)
            if column in _INT_COLUMNS and not math.isnan(value):
                value = int(value)
        row[column] = value
    steps = [_number(case.non_converged_steps) for case in summary.power_flow.values()]
    row["non_converged_steps"] = float(np.nansum(steps)) if steps else math.nan
    if not math.isnan(row["net_benefit_usd"]):
        row["net_deferral_value_usd"] = row["net_benefit_usd"]
        row["net_value_basis"] = "net_benefit_usd"
    else:
        row["net_deferral_value_usd"] = row["deferral_value_usd"]
        row["net_value_basis"] = "deferral_value_usd"
    return row


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


# --------------------------------------------------------------------------- the task
@dataclass(frozen=True)
class UnitTask:
    """What a worker receives for one unit: its id and study config (a few kB)."""

    unit_id: str
    config: StudyConfig


def warm_feeder(ref: str) -> Feeder | None:
    """Load a feeder on a worker and return it (a Dask task; the result stays on the worker).

    Dask keeps the loaded feeder in the worker's memory and sends it, once, to each other
    worker that runs one of its units (:func:`run_unit` takes it as its first argument):
    unpickling a feeder takes ~0.1-0.3 s, loading it from its spec 1-4 s. ``None`` if it
    fails to load; its units then load it themselves and record the loader's error.
    """
    from gridplan.grid.feeders import load_feeder

    try:
        return load_feeder(ref)
    except Exception as exc:  # recorded by the units
        log.debug("feeder %s failed to load: %s", ref, exc)
        return None


def run_unit(feeder: Feeder | None, task: UnitTask) -> dict[str, Any]:
    """Run one unit's study (on a worker); never raises for a study error.

    Parameters
    ----------
    feeder
        The unit's feeder as :func:`warm_feeder` loaded it (on this or another worker),
        handed to the study as it is; ``None`` in this process or when the feeder failed
        to load (the study then loads it itself and records the loader's error).
    task
        The unit.

    Returns
    -------
    dict
        ``status`` (``ok``/``failed``), ``error``, ``error_type``, ``traceback``, timing
        (``started_at``, ``finished_at``, ``duration_s`` [s]), ``worker``, ``versions``,
        and for ``ok`` the study ``summary`` (:class:`~gridplan.study.StudySummary`) and
        ``assets`` table.
    """
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    outcome: dict[str, Any] = {"unit_id": task.unit_id, "summary": None, "assets": None}
    try:
        result = run_study(task.config, feeder=feeder)
    except Exception as exc:
        outcome.update(
            status="failed",
            error=_one_line(exc),
            error_type=type(exc).__name__,
            traceback=traceback.format_exc(limit=20),
        )
    else:
        outcome.update(
            status="ok",
            error=None,
            error_type=None,
            traceback=None,
            summary=result.summary,
            assets=result.assets,
        )
    outcome.update(
        started_at=started.isoformat(timespec="milliseconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        duration_s=round(time.perf_counter() - t0, 4),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        versions=package_versions(),
    )
    return outcome


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, GridplanError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of Python, gridplan and the packages that shape its numbers."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "gridplan": __version__}
    for name in ("numpy", "scipy", "pandas", "pandapower", "simbench", "dask", "distributed"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


# --------------------------------------------------------------------------- recording
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _jsonable(value: Any) -> Any:
    """Non-finite floats -> None (JSON has no NaN), containers recursively."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, date):  # TOML dates (period.start); datetime is a date too
        return value.isoformat()
    return value


def _read_record(unit_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((unit_dir / "unit.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def csv_ready(table: pd.DataFrame, float_format: str = "%.6g") -> pd.DataFrame:
    """``table`` with its index as a column, floats as text in ``float_format`` (NaN as
    empty) and datetimes as text, for ``to_csv(index=False)``.

    The file is the same as ``table.reset_index().to_csv(index=False,
    float_format=float_format)`` with datetime columns as ``str``, for about a third of
    the time: pandas formats the floats one by one in Python, here NumPy formats all of
    them in one call. (This process writes each unit's table while the workers compute.)
    """
    out = table.reset_index()
    cells = out.to_numpy(dtype=object)
    kinds = [dtype.kind for dtype in out.dtypes]
    floats = [i for i, kind in enumerate(kinds) if kind == "f"]
    if floats:
        values = out.iloc[:, floats].to_numpy(dtype=float, na_value=np.nan)
        text = np.char.mod(float_format, values).astype(object)
        text[np.isnan(values)] = ""
        cells[:, floats] = text
    for i, kind in enumerate(kinds):
        if kind == "M":
            cells[:, i] = out.iloc[:, i].astype(str).to_numpy(dtype=object)
    return pd.DataFrame(cells, columns=out.columns, dtype=object)


_MANIFEST_COLUMNS = [
    "unit_id",
    "feeder",
    "feeder_ref",
    "scenario",
    "scenario_name",
    "draw",
    "seed",
    "config_hash",
    "status",
    "error",
    "error_type",
    "attempts",
    "run_id",
    "started_at",
    "finished_at",
    "duration_s",
    "worker",
    "versions",
]


class _Recorder:
    """Writes each unit's files as it finishes, keeps the manifest, drives the progress bar."""

    def __init__(
        self,
        plan: BatchPlan,
        out: Path,
        run_id: str,
        previous: Mapping[str, dict[str, Any]],
        todo: int,
        progress: bool,
    ) -> None:
        self.plan = plan
        self.out = out
        self.run_id = run_id
        # unit_id -> unit.json content; earlier runs' records until a unit is run again
        self.records: dict[str, dict[str, Any]] = dict(previous)
        self.previous_attempts = {k: int(v.get("attempts") or 0) for k, v in previous.items()}
        self.ok = sum(1 for u in plan.units if previous.get(u.unit_id, {}).get("status") == "ok")
        self.failed_now = 0
        self.done_now = 0
        self._last_flush = 0.0
        self._flush_s = 0.0
        self._bar: Any = None
        if progress and todo:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=todo, desc=f"batch {plan.config.name}", unit="unit", dynamic_ncols=True
            )
            self._bar.set_postfix(ok=self.ok, failed=0, refresh=False)

    def record(self, unit: Unit, outcome: dict[str, Any]) -> None:
        """Write one unit's files (``unit.json`` last) and update the manifest."""
        unit_dir = inside(self.out, "units", unit.unit_id)
        for name in UNIT_FILES:  # an earlier attempt's files (only the ones written here)
            (unit_dir / name).unlink(missing_ok=True)
        summary, assets = outcome.get("summary"), outcome.get("assets")
        metrics = summary_metrics(summary) if outcome["status"] == "ok" and summary else None
        if summary is not None:
            write_json(unit_dir / "summary.json", _jsonable(summary.to_dict()))
        if assets is not None:
            write_csv(unit_dir / "assets.csv", csv_ready(assets), index=False)
        import tomli_w

        write_text(
            unit_dir / "study.toml",
            tomli_w.dumps(unit.config.model_dump(mode="json", exclude_none=True)),
        )
        record = {
            "unit_id": unit.unit_id,
            "feeder": unit.feeder,
            "feeder_ref": unit.feeder_ref,
            "scenario": unit.scenario,
            "scenario_name": unit.scenario_name,
            "draw": unit.draw,
            "seed": unit.seed,
            "params": unit.params,
            "config_hash": unit.config_hash,
            "batch_config_hash": self.plan.config_hash,
            "status": outcome["status"],
            "error": outcome.get("error"),
            "error_type": outcome.get("error_type"),
            "traceback": outcome.get("traceback"),
            "attempts": self.previous_attempts.get(unit.unit_id, 0) + 1,
            "run_id": self.run_id,
            "started_at": outcome.get("started_at"),
            "finished_at": outcome.get("finished_at"),
            "duration_s": outcome.get("duration_s"),
            "worker": outcome.get("worker"),
            "versions": outcome.get("versions") or {},
            "metrics": metrics,
        }
        write_json(unit_dir / "unit.json", _jsonable(record))
        self.records[unit.unit_id] = record
        self.done_now += 1
        if outcome["status"] == "ok":
            self.ok += 1
        else:
            self.failed_now += 1
            log.warning("unit %s failed: %s", unit.unit_id, outcome.get("error"))
        if self._bar is not None:
            self._bar.set_postfix(ok=self.ok, failed=self.failed_now, refresh=False)
            self._bar.update(1)
        # Rewriting the manifest is O(units): space the rewrites so they cost < 5 % of time.
        if time.monotonic() - self._last_flush > max(MANIFEST_INTERVAL_S, 20 * self._flush_s):
            self.flush()

    def flush(self) -> pd.DataFrame:
        """Rewrite the manifest (atomically) from the records; return it."""
        t0 = time.monotonic()
        manifest = manifest_frame(self.plan, self.records)
        _write_table(self.out / "manifest", manifest)
        self._last_flush = time.monotonic()
        self._flush_s = self._last_flush - t0
        return manifest

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def manifest_frame(plan: BatchPlan, records: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per unit of ``plan``: its record, or ``pending`` when it has none yet."""
    rows = []
    for unit in plan.units:
        rec = records.get(unit.unit_id)
        row: dict[str, Any] = {
            "unit_id": unit.unit_id,
            "feeder": unit.feeder,
            "feeder_ref": unit.feeder_ref,
            "scenario": unit.scenario,
            "scenario_name": unit.scenario_name,
            "draw": unit.draw,
            "seed": unit.seed,
            "config_hash": unit.config_hash,
            "status": "pending",
            "attempts": 0,
        }
        if rec is not None:
            row.update({k: rec.get(k) for k in _MANIFEST_COLUMNS[8:]})
            row["versions"] = json.dumps(rec.get("versions") or {}, sort_keys=True)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=_MANIFEST_COLUMNS)
    frame["seed"] = frame.seed.astype("uint64")
    frame["attempts"] = frame.attempts.fillna(0).astype(int)
    frame["duration_s"] = pd.to_numeric(frame.duration_s, errors="coerce")
    return frame


def _write_table(stem: Path, frame: pd.DataFrame) -> None:
    """``stem.parquet`` and ``stem.csv``, each atomically."""
    frame = _parquet_safe(frame)
    write_with(stem.with_suffix(".parquet"), lambda tmp: frame.to_parquet(tmp, index=False))
    write_csv(stem.with_suffix(".csv"), frame, index=False)


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns of numbers become numeric; columns that mix types become text."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        values = [v for v in frame[column] if not _is_null(v)]
        if all(isinstance(v, str) for v in values):
            continue
        if all(isinstance(v, int | float | np.number) for v in values):
            frame[column] = pd.to_numeric(frame[column])
            continue
        frame[column] = [
            None if _is_null(v) else v if isinstance(v, str) else json.dumps(v, default=str)
            for v in frame[column]
        ]
    return frame


def _is_null(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def results_frame(plan: BatchPlan, records: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The consolidated results table: one row per unit of ``plan`` that has a record.

    Columns: :data:`ID_COLUMNS`, one per scenario field (:attr:`BatchPlan.param_columns`),
    then :data:`RESULT_COLUMNS`. Failed units have their error and NaN results.
    """
    ordered = [records[u.unit_id] for u in plan.units if u.unit_id in records]
    return _results_from_records(ordered, plan.param_columns)


def _results_from_records(
    records: Sequence[Mapping[str, Any]], params: Sequence[str]
) -> pd.DataFrame:
    rows = []
    for rec in records:
        metrics = rec.get("metrics") or {}
        unit_params = rec.get("params") or {}
        row = {k: rec.get(k) for k in ID_COLUMNS}
        row.update({p: unit_params.get(p) for p in params})
        row.update({k: metrics.get(k) for k in RESULT_COLUMNS})
        row.update({k: rec.get(k) for k in ("duration_s", "attempts", "worker", "config_hash")})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*ID_COLUMNS, *params, *RESULT_COLUMNS])
    for column in ("scenario", "draw", "attempts", *_INT_COLUMNS):
        frame[column] = pd.array(pd.to_numeric(frame[column]), dtype="Int64")
    text = (*ID_COLUMNS, *_TEXT_COLUMNS, "net_value_basis", "worker", "config_hash")
    for column in RESULT_COLUMNS:
        if column not in _INT_COLUMNS and column not in text and column != "attempts":
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["seed"] = frame.seed.astype("uint64")
    return frame.reset_index(drop=True)


def ranking_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Feeders ranked by net deferral value (mean over their finished units).

    Columns: ``rank``, ``feeder``, ``net_deferral_value_usd_mean`` [USD] (mean over all
    scenario points and draws), ``best_scenario``/``best_scenario_name`` and
    ``net_deferral_value_usd_best`` (the scenario point with the highest mean over draws),
    ``deferral_years_mean`` [yr], ``peak_loading_pct_charging_max`` [%],
    ``year_of_need_charging_min``, ``units_ok``, ``units_failed``, ``value_basis``.
    Feeders without a finished unit come last.
    """
    rows = []
    for feeder, group in results.groupby("feeder", sort=False):
        ok = group[group.status == "ok"]
        row: dict[str, Any] = {
            "feeder": feeder,
            "net_deferral_value_usd_mean": ok.net_deferral_value_usd.mean(),
            "best_scenario": pd.NA,
            "best_scenario_name": None,
            "net_deferral_value_usd_best": math.nan,
            "deferral_years_mean": ok.deferral_years.mean(),
            "peak_loading_pct_charging_max": ok.peak_loading_pct_charging.max(),
            "year_of_need_charging_min": ok.year_of_need_charging.min() if len(ok) else pd.NA,
            "units_ok": len(ok),
            "units_failed": int((group.status == "failed").sum()),
            "value_basis": ", ".join(sorted(set(ok.net_value_basis.dropna()))) or None,
        }
        by_scenario = ok.groupby("scenario").net_deferral_value_usd.mean().dropna()
        if len(by_scenario):
            best = by_scenario.idxmax()
            row.update(
                best_scenario=int(best),
                best_scenario_name=ok.scenario_name[ok.scenario == best].iloc[0],
                net_deferral_value_usd_best=float(by_scenario.max()),
            )
        rows.append(row)
    columns = [
        "rank",
        "feeder",
        "net_deferral_value_usd_mean",
        "best_scenario",
        "best_scenario_name",
        "net_deferral_value_usd_best",
        "deferral_years_mean",
        "peak_loading_pct_charging_max",
        "year_of_need_charging_min",
        "units_ok",
        "units_failed",
        "value_basis",
    ]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    frame = frame.sort_values(
        "net_deferral_value_usd_mean", ascending=False, na_position="last", kind="stable"
    ).reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    frame["best_scenario"] = pd.array(frame.best_scenario, dtype="Int64")
    frame["year_of_need_charging_min"] = pd.array(
        pd.to_numeric(frame.year_of_need_charging_min), dtype="Int64"
    )
    return frame[columns]


def consolidate(output_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rebuild the results and ranking tables of a batch folder from its unit files.

    Reads ``manifest.parquet`` for the units (in plan order) and each unit's
    ``units/<unit-id>/unit.json``; works on an interrupted batch (finished units only).

    Returns
    -------
    (results, ranking)
        As :func:`results_frame` and :func:`ranking_frame`.
    """
    out = Path(output_path)
    manifest = pd.read_parquet(out / "manifest.parquet")
    records = []
    for unit_id, config_hash in zip(manifest.unit_id, manifest.config_hash, strict=True):
        rec = _read_record(out / "units" / unit_id)
        if rec is not None and rec.get("config_hash") == config_hash:
            records.append(rec)
    params: dict[str, None] = {}
    for rec in records:
        params.update(dict.fromkeys(rec.get("params") or {}))
    results = _results_from_records(records, list(params))
    return results, ranking_frame(results)


# --------------------------------------------------------------------------- running
@dataclass(frozen=True, eq=False)
class BatchResult:
    """What a batch run produced (also in ``output_path``).

    Attributes
    ----------
    plan
        The batch plan.
    output_path
        ``<output_dir>/<batch name>/``.
    results
        One row per finished unit (see :func:`results_frame`).
    ranking
        Feeders by net deferral value (see :func:`ranking_frame`).
    manifest
        One row per unit: seed, config hash, status, error, timing, worker, versions.
    computed
        Units run this time.
    skipped
        Units kept from an earlier run (``resume``).
    ok, failed
        Units of the plan finished ``ok`` / ``failed`` (this run and earlier ones).
    wall_s
        Wall time of this run [s].
    executor
        Where the units ran (``this process``, ``LocalCluster (n worker processes)``, a
        scheduler or a client).
    """

    plan: BatchPlan
    output_path: Path
    results: pd.DataFrame
    ranking: pd.DataFrame
    manifest: pd.DataFrame
    computed: int
    skipped: int
    ok: int
    failed: int
    wall_s: float
    executor: str

    @property
    def units_per_minute(self) -> float:
        """Units computed per minute of wall time in this run."""
        return 60.0 * self.computed / self.wall_s if self.wall_s > 0 else math.nan

    def summary_lines(self, top: int = 5) -> list[str]:
        """A few lines for the end of a run: counts, failures, top feeders, files."""
        plan = self.plan
        n = len(plan.units)
        lines = [
            f"batch '{plan.config.name}': {n} units ({len(plan.feeders)} feeders × "
            f"{len(plan.scenarios)} scenarios × {plan.config.draws} draws): {self.ok} ok, "
            f"{self.failed} failed, {n - self.ok - self.failed} pending; {self.computed} run "
            f"in {self.wall_s:.1f} s ({self.units_per_minute:.1f} units/min; {self.executor}), "
            f"{self.skipped} kept from an earlier run"
        ]
        failed = self.manifest[self.manifest.status == "failed"]
        for _, row in failed.head(top).iterrows():
            lines.append(f"  failed {row.unit_id}: {row.error}")
        if len(failed) > top:
            lines.append(f"  ... {len(failed) - top} more failed units (see manifest.csv)")
        ranked = self.ranking.dropna(subset=["net_deferral_value_usd_mean"]).head(top)
        if len(ranked):
            lines.append("feeders by net deferral value (mean over units, USD):")
            for _, r in ranked.iterrows():
                lines.append(
                    f"  {int(r['rank']):>3}. {r.feeder:<24}{r.net_deferral_value_usd_mean:>14,.0f}"
                    f"  (best: {r.net_deferral_value_usd_best:,.0f} at {r.best_scenario_name})"
                )
        lines.append(f"results: {self.output_path}")
        return lines


def run(
    batch: BatchConfig | BatchPlan | Mapping[str, Any] | str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    output_dir: str | Path | None = None,
    progress: bool = True,
    max_units: int | None = None,
) -> BatchResult:
    """Run a batch of feeder studies.

    Parameters
    ----------
    batch
        A batch TOML path, a :class:`BatchConfig` (or dict of its fields), or a plan from
        :func:`plan_batch`. Validated and expanded before anything runs.
    workers
        Worker processes; default the config's ``execution.workers``, else all cores (one
        when Dask is not installed). One worker (and no scheduler) runs the units in this
        process, without Dask.
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``); default the config's.
        Unreachable within ``execution.connect_timeout_s`` -> :class:`ConfigError`.
    client
        A ``distributed.Client`` to run on (takes precedence over the two above).
    resume
        Keep the units already finished ``ok`` (same config hash) and run the rest.
    overwrite
        Delete the batch's earlier results first. Without ``resume`` or ``overwrite`` an
        output folder that already holds units is an error.
    output_dir
        Parent of the batch's folder; default the config's ``output_dir``.
    max_units
        Most units the batch may hold; default ``execution.max_units``.
    progress
        Show a progress bar (ETA, done and failed counts).

    Returns
    -------
    BatchResult

    Raises
    ------
    ConfigError
        Invalid batch, an output folder holding results without ``resume``/``overwrite``,
        an unreachable scheduler.
    BatchLockedError
        Another run is writing the same output folder (see :func:`output_lock`).
    """
    t0 = time.perf_counter()
    plan = batch if isinstance(batch, BatchPlan) else plan_batch(batch, max_units=max_units)
    config = plan.config
    out = Path(output_dir if output_dir is not None else config.output_dir) / config.name
    scheduler = scheduler if scheduler is not None else config.execution.scheduler
    n_workers = workers if workers is not None else config.execution.workers
    if n_workers is None:
        n_workers = _cpu_count()
        if n_workers > 1 and client is None and not scheduler and not _dask_installed():
            log.warning(
                "Dask is not installed: running the batch in this process "
                "(pip install 'gridplan[dask]' to use all %d cores)",
                n_workers,
            )
            n_workers = 1
    if n_workers < 1:
        raise ConfigError(f"workers must be at least 1 (got {n_workers})", field="workers")
    # Quick checks before a cluster starts; repeated under the output folder's lock.
    _check_output(plan, out, resume=resume, overwrite=overwrite)
    previous = _previous_records(plan, out, warn=False) if resume else {}
    todo = [u for u in plan.units if previous.get(u.unit_id, {}).get("status") != "ok"]

    with ExitStack() as locked:  # the output folder's lock, until the results are written
        with ExitStack() as stack:  # the Dask client (and cluster), until the units are done
            # Connect (or start the cluster) before anything is written or cleared: an
            # unreachable scheduler is a quick error that leaves earlier results alone.
            dask = client
            if dask is None and scheduler:
                dask = stack.enter_context(
                    _connect(scheduler, config.execution.connect_timeout_s, plan.file)
                )
            if dask is None and todo and n_workers > 1:
                n = min(n_workers, len(todo))
                dask = stack.enter_context(local_client(n))
                executor = f"LocalCluster ({n} worker processes)"
            elif dask is not None:
                where = f"Dask scheduler {scheduler}" if client is None else "Dask client"
                executor = f"{where} ({_describe_client(dask)})"
            else:
                executor = "this process"
            locked.enter_context(output_lock(out, config.name))
            # Another run may have finished in this folder since the checks above.
            _check_output(plan, out, resume=resume, overwrite=overwrite)
            previous = _previous_records(plan, out) if resume else {}
            todo = [u for u in plan.units if previous.get(u.unit_id, {}).get("status") != "ok"]
            skipped = len(plan.units) - len(todo)
            if overwrite:
                _clear_output(out)

            run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
            _write_batch_json(plan, out, run_id, "running", {"units_todo": len(todo)})
            recorder = _Recorder(plan, out, run_id, previous, len(todo), progress)
            recorder.flush()
            try:
                if todo and dask is not None:
                    _run_dask(dask, todo, recorder)
                else:
                    for unit in todo:
                        outcome = run_unit(None, UnitTask(unit.unit_id, unit.config))
                        recorder.record(unit, outcome)
            except BaseException as exc:  # the batch stops: say so in batch.json
                _record_stop(plan, out, run_id, recorder, exc)
                raise
            recorder.close()
            manifest = recorder.flush()
        wall_s = time.perf_counter() - t0
        result = _finish(plan, out, run_id, manifest, recorder.done_now, skipped, wall_s, executor)
    return result


def _record_stop(
    plan: BatchPlan, out: Path, run_id: str, recorder: _Recorder, exc: BaseException
) -> None:
    """Close the recorder and mark the run ``interrupted`` (Ctrl-C) or ``failed`` in
    ``batch.json``, with the units done so far."""
    recorder.close()
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    extra = {
        "units_done": recorder.done_now,
        "units_ok": recorder.ok,
        "error": _one_line(exc) or type(exc).__name__,
        "manifest_rows": len(recorder.flush()),
    }
    _write_batch_json(plan, out, run_id, status, extra)


def _finish(
    plan: BatchPlan,
    out: Path,
    run_id: str,
    manifest: pd.DataFrame,
    computed: int,
    skipped: int,
    wall_s: float,
    executor: str,
) -> BatchResult:
    """Consolidate the results from the unit files on disk (this and earlier runs),
    write the tables, the screening report and the final ``batch.json``."""
    finished = {}
    for unit in plan.units:
        rec = _read_record(out / "units" / unit.unit_id)
        if rec is not None and rec.get("config_hash") == unit.config_hash:
            finished[unit.unit_id] = rec
    results = results_frame(plan, finished)
    ranking = ranking_frame(results)
    _write_table(out / "results", results)
    _write_table(out / "ranking", ranking)
    try:  # the screening report across feeders; a report problem must not fail the batch
        from gridplan.outputs.report import write_batch_report

        write_batch_report(results, out)
    except Exception:
        log.exception("batch screening report failed; the results tables are complete")
    ok = int((manifest.status == "ok").sum())
    failed = int((manifest.status == "failed").sum())
    result = BatchResult(
        plan=plan,
        output_path=out,
        results=results,
        ranking=ranking,
        manifest=manifest,
        computed=computed,
        skipped=skipped,
        ok=ok,
        failed=failed,
        wall_s=wall_s,
        executor=executor,
    )
    rate = result.units_per_minute
    _write_batch_json(
        plan,
        out,
        run_id,
        "finished",
        {
            "executor": executor,
            "units_run": result.computed,
            "units_kept": skipped,
            "units_ok": ok,
            "units_failed": failed,
            "wall_s": round(wall_s, 3),
            "units_per_minute": round(rate, 3) if math.isfinite(rate) else None,
        },
    )
    return result


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_output(plan: BatchPlan, out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix a new run into an earlier run's results (unless resume/overwrite)."""
    if resume and overwrite:
        raise ConfigError("give either resume (--resume) or overwrite (--overwrite), not both")
    units_dir = out / "units"
    if not (resume or overwrite) and units_dir.is_dir() and any(units_dir.iterdir()):
        raise ConfigError(
            f"output folder {out} already holds results of batch '{plan.config.name}'; "
            "resume it (--resume) or start over (--overwrite)"
        )


def _clear_output(out: Path) -> None:
    """Delete an earlier run's units and tables (``overwrite``): only the files a batch
    writes, and folders left empty by that; anything else (a user's notes, a symlink's
    target) stays."""
    units_dir = out / "units"
    if units_dir.is_dir() and not units_dir.is_symlink():
        for unit_dir in units_dir.iterdir():
            if unit_dir.is_dir() and not unit_dir.is_symlink():
                for name in UNIT_FILES:
                    (unit_dir / name).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    unit_dir.rmdir()  # only when nothing else is in it
        with contextlib.suppress(OSError):
            units_dir.rmdir()
    for stem in ("manifest", "results", "ranking"):
        for suffix in (".parquet", ".csv"):
            (out / f"{stem}{suffix}").unlink(missing_ok=True)
    (out / "batch.json").unlink(missing_ok=True)


#: The files a batch writes into each unit's folder.
UNIT_FILES = ("summary.json", "assets.csv", "study.toml", "unit.json")


def inside(out: Path, *parts: str) -> Path:
    """The folder ``out/parts...``, created, never through a symbolic link: the batch
    writes nothing outside its output folder (the folder itself may be a link).

    Raises
    ------
    ConfigError
        A part of the path inside ``out`` is a symbolic link or not a folder.
    """
    path = out
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise ConfigError(
                f"{path} is a symbolic link; a batch never writes through links inside its "
                "output folder (remove it or choose another --output-dir)",
                field="output_dir",
            )
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path} is not a folder", field="output_dir")
        path.mkdir(exist_ok=True)
    return path


def _previous_records(
    plan: BatchPlan, out: Path, *, warn: bool = True
) -> dict[str, dict[str, Any]]:
    """Earlier records of the plan's units whose config hash is unchanged (``resume``);
    the ``ok`` ones are not run again, the others keep their attempt count."""
    old = _read_json(out / "batch.json") if warn else None
    if old and old.get("config_hash") != plan.config_hash:
        log.warning(
            "batch config or feeder specs changed since the last run; units whose study "
            "config changed are run again"
        )
    previous = {}
    for unit in plan.units:
        rec = _read_record(out / "units" / unit.unit_id)
        if rec is not None and rec.get("config_hash") == unit.config_hash:
            previous[unit.unit_id] = rec
    return previous


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_batch_json(
    plan: BatchPlan, out: Path, run_id: str, status: str, extra: dict[str, Any]
) -> None:
    config = plan.config
    data = {
        "batch": config.name,
        "description": config.description,
        "file": str(plan.file) if plan.file else None,
        "status": status,
        "run_id": run_id,
        "written_at": _now(),
        "config_hash": plan.config_hash,
        "seed": config.seed,
        "draws": config.draws,
        "common_random_numbers": config.common_random_numbers,
        "seed_rule": "numpy SeedSequence(seed, spawn_key=(sha256(feeder)[:8], draw"
        + ("" if config.common_random_numbers else ", scenario")
        + ")) -> 63-bit int",
        "units": len(plan.units),
        "feeders": [
            {"name": f.name, "ref": f.ref, "spec": str(f.spec_path), "spec_sha256": f.spec_digest}
            for f in plan.feeders
        ],
        "scenarios": [
            {"index": s.index, "name": s.name, "overrides": s.overrides} for s in plan.scenarios
        ],
        "base_study": plan.base_study,
        "config": config.model_dump(mode="json"),
        "versions": package_versions(),
        "shared_inputs": "each feeder loaded from its spec once, on one worker; Dask sends "
        "the loaded feeder once to each other worker that runs one of its units",
        **extra,
    }
    write_json(out / "batch.json", _jsonable(data))


# --------------------------------------------------------------------------- the lock
#: Name of the lock file in a batch's output folder while a run writes there.
LOCK_FILE = "batch.lock"


class BatchLockedError(GridplanError):
    """Another batch run is writing the same output folder (its lock file is held)."""


def _process_started(pid: int) -> float | None:
    """Start time of process ``pid`` [s since the epoch]; ``None`` if unknown."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def _pid_alive(pid: int, started: float | None) -> bool:
    """Whether process ``pid`` on this host still runs (and is the one started at
    ``started``, when both that and the process's start time are known)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return True
    now_started = _process_started(pid)
    if started is not None and now_started is not None and abs(now_started - started) > 1.0:
        return False  # the pid was reused by a later process
    return True


@contextmanager
def output_lock(out: Path, batch: str = "") -> Iterator[Path]:
    """Hold the lock of the batch output folder ``out`` for the block.

    The lock is the file ``out/batch.lock``, created atomically (``O_CREAT | O_EXCL``)
    with the holder's pid, host, process start time and run start time. A lock held by a
    live process (or by any process on another host) raises :class:`BatchLockedError`,
    one line naming the folder and the lock file. A stale lock, whose process on this
    host is gone (killed, crashed), is taken over with a warning. The lock file is
    removed when the block ends, by an error or ``KeyboardInterrupt`` too (a kill leaves
    it behind, stale).

    Yields
    ------
    Path
        The lock file.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    token = uuid.uuid4().hex
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_started": _process_started(os.getpid()),
        "started_at": _now(),
        "batch": batch,
        "token": token,
    }
    for _ in range(5):  # a stale lock taken over by another run meanwhile: look again
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _take_over_stale(out, path)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(holder, fh)
            fh.write("\n")
        break
    else:
        raise BatchLockedError(
            f"output folder {out} is in use by another batch run (lock file {path} keeps "
            "changing hands); try again"
        )
    try:
        yield path
    finally:
        current = _read_json(path)
        if current is not None and current.get("token") == token:
            path.unlink(missing_ok=True)


def _take_over_stale(out: Path, path: Path) -> None:
    """Remove the lock at ``path`` if its holder is gone; else raise BatchLockedError."""
    holder = None
    for _ in range(10):  # a lock just created may not be written yet
        holder = _read_json(path)
        if holder is not None or not path.exists():
            break
        time.sleep(0.05)
    if holder is None and not path.exists():
        return  # released meanwhile
    here = socket.gethostname()
    if holder is None:
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return
        stale, who = age > 5.0, f"an unreadable lock written {age:.0f} s ago"
    else:
        pid, host = holder.get("pid"), holder.get("host")
        who = f"pid {pid} on {host}, started {holder.get('started_at')}"
        stale = (
            host == here
            and isinstance(pid, int)
            and not _pid_alive(pid, _float_or_none(holder.get("process_started")))
        )
    if not stale:
        remote = holder is not None and holder.get("host") != here
        hint = (
            "if that run is gone (another host: its process cannot be checked from here), "
            "delete the lock file"
            if remote
            else "wait for it to finish (or stop it)"
        )
        raise BatchLockedError(
            f"output folder {out} is in use by another batch run ({who}); lock file {path}: {hint}"
        )
    # Move the stale lock aside (atomic: of two runs taking it over, one moves it) and
    # check that what moved is the lock judged stale, not a new run's lock.
    aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = _read_json(aside)
    if holder is not None and (moved is None or moved.get("token") != holder.get("token")):
        try:  # a new run's lock: put it back
            os.link(aside, path)
        except FileExistsError:
            pass
        aside.unlink(missing_ok=True)
        return
    aside.unlink(missing_ok=True)
    log.warning(
        "taking over the stale lock %s of output folder %s (%s: that process is gone)",
        path,
        out,
        who,
    )


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


# --------------------------------------------------------------------------- dask
def _dask_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("distributed") is not None


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise GridplanError(
            "running a batch on more than one worker or on a scheduler needs Dask: "
            "pip install 'gridplan[dask]' (or run with --workers 1)"
        ) from None
    return distributed


def _connect(address: str, timeout_s: float, file: Path | None) -> Any:
    """A client of the scheduler at ``address``; a clear error if it is not reachable."""
    distributed = _distributed()
    t0 = time.monotonic()
    try:
        return distributed.Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except Exception as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at '{address}' "
            f"(gave up after {time.monotonic() - t0:.1f} s: {_one_line(exc)}); "
            "check the address and that the scheduler is running",
            file=file if file is not None else None,
            field="execution.scheduler" if file is not None else None,
        ) from None


#: Dask settings of the ``LocalCluster`` a batch starts (:func:`local_client`).
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also turns off
    # glibc's dynamic mmap threshold: every array over 128 kB is then mapped and unmapped
    # afresh, page faults and all, 10-30 % of a unit's time here. None: glibc's defaults,
    # as in a plain Python process.
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # The batch places every task itself (_Dispatcher): no stealing behind its back, and a
    # feeder sent to a worker stays there while its units run (the active memory manager
    # would drop such "extra" replicas, and Dask would send the feeder again).
    "distributed.scheduler.work-stealing": False,
    "distributed.scheduler.active-memory-manager.start": False,
    # Housekeeping that competes with the units for the cores: the workers' statistical
    # profiler (100 samples/s, for a dashboard this cluster does not serve) and the
    # event-loop health ticks (50/s), system monitor and memory monitor (10/s) of the
    # scheduler, nannies and workers. Slower here, they cost ~1 % of a core instead of ~5 %
    # in this process (where the scheduler and the nannies run) and ~3 % in each worker.
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "500ms",
}
_MALLOC_TRIM = "MALLOC_TRIM_THRESHOLD_"
#: The variable as this process started with it (the user's choice; workers inherit it).
_MALLOC_TRIM_AT_IMPORT = os.environ.get(_MALLOC_TRIM)


@contextmanager
def local_client(n: int) -> Iterator[Any]:
    """A client of a ``LocalCluster`` of ``n`` single-threaded worker processes.

    Dask's nanny starts each worker with ``OMP_NUM_THREADS=1`` (and MKL/OpenBLAS alike),
    so ``n`` workers use ``n`` cores. The workers import gridplan while the cluster
    starts (``preload``), not when the first unit arrives. :data:`LOCAL_CLUSTER_CONFIG`
    applies: glibc's default memory trimming (not Dask's eager one), no work stealing,
    no active memory manager. A ``MALLOC_TRIM_THRESHOLD_`` that an earlier Dask cluster
    left in this process's environment (the nanny sets it in its own process) is removed
    first; one set before gridplan.batch.runner was imported is kept.
    """
    distributed = _distributed()
    import dask

    if _MALLOC_TRIM_AT_IMPORT is None:
        os.environ.pop(_MALLOC_TRIM, None)
    # Dask logs at INFO to the "distributed" logger, which propagates to the root handlers;
    # follow the level the application chose for the root logger while the cluster lives.
    dask_log = logging.getLogger("distributed")
    old_level = dask_log.level
    dask_log.setLevel(max(dask_log.getEffectiveLevel(), logging.getLogger().getEffectiveLevel()))
    with (
        _restore_level(dask_log, old_level),
        dask.config.set(LOCAL_CLUSTER_CONFIG),
        distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            preload=["gridplan.batch.runner"],
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        client.wait_for_workers(n)
        yield client


@contextmanager
def _restore_level(logger: logging.Logger, level: int) -> Iterator[None]:
    try:
        yield
    finally:
        logger.setLevel(level)


def _describe_client(client: Any) -> str:
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # older distributed
        workers = client.scheduler_info()["workers"]
    except Exception:
        return "workers unknown"
    threads = sum(int(w.get("nthreads", 1)) for w in workers.values())
    return f"{len(workers)} workers, {threads} threads"


def _run_dask(client: Any, todo: Sequence[Unit], recorder: _Recorder) -> None:
    """Run the units on Dask and record each as it completes (see :class:`_Dispatcher`)."""
    _Dispatcher(client, todo, recorder).run()


class _Dispatcher:
    """Places the units on the Dask workers a few at a time, longest first.

    Feeders
        Each feeder is loaded once, by a warm-up task (:func:`warm_feeder`) on a worker
        that has a free slot and no unit of a feeder it holds to run. The loaded feeder
        stays on that worker as Dask data and each unit takes it as its first argument, so
        Dask sends it (pickled: ~0.1-0.5 s) once to each other worker that runs one of its
        units, instead of that worker loading it again (1-4 s). Released when the feeder's
        units are done.
    Units
        A worker gets a task whenever it has a free slot: ``nthreads + 1`` (one waits, so
        the worker does not idle while this process answers; just ``nthreads`` once few
        units are left, so the last ones go to whichever worker frees first). It gets, in
        this order, a unit of a loaded feeder it holds; a warm-up of a feeder not loaded
        yet; a unit of a feeder loaded on another worker (the feeder is sent); a unit of a
        feeder still loading (it waits). So feeders move between workers only when a
        worker has run out of its own, towards the end. Among units, the longest expected
        run time first (longest-processing-time-first: what is left at the end, for the
        workers to share, are the short units, and they finish together). Expected run
        time: the mean of the finished units of the same feeder and scenario point; for a
        scenario point not yet timed, the longest mean of the feeder; for a feeder not yet
        timed, infinite (so every feeder and scenario point is timed early). Ties go in
        plan order.
    Failures
        Tasks go to a worker by a loose restriction: when it dies, Dask runs them on
        another (reloading a lost feeder). A feeder whose warm-up task failed outright
        (its worker kept dying) has its units run without it: each loads the feeder itself.
    """

    #: Seconds between refreshes of the worker list.
    WORKERS_INTERVAL_S = 0.5

    def __init__(self, client: Any, todo: Sequence[Unit], recorder: _Recorder) -> None:
        self.client = client
        self.recorder = recorder
        self.distributed = _distributed()
        self.token = uuid.uuid4().hex[:10]
        self.groups = _by_feeder(todo)
        # per feeder: scenario -> its units not yet placed, in plan order
        self.backlog: list[dict[int, deque[Unit]]] = []
        for _, units in self.groups:
            by_scenario: dict[int, deque[Unit]] = {}
            for unit in units:
                by_scenario.setdefault(unit.scenario, deque()).append(unit)
            self.backlog.append(by_scenario)
        self.group_of = {ref: g for g, (ref, _) in enumerate(self.groups)}
        self.unplaced = [len(units) for _, units in self.groups]
        self.unfinished = list(self.unplaced)
        self.loads: dict[int, Any] = {}  # feeder -> its warm-up future (until its units are done)
        self.holders: list[set[str]] = [set() for _ in self.groups]  # workers given the feeder
        self.loaded: set[int] = set()  # warm-up finished (or failed)
        self.broken: set[int] = set()  # warm-up failed outright: units run without the feeder
        self.retried: set[str] = set()
        self.tasks: dict[Any, tuple[int, Unit | None, str]] = {}  # future -> feeder, unit, worker
        self.inflight: dict[str, int] = {}
        self.seconds: dict[tuple[int, int], list[float]] = {}  # (feeder, scenario) -> [sum, n]
        self.longest_mean: dict[int, float] = {}  # feeder -> longest mean over its scenarios
        self.completed = self.distributed.as_completed(loop=client.loop)
        self._workers: dict[str, int] = {}
        self._workers_at = -math.inf

    def run(self) -> None:
        try:
            while True:
                self.fill()
                if not self.tasks:  # nothing in flight, nothing left to place
                    break
                for future in self.completed:
                    self.done(future)
                    self.fill()
        finally:
            leftover = [*self.tasks, *self.loads.values()]
            if leftover:
                self.client.cancel(leftover)

    # ----------------------------------------------------------------- placing
    def workers(self) -> dict[str, int]:
        """Worker address -> threads (refreshed every :attr:`WORKERS_INTERVAL_S`)."""
        now = time.monotonic()
        if now - self._workers_at > self.WORKERS_INTERVAL_S or not self._workers:
            workers = {str(k): max(int(v), 1) for k, v in self.client.nthreads().items()}
            if not workers:
                self.client.wait_for_workers(1)
                workers = {str(k): max(int(v), 1) for k, v in self.client.nthreads().items()}
            self._workers, self._workers_at = workers, now
        return self._workers

    def fill(self) -> None:
        """Give every worker's free slots a task."""
        workers = self.workers()
        threads = sum(workers.values())
        while True:
            extra = 1 if sum(self.unplaced) > threads else 0
            free = {w: n + extra - self.inflight.get(w, 0) for w, n in workers.items()}
            if not free:
                return
            worker = max(sorted(free), key=lambda w: free[w])
            if free[worker] <= 0 or not self.place(worker):
                return

    def place(self, worker: str) -> bool:
        """Submit the next task for ``worker``; False when there is none.

        In order: a unit of a feeder loaded and held by ``worker``; a warm-up of a feeder
        not yet loaded anywhere (it has to be loaded once anyway); a unit of a feeder
        loaded on another worker (Dask sends the feeder here); a unit of a feeder still
        loading (it waits). Among units, the longest expected first.
        """
        left = [g for g in range(len(self.groups)) if self.unplaced[g]]
        if not left:
            return False
        ready = [g for g in left if g in self.loaded]
        held = [g for g in ready if worker in self.holders[g]]
        if held:
            self.submit_unit(self.longest(held), worker)
            return True
        unopened = [g for g in left if g not in self.loads]
        if unopened:
            self.submit_load(unopened[0], worker)
            return True
        # a feeder loaded elsewhere, else one still loading (preferring those held here)
        waiting = ready or left
        mine = [g for g in waiting if worker in self.holders[g]]
        self.submit_unit(self.longest(mine or waiting), worker)
        return True

    def longest(self, groups: Iterable[int]) -> Unit:
        """The next unit with the longest expected run time among ``groups``'s units."""
        best: tuple[float, int] | None = None
        chosen: tuple[int, int] = (-1, -1)
        for g in groups:
            for scenario, units in self.backlog[g].items():
                if not units:
                    continue
                key = (self.expected_s(g, scenario), -units[0].index)
                if best is None or key > best:
                    best, chosen = key, (g, scenario)
        g, scenario = chosen
        self.unplaced[g] -= 1
        return self.backlog[g][scenario].popleft()

    def expected_s(self, group: int, scenario: int) -> float:
        """Expected run time of a unit [s] (see the class docstring)."""
        timed = self.seconds.get((group, scenario))
        if timed:
            return timed[0] / timed[1]
        return self.longest_mean.get(group, math.inf)

    def submit_load(self, group: int, worker: str) -> None:
        future = self.client.submit(
            warm_feeder,
            self.groups[group][0],
            key=f"gridplan-feeder-{_letters(group)}-{self.token}",
            pure=False,
            workers=[worker],
            allow_other_workers=True,
        )
        self.loads[group] = future
        self._track(future, group, None, worker)

    def submit_unit(self, unit: Unit, worker: str) -> None:
        group = self.group_of[unit.feeder_ref]
        feeder = None if group in self.broken else self.loads.get(group)
        future = self.client.submit(
            run_unit,
            feeder,
            UnitTask(unit.unit_id, unit.config),
            # one key prefix per feeder: Dask estimates unit durations per prefix
            key=f"gridplan-unit-{_letters(group)}-{unit.index}-{self.token}",
            pure=False,
            workers=[worker],
            allow_other_workers=True,
        )
        self._track(future, group, unit, worker)

    def _track(self, future: Any, group: int, unit: Unit | None, worker: str) -> None:
        self.tasks[future] = (group, unit, worker)
        self.holders[group].add(worker)
        self.inflight[worker] = self.inflight.get(worker, 0) + 1
        self.completed.add(future)

    # ----------------------------------------------------------------- completing
    def done(self, future: Any) -> None:
        group, unit, worker = self.tasks.pop(future)
        self.inflight[worker] -= 1
        if unit is None:  # a warm-up: its result (the feeder) stays on the worker
            self.loaded.add(group)
            if future.status != "finished":
                log.debug("feeder %s: warm-up %s", self.groups[group][0], future.status)
                self.broken.add(group)
            return
        try:
            outcome = future.result()
        except Exception as exc:  # the task itself failed (e.g. its worker kept dying)
            if group in self.broken and unit.unit_id not in self.retried:
                # it waited on a warm-up that failed: run it again, loading the feeder itself
                self.retried.add(unit.unit_id)
                self.backlog[group].setdefault(unit.scenario, deque()).appendleft(unit)
                self.unplaced[group] += 1
                future.release()
                return
            outcome = _lost(unit, exc)
        future.release()
        duration = outcome.get("duration_s")
        if isinstance(duration, int | float) and math.isfinite(duration):
            timed = self.seconds.setdefault((group, unit.scenario), [0.0, 0])
            timed[0] += float(duration)
            timed[1] += 1
            self.longest_mean[group] = max(
                total / n for (g, _), (total, n) in self.seconds.items() if g == group
            )
        self.unfinished[group] -= 1
        if self.unfinished[group] == 0 and group in self.loads:
            self.loads.pop(group).release()
        self.recorder.record(unit, outcome)


def _letters(i: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'ba': a Dask key word that ``key_split`` keeps."""
    word = ""
    while True:
        i, r = divmod(i, 26)
        word = chr(ord("a") + r) + word
        if i == 0:
            return word


def _by_feeder(units: Iterable[Unit]) -> list[tuple[str, list[Unit]]]:
    groups: dict[str, list[Unit]] = {}
    for unit in units:
        groups.setdefault(unit.feeder_ref, []).append(unit)
    return list(groups.items())


def _lost(unit: Unit, exc: BaseException) -> dict[str, Any]:
    """Outcome of a unit whose task failed outside the study (e.g. its worker kept dying)."""
    name = type(exc).__name__
    error = _one_line(exc)
    if name == "KilledWorker":
        error = (
            f"KilledWorker: the worker running this unit died repeatedly (out of memory or a "
            f"crash in native code?): {exc}"
        )
    now = _now()
    return {
        "unit_id": unit.unit_id,
        "status": "failed",
        "error": " ".join(error.split())[:500],
        "error_type": name,
        "traceback": "".join(traceback.format_exception(exc, limit=20)),
        "started_at": None,
        "finished_at": now,
        "duration_s": None,
        "worker": None,
        "versions": package_versions(),
        "summary": None,
        "assets": None,
    }
