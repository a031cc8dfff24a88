"""Deferral statistics across Monte Carlo draws: years of deferral, confidence, firmness.

A draw's deferral is the year of need with V2G minus the year of need without it
(EPRI DER-VET deferral logic: the resource defers the upgrade until the first year it no
longer holds the asset within its limit). Statistics across draws use one rule
throughout: the median is the lower median of the sorted draws, and the deferral "at
confidence c" is the largest deferral reached in at least ``c`` of the draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DeferralStatistics",
    "deferral_per_draw",
    "deferral_rank",
    "deferral_statistics",
    "firmness",
]


def deferral_per_draw(
    yon_without: np.ndarray, yon_with: np.ndarray, horizon_end: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deferral years per draw and whether each is capped by the horizon.

    ``year of need with V2G − year of need without``; a need that V2G keeps beyond the
    horizon counts as ``horizon_end + 1`` (the deferral is then "at least" that, capped).
    NaN where there is no need without V2G inside the horizon.

    Parameters
    ----------
    yon_without, yon_with
        Year of need per draw (and asset) without / with V2G [year], NaN: none in the
        horizon; same shape.
    horizon_end
        Last planning year [year].

    Returns
    -------
    deferral, capped
        Deferral [years] (NaN: nothing to defer) and the capped flag, each of that shape.
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


@dataclass(frozen=True, eq=False)
class DeferralStatistics:
    """Deferral of each asset across the draws that have a need without V2G.

    Attributes
    ----------
    median_years
        Lower median of the deferral [years], shape (asset,); NaN: no draw has a need.
    at_confidence_years
        Deferral reached in at least ``confidence`` of those draws [years], (asset,).
    capped_at_confidence
        Whether that deferral is capped by the horizon ("at least"), (asset,).
    """

    median_years: np.ndarray
    at_confidence_years: np.ndarray
    capped_at_confidence: np.ndarray


def deferral_statistics(
    yon_without: np.ndarray, yon_with: np.ndarray, horizon_end: int, confidence: float
) -> DeferralStatistics:
    """Median and confidence-level deferral of each asset across draws.

    Parameters
    ----------
    yon_without, yon_with
        Year of need without / with V2G [year], shape (draw, asset), NaN: none.
    horizon_end
        Last planning year [year].
    confidence
        Share of draws that must reach the deferral, in (0, 1).
    """
    deferral, capped = deferral_per_draw(yon_without, yon_with, horizon_end)
    has = ~np.isnan(deferral)
    n_assets = deferral.shape[1]
    median = np.full(n_assets, np.nan)
    at_conf = np.full(n_assets, np.nan)
    capped_at_conf = np.zeros(n_assets, dtype=bool)
    for a in range(n_assets):
        draws = deferral[has[:, a], a]
        values = np.sort(draws)
        if values.size:
            median[a] = values[(values.size - 1) // 2]
            at_conf[a] = values[deferral_rank(values.size, confidence)]
            # capped when a draw at that deferral is capped (draw order, not sorted order)
            capped_at_conf[a] = bool(capped[has[:, a], a][draws == at_conf[a]].any())
    return DeferralStatistics(median, at_conf, capped_at_conf)


def firmness(need: np.ndarray) -> np.ndarray:
    """Share of draws in which the asset has no need, per year and asset [-].

    Parameters
    ----------
    need
        Need flags, shape (year, draw, asset).

    Returns
    -------
    numpy.ndarray
        ``1 − mean over draws``, shape (year, asset).
    """
    return 1.0 - need.mean(axis=1)
