"""The planning horizon: every (year, draw) unit evaluated, stacked into arrays.

:func:`evaluate_units` runs the units in this process or in a pool of processes (same
results: every draw has its own seed); :meth:`HorizonResult.from_units` stacks their
:class:`~gridplan.study.units.UnitResult` into (year, draw, case, asset) arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gridplan.core.errors import GridplanError
from gridplan.planning.needs import first_year
from gridplan.study.units import (
    NO_NEED_DETAIL,
    CaseOutcome,
    UnitContext,
    UnitResult,
    evaluate_unit,
)

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["HORIZON_VARIABLES", "HorizonResult", "asset_median_draw", "evaluate_units"]

#: The arrays of :class:`HorizonResult` as labelled variables (:meth:`HorizonResult.to_xarray`):
#: name -> (dimensions, units, description). Units follow UDUNITS spelling where one exists
#: ("1": a count, a flag or a ratio).
HORIZON_VARIABLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "peak_loading_pct": (("year", "draw", "case", "asset"), "%", "peak loading"),
    "hours_over_limit": (("year", "draw", "case", "asset"), "h", "hours over the limit"),
    "overload_energy_kvah": (
        ("year", "draw", "case", "asset"),
        "kVA h",
        "energy over the limit",
    ),
    "need": (("year", "draw", "case", "asset"), "1", "loading criterion violated"),
    "need_unsolved": (
        ("year", "draw", "case", "asset"),
        "1",
        "the need rests on power-flow steps that did not converge",
    ),
    "min_vm_pu": (("year", "draw", "case"), "pu", "lowest service-point voltage"),
    "max_vm_pu": (("year", "draw", "case"), "pu", "highest service-point voltage"),
    "voltage_hours_out": (
        ("year", "draw", "case"),
        "h",
        "hours any service point is outside the voltage band",
    ),
    "voltage_need": (("year", "draw", "case"), "1", "voltage criterion violated"),
    "non_converged_steps": (
        ("year", "draw", "case"),
        "1",
        "power-flow steps that did not converge",
    ),
    "export_kwh": (("year", "draw", "case"), "kWh", "V2G export energy of the fleet"),
    "charge_kwh": (("year", "draw", "case"), "kWh", "charging energy of the fleet"),
    "evs_downstream": (("year", "draw", "asset"), "1", "EVs downstream of the asset"),
    "enrolled_downstream": (
        ("year", "draw", "asset"),
        "1",
        "V2G-enrolled EVs downstream of the asset",
    ),
    "export_kw_downstream": (
        ("year", "draw", "asset"),
        "kW",
        "export limit of the enrolled EVs downstream of the asset",
    ),
    "usable_kwh_downstream": (
        ("year", "draw", "asset"),
        "kWh",
        "usable energy (target - reserve) of the enrolled EVs downstream of the asset",
    ),
    "requirement_kw": (
        ("year", "draw", "asset"),
        "kW",
        "V2G power that would hold the asset within its limit (charging case)",
    ),
    "requirement_kwh": (
        ("year", "draw", "asset"),
        "kWh",
        "V2G energy that would hold the asset within its limit (charging case)",
    ),
    "n_ev": (("year", "draw"), "1", "EVs in the fleet"),
    "n_enrolled": (("year", "draw"), "1", "V2G-enrolled EVs in the fleet"),
    "enrolled_kw": (("year", "draw"), "kW", "export limit of all enrolled EVs together"),
    "load_factor": (("year",), "1", "base-load factor of the year relative to the profiles"),
}


@dataclass(frozen=True, eq=False)
class HorizonResult:
    """Per planning year, draw, case and asset: what the criteria see.

    Axes: year (Y), draw (D), case (C, see ``cases``), asset (A, ``asset_ids`` order).

    Attributes
    ----------
    years
        Planning years, shape (Y,).
    cases
        Case keys: ``base`` (no EVs), ``charging`` (first charging strategy), ``v2g``
        (first V2G strategy), then ``charging:<name>`` / ``v2g:<name>`` for further ones.
    strategies
        Strategy of each case (``None`` for ``base``).
    asset_ids
        Monitored assets.
    load_factor
        Base-load factor of each year relative to the profiles [-], (Y,).
    peak_loading_pct, hours_over_limit, overload_energy_kvah
        Peak loading [%], hours over the limit [h], energy over the limit [kVA·h],
        each (Y, D, C, A).
    need
        Loading criterion violated, (Y, D, C, A); in an EV case, a step whose power flow
        did not converge counts as over the limit.
    need_unsolved
        The need rests on steps that did not converge, (Y, D, C, A).
    min_vm_pu, max_vm_pu, voltage_hours_out
        Lowest/highest service-point voltage [pu] and hours any service point is outside
        the band [h], (Y, D, C).
    voltage_need
        Voltage criterion violated, (Y, D, C).
    non_converged_steps
        Power-flow steps that did not converge, (Y, D, C).
    n_ev, n_enrolled
        EVs and V2G-enrolled EVs in the fleet, (Y, D).
    enrolled_kw
        Export limit of all enrolled EVs together [kW], (Y, D).
    export_kwh, charge_kwh
        V2G export and charging energy of the whole fleet per case [kWh], (Y, D, C).
    evs_downstream, enrolled_downstream
        EVs / enrolled EVs downstream of each asset, (Y, D, A).
    export_kw_downstream, usable_kwh_downstream
        Export limit [kW] and usable energy (target − reserve) [kWh] of the enrolled EVs
        downstream of each asset, (Y, D, A).
    requirement_kw, requirement_kwh
        V2G power [kW] and energy [kWh] that would hold each asset within its limit in the
        ``charging`` case (EPRI DER-VET deferral logic), (Y, D, A).
    need_detail
        Need characterization in the ``charging`` case: one row per (year, draw, asset) with
        an excess (see :func:`gridplan.planning.needs.characterize_need`).
    """

    years: np.ndarray
    cases: list[str]
    strategies: dict[str, str | None]
    asset_ids: list[str]
    load_factor: np.ndarray
    peak_loading_pct: np.ndarray
    hours_over_limit: np.ndarray
    overload_energy_kvah: np.ndarray
    need: np.ndarray
    need_unsolved: np.ndarray
    min_vm_pu: np.ndarray
    max_vm_pu: np.ndarray
    voltage_hours_out: np.ndarray
    voltage_need: np.ndarray
    non_converged_steps: np.ndarray
    n_ev: np.ndarray
    n_enrolled: np.ndarray
    enrolled_kw: np.ndarray
    export_kwh: np.ndarray
    charge_kwh: np.ndarray
    evs_downstream: np.ndarray
    enrolled_downstream: np.ndarray
    export_kw_downstream: np.ndarray
    usable_kwh_downstream: np.ndarray
    requirement_kw: np.ndarray
    requirement_kwh: np.ndarray
    need_detail: pd.DataFrame

    def case(self, key: str) -> int:
        """Position of a case key."""
        return self.cases.index(key)

    def year_of_need(self, case: str) -> np.ndarray:
        """First year with a loading need per draw and asset (NaN: none), (D, A)."""
        return first_year(self.need[:, :, self.case(case), :], self.years)

    def to_xarray(self, assets: pd.DataFrame | None = None) -> xr.Dataset:
        """The horizon's arrays as one labelled :class:`xarray.Dataset`.

        Dimensions and coordinates: ``year`` (planning years, int), ``draw`` (0, 1, …),
        ``case`` (case keys, with the non-dimension coordinate ``strategy``: ``""`` for
        ``base``) and ``asset`` (``asset_ids``, the ``asset_id`` of the asset table and of
        ``assets.csv``). Every array is a data variable over its own dimensions
        (:data:`HORIZON_VARIABLES`), with ``units`` and ``long_name`` in its ``attrs``;
        ``need_detail`` (a table) stays on the result. Needs the optional ``xarray``
        package (``pip install 'gridplan[xarray]'``).

        Parameters
        ----------
        assets
            Per-asset columns to attach as coordinates along ``asset`` (e.g. the feeder's
            ``name``, ``kind``, ``rating_kva``), indexed by asset id; each column ``c``
            becomes the coordinate ``asset_<c>`` unless it already starts with ``asset_``.

        Returns
        -------
        xarray.Dataset
            E.g. ``ds.peak_loading_pct.sel(case="charging", year=2035).median("draw")``:
            the median peak loading [%] of every asset in 2035 without managed charging.

        Raises
        ------
        GridplanError
            xarray is not installed.
        """
        try:
            import xarray as xr
        except ImportError:
            raise GridplanError(
                "to_xarray needs xarray, an optional extra: pip install 'gridplan[xarray]'"
            ) from None
        coords: dict[str, tuple[str, list[object]] | list[object] | np.ndarray] = {
            "year": np.asarray(self.years, dtype=int),
            "draw": np.arange(self.n_ev.shape[1]),
            "case": list(self.cases),
            "asset": list(self.asset_ids),
            "strategy": ("case", [self.strategies.get(c) or "" for c in self.cases]),
        }
        if assets is not None:
            table = assets.reindex(list(self.asset_ids))
            for column in table.columns:
                name = str(column) if str(column).startswith("asset_") else f"asset_{column}"
                coords[name] = ("asset", table[column].to_list())
        variables = {
            name: xr.Variable(dims, getattr(self, name), {"units": units, "long_name": text})
            for name, (dims, units, text) in HORIZON_VARIABLES.items()
        }
        return xr.Dataset(
            variables,
            coords=coords,
            attrs={"description": "gridplan planning horizon: per year, draw, case and asset"},
        )

    @classmethod
    def from_units(
        cls,
        units: Iterable[UnitResult],
        years: Sequence[int] | np.ndarray,
        draws: int,
        cases: dict[str, str | None],
        asset_ids: Sequence[str],
    ) -> HorizonResult:
        """Stack unit results into the horizon's arrays.

        Parameters
        ----------
        units
            One result per (year, draw) of ``years`` × ``range(draws)``, in any order.
        years
            Planning years, in order.
        draws
            Draws per year.
        cases
            Case key -> strategy (``None``: no EVs), in evaluation order.
        asset_ids
            Monitored assets, in the order of the units' arrays.
        """
        years = np.asarray(years)
        ordered = sorted(units, key=lambda u: (u.year, u.draw))
        position = {int(y): i for i, y in enumerate(years)}
        shape = (len(years), draws, len(cases), len(asset_ids))
        if len(ordered) != len(years) * draws:
            raise GridplanError(f"expected {len(years) * draws} unit results, got {len(ordered)}")
        arrays = _CaseArrays(shape)
        per_unit = _UnitArrays(shape)
        for unit in ordered:
            y = position[unit.year]
            arrays.add(y, unit.draw, list(unit.cases.values()))
            per_unit.add(y, unit)
        return cls(
            years=years,
            cases=list(cases),
            strategies=dict(cases),
            asset_ids=list(asset_ids),
            load_factor=per_unit.factor,
            **arrays.fields(),
            **per_unit.fields(),
            need_detail=_need_details(ordered, years),
        )


class _CaseArrays:
    """The (Y, D, C, …) arrays of the case outcomes."""

    def __init__(self, shape: tuple[int, int, int, int]) -> None:
        y, d, c, _ = shape
        self.arrays = {
            "peak_loading_pct": np.full(shape, np.nan),
            "hours_over_limit": np.zeros(shape),
            "overload_energy_kvah": np.zeros(shape),
            "need": np.zeros(shape, dtype=bool),
            "need_unsolved": np.zeros(shape, dtype=bool),
            "min_vm_pu": np.full((y, d, c), np.nan),
            "max_vm_pu": np.full((y, d, c), np.nan),
            "voltage_hours_out": np.zeros((y, d, c)),
            "voltage_need": np.zeros((y, d, c), dtype=bool),
            "non_converged_steps": np.zeros((y, d, c), dtype=int),
            "export_kwh": np.zeros((y, d, c)),
            "charge_kwh": np.zeros((y, d, c)),
        }

    def add(self, y: int, d: int, outcomes: list[CaseOutcome]) -> None:
        for c, outcome in enumerate(outcomes):
            for name, array in self.arrays.items():
                array[y, d, c] = getattr(outcome, name)

    def fields(self) -> dict[str, np.ndarray]:
        return self.arrays


class _UnitArrays:
    """The (Y, D, …) arrays of the fleets and of the charging case's requirement."""

    PER_ASSET = (
        "evs_downstream",
        "enrolled_downstream",
        "export_kw_downstream",
        "usable_kwh_downstream",
        "requirement_kw",
        "requirement_kwh",
    )

    def __init__(self, shape: tuple[int, int, int, int]) -> None:
        y, d, _, a = shape
        self.per_asset = {name: np.zeros((y, d, a)) for name in self.PER_ASSET}
        self.n_ev = np.zeros((y, d), dtype=int)
        self.n_enrolled = np.zeros((y, d), dtype=int)
        self.enrolled_kw = np.zeros((y, d))
        self.factor = np.zeros(y)

    def add(self, y: int, unit: UnitResult) -> None:
        d = unit.draw
        for name, array in self.per_asset.items():
            array[y, d] = getattr(unit, name)
        self.n_ev[y, d], self.n_enrolled[y, d] = unit.n_ev, unit.n_enrolled
        self.enrolled_kw[y, d] = unit.enrolled_kw
        self.factor[y] = unit.load_factor

    def fields(self) -> dict[str, np.ndarray]:
        return {
            **self.per_asset,
            "n_ev": self.n_ev,
            "n_enrolled": self.n_enrolled,
            "enrolled_kw": self.enrolled_kw,
        }


