"""study: one feeder study -- config, per-unit evaluation, horizon, tables, run, sensitivity.

May import :mod:`gridplan.planning`, :mod:`gridplan.powerflow`, :mod:`gridplan.ev`,
:mod:`gridplan.grid` and :mod:`gridplan.core`. Returns typed results; writes no files
(:func:`gridplan.outputs.write_study` does).
"""

from gridplan.study.runner import (
    HorizonResult,
    StudyConfig,
    StudyResult,
    load_study_config,
    run,
)

__all__ = ["HorizonResult", "StudyConfig", "StudyResult", "load_study_config", "run"]
