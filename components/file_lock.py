"""An exclusive ``flock`` on a file, waited for up to a deadline; the kernel frees it when its holder
dies (``kill -9``, OOM), so no lock is ever left behind."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, *, wait_s: float, busy: Callable[[], Exception], poll_s: float = 0.2) -> Iterator[None]:
    """Hold ``path`` (created if needed) for the block; raise ``busy()`` when ``wait_s`` runs out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy() from None
                time.sleep(poll_s)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
