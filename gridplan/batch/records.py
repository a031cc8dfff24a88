"""Each unit's files as it finishes, the manifest, and the consolidated results and
ranking tables."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridplan.batch.plan import MANIFEST_INTERVAL_S, BatchPlan, Unit
from gridplan.batch.results import (
    _INT_COLUMNS,
    _TEXT_COLUMNS,
    ID_COLUMNS,
    RESULT_COLUMNS,
    summary_metrics,
)
from gridplan.core.errors import ConfigError
from gridplan.core.io import write_csv, write_json, write_text, write_with

__all__ = [
    "UNIT_FILES",
    "consolidate",
    "csv_ready",
    "inside",
    "manifest_frame",
    "ranking_frame",
    "results_frame",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- recording
def _unit_identity(unit: Unit) -> dict[str, Any]:
    """The fields that name a unit, first in its record and its manifest row."""
    return {
        "unit_id": unit.unit_id,
        "feeder": unit.feeder,
        "feeder_ref": unit.feeder_ref,
        "scenario": unit.scenario,
        "scenario_name": unit.scenario_name,
        "draw": unit.draw,
        "seed": unit.seed,
    }


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
            from gridplan.core.progress import progress_bar

            self._bar = progress_bar(
                total=todo, desc=f"batch {plan.config.name}", unit="unit", disable=False
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
            **_unit_identity(unit),
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
            **_unit_identity(unit),
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


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
