"""Which failures are worth retrying: decided by exception type, never by message text.

A remote that cannot be reached (no route, refused, reset, timed out, throttled, a 5xx answer) is
transient: the stage fails, the flow retries it with backoff, and nothing is recorded as final.
A per-object answer (403, 404) or bad content is not: it is quarantined with its reason.
"""

from __future__ import annotations

THROTTLE_CODES = {"Throttling", "ThrottlingException", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed",
                  "InternalError", "ServiceUnavailable"}


class TransientError(RuntimeError):
    """A failure to retry later (the message names what could not be reached)."""


def _connectivity_types() -> tuple[type[BaseException], ...]:
    # not TimeoutError itself: a stage's own time limit raises it, and must not be retried
    types: list[type[BaseException]] = [ConnectionError, TransientError]
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError, IncompleteReadError

        types += [BotoConnectionError, HTTPClientError, IncompleteReadError]
    except ImportError:
        pass
    try:
        from urllib3.exceptions import HTTPError as Urllib3Error

        types.append(Urllib3Error)
    except ImportError:
        pass
    return tuple(types)


def _server_side(exc: BaseException) -> bool:
    """An S3/HTTP error answer that says "try again" (5xx, throttling) rather than "no"."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return status >= 500 or status == 429 or response.get("Error", {}).get("Code") in THROTTLE_CODES


def is_connectivity_error(exc: BaseException) -> bool:
    """This exception itself: the remote could not be reached or asked to retry."""
    return isinstance(exc, _connectivity_types()) or _server_side(exc)


def is_transient(exc: BaseException) -> bool:
    """This exception or any cause it was raised from is a connectivity error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if is_connectivity_error(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
