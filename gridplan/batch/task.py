"""What a worker runs for one unit: load its feeder once, run its study, never raise."""

from __future__ import annotations

import logging
import os
import platform
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from gridplan import __version__
from gridplan.core.errors import GridplanError
from gridplan.grid.feeders import Feeder
from gridplan.study import StudyConfig
from gridplan.study import run as run_study

__all__ = ["UnitTask", "package_versions", "run_unit", "warm_feeder"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the task
@dataclass(frozen=True)
class UnitTask:
    """What a worker receives for one unit: its id and study config (a few kB)."""

    unit_id: str
    config: StudyConfig


def warm_feeder(ref: str) -> Feeder | None:
    """Load a feeder on a worker and return it (a Dask task; the result stays on the worker).

    Dask keeps the loaded feeder in the worker's memory and sends it, once, to each other
    worker that runs one of its units (:func:`run_unit` takes it as its first argument):
    unpickling a feeder takes ~0.1-0.3 s, loading it from its spec 1-4 s. ``None`` if it
    fails to load; its units then load it themselves and record the loader's error.
    """
    from gridplan.grid.feeders import load_feeder

    try:
        return load_feeder(ref)
    except Exception as exc:  # recorded by the units
        log.debug("feeder %s failed to load: %s", ref, exc)
        return None


def run_unit(feeder: Feeder | None, task: UnitTask) -> dict[str, Any]:
    """Run one unit's study (on a worker); never raises for a study error.

    Parameters
    ----------
    feeder
        The unit's feeder as :func:`warm_feeder` loaded it (on this or another worker),
        handed to the study as it is; ``None`` in this process or when the feeder failed
        to load (the study then loads it itself and records the loader's error).
    task
        The unit.

    Returns
    -------
    dict
        ``status`` (``ok``/``failed``), ``error``, ``error_type``, ``traceback``, timing
        (``started_at``, ``finished_at``, ``duration_s`` [s]), ``worker``, ``versions``,
        and for ``ok`` the study ``summary`` (:class:`~gridplan.study.StudySummary`) and
        ``assets`` table.
    """
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    outcome: dict[str, Any] = {"unit_id": task.unit_id, "summary": None, "assets": None}
    try:
        result = run_study(task.config, feeder=feeder)
    except Exception as exc:
        outcome.update(
            status="failed",
            error=_one_line(exc),
            error_type=type(exc).__name__,
            traceback=traceback.format_exc(limit=20),
        )
    else:
        outcome.update(
            status="ok",
            error=None,
            error_type=None,
            traceback=None,
            summary=result.summary,
            assets=result.assets,
        )
    outcome.update(
        started_at=started.isoformat(timespec="milliseconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        duration_s=round(time.perf_counter() - t0, 4),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        versions=package_versions(),
    )
    return outcome


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, GridplanError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of Python, gridplan and the packages that shape its numbers."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "gridplan": __version__}
    for name in ("numpy", "scipy", "pandas", "pandapower", "simbench", "dask", "distributed"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
