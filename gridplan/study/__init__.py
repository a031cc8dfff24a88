"""study: one feeder study -- config, per-unit evaluation, horizon, tables, run, sensitivity.

May import :mod:`gridplan.planning`, :mod:`gridplan.powerflow`, :mod:`gridplan.ev`,
:mod:`gridplan.grid` and :mod:`gridplan.core`. Returns typed results and writes no files
(:func:`gridplan.outputs.write_study` does).

Modules, in the order of the flow: :mod:`~gridplan.study.config` (what a study TOML may
say), :mod:`~gridplan.study.units` (one (year, draw) unit), :mod:`~gridplan.study.horizon`
(all units stacked), :mod:`~gridplan.study.simulate` (context and horizon),
:mod:`~gridplan.study.tables` (per-asset, needs and economics tables),
:mod:`~gridplan.study.summary` (the headline figures), :mod:`~gridplan.study.sensitivity`,
:mod:`~gridplan.study.runner` (:func:`run`), :mod:`~gridplan.study.overview`.
"""

from gridplan.study.config import StudyConfig, load_study_config
from gridplan.study.horizon import HorizonResult
from gridplan.study.result import StudyResult
from gridplan.study.runner import run
from gridplan.study.summary import StudySummary
from gridplan.study.units import UnitResult

__all__ = [
    "HorizonResult",
    "StudyConfig",
    "StudyResult",
    "StudySummary",
    "UnitResult",
    "load_study_config",
    "run",
]
