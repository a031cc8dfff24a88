"""Set up a study's shared context and simulate its horizon (no tables, no files)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from gridplan.core.errors import ConfigError
from gridplan.ev.events import ELRP, EventCalendar, load_rate
from gridplan.ev.fleet import read_zones, zone_multipliers
from gridplan.grid.feeders import Feeder
from gridplan.grid.topology import downstream_buses
from gridplan.powerflow import compile_network
from gridplan.study.config import StudyConfig, case_strategies, period_slice
from gridplan.study.horizon import HorizonResult, evaluate_units
from gridplan.study.units import UnitContext

__all__ = ["build_context", "calendar_file", "simulate_horizon", "use_screening"]


def calendar_file(config: StudyConfig, feeder: Feeder) -> EventCalendar | None:
    """An event calendar file moved onto the profile year (month and day kept)."""
    if config.dispatch.events in ("every_day", "elrp"):
        return None
    calendar = EventCalendar.read_csv(config.dispatch.events, program=ELRP)
    year = int(feeder.time_index[0].year)
    moved = [
        d.replace(year=year) if not (d.month == 2 and d.day == 29) else d.replace(year=year, day=28)
        for d in pd.DatetimeIndex(calendar.date)
    ]
    return EventCalendar(
        date=np.asarray(moved, dtype="datetime64[D]"),
        start_h=calendar.start_h,
        end_h=calendar.end_h,
        source=f"{calendar.source} (dates moved to the profile year {year})",
        file=calendar.file,
    )


#: Screening builds dense rows of ``Z`` (non-slack nodes squared) and bounds every step with
#: them: above this many non-slack nodes solving every step is cheaper (EPRI ckt7, 1,255
#: nodes, peak week: 24.5 s CPU solving every step, 32.8 s screened before the sweep; 0.6 s
#: and 0.8 s with it, ``benchmarks/results/screening.md``) [-].
SCREENING_MAX_NODES = 1000
#: Screening pays for its basis over long periods only, if at all (before the sweep: a peak
#: week of mv-semiurban, 672 steps: 37.6 s CPU solving every step, 39.4 s screened; a year
#: of lv-semiurban, 35,136 steps: 6.2 s and 5.2 s; with the sweep 2.8 s and 5.1 s,
#: benchmarks/results/screening.md) [steps].
SCREENING_MIN_STEPS = 1000
#: With the sweep, a year's screening basis pays only when enough draws share it (a year of
#: lv-semiurban, CPU, solving every step / screened: 4 draws over 2 years 2.9 s / 7.9 s;
#: 20 draws 5.6 s / 3.9-6.1 s, about break-even in two runs; 60 draws 15.7 s / 10.2 s;
#: 100 draws 25.7 s / 16.7 s; ``benchmarks/results/screening.md``) [draws per year].
SCREENING_MIN_DRAWS = 20


def use_screening(config: StudyConfig, n_nonslack: int, n_steps: int) -> tuple[bool, str]:
    """Whether the study screens its EV cases, and why (results are the same either way;
    only the time differs, see :mod:`gridplan.powerflow.screening`)."""
    if not config.horizon.screening:
        return False, "off in the study file (horizon.screening = false)"
    if config.criteria.trafo_criterion != "loading":
        return False, (
            f"off: the transformers' {config.criteria.trafo_criterion} criterion needs every "
            "step's loading (certified steps carry bounds only)"
        )
    if n_nonslack > SCREENING_MAX_NODES:
        return False, (
            f"off: {n_nonslack} non-slack nodes > {SCREENING_MAX_NODES}, solving every step "
            "is cheaper"
        )
    if n_steps < SCREENING_MIN_STEPS:
        return False, f"off: {n_steps} steps < {SCREENING_MIN_STEPS}, solving every step is cheaper"
    draws = config.horizon.draws
    if draws < SCREENING_MIN_DRAWS:
        return False, (
            f"off: {draws} draws < {SCREENING_MIN_DRAWS}, too few to share the year's "
            "screening basis; solving every step is cheaper"
        )
    return True, "on"


def build_context(config: StudyConfig, feeder: Feeder, file: Path | None = None) -> UnitContext:
    """The context every unit of the study shares: period, compiled network, cases, zones,
    rate and event calendar. Errors name ``file`` (the study file)."""
    steps = period_slice(feeder, config.period, file)
    zones = read_zones(config.fleet.zones) if config.fleet.zones else None
    if zones is not None:
        zone_multipliers(feeder, zones, file=config.fleet.zones)  # fail before computing
    compiled = compile_network(feeder.net)
    time_index = feeder.time_index[steps]
    screening, reason = use_screening(config, int(compiled.nonslack.size), len(time_index))
    return UnitContext(
        config,
        feeder,
        steps,
        time_index,
        compiled,
        case_strategies(config),
        downstream_buses(feeder),
        zones,
        rate=load_rate(config.dispatch.rate),
        calendar=calendar_file(config, feeder),
        screening=screening,
        screening_reason=reason,
    )


def n_processes(workers: int, units: int) -> int:
    """Processes for ``units`` units with ``workers`` asked for (0 = one per CPU)."""
    if workers < 0:
        raise ConfigError(f"workers must be >= 0 (0 = one per CPU), got {workers}", field="workers")
    n_proc = (os.cpu_count() or 1) if workers == 0 else workers
    return min(n_proc, units)


def simulate_horizon(
    ctx: UnitContext, *, workers: int = 1, progress: bool = False
) -> HorizonResult:
    """Evaluate every (year, draw) unit of the study and stack the results.

    Parameters
    ----------
    ctx
        The study's context (:func:`build_context`).
    workers
        Processes [-]; ``0`` = one per CPU. Results do not depend on it.
    progress
        Show a progress bar over the units.
    """
    config = ctx.config
    years = np.array(config.years())
    draws = config.horizon.draws
    n_proc = n_processes(workers, len(years) * draws)
    units = evaluate_units(ctx, years, draws, n_proc, progress)
    return HorizonResult.from_units(units, years, draws, ctx.cases, list(ctx.feeder.assets.index))
