"""The flow's DVC plumbing: which failures are retried, and one DVC run per workspace at a time."""

import threading
import time

from components.settings import ProjectPaths
from dvc.lock import LockError

from flows.dvc_runner import is_transient, workspace_lock


def test_lock_and_connection_failures_are_transient_and_others_are_not():
    assert is_transient(LockError("Unable to acquire lock. Most likely another DVC process is running"))
    assert is_transient(OSError("botocore: EndpointConnectionError: Could not connect to the endpoint URL"))
    assert not is_transient(ValueError("stage validate: validation failed on data/clips/manifest.parquet"))
    # a stage timeout is final, whatever its message says
    assert not is_transient(TimeoutError("Connection reset while the stage timed out"))


def test_workspace_lock_serialises_runs(tmp_path):
    paths = ProjectPaths(root=tmp_path)
    spans: list[tuple[float, float]] = []

    def hold() -> None:
        with workspace_lock(paths):
            start = time.monotonic()
            time.sleep(0.3)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert b_start >= a_end  # the second holder waited for the first
