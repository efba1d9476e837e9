"""Running DVC from a flow: one command at a time per workspace, output streamed and kept."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from components.settings import ProjectPaths

TRANSIENT_MARKERS = ("Unable to acquire lock", "LockError", "Connection reset", "ConnectTimeout",
                     "EndpointConnectionError", "Temporary failure", "timed out")


class DvcCommandFailed(RuntimeError):
    def __init__(self, args: list[str], code: int, output: str) -> None:
        self.transient = any(marker in output for marker in TRANSIENT_MARKERS)
        tail = "\n".join(output.strip().splitlines()[-25:])
        super().__init__(f"`dvc {' '.join(args)}` failed (exit {code}){' [transient]' if self.transient else ''}:\n{tail}")


@contextmanager
def workspace_lock(paths: ProjectPaths, timeout_s: float = 3600.0) -> Iterator[None]:
    """Serialise DVC work in one workspace (DVC itself refuses two concurrent repros)."""
    paths.state.mkdir(parents=True, exist_ok=True)
    with open(paths.state / "workspace.lock", "w") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another melforge run holds {paths.state / 'workspace.lock'}") from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def dvc(paths: ProjectPaths, *args: str, echo: bool = True) -> str:
    """Run ``dvc ARGS`` in the workspace with this interpreter's environment; return its output."""
    env = os.environ.copy()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # its own process group: a Prefect timeout or cancel kills DVC *and* the stage it runs
    proc = subprocess.Popen([sys.executable, "-m", "dvc", *args], cwd=paths.root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1, start_new_session=True)
    kept: deque[str] = deque(maxlen=400)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            kept.append(line)
            if echo:
                sys.stderr.write(line)
        code = proc.wait()
    finally:
        if proc.poll() is None:
            _stop_group(proc)
    output = "".join(kept)
    if code != 0:
        raise DvcCommandFailed(list(args), code, output)
    return output


def _stop_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the whole process group, SIGKILL what is left after ``grace_s``."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def stage_is_current(paths: ProjectPaths, stage: str) -> bool:
    """True when ``dvc status`` reports nothing to do for the stage itself."""
    out = dvc(paths, "status", "--json", stage, echo=False)
    start = out.find("{")
    return start >= 0 and not json.loads(out[start:])


def stale_stages(paths: ProjectPaths) -> set[str]:
    """Every stage ``dvc status`` reports as changed, in one call (one DVC start-up, not one per stage)."""
    out = dvc(paths, "status", "--json", echo=False)
    start = out.find("{")
    return set(json.loads(out[start:])) if start >= 0 else set()


def out_hash(paths: ProjectPaths, stage: str, out: str) -> str | None:
    """The md5 DVC recorded in dvc.lock for one output of a stage."""
    lock = paths.root / "dvc.lock"
    if not lock.is_file():
        return None
    data = yaml.safe_load(lock.read_text()) or {}
    for entry in data.get("stages", {}).get(stage, {}).get("outs", []):
        if entry.get("path") == out:
            return entry.get("md5")
    return None