def _need_details(units: list[UnitResult], years: np.ndarray) -> pd.DataFrame:
    """The units' need characterizations in one table (``year``, ``draw`` first)."""
    frames = []
    for unit in units:
        if unit.need_detail.empty:
            continue
        detail = unit.need_detail.copy()
        detail.insert(0, "draw", unit.draw)
        detail.insert(0, "year", unit.year)
        frames.append(detail)
    if not frames:  # keep the columns
        empty = NO_NEED_DETAIL.copy()
        empty.insert(0, "draw", pd.Series(dtype=int))
        empty.insert(0, "year", pd.Series(dtype=years.dtype))
        return empty
    return pd.concat(frames, ignore_index=True)


def asset_median_draw(h: HorizonResult, y: int, asset: int) -> int:
    """The draw whose charging-case peak loading of one asset in year position ``y`` is the
    (lower) median across draws: the asset's representative draw."""
    peak = h.peak_loading_pct[y, :, h.case("charging"), asset]
    order = np.argsort(np.where(np.isnan(peak), -np.inf, peak), kind="stable")
    return int(order[(len(order) - 1) // 2])


# --------------------------------------------------------------------------- evaluation
def evaluate_units(
    ctx: UnitContext, years: np.ndarray, draws: int, n_proc: int, progress: bool
) -> list[UnitResult]:
    """Evaluate every (year, draw) unit, in this process or in ``n_proc`` processes.

    Tasks are blocks of draws of one year, in year order, so that a process solves each
    year's base case once (or a few times). BLAS runs on one thread: the products here are
    small, and threads would only compete with the processes.
    """
    from threadpoolctl import threadpool_limits

    tasks = unit_tasks(len(years), draws, n_proc)
    bar = None
    if progress:
        from gridplan.core.progress import progress_bar

        bar = progress_bar(
            total=len(years) * draws,
            desc=f"study {ctx.config.name}",
            unit="draw",
            leave=False,
            disable=False,  # asked for: also in notebooks and logs
        )
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            if n_proc <= 1:
                return _serial(ctx, years, tasks, bar)
            return _parallel(ctx, years, tasks, n_proc, bar)
    finally:
        if bar is not None:
            bar.close()


def unit_tasks(n_years: int, draws: int, n_proc: int) -> list[tuple[int, list[int]]]:
    """(year position, draws) blocks: whole years when there are enough of them to keep
    ``n_proc`` processes busy, else each year split into about ``4 × n_proc / years``."""
    per_year = 1 if n_proc <= 1 else max(1, math.ceil(4 * n_proc / max(n_years, 1)))
    size = math.ceil(draws / min(per_year, draws))
    return [
        (y, list(range(start, min(start + size, draws))))
        for y in range(n_years)
        for start in range(0, draws, size)
    ]


def _serial(
    ctx: UnitContext, years: np.ndarray, tasks: list[tuple[int, list[int]]], bar: object
) -> list[UnitResult]:
    units = []
    for y, block in tasks:
        for d in block:
            units.append(evaluate_unit(ctx, int(years[y]), d, keep_detail=False))
            if bar is not None:
                bar.update(1)  # type: ignore[attr-defined]
    return units


def _parallel(
    ctx: UnitContext,
    years: np.ndarray,
    tasks: list[tuple[int, list[int]]],
    n_proc: int,
    bar: object,
) -> list[UnitResult]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # fork shares the loaded feeder with the workers at no cost; elsewhere the context is
    # sent once per worker process (initializer), not per task
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    units: list[UnitResult] = []
    with ProcessPoolExecutor(
        max_workers=n_proc,
        mp_context=mp.get_context(method),
        initializer=_init_worker,
        initargs=(ctx,),
    ) as pool:
        futures = [pool.submit(_run_task, int(years[y]), block) for y, block in tasks]
        try:
            for future in as_completed(futures):
                outs, stats = future.result()
                units.extend(outs)
                ctx.add_stats(stats)
                if bar is not None:
                    bar.update(len(outs))  # type: ignore[attr-defined]
        except BrokenProcessPool:
            raise GridplanError(
                "a worker process of the study died (killed, or out of memory); rerun with "
                "fewer --workers or without them"
            ) from None
    return units


#: The study context of a worker process (set by :func:`_init_worker`).
_WORKER_CTX: UnitContext | None = None


def _init_worker(ctx: UnitContext) -> None:
    global _WORKER_CTX
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    ctx.screen_stats.clear()
    ctx.base_cache.clear()
    _WORKER_CTX = ctx


def _run_task(year: int, block: list[int]) -> tuple[list[UnitResult], dict[str, int]]:
    """Evaluate one block of draws of one year in a worker process."""
    ctx = _WORKER_CTX
    assert ctx is not None
    before = dict(ctx.screen_stats)
    outs = [evaluate_unit(ctx, year, d, keep_detail=False) for d in block]
    stats = {k: v - before.get(k, 0) for k, v in ctx.screen_stats.items()}
    return outs, stats
