"""One feeder study end to end: fleet -> dispatch -> power flow -> needs -> valuation.

:func:`run` validates the whole config before any computation, then for every planning
year of the horizon and every Monte Carlo draw it

1. grows the feeder's base load to the year and draws an EV fleet;
2. dispatches the fleet under each case's strategy (charging without V2G, with V2G);
3. solves the time-series power flow for the no-EV case and each EV case over the study
   period (:mod:`gridplan.study.units`);
4. applies the planning criteria and stacks the units (:mod:`gridplan.study.horizon`);

then builds the per-asset tables, the economics and the summary
(:mod:`gridplan.study.tables`, :mod:`gridplan.study.summary`), the deferral opportunities
of the constrained assets (targeted V2G, procure or build:
:mod:`gridplan.study.opportunities`) and, when asked, the sensitivity tornado. It
returns a :class:`~gridplan.study.result.StudyResult` and writes no files:
:func:`gridplan.outputs.write_study` does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gridplan.core.config import validate
from gridplan.core.errors import ConfigError
from gridplan.grid.feeders import Feeder, load_feeder
from gridplan.study.config import StudyConfig, feeder_ref, load_study_config
from gridplan.study.horizon import asset_median_draw
from gridplan.study.opportunities import opportunities_table
from gridplan.study.result import StudyResult
from gridplan.study.sensitivity import sensitivity_table
from gridplan.study.simulate import build_context, n_processes, simulate_horizon
from gridplan.study.summary import CaseEconomics, build_summary, critical_asset_id
from gridplan.study.tables import asset_table, economics_table, needs_table
from gridplan.study.units import evaluate_unit

log = logging.getLogger(__name__)

__all__ = ["run"]


def run(
    config: StudyConfig | Mapping[str, Any] | str | Path,
    *,
    feeder: Feeder | None = None,
    progress: bool = False,
    workers: int = 1,
) -> StudyResult:
    """Run one feeder study over its planning horizon and Monte Carlo draws.

    Parameters
    ----------
    config
        A :class:`~gridplan.study.config.StudyConfig`, a dict of the same fields (as a
        study TOML would hold them, e.g. ``{"name": "s", "feeder": "ca-residential",
        "fleet": {"v2g_enrolled_share": 0.3}}``), or the path of a study TOML. A dict or a
        file is validated before anything runs, with the same one-line errors; files it
        names are relative to the working directory (a file's: to the study file).
    feeder
        The feeder, already loaded (:func:`gridplan.grid.feeders.load_feeder`); default:
        load ``config.feeder``.
    progress
        Show a progress bar over (year, draw) units.
    workers
        Processes that evaluate (year, draw) units in parallel [-]; ``0`` = one per CPU.
        Results do not depend on it (every draw has its own seed). Each process solves
        the base case of the years it works on.

    Returns
    -------
    StudyResult
        Everything the study computed; :func:`gridplan.outputs.write_study` writes it.

    Raises
    ------
    ConfigError
        A config that is not valid (one line naming the file, if any, and the field).
    """
    config, path = _study_config(config)
    n_processes(workers, 1)  # a bad worker count fails before any computation
    if feeder is None:
        feeder = load_feeder(feeder_ref(config, path))
    ctx = build_context(config, feeder, path)
    horizon = simulate_horizon(ctx, workers=workers, progress=progress)
    # The detail (time series, figures) is the critical asset's representative draw: the
    # draw whose charging-case peak of that asset in the detail year is the (lower) median
    # over draws, so the headline, the tables and the figures of that asset agree.
    years = horizon.years
    y_detail = int(np.flatnonzero(years == config.year)[0])
    assets = asset_table(feeder, config, horizon)
    critical = feeder.assets.index.get_loc(critical_asset_id(assets))
    detail_draw = asset_median_draw(horizon, y_detail, int(critical))
    detail = evaluate_unit(ctx, config.year, detail_draw, keep_detail=True).detail
    assert detail is not None
    economics = economics_table(config, horizon, assets, ctx.time_index, feeder.step_h)
    # Procure or build per constrained asset: targeted V2G enrollment (issue 20).
    opportunities = opportunities_table(ctx, horizon, assets) if config.targeting.enabled else None
    summary = build_summary(
        config,
        feeder,
        horizon,
        detail.fleet,
        detail.dispatch,
        detail_draw,
        assets,
        ctx.time_index,
    )
    sensitivity = None
    if config.sensitivity.enabled:
        sensitivity = sensitivity_table(config, feeder, horizon, ctx.time_index)
    summary = dataclasses.replace(
        summary,
        economics={str(case): CaseEconomics.from_row(row) for case, row in economics.iterrows()},
        screening={
            "enabled": ctx.screening,
            "reason": ctx.screening_reason,
            **{k: int(v) for k, v in sorted(ctx.screen_stats.items())},
        },
        sensitivity=None if sensitivity is None else sensitivity.to_dict(orient="records"),
    )
    return StudyResult(
        config=config,
        feeder=feeder,
        horizon=horizon,
        fleet=detail.fleet,
        time_index=ctx.time_index,
        ev_dispatch=detail.dispatch,
        loading_pct=detail.loading_pct,
        converged=detail.converged,
        min_vm_pu=detail.min_vm_pu,
        assets=assets,
        needs=needs_table(horizon),
        summary=summary,
        economics=economics,
        sensitivity=sensitivity,
        bus_min_vm_pu=detail.bus_min_vm_pu,
        opportunities=opportunities,
    )


def _study_config(
    config: StudyConfig | Mapping[str, Any] | str | Path,
) -> tuple[StudyConfig, Path | None]:
    """The validated config of :func:`run`'s argument, and the study file it came from."""
    if isinstance(config, StudyConfig):
        return config, None
    if isinstance(config, Mapping):
        return validate(StudyConfig, dict(config)), None
    if isinstance(config, str | os.PathLike):
        path = Path(config)
        return load_study_config(path), path
    raise ConfigError(
        "expected a study TOML path, a dict of study fields or a StudyConfig "
        f"(got {type(config).__name__})"
    )
