"""batch: many feeders x scenario points x draws on Dask, each unit written as it finishes.

May import :mod:`gridplan.outputs`, :mod:`gridplan.study` and every layer below.
"""

from gridplan.batch.runner import (
    BatchConfig,
    BatchPlan,
    BatchResult,
    consolidate,
    load_batch_config,
    plan_batch,
    ranking_frame,
    run,
    summary_metrics,
)

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
