"""The flow's DVC plumbing: which failures are retried, and one DVC run per workspace at a time."""

import threading
import time

from components.settings import ProjectPaths
from dvc.lock import LockError

from flows.dvc_runner import is_transient, workspace_lock


def test_failures_are_classified_by_type_not_by_message():
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    from components.ingest.sources import SourceUnavailable

    assert is_transient(LockError("Unable to acquire lock. Most likely another DVC process is running"))
    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert is_transient(ReadTimeoutError(endpoint_url="http://127.0.0.1:9"))
    assert is_transient(ConnectionResetError("peer went away"))
    assert is_transient(SourceUnavailable("source 's3://b/p': S3 unreachable while trying to list the bucket"))
    try:  # DVC wraps a remote's failure: the cause chain is followed
        try:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        except EndpointConnectionError as cause:
            raise RuntimeError("failed to push data to the cloud") from cause
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
    throttled = ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")
    assert is_transient(throttled)
    denied = ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")
    assert not is_transient(denied)
    # a message that merely mentions the network is not a network failure
    assert not is_transient(OSError("botocore: EndpointConnectionError: Could not connect to the endpoint URL"))
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
