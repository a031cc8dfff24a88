"""Running units on Dask: the local cluster's settings, connecting to a scheduler, and
the dispatcher that places units on workers holding their feeder."""

from __future__ import annotations

import logging
import math
import os
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gridplan.batch.plan import Unit
from gridplan.batch.records import _now, _Recorder
from gridplan.batch.task import UnitTask, _one_line, package_versions, run_unit, warm_feeder
from gridplan.core.errors import ConfigError, GridplanError

__all__ = ["LOCAL_CLUSTER_CONFIG", "local_client"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- dask
def _dask_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("distributed") is not None


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise GridplanError(
            "running a batch on more than one worker or on a scheduler needs Dask: "
            "pip install 'gridplan[dask]' (or run with --workers 1)"
        ) from None
    return distributed


def _connect(address: str, timeout_s: float, file: Path | None) -> Any:
    """A client of the scheduler at ``address``; a clear error if it is not reachable."""
    distributed = _distributed()
    t0 = time.monotonic()
    try:
        return distributed.Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except Exception as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at '{address}' "
            f"(gave up after {time.monotonic() - t0:.1f} s: {_one_line(exc)}); "
            "check the address and that the scheduler is running",
            file=file if file is not None else None,
            field="execution.scheduler" if file is not None else None,
        ) from None


#: Dask settings of the ``LocalCluster`` a batch starts (:func:`local_client`).
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also turns off
    # glibc's dynamic mmap threshold: every array over 128 kB is then mapped and unmapped
    # afresh, page faults and all, 10-30 % of a unit's time here. None: glibc's defaults,
    # as in a plain Python process.
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # The batch places every task itself (_Dispatcher): no stealing behind its back, and a
    # feeder sent to a worker stays there while its units run (the active memory manager
    # would drop such "extra" replicas, and Dask would send the feeder again).
    "distributed.scheduler.work-stealing": False,
    "distributed.scheduler.active-memory-manager.start": False,
    # Housekeeping that competes with the units for the cores: the workers' statistical
    # profiler (100 samples/s, for a dashboard this cluster does not serve) and the
    # event-loop health ticks (50/s), system monitor and memory monitor (10/s) of the
    # scheduler, nannies and workers. Slower here, they cost ~1 % of a core instead of ~5 %
    # in this process (where the scheduler and the nannies run) and ~3 % in each worker.
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "500ms",
}
_MALLOC_TRIM = "MALLOC_TRIM_THRESHOLD_"
#: The variable as this process started with it (the user's choice; workers inherit it).
_MALLOC_TRIM_AT_IMPORT = os.environ.get(_MALLOC_TRIM)


