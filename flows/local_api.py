"""Prefect's temporary local API, started early so its start-up overlaps melforge's own.

With no PREFECT_API_URL, Prefect starts a temporary API server (a subprocess) on the first client
call and waits for it: ~6 s on 2 cores with a fresh database. Starting it on a thread before the
flow lets that happen while this process imports the pipeline and prepares MLflow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def start_in_background() -> Callable[[], None]:
    """Start the temporary server in the background when Prefect would use one; return a function
    that waits until it answers (call it before the first flow; it re-raises a start failure)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return lambda: None
    from prefect.server.api.server import SubprocessASGIServer

    failures: list[BaseException] = []

    def start() -> None:
        try:
            SubprocessASGIServer().start()  # the instance Prefect's client reuses (one per process)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=start, name="melforge-prefect-api", daemon=True)
    thread.start()

    def wait() -> None:
        thread.join()
        if failures:
            raise failures[0]
    return wait


def flush_logs(timeout_s: float = 30.0) -> None:
    """Send the flow's remaining logs to the API now. At interpreter exit Prefect does this from
    ``logging.shutdown`` while holding the handler lock, where its log worker can block on that
    lock until a 5 s timeout (measured: every exit after a full pipeline run took 5 s)."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout_s)

