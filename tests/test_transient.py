"""Which failures the flow retries: decided by exception type anywhere in the cause chain, never by message."""

from __future__ import annotations

import pytest

from components.transient import TransientError, is_transient


class _S3Error(Exception):
    def __init__(self, status: int, code: str = "") -> None:
        super().__init__(f"{status} {code}")
        self.response = {"ResponseMetadata": {"HTTPStatusCode": status}, "Error": {"Code": code}}


def _raised_from(cause: BaseException) -> RuntimeError:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("stage failed") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("exc", [ConnectionResetError(), TransientError("bucket unreachable"), _S3Error(503),
                                 _S3Error(429), _S3Error(400, "SlowDown"), _raised_from(ConnectionRefusedError())])
def test_unreachable_remotes_and_retry_answers_are_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [TimeoutError("stage time limit"), _S3Error(403, "AccessDenied"), _S3Error(404),
                                 ValueError("connection reset by peer"), _raised_from(KeyError("x"))])
def test_answers_that_say_no_and_messages_that_merely_mention_the_network_are_not(exc):
    assert not is_transient(exc)


def test_botocore_s_connection_errors_count_by_type():
    from botocore.exceptions import EndpointConnectionError

    assert is_transient(_raised_from(EndpointConnectionError(endpoint_url="http://127.0.0.1:1")))
