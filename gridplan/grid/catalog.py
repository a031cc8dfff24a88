"""The upgrade cost catalog: unit costs of transformers and lines, with their sources.

Feeder specs name catalog rows (``catalog_id``) for their upgrade options; the catalog is
read and checked here, once per process for the bundled one
(``gridplan/data/upgrade_costs.csv``). Sources: NREL Distribution Upgrade Unit Cost
Database (Horowitz et al. 2019, DOI 10.7799/1491263); PG&E Unit Cost Guide 2023 (as quoted
in public hosting-capacity code); NREL DISCO generic cost database.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from gridplan.core.errors import ConfigError

__all__ = ["CATALOG_COLUMNS", "load_upgrade_catalog", "resolve_catalog", "unknown_id_message"]


#: Columns every upgrade cost catalog must have (``utility`` and ``phases`` are optional).
CATALOG_COLUMNS: tuple[str, ...] = (
    "upgrade_id",
    "kind",
    "description",
    "rating_kva",
    "ampacity_a",
    "unit",
    "cost_usd",
    "dollar_year",
    "source",
)
_OPTIONAL_COLUMNS: tuple[str, ...] = ("utility", "phases")
_KINDS: tuple[str, ...] = ("transformer", "line", "reconductor")
_UNITS: tuple[str, ...] = ("each", "per_km")
_TEXT_COLUMNS: tuple[str, ...] = ("upgrade_id", "kind", "description", "unit", "source", "utility")
_DEFAULT_CATALOG = "upgrade_costs.csv"


def _default_catalog_path() -> Path:
    return Path(str(resources.files("gridplan").joinpath("data", _DEFAULT_CATALOG)))


def _blank_or(value: float, ok: bool) -> bool:
    return math.isnan(value) or ok


#: Checks of one catalog row: (column, test, what was expected).
_ROW_RULES: tuple[tuple[str, Callable[[pd.Series], bool], str], ...] = (
    ("kind", lambda r: r["kind"] in _KINDS, f"one of {list(_KINDS)}"),
    ("unit", lambda r: r["unit"] in _UNITS, f"one of {list(_UNITS)}"),
    (
        "cost_usd",
        lambda r: math.isfinite(r["cost_usd"]) and r["cost_usd"] >= 0,
        "a finite cost >= 0 [USD]",
    ),
    (
        "dollar_year",
        lambda r: _blank_or(
            r["dollar_year"],
            not math.isnan(r["dollar_year"])
            and r["dollar_year"] == int(r["dollar_year"])
            and 1900 <= r["dollar_year"] <= 2200,
        ),
        "a whole year such as 2016, or blank when unknown",
    ),
    (
        "rating_kva",
        lambda r: r["kind"] != "transformer" or r["rating_kva"] > 0,
        "a rating > 0 [kVA] for a transformer",
    ),
    (
        "rating_kva",
        lambda r: _blank_or(r["rating_kva"], r["rating_kva"] > 0),
        "a rating > 0 [kVA] or blank",
    ),
    (
        "ampacity_a",
        lambda r: _blank_or(r["ampacity_a"], r["ampacity_a"] > 0),
        "an ampacity > 0 [A] or blank",
    ),
    ("phases", lambda r: _blank_or(r["phases"], r["phases"] in (1.0, 3.0)), "1, 3 or blank"),
    ("source", lambda r: bool(r["source"]), "the source of the figure"),
)


def _row_problem(row: pd.Series) -> tuple[str, str] | None:
    """The first rule a catalog row breaks: (column, expected), or ``None``."""
    for column, test, expected in _ROW_RULES:
        if not test(row):
            return column, expected
    return None


def _numeric_columns(
    df: pd.DataFrame, row_label: Callable[[int], str], where: str, file: str | None
) -> None:
    """Turn the numeric columns into floats; a cell that is not a number is an error."""
    for col, required in (
        ("cost_usd", True),
        ("rating_kva", False),
        ("ampacity_a", False),
        ("dollar_year", False),
        ("phases", False),
    ):
        numeric = pd.to_numeric(df[col], errors="coerce")
        given = df[col].notna() & (df[col].astype(str).str.strip() != "")
        bad = given & numeric.isna()
        if required:
            bad = bad | ~given
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise ConfigError(
                f"{where}upgrade_id {df['upgrade_id'].iloc[pos]!r}: expected a number, "
                f"got {df[col].iloc[pos]!r}",
                file=file,
                field=f"{row_label(pos)}/{col}",
            )
        df[col] = numeric.astype(np.float64)


def _validate_catalog(raw: pd.DataFrame, source: str, *, from_file: bool) -> pd.DataFrame:
    """Check and normalise a catalog table; errors name ``source``, the row and the column."""
    file = source if from_file else None
    where = "" if from_file else f"{source}: "

    def row_label(pos: int) -> str:
        # CSV line number (line 1 is the header) for files, the index label for DataFrames.
        return f"row {pos + 2}" if from_file else f"row {raw.index[pos]!r}"

    missing = [c for c in CATALOG_COLUMNS if c not in raw.columns]
    if missing:
        raise ConfigError(
            f"{where}missing column(s) {missing}; expected columns {list(CATALOG_COLUMNS)}",
            file=file,
            field="columns",
        )
    if raw.empty:
        raise ConfigError(f"{where}the catalog has no rows", file=file, field="rows")

    df = raw.copy()
    for col in _OPTIONAL_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    for col in _TEXT_COLUMNS:
        df[col] = df[col].map(lambda v: "" if v is None or v is pd.NA or v != v else str(v).strip())

    _numeric_columns(df, row_label, where, file)

    def fail(pos: int, col: str, expected: str) -> None:
        raise ConfigError(
            f"{where}upgrade_id {df['upgrade_id'].iloc[pos]!r}: expected {expected}, "
            f"got {raw[col].iloc[pos]!r}",
            file=file,
            field=f"{row_label(pos)}/{col}",
        )

    seen: dict[str, int] = {}
    for pos in range(len(df)):
        uid = df["upgrade_id"].iloc[pos]
        if not uid:
            fail(pos, "upgrade_id", "a non-empty id")
        if uid in seen:
            raise ConfigError(
                f"{where}duplicate upgrade_id {uid!r} (also in {row_label(seen[uid])}); "
                "ids must be unique",
                file=file,
                field=f"{row_label(pos)}/upgrade_id",
            )
        seen[uid] = pos
        problem = _row_problem(df.iloc[pos])
        if problem is not None:
            fail(pos, *problem)

    df["dollar_year"] = df["dollar_year"].astype("Int64")
    df["phases"] = df["phases"].astype("Int64")
    df["utility"] = df["utility"].str.lower()
    ordered = [*CATALOG_COLUMNS, *_OPTIONAL_COLUMNS]
    rest = [c for c in df.columns if c not in ordered]
    return df[ordered + rest].reset_index(drop=True)


def _read_catalog(path: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise ConfigError("upgrade cost catalog not found", file=path, field="path") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"not a readable CSV table ({first})", file=path, field="rows") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    return _validate_catalog(raw, path, from_file=True)


def load_upgrade_catalog(path: str | Path | None = None) -> pd.DataFrame:
    """Load and validate an upgrade unit-cost catalog.

    Parameters
    ----------
    path
        CSV file with the columns in :data:`CATALOG_COLUMNS` (plus optional ``utility`` and
        ``phases``). ``None`` loads the catalog bundled with gridplan
        (``gridplan/data/upgrade_costs.csv``; read once per process, a user file is read on
        every call).

    Returns
    -------
    pandas.DataFrame
        One row per upgrade: ``upgrade_id`` (str, unique), ``kind`` (``transformer``,
        ``line`` or ``reconductor``), ``description``, ``rating_kva`` [kVA] (transformers,
        else NaN), ``ampacity_a`` [A] (lines, else NaN), ``unit`` (``each`` or ``per_km``),
        ``cost_usd`` [USD per unit, in ``dollar_year`` dollars], ``dollar_year`` (Int64, ``<NA>``
        when the source states none), ``source``, ``utility`` (lower case, ``""`` if generic),
        ``phases`` (Int64, ``<NA>`` when not stated). A fresh copy on every call.

    Raises
    ------
    ConfigError
        The file is missing or unreadable, a required column is missing, an id is empty or
        duplicated, a cost is missing or negative, or a kind/unit/year/rating is invalid. The
        message names the file, the row (the CSV line number; line 1 is the header) and the
        column.

    Notes
    -----
    Bundled figures (all per unit, nominal USD of the row's ``dollar_year``):

    - ``xfmr_3ph_{pge,sce,sdge}_<kVA>kva``: three-phase 12/16 kV:480 V transformers from the
      PG&E, SCE and SDG&E unit cost guides as of 2016, via the NREL Distribution Upgrade Unit
      Cost Database (Horowitz et al. 2019, DOI 10.7799/1491263); dollar year 2016.
    - ``xfmr_1ph_aps_{25,50,75,100}kva`` (single-phase overhead) and
      ``xfmr_3ph_aps_{500,750}kva`` (three-phase pad-mount): APS 2017, same database;
      dollar year 2017.
    - ``line_oh_pge_2023`` (midpoint, *derived*, of the quoted $165–227/ft),
      ``line_oh_pge_2023_low``/``_high`` (the range ends) and ``line_ug_pge_2023`` ($268/ft):
      PG&E Unit Cost Guide 2023 as quoted in public hosting-capacity code, converted with
      1 km = 3,280.84 ft; dollar year 2023.
    - ``reconductor_{oh_445a,oh_960a,ug_445a}_disco``: NREL DISCO generic cost database
      ($919, $1,444, $1,214 per m, times 1,000 m/km). DISCO states no dollar year, so
      ``dollar_year`` is blank and :func:`upgrade_cost_usd` requires the caller to name an
      assumed year (nothing is guessed).
    """
    if path is None:
        return _bundled_catalog().copy()
    return _read_catalog(str(Path(path)))


@functools.lru_cache(maxsize=1)
def _bundled_catalog() -> pd.DataFrame:
    """The bundled catalog, read and validated once per process (callers get copies)."""
    return _read_catalog(str(_default_catalog_path()))


def resolve_catalog(catalog: pd.DataFrame | None) -> pd.DataFrame:
    if catalog is None:
        return load_upgrade_catalog()
    if not isinstance(catalog, pd.DataFrame):
        raise ConfigError(
            f"expected a pandas.DataFrame from load_upgrade_catalog() or None, "
            f"got {type(catalog).__name__}",
            field="catalog",
        )
    return _validate_catalog(catalog, "catalog DataFrame", from_file=False)


def unknown_id_message(upgrade_id: str, ids: list[str]) -> str:
    close = difflib.get_close_matches(upgrade_id, ids, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        prefixes = sorted({i.split("_", 1)[0] + "_" for i in ids})
        hint = f"catalog ids start with {prefixes}; see load_upgrade_catalog()"
    return f"unknown upgrade_id {upgrade_id!r}; {hint}"
