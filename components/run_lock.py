"""One pipeline run per workspace, kept by a lock the kernel frees when its holder dies.

``fcntl.flock`` on ``.melforge/run.lock`` is held for a whole run. A ``kill -9``, an OOM kill or a
power cut releases it with the process, so the next run starts with no clean-up but one: the temp
files of atomic writes the dead run was making are removed when the lock is taken. The file also
says who holds it (pid, host, start, command), so a waiting run can tell the user at once and
again every minute. The lock is re-entrant within a process: the CLI takes it before starting
anything, and the flow (which also runs from deployments) takes it again at no cost.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from components.storage import remove_stale_temp_files

LOCK_FILE = "run.lock"
_held: dict[Path, int] = {}  # lock file -> nesting depth, for the locks this process holds
_guard = threading.Lock()


class WorkspaceBusy(TimeoutError):
    """Another run held the workspace for longer than the caller would wait."""


def describe_holder(record: dict) -> str:
    """'pid 123 on host h since 2026-12-02 12:00:03 UTC (4 min ago): melforge run' from a lock record."""
    if not record:
        return "a process that has not said who it is yet"
    started = record.get("started", 0.0)
    when = datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    ago = max(0.0, time.time() - started)
    age = f"{ago / 60:.0f} min ago" if ago >= 120 else f"{ago:.0f} s ago"
    return f"pid {record.get('pid')} on host {record.get('host')} since {when} ({age}): {record.get('command', '?')}"


def read_holder(path: Path) -> dict:
    """The record the holder wrote into the lock file ({} when there is none or it is half-written)."""
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


@contextmanager
def hold_workspace(state_dir: Path, *, wait_s: float, say: Callable[[str], None], every_s: float = 60.0,
                   poll_s: float = 0.5, temp_folders: Sequence[Path] = ()) -> Iterator[None]:
    """Hold ``state_dir/run.lock`` for the block, waiting up to ``wait_s`` for another run to end.

    While waiting, ``say`` is told who holds it at once and every ``every_s``. A record left by a
    holder that died (the kernel freed its lock, but it never emptied the file) is reported as
    taken over. Once held, stale temp files of killed atomic writes under ``state_dir`` and
    ``temp_folders`` are removed (and reported).
    Raises :class:`WorkspaceBusy` when the wait runs out.
    """
    path = (state_dir / LOCK_FILE).resolve()
    with _guard:
        if path in _held:
            _held[path] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _guard:
                _held[path] -= 1
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _acquire(fd, path, wait_s=wait_s, say=say, every_s=every_s, poll_s=poll_s)
        previous = read_holder(path)
        if previous:  # a clean release empties the file: this holder died (kill -9, OOM, power cut)
            say(f"took over the workspace from a run that ended without releasing it ({describe_holder(previous)})")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                  "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        removed = remove_stale_temp_files([state_dir, *temp_folders])
        if removed:
            say(f"removed {len(removed)} temp file(s) left by killed writes: " + ", ".join(
                str(p) for p in removed[:5]) + (" ..." if len(removed) > 5 else ""))
        with _guard:
            _held[path] = 1
        try:
            yield
        finally:
            with _guard:
                del _held[path]
            os.ftruncate(fd, 0)  # released cleanly: nothing to report as taken over
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _acquire(fd: int, path: Path, *, wait_s: float, say: Callable[[str], None], every_s: float, poll_s: float) -> None:
    deadline = time.monotonic() + wait_s
    next_say = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        now = time.monotonic()
        holder = describe_holder(read_holder(path))
        if now >= deadline:
            raise WorkspaceBusy(f"another melforge run holds this workspace ({holder}); gave up after "
                                f"{wait_s / 60:g} min (orchestration.workspace_wait_minutes); lock file {path}")
        if now >= next_say:
            say(f"waiting for the workspace: another melforge run holds it ({holder}); "
                f"waiting up to {max(0.0, deadline - now) / 60:.0f} more min")
            next_say = now + every_s
        time.sleep(min(poll_s, max(0.0, deadline - now)))
