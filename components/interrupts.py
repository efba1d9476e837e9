"""Ctrl-C and SIGTERM as exceptions, and the short sections they must not cut in half.

A terminal's Ctrl-C (SIGINT) already raises KeyboardInterrupt; ``timeout``, systemd and container
runtimes send SIGTERM, whose default action would kill the process with no clean-up at all.
:func:`raise_on_signals` makes SIGTERM raise :class:`Interrupted` (a KeyboardInterrupt), so both
unwind the same way: the training child is stopped, runs are marked KILLED, locks are released.
:func:`deferred` holds either signal back while a record is being written (a DVC commit), then
delivers it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by a signal (SIGTERM; SIGINT raises KeyboardInterrupt itself)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signum)


def raise_on_signals() -> None:
    """From now on SIGINT raises KeyboardInterrupt and SIGTERM :class:`Interrupted` in the main
    thread. SIGINT is set explicitly: a process started in the background by a shell without job
    control (``cmd &`` in a script, some CI runners) inherits SIGINT ignored, and Python then
    installs no handler of its own, so ``kill -INT`` would do nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupted)


def exit_code(exc: BaseException) -> int:
    """The shell's convention for a process stopped by a signal: 128 + its number."""
    signum = getattr(exc, "signum", None) or getattr(exc, "signal", None) or signal.SIGINT
    return 128 + int(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """Run the block with SIGINT/SIGTERM held back, then deliver the last one that arrived.

    Only in the main thread (the only one Python delivers signals to); elsewhere a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending:
            os.kill(os.getpid(), pending[-1])  # now delivered to the handler that was in place
