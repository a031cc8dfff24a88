"""The result of one feeder study."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from gridplan.core.errors import GridplanError
from gridplan.ev.dispatch import DispatchResult
from gridplan.ev.fleet import Fleet
from gridplan.grid.feeders import Feeder
from gridplan.study.config import StudyConfig
from gridplan.study.horizon import HorizonResult
from gridplan.study.summary import StudySummary

if TYPE_CHECKING:
    import xarray as xr

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

    Labelled views for notebooks: :meth:`to_xarray` (the horizon as an
    :class:`xarray.Dataset`), :meth:`loading_pct_frame`, :meth:`min_vm_pu_frame` and
    :meth:`ev_p_kw_frame` (the detail draw's series as DataFrames indexed by time).
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

    def to_xarray(self) -> xr.Dataset:
        """The horizon (:meth:`HorizonResult.to_xarray`) with the assets' ``asset_name``,
        ``asset_kind``, ``asset_rating_kva`` [kVA] and ``asset_limit_pct`` [% of rating]
        as coordinates along ``asset``, and the study's name, feeder, detail year and draw
        in ``attrs``.

        Raises
        ------
        GridplanError
            xarray is not installed (``pip install 'gridplan[xarray]'``).
        """
        ds = self.horizon.to_xarray(self.feeder.assets[["name", "kind", "rating_kva", "limit_pct"]])
        ds["asset_rating_kva"].attrs["units"] = "kVA"
        ds["asset_limit_pct"].attrs["units"] = "%"
        ds.attrs.update(
            study=self.config.name,
            feeder=self.feeder.name,
            detail_year=int(self.config.year),
            detail_draw=int(self.summary.detail_draw),
        )
        return ds

    def loading_pct_frame(self, case: str | None = None) -> pd.DataFrame:
        """Asset loading [%] of the detail year and draw, indexed by time.

        Parameters
        ----------
        case
            A case key (``result.horizon.cases``): columns are the asset ids
            (``asset_id``, the order of ``feeder.assets``). ``None``: every case, columns
            (``case``, ``asset_id``).

        Returns
        -------
        pandas.DataFrame
            Index ``time_index`` (the study period on the profiles' calendar; the load is
            that of ``config.year``, draw ``summary.detail_draw``).

        Raises
        ------
        GridplanError
            An unknown case.
        """
        assets = pd.Index(self.feeder.assets.index, name="asset_id")
        frames = {
            c: pd.DataFrame(self.loading_pct[c], index=self.time_index, columns=assets)
            for c in self._cases(self.loading_pct, case)
        }
        if case is not None:
            return frames[case]
        return pd.concat(frames, axis=1, names=["case"])

    def min_vm_pu_frame(self) -> pd.DataFrame:
        """Lowest service-point voltage [pu] of each step of the detail year and draw, one
        column per case, indexed by time (NaN: the step was not solved in that case)."""
        frame = pd.DataFrame(self.min_vm_pu, index=self.time_index)
        frame.columns.name = "case"
        return frame

    def ev_p_kw_frame(self, case: str, *, label: Literal["name", "index"] = "name") -> pd.DataFrame:
        """EV power summed onto each home load [kW] (negative: V2G export) in one EV case
        of the detail year and draw, indexed by time.

        Parameters
        ----------
        case
            An EV case key (every case but ``base``).
        label
            Columns: ``"name"`` (``net.load.name``) or ``"index"`` (``net.load.index``), as
            :meth:`gridplan.grid.feeders.Feeder.load_p_kw_frame`.
        """
        dispatch = self.ev_dispatch[self._cases(self.ev_dispatch, case)[0]]
        return self.feeder.element_frame(
            dispatch.power_by_load_kw, "load", label=label, index=dispatch.time_index
        )

    @staticmethod
    def _cases(per_case: Mapping[str, object], case: str | None) -> list[str]:
        if case is None:
            return list(per_case)
        if case not in per_case:
            raise GridplanError(f"no case '{case}' here (cases: {', '.join(per_case)})")
        return [case]
