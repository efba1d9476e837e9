"""Every start-up and shut-down shortcut melforge takes past a tool's public API, in one place.

They buy the orchestration-overhead targets (docs/benchmarks.md, "Orchestration overhead"), and
each rests on a detail a Prefect, MLflow or CPython
upgrade may change. ``tests/test_runtime.py`` checks each detail against the installed tools, so a
change fails the suite loudly instead of silently costing seconds or leaving processes behind:

- ``PREFECT_SERVER_ENV``: the variables Prefect itself sets for its temporary API server
  (``SubprocessASGIServer``), so the server melforge starts early is the one Prefect would start.
- :func:`exit_with_parent`: Linux ``prctl(PR_SET_PDEATHSIG)`` through ctypes, so that server dies
  with a ``kill -9``-ed run.
- :func:`initialize_mlflow_tables`: MLflow's own first-open step for a new SQLite store (every
  migration), run once per MLflow version to build the template that later stores copy.
- :func:`exit_now`: after the CLI's work and the atexit handlers, leave without tearing the
  interpreter down object by object (~1 s after a pipeline run).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

PREFECT_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
PREFECT_SERVER_APP = "prefect.server.api.server:create_app"  # uvicorn factory of Prefect's API
PR_SET_PDEATHSIG = 1


def exit_with_parent() -> Callable[[], None] | None:
    """On Linux, a function for a child (run between fork and exec, so prepared here) asking the
    kernel to SIGTERM it when its parent dies; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def mlflow_has_table_step() -> bool:
    """Whether this MLflow still has the first-open step :func:`initialize_mlflow_tables` runs;
    without it no template is made and the store creates itself, as usual, only slower."""
    try:
        from mlflow.store.db import utils
    except ImportError:
        return False
    return hasattr(utils, "_initialize_tables")


def initialize_mlflow_tables(db: Path) -> bool:
    """Create every MLflow table in the new SQLite file ``db`` as MLflow's own store does on first
    open. False (nothing done) when this MLflow no longer has that step."""
    if not mlflow_has_table_step():
        return False
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()
    return True


def exit_now(code: int) -> None:
    """Exit with ``code`` the way the interpreter would (threads joined, atexit handlers run, the
    output flushed), minus the object-by-object teardown. Falls back to SystemExit when this is not
    the CPython it knows."""
    shutdown_threads = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if shutdown_threads is None or run_exit_handlers is None:
        raise SystemExit(code)
    shutdown_threads()  # what the interpreter does first: stop thread pools, join non-daemon threads
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`melforge ... | head`)
            pass
    os._exit(code)
