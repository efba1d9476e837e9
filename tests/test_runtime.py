"""Each shortcut in components/runtime.py, checked against the installed tools: when Prefect, MLflow
or CPython change the detail a shortcut rests on, these fail loudly (the shortcut would otherwise
go on silently costing seconds, or leave processes behind)."""

from __future__ import annotations

import inspect
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from components.runtime import PREFECT_SERVER_APP, PREFECT_SERVER_ENV, initialize_mlflow_tables

ROOT = Path(__file__).resolve().parents[1]


def test_the_early_prefect_server_is_the_one_prefect_starts_itself():
    from prefect.server.api.server import SubprocessASGIServer

    source = inspect.getsource(SubprocessASGIServer._run_uvicorn_command)
    for key, value in PREFECT_SERVER_ENV.items():
        assert f'"{key}": "{value}"' in source, f"Prefect no longer sets {key}={value} for its temporary server"
    assert PREFECT_SERVER_APP.split(":")[0] in source and PREFECT_SERVER_APP.split(":")[1] in source


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_child_asked_to_exit_with_its_parent_does(tmp_path):
    """The parent starts a child with exit_with_parent(), prints its pid and is SIGKILLed: the
    kernel must then SIGTERM the child."""
    parent = textwrap.dedent("""
        import subprocess, sys, time
        from components.runtime import exit_with_parent
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=exit_with_parent())
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(child, 9)
    pytest.fail("the child outlived its SIGKILLed parent")


def test_mlflow_still_initialises_a_new_store_with_the_step_melforge_runs_once(tmp_path):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    assert "_initialize_tables" in inspect.getsource(SqlAlchemyStore.__init__), \
        "MLflow's store no longer creates its tables with _initialize_tables; re-check runtime.initialize_mlflow_tables"
    db = tmp_path / "mlflow.db"
    assert initialize_mlflow_tables(db)
    tables = {row[0] for row in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")}
    assert {"experiments", "runs", "metrics", "params", "registered_models", "alembic_version"} <= tables
    store = SqlAlchemyStore(f"sqlite:///{db}", str(tmp_path / "artifacts"))  # opens without migrating again
    assert store.get_experiment("0").name == "Default"
    store.engine.dispose()


def test_exit_now_joins_threads_runs_atexit_handlers_and_flushes(tmp_path):
    script = textwrap.dedent(f"""
        import atexit, threading, time
        from pathlib import Path
        from components.runtime import exit_now
        atexit.register(lambda: Path({str(tmp_path / "atexit")!r}).write_text("ran"))
        threading.Thread(target=lambda: (time.sleep(0.3), Path({str(tmp_path / "thread")!r}).write_text("done"))).start()
        print("unflushed output", end="")
        exit_now(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and proc.stdout == "unflushed output"
    assert (tmp_path / "atexit").read_text() == "ran" and (tmp_path / "thread").read_text() == "done"
