"""The output folder's lock: one run writes a batch folder at a time; a killed run's lock
is taken over."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gridplan.batch.records import _now, _read_json
from gridplan.core.errors import GridplanError

__all__ = ["LOCK_FILE", "BatchLockedError", "output_lock"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the lock
#: Name of the lock file in a batch's output folder while a run writes there.
LOCK_FILE = "batch.lock"


class BatchLockedError(GridplanError):
    """Another batch run is writing the same output folder (its lock file is held)."""


def _process_started(pid: int) -> float | None:
    """Start time of process ``pid`` [s since the epoch]; ``None`` if unknown."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def _pid_alive(pid: int, started: float | None) -> bool:
    """Whether process ``pid`` on this host still runs (and is the one started at
    ``started``, when both that and the process's start time are known)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return True
    now_started = _process_started(pid)
    if started is not None and now_started is not None and abs(now_started - started) > 1.0:
        return False  # the pid was reused by a later process
    return True


@contextmanager
def output_lock(out: Path, batch: str = "") -> Iterator[Path]:
    """Hold the lock of the batch output folder ``out`` for the block.

    The lock is the file ``out/batch.lock``, created atomically (``O_CREAT | O_EXCL``)
    with the holder's pid, host, process start time and run start time. A lock held by a
    live process (or by any process on another host) raises :class:`BatchLockedError`,
    one line naming the folder and the lock file. A stale lock, whose process on this
    host is gone (killed, crashed), is taken over with a warning. The lock file is
    removed when the block ends, by an error or ``KeyboardInterrupt`` too (a kill leaves
    it behind, stale).

    Yields
    ------
    Path
        The lock file.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    token = uuid.uuid4().hex
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_started": _process_started(os.getpid()),
        "started_at": _now(),
        "batch": batch,
        "token": token,
    }
    for _ in range(5):  # a stale lock taken over by another run meanwhile: look again
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _take_over_stale(out, path)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(holder, fh)
            fh.write("\n")
        break
    else:
        raise BatchLockedError(
            f"output folder {out} is in use by another batch run (lock file {path} keeps "
            "changing hands); try again"
        )
    try:
        yield path
    finally:
        current = _read_json(path)
        if current is not None and current.get("token") == token:
            path.unlink(missing_ok=True)


def _take_over_stale(out: Path, path: Path) -> None:
    """Remove the lock at ``path`` if its holder is gone; else raise BatchLockedError."""
    holder = None
    for _ in range(10):  # a lock just created may not be written yet
        holder = _read_json(path)
        if holder is not None or not path.exists():
            break
        time.sleep(0.05)
    if holder is None and not path.exists():
        return  # released meanwhile
    here = socket.gethostname()
    if holder is None:
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return
        stale, who = age > 5.0, f"an unreadable lock written {age:.0f} s ago"
    else:
        pid, host = holder.get("pid"), holder.get("host")
        who = f"pid {pid} on {host}, started {holder.get('started_at')}"
        stale = (
            host == here
            and isinstance(pid, int)
            and not _pid_alive(pid, _float_or_none(holder.get("process_started")))
        )
    if not stale:
        remote = holder is not None and holder.get("host") != here
        hint = (
            "if that run is gone (another host: its process cannot be checked from here), "
            "delete the lock file"
            if remote
            else "wait for it to finish (or stop it)"
        )
        raise BatchLockedError(
            f"output folder {out} is in use by another batch run ({who}); lock file {path}: {hint}"
        )
    # Move the stale lock aside (atomic: of two runs taking it over, one moves it) and
    # check that what moved is the lock judged stale, not a new run's lock.
    aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = _read_json(aside)
    if holder is not None and (moved is None or moved.get("token") != holder.get("token")):
        try:  # a new run's lock: put it back
            os.link(aside, path)
        except FileExistsError:
            pass
        aside.unlink(missing_ok=True)
        return
    aside.unlink(missing_ok=True)
    log.warning(
        "taking over the stale lock %s of output folder %s (%s: that process is gone)",
        path,
        out,
        who,
    )


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
