"""The temporary Prefect API that `melforge run` starts first: skipped when an API is configured,
and never outliving the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flows.local_api import LocalAPI

PARENT = """
import sys, time
from flows.local_api import LocalAPI
api = LocalAPI.launch()
print(api.process.pid, flush=True)
time.sleep(600)
"""


def test_a_configured_api_starts_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    api = LocalAPI.launch()
    assert api.process is None
    with api.serving():
        pass
    api.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie has exited
        return fh.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_the_server_exits_when_its_parent_is_killed(tmp_path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=env)
    server = int(parent.stdout.readline())
    assert _alive(server)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(server), "the Prefect server outlived the melforge process that started it"


FLOW = """
from prefect import flow
from flows.local_api import LocalAPI, flush_logs

@flow
def answer() -> int:
    return 42

api = LocalAPI.launch()
try:
    with api.serving():
        print(answer(), flush=True)
        flush_logs()
finally:
    api.stop()
"""


def test_a_second_workspace_serves_flows_from_the_template(tmp_path) -> None:
    """In fresh processes: the test session's own Prefect settings (a test harness API) would
    rightly make serving() defer to that API."""
    import prefect

    from components.db_template import template_path

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["MELFORGE_CACHE_DIR"] = str(tmp_path / "cache")
    for name in ("a", "b"):
        env["PREFECT_HOME"] = str(tmp_path / name)
        done = subprocess.run([sys.executable, "-c", FLOW], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and done.stdout.strip().endswith("42"), done.stdout + done.stderr
        assert (tmp_path / name / "prefect.db").is_file()
    env_template = tmp_path / "cache" / template_path(f"prefect-{prefect.__version__}").name
    assert env_template.is_file()
