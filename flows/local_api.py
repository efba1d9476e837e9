"""Prefect's local API for one `melforge run`: a temporary server started before anything else.

With no PREFECT_API_URL, Prefect starts a temporary API server (uvicorn running its server app,
UI off) on the first client call, after importing its server code into the calling process
(~2 s on 2 cores) and then waits for it (~6 s with a fresh database). melforge launches that same
server as its very first step, before importing Prefect at all, so the server's start-up overlaps
the pipeline's imports and the MLflow store's preparation; the flow then talks to it through
PREFECT_API_URL. A new workspace's database starts as a copy of a migrated template
(components.db_template) rather than replaying Prefect's migrations. The server belongs to this
run: it is stopped when the run ends, and on Linux it is also told to exit if this process dies
without cleaning up (kill -9).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from components.runtime import PREFECT_SERVER_APP, PREFECT_SERVER_ENV, exit_with_parent

PORT_IN_USE_EXIT = 3  # uvicorn's exit status when it cannot bind its port


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalAPI:
    """A temporary Prefect server process and its URL (``process`` is None when PREFECT_API_URL was
    set, in which case every method is a no-op)."""

    process: subprocess.Popen | None = None
    port: int = 0
    started_at: float = 0.0  # when the current process was spawned (monotonic clock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @classmethod
    def launch(cls) -> LocalAPI:
        """Start the server now unless PREFECT_API_URL is set in the environment."""
        if os.environ.get("PREFECT_API_URL"):
            return cls()
        api = cls()
        api._spawn()
        return api

    def _spawn(self) -> None:
        self.port = _free_port()
        command = [sys.executable, "-P", "-m", __name__, str(self.port)]  # -P: never import from the working directory
        # its own session: a terminal's Ctrl-C reaches the run, which stops the server last
        self.process = subprocess.Popen(command, env={**os.environ, **PREFECT_SERVER_ENV}, preexec_fn=exit_with_parent(),
                                        start_new_session=True)
        self.started_at = time.monotonic()

    def _wait_ready(self, timeout_s: float) -> None:
        while True:
            assert self.process is not None
            code = self.process.poll()
            if code == PORT_IN_USE_EXIT:  # another process took the port between probe and bind
                self._spawn()
                continue
            if code is not None:
                raise RuntimeError(f"the temporary Prefect API server exited with status {code} before it answered "
                                   f"on {self.url} (its errors are printed above)")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() - self.started_at > timeout_s:
                self.stop()
                raise RuntimeError(f"the temporary Prefect API server did not answer on {self.url} within {timeout_s:g} s "
                                   "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")
            time.sleep(0.1)

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Point Prefect at this server for the block (waits until it answers). If Prefect's own
        settings (a profile, prefect.toml) name an API or forbid a local one, the server is stopped
        unused and Prefect's settings apply."""
        if self.process is None:
            yield
            return
        from prefect.settings import (PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED,
                                      PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings)

        if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
            self.stop()
            yield
            return
        self._wait_ready(float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
        global _serving_url
        _serving_url = self.url
        try:
            with temporary_settings(updates={PREFECT_API_URL: self.url}):
                yield
        finally:
            _serving_url = None

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout_s``)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_serving_url: str | None = None  # the temporary server's API while LocalAPI.serving() is active


def uses_persistent_server() -> bool:
    """Whether Prefect talks to a server that outlives this run (PREFECT_API_URL names one that is
    not this run's temporary server): only such a server expires the leases of dead holders."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    return bool(url) and url != _serving_url


def flush_logs(timeout_s: float = 30.0) -> None:
    """Send the flow's remaining logs to the API now. At interpreter exit Prefect does this from
    ``logging.shutdown`` while holding the handler lock, where its log worker can block on that
    lock until a 5 s timeout (measured: every exit after a full pipeline run took 5 s)."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout_s)


def serve(port: int) -> None:
    """The server process: Prefect's API app under uvicorn, as Prefect runs its temporary server.
    A workspace without a database gets a copy of the machine's migrated template (see
    components.db_template) instead of replaying Prefect's migrations (~3.6 s)."""
    import prefect
    import uvicorn
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    from components.db_template import create_database, sqlite_file

    db = sqlite_file(PREFECT_API_DATABASE_CONNECTION_URL.value() or "")
    if db is not None:
        def migrate() -> None:
            from prefect.server.database import provide_database_interface

            async def upgrade() -> None:
                database = provide_database_interface()
                await database.create_db()  # Prefect's own start-up step: every migration
                await (await database.engine()).dispose()

            asyncio.run(upgrade())

        create_database(db, f"prefect-{prefect.__version__}", migrate)
    uvicorn.run(PREFECT_SERVER_APP, factory=True, host="127.0.0.1", port=port,
                log_level="error", lifespan="on")


@contextmanager
def console_logs_without_tracebacks(*, debug: bool) -> Iterator[None]:
    """Prefect's console lines for a failed task or flow run without their tracebacks (the run's
    failure is the one `error:` line at the end); the tracebacks still reach Prefect's API logs, and
    the screen with ``debug`` (melforge's --debug). Prefect configures its console handler from its
    own logging.yml, so the handler class's format is wrapped for the duration of the run."""
    from prefect.logging.handlers import PrefectConsoleHandler

    if debug:
        yield
        return
    original = PrefectConsoleHandler.format

    def one_line(self, record):
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return original(self, record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved

    PrefectConsoleHandler.format = one_line
    try:
        yield
    finally:
        PrefectConsoleHandler.format = original


if __name__ == "__main__":
    serve(int(sys.argv[1]))
