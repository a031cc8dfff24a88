"""What a deferral is worth: upgrade costs, present worth, carrying charges, program economics.

Pure functions over scalars or numpy arrays (see DESIGN.md). All money is nominal US dollars
[USD]; every rate is a fraction per year (``0.07`` is 7 %/yr); time is in years after the
study's base year (``t = 0``), and annual flows are discounted end-of-year unless a function
says otherwise.

Contents
--------
Upgrade cost catalog
    :func:`load_upgrade_catalog`, :func:`upgrade_cost_usd`, :func:`select_transformer_upgrade`
    over the bundled ``gridplan/data/upgrade_costs.csv``.
Deferral value
    :func:`deferral_value_usd`, :func:`present_worth_of_shift_usd`, :func:`recc`,
    :func:`annual_deferral_value_usd`, :func:`capacity_value_usd_per_kw_yr`,
    :func:`value_per_enrolled_ev_usd_yr`.
Program economics
    :class:`ProgramCosts`, :func:`program_economics` -> :class:`ProgramEconomics`.
Sensitivity
    :func:`tornado`.

Sources
-------
- Present-worth (deferral) method ``PV = C·[1 − ((1 + i)/(1 + r))^n]``, used in distribution
  marginal-cost and DER valuation work; the real economic carrying charge (RECC) in its simple
  pre-tax form ``(r − i)/(1 − q^L)`` is derived from its definition (see :func:`recc`).
- Upgrade unit costs: NREL Distribution Upgrade Unit Cost Database (Horowitz et al. 2019,
  DOI 10.7799/1491263); PG&E Unit Cost Guide 2023 (as quoted in public hosting-capacity
  code); NREL DISCO generic cost database.
- Program figures: PG&E V2X pilots (residential upfront incentive), CPUC Emergency Load
  Reduction Program (ELRP), CEC Demand Side Grid Support (DSGS) Option 3.
"""

from __future__ import annotations

import difflib
import functools
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridplan.core.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "CATALOG_COLUMNS",
    "DEFAULT_V2G_ROUNDTRIP_EFFICIENCY",
    "ELRP_MAX_EVENT_HOURS_PER_YR",
    "TORNADO_COLUMNS",
    "ProgramCosts",
    "ProgramEconomics",
    "TransformerSelection",
    "annual_deferral_value_usd",
    "capacity_value_usd_per_kw_yr",
    "deferral_value_usd",
    "load_upgrade_catalog",
    "present_worth_of_shift_usd",
    "program_economics",
    "recc",
    "select_transformer_upgrade",
    "tornado",
    "upgrade_cost_usd",
    "value_per_enrolled_ev_usd_yr",
]

FloatArray = npt.NDArray[np.float64]
#: A scalar or anything numpy turns into a float array (broadcast together).
ArrayLike = float | int | npt.ArrayLike

# --------------------------------------------------------------------------------------------
# Input checks shared by the numeric functions
# --------------------------------------------------------------------------------------------


