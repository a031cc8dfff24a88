"""The result of one feeder study."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridplan.ev.dispatch import DispatchResult
from gridplan.ev.fleet import Fleet
from gridplan.grid.feeders import Feeder
from gridplan.study.config import StudyConfig
from gridplan.study.horizon import HorizonResult
from gridplan.study.summary import StudySummary

__all__ = ["StudyResult"]


@dataclass(frozen=True, eq=False)
class StudyResult:
    """Everything a study computed (:func:`gridplan.outputs.write_study` writes it).

    Attributes
    ----------
    config
        The validated study config.
    feeder
        The feeder studied.
    horizon
        Per year, draw, case and asset results (:class:`HorizonResult`).
    fleet
        The fleet of the detail year (``config.year``) in the critical asset's median draw
        (the draw whose charging-case peak of that asset is the lower median across draws;
        ``summary.detail_draw``).
    time_index
        Steps of the study period.
    ev_dispatch
        EV dispatch per EV case of the detail year, median draw.
    loading_pct
        Asset loading [%] per case of the detail year, median draw, (time, asset).
    converged
        Per case, whether each step's power flow converged, (time,).
    min_vm_pu
        Per case, lowest service-point voltage of each step [pu], (time,).
    assets
        Per-asset table: loading, year of need, need, V2G resource, firmness, deferral,
        upgrade, deferral value.
    needs
        Per asset, case and year: probability of need across draws and, for V2G cases,
        firmness.
    summary
        The headline figures (:class:`~gridplan.study.summary.StudySummary`; the content of
        ``summary.json``).
    economics
        Per V2G case (rows): gross deferral value and, with a ``[program]`` section, the
        ratepayer and participant economics
        (:func:`~gridplan.planning.valuation.program_economics`).
    sensitivity
        Tornado table (:func:`~gridplan.planning.valuation.tornado`) when ``[sensitivity]``
        is enabled.
    bus_min_vm_pu
        Per case of the detail year, median draw: lowest voltage of each bus over the period
        [pu], shape (bus,), ``net.bus.index`` order (NaN: never solved).
    opportunities
        Deferral opportunities: one row per asset with a need, targeted V2G enrollment and
        procure or build (:func:`gridplan.study.opportunities.opportunities_table`);
        ``None`` without an exporting V2G case or with too many assets with a need.
    """

    config: StudyConfig
    feeder: Feeder
    horizon: HorizonResult
    fleet: Fleet
    time_index: pd.DatetimeIndex
    ev_dispatch: dict[str, DispatchResult]
    loading_pct: dict[str, np.ndarray]
    converged: dict[str, np.ndarray]
    min_vm_pu: dict[str, np.ndarray]
    assets: pd.DataFrame
    needs: pd.DataFrame
    summary: StudySummary
    economics: pd.DataFrame | None = None
    sensitivity: pd.DataFrame | None = None
    bus_min_vm_pu: dict[str, np.ndarray | None] = field(default_factory=dict)
    opportunities: pd.DataFrame | None = None
