"""batch: many feeders x scenario points x draws on Dask, each unit written as it finishes.

May import :mod:`gridplan.outputs`, :mod:`gridplan.study` and every layer below. Modules, in
the order of a run: :mod:`~gridplan.batch.plan` (config and plan), :mod:`~gridplan.batch.task`
(one unit on a worker), :mod:`~gridplan.batch.results` (the results columns),
:mod:`~gridplan.batch.records` (unit files, manifest, tables), :mod:`~gridplan.batch.lock`,
:mod:`~gridplan.batch.cluster` (Dask), :mod:`~gridplan.batch.runner` (:func:`run`).
"""

from gridplan.batch.plan import BatchConfig, BatchPlan, load_batch_config, plan_batch
from gridplan.batch.records import consolidate, ranking_frame
from gridplan.batch.results import summary_metrics
from gridplan.batch.runner import BatchResult, run

__all__ = [
    "BatchConfig",
    "BatchPlan",
    "BatchResult",
    "consolidate",
    "load_batch_config",
    "plan_batch",
    "ranking_frame",
    "run",
    "summary_metrics",
]