def _as_float_array(name: str, value: Any) -> FloatArray:
    """Return ``value`` as a float array; raise ConfigError on non-numbers, NaN or inf."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(
            f"expected a number or an array of numbers, got {value!r}", field=name
        ) from None
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"expected finite numbers, got NaN or infinity in {value!r}", field=name)
    return arr


def _check(name: str, arr: FloatArray, ok: npt.NDArray[np.bool_], expected: str) -> None:
    """Raise ConfigError naming ``name`` and the first offending value where ``ok`` is False."""
    ok_arr = np.broadcast_to(np.asarray(ok, dtype=bool), arr.shape)
    if not np.all(ok_arr):
        bad = arr[~ok_arr].flat[0]
        raise ConfigError(f"expected {expected}, got {bad!r}", field=name)


def _rate(name: str, value: Any) -> FloatArray:
    """A discount or escalation rate: a fraction per year, strictly greater than -1."""
    arr = _as_float_array(name, value)
    _check(name, arr, arr > -1.0, "a rate (fraction per year) greater than -1")
    return arr


def _non_negative(name: str, value: Any) -> FloatArray:
    arr = _as_float_array(name, value)
    _check(name, arr, arr >= 0.0, "a value >= 0")
    return arr


def _broadcast(**arrays: FloatArray) -> list[FloatArray]:
    try:
        return list(np.broadcast_arrays(*arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{k}{np.shape(v)}" for k, v in arrays.items())
        raise ConfigError(
            f"array shapes do not broadcast together: {shapes}", field="shape"
        ) from None


def _out(result: FloatArray, *inputs: Any) -> float | FloatArray:
    """A Python float when every input was a scalar, else an ndarray (the broadcast shape)."""
    if all(np.ndim(x) == 0 for x in inputs):
        return float(result)
    return np.asarray(result, dtype=np.float64)


def _log_q(discount_rate: FloatArray, escalation_rate: FloatArray) -> FloatArray:
    """``ln q`` with ``q = (1 + i)/(1 + r)``, computed as ``log1p((i − r)/(1 + r))``.

    Accurate when ``i`` is close to ``r`` and exactly zero when ``i == r``.
    """
    return np.log1p((escalation_rate - discount_rate) / (1.0 + discount_rate))


# --------------------------------------------------------------------------------------------
# Upgrade cost catalog
# --------------------------------------------------------------------------------------------

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
        row = df.iloc[pos]
        if row["kind"] not in _KINDS:
            fail(pos, "kind", f"one of {list(_KINDS)}")
        if row["unit"] not in _UNITS:
            fail(pos, "unit", f"one of {list(_UNITS)}")
        if not (math.isfinite(row["cost_usd"]) and row["cost_usd"] >= 0):
            fail(pos, "cost_usd", "a finite cost >= 0 [USD]")
        year = row["dollar_year"]
        if not math.isnan(year) and not (year == int(year) and 1900 <= year <= 2200):
            fail(pos, "dollar_year", "a whole year such as 2016, or blank when unknown")
        if row["kind"] == "transformer" and not (row["rating_kva"] > 0):
            fail(pos, "rating_kva", "a rating > 0 [kVA] for a transformer")
        if not math.isnan(row["rating_kva"]) and not (row["rating_kva"] > 0):
            fail(pos, "rating_kva", "a rating > 0 [kVA] or blank")
        if not math.isnan(row["ampacity_a"]) and not (row["ampacity_a"] > 0):
            fail(pos, "ampacity_a", "an ampacity > 0 [A] or blank")
        if not math.isnan(row["phases"]) and row["phases"] not in (1.0, 3.0):
            fail(pos, "phases", "1, 3 or blank")
        if not row["source"]:
            fail(pos, "source", "the source of the figure")

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


def _resolve_catalog(catalog: pd.DataFrame | None) -> pd.DataFrame:
    if catalog is None:
        return load_upgrade_catalog()
    if not isinstance(catalog, pd.DataFrame):
        raise ConfigError(
            f"expected a pandas.DataFrame from load_upgrade_catalog() or None, "
            f"got {type(catalog).__name__}",
            field="catalog",
        )
    return _validate_catalog(catalog, "catalog DataFrame", from_file=False)


def _unknown_id_message(upgrade_id: str, ids: list[str]) -> str:
    close = difflib.get_close_matches(upgrade_id, ids, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        prefixes = sorted({i.split("_", 1)[0] + "_" for i in ids})
        hint = f"catalog ids start with {prefixes}; see load_upgrade_catalog()"
    return f"unknown upgrade_id {upgrade_id!r}; {hint}"


def upgrade_cost_usd(
    upgrade_id: str,
    *,
    dollar_year: int,
    escalation_rate: float,
    length_km: float | None = None,
    catalog: pd.DataFrame | None = None,
    assumed_dollar_year: int | None = None,
) -> float:
    """Cost of one catalog upgrade in study-year dollars.

    ``cost = cost_usd · (1 + i)^(Y − Y0) [· length_km]`` with ``Y0`` the row's dollar year,
    ``Y`` the study dollar year and ``i`` the escalation rate (compound; ``Y < Y0`` de-escalates).

    Parameters
    ----------
    upgrade_id
        Catalog id, e.g. ``"xfmr_3ph_pge_750kva"`` or ``"line_oh_pge_2023"``.
    dollar_year
        Dollar year of the study [year], e.g. 2025.
    escalation_rate
        Cost escalation [fraction/yr], > -1 (e.g. a utility construction cost index).
    length_km
        Route length [km]; required for ``per_km`` rows, must be omitted for ``each`` rows.
    catalog
        Catalog from :func:`load_upgrade_catalog`; ``None`` uses the bundled one.
    assumed_dollar_year
        Dollar year [year] to assume for rows whose source states none (the NREL DISCO rows).
        Required for those rows, ignored for the others. Documenting the choice is the
        caller's job (e.g. the DISCO release year).

    Returns
    -------
    float
        Cost [USD, nominal dollars of ``dollar_year``].

    Raises
    ------
    ConfigError
        Unknown id (the message suggests the closest ids), bad rate or year, a missing or
        spurious ``length_km``, or a row without a dollar year and no ``assumed_dollar_year``.
    """
    table = _resolve_catalog(catalog)
    ids = table["upgrade_id"].tolist()
    if upgrade_id not in ids:
        raise ConfigError(_unknown_id_message(str(upgrade_id), ids), field="upgrade_id")
    row = table.loc[table["upgrade_id"] == upgrade_id].iloc[0]

    year = float(_as_float_array("dollar_year", dollar_year))
    if year != int(year):
        raise ConfigError(f"expected a whole year, got {dollar_year!r}", field="dollar_year")
    rate = float(_rate("escalation_rate", escalation_rate))

    base_year = row["dollar_year"]
    if pd.isna(base_year):
        if assumed_dollar_year is None:
            raise ConfigError(
                f"{upgrade_id!r} has no dollar year in its source ({row['source']}); pass "
                "assumed_dollar_year=<year> to state the assumption explicitly",
                field="assumed_dollar_year",
            )
        assumed = float(_as_float_array("assumed_dollar_year", assumed_dollar_year))
        if assumed != int(assumed):
            raise ConfigError(
                f"expected a whole year, got {assumed_dollar_year!r}", field="assumed_dollar_year"
            )
        base_year = assumed

    cost: float = float(row["cost_usd"]) * (1.0 + rate) ** (year - float(base_year))
    if row["unit"] == "per_km":
        if length_km is None:
            raise ConfigError(
                f"{upgrade_id!r} is priced per km; pass length_km [km]", field="length_km"
            )
        cost *= float(_non_negative("length_km", length_km))
    elif length_km is not None:
        raise ConfigError(
            f"{upgrade_id!r} is priced per unit ('each'); length_km must be omitted",
            field="length_km",
        )
    return cost


@dataclass(frozen=True)
class TransformerSelection:
    """Result of :func:`select_transformer_upgrade`.

    Attributes
    ----------
    required_kva
        The rating asked for [kVA].
    found
        True when a catalog transformer is at least ``required_kva``.
    upgrade_id
        Catalog id of the chosen transformer (``None`` when ``found`` is False).
    rating_kva
        Its rating [kVA] (NaN when not found).
    cost_usd
        Its catalog cost [USD in ``dollar_year`` dollars] (NaN when not found); escalate it to
        the study year with :func:`upgrade_cost_usd`.
    dollar_year
        Dollar year of ``cost_usd`` (``None`` when not found or unknown).
    utility
        Utility whose cost guide the row comes from (``None`` when not found).
    is_fallback
        True when the requested utility had no unit big enough and another's was used.
    largest_kva
        Largest rating [kVA] in the searched set (same phases, all utilities).
    message
        One line saying what was chosen, or why nothing was.
    """

    required_kva: float
    found: bool
    upgrade_id: str | None
    rating_kva: float
    cost_usd: float
    dollar_year: int | None
    utility: str | None
    is_fallback: bool
    largest_kva: float
    message: str


def select_transformer_upgrade(
    required_kva: float,
    *,
    utility: str = "pge",
    catalog: pd.DataFrame | None = None,
    phases: Literal[1, 3] = 3,
) -> TransformerSelection:
    """Smallest catalog transformer whose rating covers ``required_kva``.

    Searches the requested utility's transformers with the given number of phases first; if
    none is big enough (or the utility has none), falls back to the other utilities in catalog
    order (for the bundled catalog: pge, sce, sdge, aps), taking the smallest rating that is
    big enough and, among equal ratings, the utility listed first.

    Parameters
    ----------
    required_kva
        Rating needed [kVA], >= 0 (e.g. the peak apparent power the asset must carry).
    utility
        Preferred cost guide: one of the catalog's utilities (``"pge"``, ``"sce"``,
        ``"sdge"``, ``"aps"`` in the bundled catalog), case-insensitive.
    catalog
        Catalog from :func:`load_upgrade_catalog`; ``None`` uses the bundled one.
    phases
        1 or 3 (three-phase by default; the bundled single-phase units are APS only).

    Returns
    -------
    TransformerSelection
        ``found`` is False (with ``largest_kva`` and a ``message`` suggesting parallel units
        or a substation-level upgrade) when no catalog transformer is big enough; no error is
        raised in that case so that batch screening carries on.

    Raises
    ------
    ConfigError
        ``required_kva`` negative or not finite, unknown utility (the valid ones are listed),
        ``phases`` not 1 or 3, or no transformer with that number of phases in the catalog.
    """
    need = float(_non_negative("required_kva", required_kva))
    if phases not in (1, 3):
        raise ConfigError(f"expected 1 or 3, got {phases!r}", field="phases")
    table = _resolve_catalog(catalog)
    xf = table[(table["kind"] == "transformer") & (table["phases"] == phases)]
    if xf.empty:
        raise ConfigError(
            f"the catalog has no {phases}-phase transformers with a 'phases' column set",
            field="phases",
        )
    utilities = list(dict.fromkeys(u for u in table["utility"] if u))
    key = str(utility).lower()
    if key not in utilities:
        raise ConfigError(
            f"unknown utility {utility!r}; expected one of {utilities}", field="utility"
        )

    largest = float(xf["rating_kva"].max())
    order = [key] + [u for u in utilities if u != key]
    rank = {u: k for k, u in enumerate(order)}
    big_enough = xf[xf["rating_kva"] >= need]
    own = big_enough[big_enough["utility"] == key]
    candidates = own if not own.empty else big_enough
    if candidates.empty:
        return TransformerSelection(
            required_kva=need,
            found=False,
            upgrade_id=None,
            rating_kva=math.nan,
            cost_usd=math.nan,
            dollar_year=None,
            utility=None,
            is_fallback=False,
            largest_kva=largest,
            message=(
                f"no {phases}-phase catalog transformer >= {need:g} kVA (largest {largest:g} kVA);"
                " consider parallel units or a substation-level upgrade"
            ),
        )
    chosen = candidates.assign(_rank=candidates["utility"].map(rank).fillna(len(rank)))
    row = chosen.sort_values(["rating_kva", "_rank"], kind="mergesort").iloc[0]
    fallback = row["utility"] != key
    note = f" ({key} has none >= {need:g} kVA; fell back to {row['utility']})" if fallback else ""
    year = row["dollar_year"]
    return TransformerSelection(
        required_kva=need,
        found=True,
        upgrade_id=str(row["upgrade_id"]),
        rating_kva=float(row["rating_kva"]),
        cost_usd=float(row["cost_usd"]),
        dollar_year=None if pd.isna(year) else int(year),
        utility=str(row["utility"]),
        is_fallback=bool(fallback),
        largest_kva=largest,
        message=f"{row['upgrade_id']}: {row['rating_kva']:g} kVA >= {need:g} kVA{note}",
    )


# --------------------------------------------------------------------------------------------
# Deferral value
# --------------------------------------------------------------------------------------------


@overload
def deferral_value_usd(
    cost_usd: float,
    deferral_years: float,
    discount_rate: float,
    escalation_rate: float,
) -> float: ...


@overload
def deferral_value_usd(
    cost_usd: ArrayLike,
    deferral_years: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
) -> float | FloatArray: ...


def deferral_value_usd(
    cost_usd: ArrayLike,
    deferral_years: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
) -> float | FloatArray:
    """Present worth of deferring a capital upgrade by ``deferral_years``.

    ``PV = C · [1 − q^n]``, ``q = (1 + i)/(1 + r)`` (the present-worth or "deferral" method of
    distribution marginal-cost and DER valuation studies). For one year
    ``PV = C · (r − i)/(1 + r)``.

    Parameters
    ----------
    cost_usd
        ``C``, cost of the upgrade if built in the year of need, in base-year dollars [USD],
        >= 0.
    deferral_years
        ``n``, deferral [yr], >= 0; non-integer values are allowed.
    discount_rate
        ``r``, nominal discount rate, usually the utility's WACC [fraction/yr], > -1.
    escalation_rate
        ``i``, escalation of the upgrade's cost [fraction/yr], > -1.

    Returns
    -------
    float or numpy.ndarray
        Present value [USD] at the year of need. A float when every input is a scalar,
        otherwise an array of the broadcast shape. Lies in ``[0, C)`` when ``r > i``
        (increasing in ``n``, bounded by ``C``); exactly 0 when ``i == r``; **negative** when
        ``i > r`` -- the cost grows faster than money earns, so deferring costs more than
        building now. That is a valid answer, not an error.

    Raises
    ------
    ConfigError
        NaN or infinite inputs, a rate <= -1, a negative cost or deferral, or shapes that do
        not broadcast.

    Notes
    -----
    Computed as ``−C · expm1(n · log1p((i − r)/(1 + r)))``, accurate when ``i`` is near ``r``.
    When the need is ``t1`` years after the base year, use
    :func:`present_worth_of_shift_usd` (this function is its ``t1 = 0`` case).
    """
    c = _non_negative("cost_usd", cost_usd)
    n = _non_negative("deferral_years", deferral_years)
    r = _rate("discount_rate", discount_rate)
    i = _rate("escalation_rate", escalation_rate)
    c, n, r, i = _broadcast(cost_usd=c, deferral_years=n, discount_rate=r, escalation_rate=i)
    value = -c * np.expm1(n * _log_q(r, i)) + 0.0  # + 0.0 turns -0.0 into 0.0
    return _out(value, cost_usd, deferral_years, discount_rate, escalation_rate)


@overload
def present_worth_of_shift_usd(
    cost_usd: float,
    year_from: float,
    year_to: float,
    discount_rate: float,
    escalation_rate: float,
) -> float: ...


@overload
def present_worth_of_shift_usd(
    cost_usd: ArrayLike,
    year_from: ArrayLike,
    year_to: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
) -> float | FloatArray: ...


def present_worth_of_shift_usd(
    cost_usd: ArrayLike,
    year_from: ArrayLike,
    year_to: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
) -> float | FloatArray:
    """Present worth of moving an upgrade from ``year_from`` to ``year_to``.

    ``PV = C · (q^t1 − q^t2)``, ``q = (1 + i)/(1 + r)``, with ``t1``/``t2`` years after the base
    year. An upgrade costing ``C`` in base-year dollars costs ``C(1 + i)^t`` when built at
    ``t``, whose present worth is ``C q^t``; the shift is worth the difference. With
    ``t1 = 0`` this is :func:`deferral_value_usd` with ``n = t2``.

    Parameters
    ----------
    cost_usd
        ``C``, cost of the upgrade in base-year dollars [USD], >= 0.
    year_from
        ``t1``, year of need without the program [yr after the base year], >= 0.
    year_to
        ``t2``, year of need with the program [yr after the base year], >= 0. ``t2 < t1``
        (an upgrade brought forward) gives the opposite sign.
    discount_rate
        ``r``, nominal discount rate [fraction/yr], > -1.
    escalation_rate
        ``i``, escalation of the upgrade's cost [fraction/yr], > -1.

    Returns
    -------
    float or numpy.ndarray
        Present value at the base year [USD]; a float for all-scalar inputs. Negative when
        ``i > r`` and ``t2 > t1`` (see :func:`deferral_value_usd`).

    Raises
    ------
    ConfigError
        NaN or infinite inputs, a rate <= -1, a negative cost or year, or shapes that do not
        broadcast.
    """
    c = _non_negative("cost_usd", cost_usd)
    t1 = _non_negative("year_from", year_from)
    t2 = _non_negative("year_to", year_to)
    r = _rate("discount_rate", discount_rate)
    i = _rate("escalation_rate", escalation_rate)
    c, t1, t2, r, i = _broadcast(
        cost_usd=c, year_from=t1, year_to=t2, discount_rate=r, escalation_rate=i
    )
    log_q = _log_q(r, i)
    # C q^t1 (1 − q^(t2 − t1)), in the expm1 form for accuracy near i == r.
    value = -c * np.exp(t1 * log_q) * np.expm1((t2 - t1) * log_q) + 0.0
    return _out(value, cost_usd, year_from, year_to, discount_rate, escalation_rate)


_TIMINGS: tuple[str, ...] = ("end", "begin")


@overload
def recc(
    discount_rate: float,
    escalation_rate: float,
    life_years: float,
    timing: Literal["end", "begin"] = ...,
) -> float: ...


@overload
def recc(
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
    life_years: ArrayLike,
    timing: Literal["end", "begin"] = ...,
) -> float | FloatArray: ...


def recc(
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
    life_years: ArrayLike,
    timing: Literal["end", "begin"] = "end",
) -> float | FloatArray:
    """Real economic carrying charge: first-year capital charge per dollar of investment.

    The constant-in-real-terms series ``RECC · C · (1 + i)^(k−1)`` for ``k = 1..L``, discounted
    at ``r``, has present value ``C``. Simple pre-tax form (*derived*), ``q = (1 + i)/(1 + r)``:

    - end-of-year payments (year ``k`` paid at ``t = k``): ``RECC = (r − i)/(1 − q^L)``;
    - beginning-of-year payments (paid at ``t = k − 1``): ``RECC = (r − i)/((1 + r)(1 − q^L))``.

    Parameters
    ----------
    discount_rate
        ``r``, nominal discount rate (WACC) [fraction/yr], > -1.
    escalation_rate
        ``i``, escalation of the asset's cost / inflation [fraction/yr], > -1.
    life_years
        ``L``, asset life [yr], > 0 (normally a whole number; the formula accepts any).
    timing
        ``"end"`` (default) or ``"begin"``: when each year's payment falls.

    Returns
    -------
    float or numpy.ndarray
        RECC [1/yr, fraction of the investment per year]; a float for all-scalar inputs.

    Raises
    ------
    ConfigError
        NaN/inf, a rate <= -1, ``life_years <= 0``, unknown ``timing`` (valid ones listed),
        shapes that do not broadcast.

    Notes
    -----
    **Limit r == i** (``q = 1``). The end-of-year series is worth
    ``RECC·C·Σ_{k=1..L} (1+i)^(k−1)/(1+r)^k = RECC·C·L/(1 + r)``, so ``RECC = (1 + r)/L``;
    L'Hôpital on ``(r − i)/(1 − q^L)`` gives the same, since ``1 − q^L ≈ L(r − i)/(1 + r)``.
    Beginning-of-year payments are not discounted by that extra year: ``RECC = 1/L``.
    (Only the beginning-of-year limit is the plain ``1/L``; with end-of-year payments each
    payment arrives a year later and must be larger by ``1 + r``.) The function returns these
    limits exactly at ``r == i`` and is continuous across it (computed as
    ``(1 + r)·x / expm1(L·log1p(x))`` with ``x = (i − r)/(1 + r)``).

    As ``L → ∞`` with ``r > i``, the end-of-year RECC tends to ``r − i``, and its first
    payment ``C(r − i)`` at ``t = 1`` has present value ``C(r − i)/(1 + r)``: one year of
    deferral, as in :func:`deferral_value_usd`. Utility carrying-charge rates also include
    O&M, property tax, insurance and income-tax effects (e.g. National Grid/Niagara Mohawk 2025
    MCOS, NY PSC), which this simple form leaves out.
    """
    if timing not in _TIMINGS:
        raise ConfigError(
            f"unknown timing {timing!r}; expected one of {list(_TIMINGS)}", field="timing"
        )
    r = _rate("discount_rate", discount_rate)
    i = _rate("escalation_rate", escalation_rate)
    life = _as_float_array("life_years", life_years)
    _check("life_years", life, life > 0.0, "an asset life > 0 [yr]")
    r, i, life = _broadcast(discount_rate=r, escalation_rate=i, life_years=life)

    x = (i - r) / (1.0 + r)
    denom = np.expm1(life * np.log1p(x))  # q^L − 1; same sign as x, zero only when x == 0
    limit = x == 0.0
    safe_denom = np.where(limit, 1.0, denom)
    end = np.where(limit, (1.0 + r) / life, (1.0 + r) * x / safe_denom)
    value = end if timing == "end" else end / (1.0 + r)
    return _out(value, discount_rate, escalation_rate, life_years)


@overload
def annual_deferral_value_usd(
    cost_usd: float,
    discount_rate: float,
    escalation_rate: float,
    life_years: float,
    timing: Literal["end", "begin"] = ...,
) -> float: ...


@overload
def annual_deferral_value_usd(
    cost_usd: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
    life_years: ArrayLike,
    timing: Literal["end", "begin"] = ...,
) -> float | FloatArray: ...


def annual_deferral_value_usd(
    cost_usd: ArrayLike,
    discount_rate: ArrayLike,
    escalation_rate: ArrayLike,
    life_years: ArrayLike,
    timing: Literal["end", "begin"] = "end",
) -> float | FloatArray:
    """Value of deferring an upgrade by one year, as a first-year annual charge: ``C · RECC``.

    Parameters
    ----------
    cost_usd
        ``C``, cost of the upgrade [USD], >= 0.
    discount_rate
        ``r``, nominal discount rate (WACC) [fraction/yr], > -1.
    escalation_rate
        ``i``, cost escalation [fraction/yr], > -1.
    life_years
        ``L``, asset life [yr], > 0.
    timing
        ``"end"`` or ``"begin"`` of year payments (see :func:`recc`).

    Returns
    -------
    float or numpy.ndarray
        First-year value [USD/yr]; year ``k``'s value is this times ``(1 + i)^(k−1)``.

    Raises
    ------
    ConfigError
        As :func:`recc`, plus a negative or non-finite cost.
    """
    c = _non_negative("cost_usd", cost_usd)
    rate = np.asarray(recc(discount_rate, escalation_rate, life_years, timing))
    c, rate = _broadcast(cost_usd=c, recc=rate)
    return _out(c * rate, cost_usd, discount_rate, escalation_rate, life_years)


@overload
def capacity_value_usd_per_kw_yr(
    annual_value_usd: float,
    capacity_kw: float,
) -> float: ...


@overload
def capacity_value_usd_per_kw_yr(
    annual_value_usd: ArrayLike,
    capacity_kw: ArrayLike,
) -> float | FloatArray: ...


def capacity_value_usd_per_kw_yr(
    annual_value_usd: ArrayLike, capacity_kw: ArrayLike
) -> float | FloatArray:
    """Value per kW-year of capacity: annual value ÷ capacity.

    As in marginal cost of service studies, the annualised cost (here, value) of a capacity
    addition divided by the kW it adds (e.g. Central Hudson 2025 MCOS, NY PSC docket
    19-E-0283). California T&D avoided-cost figures for comparison (CPUC demand-response
    cost-effectiveness decision, 2012 values): distribution PG&E 57.03, SCE 30.71, SDG&E 53.28
    $/kW-yr.

    Parameters
    ----------
    annual_value_usd
        Annual value [USD/yr], e.g. from :func:`annual_deferral_value_usd`; may be negative.
    capacity_kw
        Capacity provided [kW], >= 0 (e.g. the peak relief V2G delivers).

    Returns
    -------
    float or numpy.ndarray
        [USD/kW-yr]. **NaN where ``capacity_kw == 0``**: no capacity was provided, so a
        per-kW value is undefined (not infinite, not zero). NaN rather than an error, so that
        one feeder without V2G capacity does not stop a batch; filter it out before
        averaging.

    Raises
    ------
    ConfigError
        NaN/inf inputs, negative capacity, shapes that do not broadcast.
    """
    value = _as_float_array("annual_value_usd", annual_value_usd)
    cap = _non_negative("capacity_kw", capacity_kw)
    value, cap = _broadcast(annual_value_usd=value, capacity_kw=cap)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(cap > 0.0, value / np.where(cap > 0.0, cap, 1.0), np.nan)
    return _out(out, annual_value_usd, capacity_kw)


@overload
def value_per_enrolled_ev_usd_yr(
    annual_value_usd: float,
    n_enrolled: float,
) -> float: ...


@overload
def value_per_enrolled_ev_usd_yr(
    annual_value_usd: ArrayLike,
    n_enrolled: ArrayLike,
) -> float | FloatArray: ...


def value_per_enrolled_ev_usd_yr(
    annual_value_usd: ArrayLike, n_enrolled: ArrayLike
) -> float | FloatArray:
    """Value per enrolled EV and year: annual value ÷ number of enrolled EVs.

    For comparison: Evolved Energy Research for the Union of Concerned Scientists (2025)
    estimate just under $1,200/yr per participating EV for V2G in California in 2045 (about
    $500/yr for managed charging), avoided distribution investment being the largest share.

    Parameters
    ----------
    annual_value_usd
        Annual value [USD/yr]; may be negative.
    n_enrolled
        Number of EVs enrolled in V2G [-], >= 0 (a mean over draws may be non-integer).

    Returns
    -------
    float or numpy.ndarray
        [USD/EV-yr]. **NaN where ``n_enrolled == 0``**: no EV enrolled, so a per-EV value is
        undefined (same convention as :func:`capacity_value_usd_per_kw_yr`).

    Raises
    ------
    ConfigError
        NaN/inf inputs, a negative count, shapes that do not broadcast.
    """
    value = _as_float_array("annual_value_usd", annual_value_usd)
    n = _non_negative("n_enrolled", n_enrolled)
    value, n = _broadcast(annual_value_usd=value, n_enrolled=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(n > 0.0, value / np.where(n > 0.0, n, 1.0), np.nan)
    return _out(out, annual_value_usd, n_enrolled)


# --------------------------------------------------------------------------------------------
# Program costs and economics
# --------------------------------------------------------------------------------------------

#: ELRP caps events at 60 hours a year (CPUC ELRP); used only to flag implausible inputs.
ELRP_MAX_EVENT_HOURS_PER_YR = 60.0

#: V2G round-trip efficiency grid -> battery -> grid [-] used when charging losses are not
#: given: 0.9 × 0.9 (*derived* from the charging efficiency of about 0.9 typical of EV
#: chargers, assumed to hold for discharging too).
DEFAULT_V2G_ROUNDTRIP_EFFICIENCY = 0.81


@dataclass(frozen=True)
class ProgramCosts:
    """Prices of a V2G program: what the utility pays participants and what V2G costs them.

    Attributes
    ----------
    charging_energy_price_usd_per_kwh
        Price the participant pays for the extra energy charged to replace exported energy
        and its losses [USD/kWh]. **Required, no default**: tariffs change at least yearly and
        differ by utility, so the study must name the tariff, period and date it uses (e.g.
        the off-peak price of PG&E's residential EV rate EV2-A in force in the study year).
    upfront_incentive_usd_per_customer
        One-time enrollment incentive the utility pays per enrolled customer (EV) [USD].
        Default 2,500: PG&E V2X pilot, residential ($3,000 in disadvantaged communities; the
        $1,500 early-adopter bonus for the first 250 is not included).
    performance_payment_usd_per_kwh
        Utility payment per kWh exported for *local* relief outside emergency events
        [USD/kWh]. Default 0 (the PG&E V2X pilot pays "up to $2,000" of performance
        incentives per residential customer, which is not a per-kWh rate).
    event_payment_usd_per_kwh
        Payment per kWh exported during emergency events [USD/kWh]. Default 2.0: CPUC
        Emergency Load Reduction Program (ELRP), $2/kWh of verified reduction, 4-9 pm,
        May-October, at most 60 h/yr; PG&E V2X pilot participants must enroll in ELRP.
    event_payments_utility_funded
        Whether the utility running the local deferral pays the event payments out of the
        deferral budget [-]. Default False: ELRP buys statewide reliability (it is triggered
        by CAISO alerts, warnings, emergencies or Flex Alerts), a benefit this module does not
        count, so its payments stay out of the local ratepayer test too.
    capacity_payment_usd_per_kw_month
        Reservation payment per kW of enrolled export capacity and program month
        [USD/kW-month], modelled on DSGS Option 3 (CEC; capacity commitment with a
        reservation payment, May 1-Oct 31, minimum 500 kW aggregate). Default 0: DSGS rates
        depend on yearly appropriations; set a value to study a local capacity payment.
    capacity_payment_months_per_yr
        Months a year the capacity payment is paid [month/yr]. Default 6: the DSGS season
        May 1-Oct 31.
    capacity_payments_utility_funded
        Whether the utility pays the capacity payment for the local relief [-]. Default True
        (a local DSGS-style reservation bought for the deferral); set False for actual DSGS,
        which the CEC funds.
    battery_wear_usd_per_kwh
        Battery degradation cost per kWh exported [USD/kWh]. Default 0.02 ($83/kWh ÷ 3,650
        cycles), as used in some V2G studies -- **weakly sourced**; vary it in sensitivity
        runs.

    Raises
    ------
    ConfigError
        Any price negative or not finite, months outside [0, 12], flags not bool.
    """

    charging_energy_price_usd_per_kwh: float
    upfront_incentive_usd_per_customer: float = 2500.0
    performance_payment_usd_per_kwh: float = 0.0
    event_payment_usd_per_kwh: float = 2.0
    event_payments_utility_funded: bool = False
    capacity_payment_usd_per_kw_month: float = 0.0
    capacity_payment_months_per_yr: float = 6.0
    capacity_payments_utility_funded: bool = True
    battery_wear_usd_per_kwh: float = 0.02

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            name = f"ProgramCosts.{f.name}"
            if f.name.endswith("_funded"):
                if not isinstance(value, bool | np.bool_):
                    raise ConfigError(f"expected True or False, got {value!r}", field=name)
                continue
            arr = _non_negative(name, value)
            if arr.ndim != 0:
                raise ConfigError(f"expected a scalar, got shape {arr.shape}", field=name)
            object.__setattr__(self, f.name, float(arr))
        if self.capacity_payment_months_per_yr > 12.0:
            raise ConfigError(
                f"expected 0-12 months, got {self.capacity_payment_months_per_yr!r}",
                field="ProgramCosts.capacity_payment_months_per_yr",
            )


@dataclass(frozen=True)
class ProgramEconomics:
    """Result of :func:`program_economics`. Present values [USD] at the base year ``t = 0``.

    Attributes
    ----------
    years
        Program duration [yr].
    annuity_factor
        Present value of 1 USD paid at the end of each program year [yr-equivalent].
    ratepayer_benefit_pv_usd
        Deferral value (local capacity relief only).
    upfront_incentives_pv_usd
        Enrollment incentives, paid at ``t = 0``.
    performance_payments_pv_usd
        Utility payments for non-event (local) export kWh.
    event_payments_pv_usd
        Event (ELRP) payments, whoever funds them.
    capacity_payments_pv_usd
        Capacity reservation payments, whoever funds them.
    ratepayer_cost_pv_usd
        Upfront + performance + the event/capacity payments the utility funds.
    ratepayer_net_benefit_pv_usd
        Benefit − cost.
    ratepayer_benefit_cost_ratio
        Benefit ÷ cost [-]; ``inf`` (signed like the benefit) when the cost is 0, NaN when
        both are 0.
    participant_revenue_pv_usd
        Upfront + performance + event + capacity payments.
    participant_battery_wear_pv_usd
        Battery wear on exported energy.
    participant_energy_cost_pv_usd
        Energy bought to replace exports and their losses.
    participant_cost_pv_usd
        Wear + energy.
    participant_net_benefit_pv_usd
        Revenue − cost, all participants together.
    participant_benefit_cost_ratio
        Revenue ÷ cost [-] (same zero-cost convention as the ratepayer ratio).
    participant_net_per_ev_pv_usd
        Participant net benefit per enrolled EV [USD/EV] (NaN when none enrolled).
    event_payments_in_ratepayer_cost
        Whether event payments were counted as a ratepayer cost [-].
    capacity_payments_in_ratepayer_cost
        Whether capacity payments were counted as a ratepayer cost [-].
    """

    years: int
    annuity_factor: float
    ratepayer_benefit_pv_usd: float
    upfront_incentives_pv_usd: float
    performance_payments_pv_usd: float
    event_payments_pv_usd: float
    capacity_payments_pv_usd: float
    ratepayer_cost_pv_usd: float
    ratepayer_net_benefit_pv_usd: float
    ratepayer_benefit_cost_ratio: float
    participant_revenue_pv_usd: float
    participant_battery_wear_pv_usd: float
    participant_energy_cost_pv_usd: float
    participant_cost_pv_usd: float
    participant_net_benefit_pv_usd: float
    participant_benefit_cost_ratio: float
    participant_net_per_ev_pv_usd: float
    event_payments_in_ratepayer_cost: bool
    capacity_payments_in_ratepayer_cost: bool


def _ratio(benefit: float, cost: float) -> float:
    if cost > 0.0:
        return benefit / cost
    if benefit == 0.0:
        return math.nan
    return math.copysign(math.inf, benefit)


def _scalar(name: str, value: Any) -> float:
    arr = _as_float_array(name, value)
    if arr.ndim != 0:
        raise ConfigError(f"expected a scalar, got shape {arr.shape}", field=name)
    return float(arr)


def annuity_factor(discount_rate: float, years: int) -> float:
    """Present value of 1 USD paid at the end of each of ``years`` years [yr-equivalent].

    ``(1 − (1 + r)^−N) / r``, and ``N`` when ``r = 0`` (computed with expm1/log1p so it is
    accurate near ``r = 0``).
    """
    r = float(discount_rate)
    return float(years) if r == 0.0 else -math.expm1(-years * math.log1p(r)) / r


def program_economics(
    deferral_value_usd: float,
    *,
    n_enrolled: float,
    v2g_export_kwh_per_yr: float,
    event_export_kwh_per_yr: float,
    enrolled_capacity_kw: float,
    years: int,
    discount_rate: float,
    costs: ProgramCosts,
    charging_loss_kwh_per_yr: float | None = None,
) -> ProgramEconomics:
    """Ratepayer (utility) and participant economics of a V2G deferral program.

    Timing: upfront incentives at ``t = 0``; every annual flow is constant in nominal terms
    and paid at the **end** of program years ``1..years``, discounted at ``discount_rate``:
    ``PV = annual · AF``, ``AF = (1 − (1 + r)^−N)/r`` (``AF = N`` when ``r = 0``).

    **Ratepayer perspective** (the utility that defers the upgrade). Benefit: the deferral
    value only, i.e. the present worth of the local capacity relief. Costs: upfront
    incentives + performance payments + event payments if
    ``costs.event_payments_utility_funded`` + capacity payments if
    ``costs.capacity_payments_utility_funded``.

    **Participant perspective** (all enrolled EV owners together). Revenue: upfront
    incentives + performance + event + capacity payments, whoever funds them. Costs: battery
    wear on all exported kWh + the energy bought to replace all exported kWh and their
    losses. Export credits under the participant's own tariff are not modelled.

    **No double counting of event kWh.** ``event_export_kwh_per_yr`` is the part of
    ``v2g_export_kwh_per_yr`` exported during emergency (ELRP) events. Each exported kWh is
    paid once: event kWh at ``event_payment_usd_per_kwh``, the other
    ``v2g_export − event_export`` kWh at ``performance_payment_usd_per_kwh``. The deferral
    value is a capacity value (it comes from the years the upgrade moves, not from kWh), and
    no per-kWh value of event exports enters the ratepayer benefit. ELRP is a statewide
    reliability product: by default its payments are participant revenue funded outside the
    local deferral, and neither its cost nor its system benefit appears in the ratepayer
    test. If the local utility pays the event payments itself, set
    ``event_payments_utility_funded=True`` and they become a ratepayer cost -- still with
    no event benefit added, so a kWh that both relieves the feeder and earns an event
    payment is valued once (through the deferral) and paid once. Wear and energy costs
    apply to the total export, counted once.

    Parameters
    ----------
    deferral_value_usd
        Present value at ``t = 0`` of the deferral [USD] (from :func:`deferral_value_usd`
        or :func:`present_worth_of_shift_usd` with the same base year and discount rate);
        negative when escalation exceeds the discount rate.
    n_enrolled
        Enrolled EVs/customers [-], >= 0 (one upfront incentive each).
    v2g_export_kwh_per_yr
        All V2G energy exported at the meter per year [kWh/yr], >= 0.
    event_export_kwh_per_yr
        The part of it exported during emergency events [kWh/yr], 0 <= it <= the total.
    enrolled_capacity_kw
        Enrolled export capacity [kW], >= 0 (basis of the capacity payment).
    years
        Program duration [yr], a whole number >= 0.
    discount_rate
        Nominal discount rate [fraction/yr], > -1 (the same rate as the deferral value).
    costs
        Program prices, :class:`ProgramCosts`.
    charging_loss_kwh_per_yr
        Extra energy lost recharging the battery for the exports [kWh/yr], >= 0. ``None``
        (default) estimates it as ``export · (1/η − 1)`` with
        ``η =`` :data:`DEFAULT_V2G_ROUNDTRIP_EFFICIENCY` (0.81, *derived*); pass the losses
        from the dispatch results when available.

    Returns
    -------
    ProgramEconomics

    Raises
    ------
    ConfigError
        NaN/inf or negative quantities, event export above the total export, non-integer or
        negative ``years``, ``discount_rate <= -1``, ``costs`` not a :class:`ProgramCosts`.
    """
    if not isinstance(costs, ProgramCosts):
        raise ConfigError(f"expected a ProgramCosts, got {type(costs).__name__}", field="costs")
    benefit = _scalar("deferral_value_usd", deferral_value_usd)
    n_ev = _scalar("n_enrolled", n_enrolled)
    export = _scalar("v2g_export_kwh_per_yr", v2g_export_kwh_per_yr)
    event = _scalar("event_export_kwh_per_yr", event_export_kwh_per_yr)
    cap_kw = _scalar("enrolled_capacity_kw", enrolled_capacity_kw)
    for name, v in (
        ("n_enrolled", n_ev),
        ("v2g_export_kwh_per_yr", export),
        ("event_export_kwh_per_yr", event),
        ("enrolled_capacity_kw", cap_kw),
    ):
        if v < 0.0:
            raise ConfigError(f"expected a value >= 0, got {v!r}", field=name)
    if event > export:
        raise ConfigError(
            f"event exports ({event:g} kWh/yr) exceed total V2G exports ({export:g} kWh/yr); "
            "event_export_kwh_per_yr must be the part of v2g_export_kwh_per_yr exported in events",
            field="event_export_kwh_per_yr",
        )
    n_years = _scalar("years", years)
    if n_years < 0 or n_years != int(n_years):
        raise ConfigError(f"expected a whole number of years >= 0, got {years!r}", field="years")
    n_years_int = int(n_years)
    r = float(_rate("discount_rate", discount_rate))
    if charging_loss_kwh_per_yr is None:
        loss = export * (1.0 / DEFAULT_V2G_ROUNDTRIP_EFFICIENCY - 1.0)
    else:
        loss = _scalar("charging_loss_kwh_per_yr", charging_loss_kwh_per_yr)
        if loss < 0.0:
            raise ConfigError(
                f"expected a value >= 0, got {loss!r}", field="charging_loss_kwh_per_yr"
            )
    if event > ELRP_MAX_EVENT_HOURS_PER_YR * cap_kw:
        logger.warning(
            "event exports %.0f kWh/yr exceed %.0f h/yr x %.1f kW enrolled (the ELRP event-hour "
            "cap); check the event dispatch",
            event,
            ELRP_MAX_EVENT_HOURS_PER_YR,
            cap_kw,
        )

    af = annuity_factor(r, n_years_int)

    upfront = n_ev * costs.upfront_incentive_usd_per_customer
    performance = (export - event) * costs.performance_payment_usd_per_kwh * af
    event_pay = event * costs.event_payment_usd_per_kwh * af
    capacity = (
        cap_kw * costs.capacity_payment_usd_per_kw_month * costs.capacity_payment_months_per_yr * af
    )
    ratepayer_cost = upfront + performance
    if costs.event_payments_utility_funded:
        ratepayer_cost += event_pay
    if costs.capacity_payments_utility_funded:
        ratepayer_cost += capacity

    wear = export * costs.battery_wear_usd_per_kwh * af
    energy = (export + loss) * costs.charging_energy_price_usd_per_kwh * af
    revenue = upfront + performance + event_pay + capacity
    p_cost = wear + energy
    p_net = revenue - p_cost

    return ProgramEconomics(
        years=n_years_int,
        annuity_factor=af,
        ratepayer_benefit_pv_usd=benefit,
        upfront_incentives_pv_usd=upfront,
        performance_payments_pv_usd=performance,
        event_payments_pv_usd=event_pay,
        capacity_payments_pv_usd=capacity,
        ratepayer_cost_pv_usd=ratepayer_cost,
        ratepayer_net_benefit_pv_usd=benefit - ratepayer_cost,
        ratepayer_benefit_cost_ratio=_ratio(benefit, ratepayer_cost),
        participant_revenue_pv_usd=revenue,
        participant_battery_wear_pv_usd=wear,
        participant_energy_cost_pv_usd=energy,
        participant_cost_pv_usd=p_cost,
        participant_net_benefit_pv_usd=p_net,
        participant_benefit_cost_ratio=_ratio(revenue, p_cost),
        participant_net_per_ev_pv_usd=p_net / n_ev if n_ev > 0 else math.nan,
        event_payments_in_ratepayer_cost=bool(costs.event_payments_utility_funded),
        capacity_payments_in_ratepayer_cost=bool(costs.capacity_payments_utility_funded),
    )


# --------------------------------------------------------------------------------------------
# Sensitivity
# --------------------------------------------------------------------------------------------

TORNADO_COLUMNS: tuple[str, ...] = (
    "parameter",
    "low_value",
    "high_value",
    "result_low",
    "result_base",
    "result_high",
    "swing",
)


def _call(evaluate: Callable[..., Any], params: Mapping[str, float], label: str) -> float:
    result = evaluate(**params)
    try:
        return float(result)
    except (TypeError, ValueError):
        raise ConfigError(
            f"evaluate() must return a number, got {type(result).__name__} ({label})",
            field="evaluate",
        ) from None


def tornado(
    evaluate: Callable[..., Any],
    base: Mapping[str, float],
    ranges: Mapping[str, tuple[float, float]],
) -> pd.DataFrame:
    """One-at-a-time sensitivity table for a tornado chart.

    Calls ``evaluate(**base)`` once, then, for each parameter in ``ranges``,
    ``evaluate(**params)`` with that parameter at its low and at its high value and every
    other parameter at its base value (``2·len(ranges) + 1`` calls).

    Parameters
    ----------
    evaluate
        Function of keyword arguments returning one number (e.g. net benefit [USD]).
    base
        Base value of every argument of ``evaluate`` [units of each parameter].
    ranges
        ``{parameter: (low, high)}`` for the parameters to vary; each must be in ``base``.

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter, low_value, high_value, result_low, result_base, result_high,
        swing``, one row per parameter, sorted by ``swing = |result_high − result_low|``,
        largest first (ties keep the order of ``ranges``; NaN swings last). The swing only
        compares the two ends; for a non-monotonic ``evaluate`` the base may lie outside
        them.

    Raises
    ------
    ConfigError
        A parameter in ``ranges`` missing from ``base``, a range that is not two finite
        numbers, a non-finite base value, or ``evaluate`` returning something that is not a
        number. Exceptions raised by ``evaluate`` itself propagate unchanged.
    """
    if not callable(evaluate):
        raise ConfigError("expected a callable evaluate(**params) -> float", field="evaluate")
    missing = [p for p in ranges if p not in base]
    if missing:
        raise ConfigError(
            f"parameter(s) {missing} have a range but no base value; base has {list(base)}",
            field="ranges",
        )
    base_params = {k: _scalar(f"base.{k}", v) for k, v in base.items()}
    checked: dict[str, tuple[float, float]] = {}
    for name, bounds in ranges.items():
        try:
            low, high = bounds
        except (TypeError, ValueError):
            raise ConfigError(
                f"expected a (low, high) pair, got {bounds!r}", field=f"ranges.{name}"
            ) from None
        checked[name] = (_scalar(f"ranges.{name}", low), _scalar(f"ranges.{name}", high))

    result_base = _call(evaluate, base_params, "base")
    rows = []
    for name, (low, high) in checked.items():
        result_low = _call(evaluate, {**base_params, name: low}, f"{name}={low:g}")
        result_high = _call(evaluate, {**base_params, name: high}, f"{name}={high:g}")
        rows.append(
            {
                "parameter": name,
                "low_value": low,
                "high_value": high,
                "result_low": result_low,
                "result_base": result_base,
                "result_high": result_high,
                "swing": abs(result_high - result_low),
            }
        )
    table = pd.DataFrame(rows, columns=list(TORNADO_COLUMNS))
    table = table.sort_values("swing", ascending=False, kind="mergesort", na_position="last")
    return table.reset_index(drop=True)
