"""The study's planning criterion per asset: the loading rule, or a transformer thermal one.

Lines are judged by loading (% of rating over the planning limit for more than the allowed
hours). Transformers are judged by ``criteria.trafo_criterion``: the same loading rule, or
the IEEE C57.91 Clause 7 thermal model (:mod:`gridplan.planning.thermal`) with the peak
hottest-spot temperature or the loss of life per year against a sourced limit, at an
ambient temperature per step (:func:`ambient_series_c`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from gridplan.planning.needs import MonitoredAssets, need_flags
from gridplan.planning.thermal import (
    ThermalCriterion,
    load_thermal_parameters,
    thermal_needs,
)
from gridplan.study.config import CriteriaSpec

__all__ = ["AssetCriteria", "ambient_series_c", "criteria_description", "trafo_criterion"]

#: Source of the default ambient temperature.
AMBIENT_SOURCE = "IEEE C57.91-2011: 30 °C average ambient of the transformer rating"


def ambient_series_c(spec: CriteriaSpec, time_index: pd.DatetimeIndex) -> np.ndarray:
    """Ambient temperature at each step of ``time_index`` [°C], shape (time,).

    ``constant``: ``spec.ambient_c`` at every step. ``long_beach_tmy3``: the bundled NREL
    TMY3 dry-bulb series of Long Beach, CA, matched by month, day, hour and minute (a
    typical year has no calendar year; 29 February takes 28 February's values).
    """
    if spec.ambient == "constant":
        return np.full(len(time_index), float(spec.ambient_c))
    from gridplan.grid.pv import ambient_temperature_c

    step_min = 15 if len(time_index) < 2 else int((time_index[1] - time_index[0]).seconds // 60)
    series = ambient_temperature_c(step_minutes=15 if step_min < 60 else 60)
    lookup = (
        pd.Series(
            series.to_numpy(),
            index=pd.MultiIndex.from_arrays(
                [series.index.month, series.index.day, series.index.hour, series.index.minute]
            ),
        )
        .groupby(level=[0, 1, 2, 3])
        .mean()
    )
    day = np.where((time_index.month == 2) & (time_index.day == 29), 28, time_index.day)
    minute = (time_index.minute // 15) * 15 if step_min < 60 else np.zeros(len(time_index), int)
    keys = pd.MultiIndex.from_arrays([time_index.month, day, time_index.hour, minute])
    return lookup.reindex(keys).to_numpy(dtype=float)


@dataclass(frozen=True, eq=False)
class AssetCriteria:
    """The criterion of every monitored asset and how to judge a case by it.

    Attributes
    ----------
    spec
        The study's criteria section.
    assets
        The monitored assets.
    ambient_c
        Ambient temperature per step of the study period [°C], (time,).
    """

    spec: CriteriaSpec
    assets: MonitoredAssets
    ambient_c: np.ndarray

    @property
    def thermal(self) -> bool:
        """Whether transformers are judged by the thermal model."""
        return self.spec.trafo_criterion != "loading"

    @cached_property
    def _thermal_setup(self) -> tuple[list[str], dict[str, ThermalCriterion]]:
        """Each asset's thermal kind (or ``line``) and each kind's criterion (built once)."""
        is_trafo = np.asarray(self.assets.kind) == "trafo"
        kinds = [self.spec.trafo_thermal_kind if t else "line" for t in is_trafo]
        criteria = {
            self.spec.trafo_thermal_kind: trafo_criterion(self.spec),
            "line": ThermalCriterion(
                "loading", None, allowed_hours=self.spec.allowed_hours_line, source="study"
            ),
        }
        return kinds, criteria

    def need(
        self, loading_pct: np.ndarray, allowed_h: np.ndarray, step_h: float, *, unsolved_over: bool
    ) -> np.ndarray:
        """Need flag per asset of one case's loading [%], (time, asset)."""
        limit = self.assets.limit_pct
        if not self.thermal:
            return need_flags(loading_pct, limit, allowed_h, step_h, unsolved_over=unsolved_over)
        kinds, criteria = self._thermal_setup
        out = thermal_needs(
            loading_pct,
            self.ambient_c,
            step_h,
            kinds,
            criteria,
            asset_limit_pct=limit,
            unsolved_over=unsolved_over,
        )
        return np.asarray(out.criteria.need, dtype=bool)


def trafo_criterion(spec: CriteriaSpec) -> ThermalCriterion:
    """The transformers' thermal criterion with its limit and source (``hot_spot`` or
    ``loss_of_life`` in ``spec``)."""
    params = load_thermal_parameters()[spec.trafo_thermal_kind]
    if spec.trafo_criterion == "hot_spot":
        if spec.hot_spot_limit_c is None:
            limit = params.hot_spot_limit_c
            source = params.sources.get("hot_spot_limit_c", "")
        else:
            limit, source = spec.hot_spot_limit_c, "study file (criteria.hot_spot_limit_c)"
        return ThermalCriterion("hot_spot", limit, source=source)
    default = spec.loss_of_life_limit_h_per_yr == 8760.0
    return ThermalCriterion(
        "loss_of_life",
        spec.loss_of_life_limit_h_per_yr,
        source="IEEE C57.91-2011 Clause 5: normal aging, F_EQA = 1 (8,760 h/yr)"
        if default
        else "study file (criteria.loss_of_life_limit_h_per_yr)",
    )


def criteria_description(spec: CriteriaSpec) -> str:
    """One sentence naming the criterion that decides each kind of asset, with sources."""
    lines = (
        f"lines by loading over their planning limit for more than {spec.allowed_hours_line:g} h"
    )
    if spec.trafo_criterion == "loading":
        return (
            "Transformers by loading over their planning limit for more than "
            f"{spec.allowed_hours_trafo:g} h; {lines}."
        )
    crit = trafo_criterion(spec)
    ambient = (
        f"a constant {spec.ambient_c:g} °C ambient ({AMBIENT_SOURCE})"
        if spec.ambient == "constant"
        else "the Long Beach TMY3 dry-bulb ambient (NREL, typical year)"
    )
    what = (
        f"peak winding hottest-spot temperature over {crit.limit:g} °C"
        if crit.kind == "hot_spot"
        else f"loss of life over {crit.limit:g} h per year"
    )
    return (
        f"Transformers by the IEEE C57.91 Clause 7 thermal model ({spec.trafo_thermal_kind} "
        f"parameters, {ambient}): {what} (limit: {crit.source}); {lines}."
    )