@contextmanager
def local_client(n: int) -> Iterator[Any]:
    """A client of a ``LocalCluster`` of ``n`` single-threaded worker processes.

    Dask's nanny starts each worker with ``OMP_NUM_THREADS=1`` (and MKL/OpenBLAS alike),
    so ``n`` workers use ``n`` cores. The workers import gridplan while the cluster
    starts (``preload``), not when the first unit arrives. :data:`LOCAL_CLUSTER_CONFIG`
    applies: glibc's default memory trimming (not Dask's eager one), no work stealing,
    no active memory manager. A ``MALLOC_TRIM_THRESHOLD_`` that an earlier Dask cluster
    left in this process's environment (the nanny sets it in its own process) is removed
    first; one set before gridplan.batch.runner was imported is kept.
    """
    distributed = _distributed()
    import dask

    if _MALLOC_TRIM_AT_IMPORT is None:
        os.environ.pop(_MALLOC_TRIM, None)
    # Dask logs at INFO to the "distributed" logger, which propagates to the root handlers;
    # follow the level the application chose for the root logger while the cluster lives.
    dask_log = logging.getLogger("distributed")
    old_level = dask_log.level
    dask_log.setLevel(max(dask_log.getEffectiveLevel(), logging.getLogger().getEffectiveLevel()))
    with (
        _restore_level(dask_log, old_level),
        dask.config.set(LOCAL_CLUSTER_CONFIG),
        distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            preload=["gridplan.batch.runner"],
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        client.wait_for_workers(n)
        yield client


@contextmanager
def _restore_level(logger: logging.Logger, level: int) -> Iterator[None]:
    try:
        yield
    finally:
        logger.setLevel(level)


def _describe_client(client: Any) -> str:
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # older distributed
        workers = client.scheduler_info()["workers"]
    except Exception:
        return "workers unknown"
    threads = sum(int(w.get("nthreads", 1)) for w in workers.values())
    return f"{len(workers)} workers, {threads} threads"


def _run_dask(client: Any, todo: Sequence[Unit], recorder: _Recorder) -> None:
    """Run the units on Dask and record each as it completes (see :class:`_Dispatcher`)."""
    _Dispatcher(client, todo, recorder).run()


class _Dispatcher:
    """Places the units on the Dask workers a few at a time, longest first.

    Feeders
        Each feeder is loaded once, by a warm-up task (:func:`warm_feeder`) on a worker
        that has a free slot and no unit of a feeder it holds to run. The loaded feeder
        stays on that worker as Dask data and each unit takes it as its first argument, so
        Dask sends it (pickled: ~0.1-0.5 s) once to each other worker that runs one of its
        units, instead of that worker loading it again (1-4 s). Released when the feeder's
        units are done.
    Units
        A worker gets a task whenever it has a free slot: ``nthreads + 1`` (one waits, so
        the worker does not idle while this process answers; just ``nthreads`` once few
        units are left, so the last ones go to whichever worker frees first). It gets, in
        this order, a unit of a loaded feeder it holds; a warm-up of a feeder not loaded
        yet; a unit of a feeder loaded on another worker (the feeder is sent); a unit of a
        feeder still loading (it waits). So feeders move between workers only when a
        worker has run out of its own, towards the end. Among units, the longest expected
        run time first (longest-processing-time-first: what is left at the end, for the
        workers to share, are the short units, and they finish together). Expected run
        time: the mean of the finished units of the same feeder and scenario point; for a
        scenario point not yet timed, the longest mean of the feeder; for a feeder not yet
        timed, infinite (so every feeder and scenario point is timed early). Ties go in
        plan order.
    Failures
        Tasks go to a worker by a loose restriction: when it dies, Dask runs them on
        another (reloading a lost feeder). A feeder whose warm-up task failed outright
        (its worker kept dying) has its units run without it: each loads the feeder itself.
    """

    #: Seconds between refreshes of the worker list.
    WORKERS_INTERVAL_S = 0.5

    def __init__(self, client: Any, todo: Sequence[Unit], recorder: _Recorder) -> None:
        self.client = client
        self.recorder = recorder
        self.distributed = _distributed()
        self.token = uuid.uuid4().hex[:10]
        self.groups = _by_feeder(todo)
        # per feeder: scenario -> its units not yet placed, in plan order
        self.backlog: list[dict[int, deque[Unit]]] = []
        for _, units in self.groups:
            by_scenario: dict[int, deque[Unit]] = {}
            for unit in units:
                by_scenario.setdefault(unit.scenario, deque()).append(unit)
            self.backlog.append(by_scenario)
        self.group_of = {ref: g for g, (ref, _) in enumerate(self.groups)}
        self.unplaced = [len(units) for _, units in self.groups]
        self.unfinished = list(self.unplaced)
        self.loads: dict[int, Any] = {}  # feeder -> its warm-up future (until its units are done)
        self.holders: list[set[str]] = [set() for _ in self.groups]  # workers given the feeder
        self.loaded: set[int] = set()  # warm-up finished (or failed)
        self.broken: set[int] = set()  # warm-up failed outright: units run without the feeder
        self.retried: set[str] = set()
        self.tasks: dict[Any, tuple[int, Unit | None, str]] = {}  # future -> feeder, unit, worker
        self.inflight: dict[str, int] = {}
        self.seconds: dict[tuple[int, int], list[float]] = {}  # (feeder, scenario) -> [sum, n]
        self.longest_mean: dict[int, float] = {}  # feeder -> longest mean over its scenarios
        self.completed = self.distributed.as_completed(loop=client.loop)
        self._workers: dict[str, int] = {}
        self._workers_at = -math.inf

    def run(self) -> None:
        try:
            while True:
                self.fill()
                if not self.tasks:  # nothing in flight, nothing left to place
                    break
                for future in self.completed:
                    self.done(future)
                    self.fill()
        finally:
            leftover = [*self.tasks, *self.loads.values()]
            if leftover:
                self.client.cancel(leftover)

    # ----------------------------------------------------------------- placing
    def workers(self) -> dict[str, int]:
        """Worker address -> threads (refreshed every :attr:`WORKERS_INTERVAL_S`)."""
        now = time.monotonic()
        if now - self._workers_at > self.WORKERS_INTERVAL_S or not self._workers:
            workers = {str(k): max(int(v), 1) for k, v in self.client.nthreads().items()}
            if not workers:
                self.client.wait_for_workers(1)
                workers = {str(k): max(int(v), 1) for k, v in self.client.nthreads().items()}
            self._workers, self._workers_at = workers, now
        return self._workers

    def fill(self) -> None:
        """Give every worker's free slots a task."""
        workers = self.workers()
        threads = sum(workers.values())
        while True:
            extra = 1 if sum(self.unplaced) > threads else 0
            free = {w: n + extra - self.inflight.get(w, 0) for w, n in workers.items()}
            if not free:
                return
            worker = max(sorted(free), key=lambda w: free[w])
            if free[worker] <= 0 or not self.place(worker):
                return

    def place(self, worker: str) -> bool:
        """Submit the next task for ``worker``; False when there is none.

        In order: a unit of a feeder loaded and held by ``worker``; a warm-up of a feeder
        not yet loaded anywhere (it has to be loaded once anyway); a unit of a feeder
        loaded on another worker (Dask sends the feeder here); a unit of a feeder still
        loading (it waits). Among units, the longest expected first.
        """
        left = [g for g in range(len(self.groups)) if self.unplaced[g]]
        if not left:
            return False
        ready = [g for g in left if g in self.loaded]
        held = [g for g in ready if worker in self.holders[g]]
        if held:
            self.submit_unit(self.longest(held), worker)
            return True
        unopened = [g for g in left if g not in self.loads]
        if unopened:
            self.submit_load(unopened[0], worker)
            return True
        # a feeder loaded elsewhere, else one still loading (preferring those held here)
        waiting = ready or left
        mine = [g for g in waiting if worker in self.holders[g]]
        self.submit_unit(self.longest(mine or waiting), worker)
        return True

    def longest(self, groups: Iterable[int]) -> Unit:
        """The next unit with the longest expected run time among ``groups``'s units."""
        best: tuple[float, int] | None = None
        chosen: tuple[int, int] = (-1, -1)
        for g in groups:
            for scenario, units in self.backlog[g].items():
                if not units:
                    continue
                key = (self.expected_s(g, scenario), -units[0].index)
                if best is None or key > best:
                    best, chosen = key, (g, scenario)
        g, scenario = chosen
        self.unplaced[g] -= 1
        return self.backlog[g][scenario].popleft()

    def expected_s(self, group: int, scenario: int) -> float:
        """Expected run time of a unit [s] (see the class docstring)."""
        timed = self.seconds.get((group, scenario))
        if timed:
            return timed[0] / timed[1]
        return self.longest_mean.get(group, math.inf)

    def submit_load(self, group: int, worker: str) -> None:
        future = self.client.submit(
            warm_feeder,
            self.groups[group][0],
            key=f"gridplan-feeder-{_letters(group)}-{self.token}",
            pure=False,
            workers=[worker],
            allow_other_workers=True,
        )
        self.loads[group] = future
        self._track(future, group, None, worker)

    def submit_unit(self, unit: Unit, worker: str) -> None:
        group = self.group_of[unit.feeder_ref]
        feeder = None if group in self.broken else self.loads.get(group)
        future = self.client.submit(
            run_unit,
            feeder,
            UnitTask(unit.unit_id, unit.config),
            # one key prefix per feeder: Dask estimates unit durations per prefix
            key=f"gridplan-unit-{_letters(group)}-{unit.index}-{self.token}",
            pure=False,
            workers=[worker],
            allow_other_workers=True,
        )
        self._track(future, group, unit, worker)

    def _track(self, future: Any, group: int, unit: Unit | None, worker: str) -> None:
        self.tasks[future] = (group, unit, worker)
        self.holders[group].add(worker)
        self.inflight[worker] = self.inflight.get(worker, 0) + 1
        self.completed.add(future)

    # ----------------------------------------------------------------- completing
    def done(self, future: Any) -> None:
        group, unit, worker = self.tasks.pop(future)
        self.inflight[worker] -= 1
        if unit is None:  # a warm-up: its result (the feeder) stays on the worker
            self.loaded.add(group)
            if future.status != "finished":
                log.debug("feeder %s: warm-up %s", self.groups[group][0], future.status)
                self.broken.add(group)
            return
        try:
            outcome = future.result()
        except Exception as exc:  # the task itself failed (e.g. its worker kept dying)
            if group in self.broken and unit.unit_id not in self.retried:
                # it waited on a warm-up that failed: run it again, loading the feeder itself
                self.retried.add(unit.unit_id)
                self.backlog[group].setdefault(unit.scenario, deque()).appendleft(unit)
                self.unplaced[group] += 1
                future.release()
                return
            outcome = _lost(unit, exc)
        future.release()
        duration = outcome.get("duration_s")
        if isinstance(duration, int | float) and math.isfinite(duration):
            timed = self.seconds.setdefault((group, unit.scenario), [0.0, 0])
            timed[0] += float(duration)
            timed[1] += 1
            self.longest_mean[group] = max(
                total / n for (g, _), (total, n) in self.seconds.items() if g == group
            )
        self.unfinished[group] -= 1
        if self.unfinished[group] == 0 and group in self.loads:
            self.loads.pop(group).release()
        self.recorder.record(unit, outcome)


def _letters(i: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'ba': a Dask key word that ``key_split`` keeps."""
    word = ""
    while True:
        i, r = divmod(i, 26)
        word = chr(ord("a") + r) + word
        if i == 0:
            return word


def _by_feeder(units: Iterable[Unit]) -> list[tuple[str, list[Unit]]]:
    groups: dict[str, list[Unit]] = {}
    for unit in units:
        groups.setdefault(unit.feeder_ref, []).append(unit)
    return list(groups.items())


def _lost(unit: Unit, exc: BaseException) -> dict[str, Any]:
    """Outcome of a unit whose task failed outside the study (e.g. its worker kept dying)."""
    name = type(exc).__name__
    error = _one_line(exc)
    if name == "KilledWorker":
        error = (
            f"KilledWorker: the worker running this unit died repeatedly (out of memory or a "
            f"crash in native code?): {exc}"
        )
    now = _now()
    return {
        "unit_id": unit.unit_id,
        "status": "failed",
        "error": " ".join(error.split())[:500],
        "error_type": name,
        "traceback": "".join(traceback.format_exception(exc, limit=20)),
        "started_at": None,
        "finished_at": now,
        "duration_s": None,
        "worker": None,
        "versions": package_versions(),
        "summary": None,
        "assets": None,
    }
