"""Upgrades: which option an asset needs and what it costs in study-year dollars.

:func:`choose_upgrades` picks each asset's smallest upgrade option that carries its peak;
:func:`smaller_upgrades` lists the options between today's rating and the planned one (the
"smaller upgrade plus V2G" plans of :mod:`gridplan.study.opportunities`);
:func:`upgrade_cost_usd` and :func:`select_transformer_upgrade` work on the cost catalog
(:func:`gridplan.grid.catalog.load_upgrade_catalog`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from gridplan.core.errors import ConfigError
from gridplan.grid.catalog import load_upgrade_catalog, resolve_catalog, unknown_id_message
from gridplan.planning._inputs import _as_float_array, _non_negative, _rate

__all__ = [
    "TransformerSelection",
    "choose_upgrades",
    "load_upgrade_catalog",
    "select_transformer_upgrade",
    "smaller_upgrades",
    "upgrade_cost_usd",
]


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
    table = resolve_catalog(catalog)
    ids = table["upgrade_id"].tolist()
    if upgrade_id not in ids:
        raise ConfigError(unknown_id_message(str(upgrade_id), ids), field="upgrade_id")
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
    table = resolve_catalog(catalog)
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


def choose_upgrades(
    options: pd.DataFrame, limit_pct: pd.Series, peak_kva: pd.Series
) -> pd.DataFrame:
    """The smallest upgrade option of each asset that carries its peak within the limit.

    Parameters
    ----------
    options
        Upgrade options of the assets (a feeder's ``upgrades`` table: ``asset_id``,
        ``option``, ``new_rating_kva``, ``cost_usd``, ``dollar_year``, ``source``), smallest
        first per asset.
    limit_pct
        Planning limit of each asset [% of rating], indexed by ``asset_id``.
    peak_kva
        Peak apparent power the upgrade must carry [kVA], indexed by ``asset_id``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``asset_id``: ``upgrade_option``, ``new_rating_kva`` [kVA], ``cost_usd``
        [USD, in the option's dollar year], ``dollar_year``, ``cost_source`` and
        ``upgrade_sufficient`` (False when no option carries the peak: the largest is given).
        Assets without any option get NaN and an empty source.
    """
    rows = {}
    for asset_id, limit in limit_pct.items():
        rows_of = options[options.asset_id == asset_id]
        if rows_of.empty:
            rows[asset_id] = {
                "upgrade_option": np.nan,
                "new_rating_kva": np.nan,
                "cost_usd": np.nan,
                "dollar_year": np.nan,
                "cost_source": "",
                "upgrade_sufficient": False,
            }
            continue
        fits = rows_of[rows_of.new_rating_kva * limit / 100.0 >= peak_kva.get(asset_id, np.inf)]
        pick = fits.iloc[0] if not fits.empty else rows_of.iloc[-1]
        rows[asset_id] = {
            "upgrade_option": int(pick.option),
            "new_rating_kva": float(pick.new_rating_kva),
            "cost_usd": float(pick.cost_usd),
            "dollar_year": int(pick.dollar_year),
            "cost_source": str(pick.source),
            "upgrade_sufficient": not fits.empty,
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("asset_id")


def smaller_upgrades(
    options: pd.DataFrame, asset_id: str, rating_kva: float, planned_kva: float
) -> pd.DataFrame:
    """An asset's upgrade options larger than today's rating but smaller than the planned one.

    These are the standard sizes of a "smaller upgrade now plus V2G" plan: each carries
    more than today's asset, less than the option :func:`choose_upgrades` picked for the
    peak.

    Parameters
    ----------
    options
        Upgrade options of the assets (a feeder's ``upgrades`` table: ``asset_id``,
        ``option``, ``new_rating_kva``, ``cost_usd``, ``dollar_year``, ``source``).
    asset_id
        The asset.
    rating_kva
        Its rating today [kVA].
    planned_kva
        Rating of the planned upgrade [kVA] (NaN: no planned upgrade, no smaller one).

    Returns
    -------
    pandas.DataFrame
        The options' rows with ``rating_kva < new_rating_kva < planned_kva``, largest first
        (one row per rating: the cheapest option of that rating); empty when there is none.
    """
    rows = options[options.asset_id == asset_id]
    if rows.empty or not math.isfinite(float(planned_kva)):
        return rows.iloc[:0]
    size = rows.new_rating_kva.astype(float)
    between = rows[(size > float(rating_kva)) & (size < float(planned_kva))]
    cheapest = between.sort_values(["new_rating_kva", "cost_usd"], kind="mergesort")
    cheapest = cheapest.drop_duplicates("new_rating_kva", keep="first")
    return cheapest.iloc[::-1].reset_index(drop=True)
