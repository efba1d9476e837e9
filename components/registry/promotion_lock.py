"""Who may move ``champion`` right now: a lock held only for the re-read and the alias write.

MLflow's ``set_registered_model_alias`` is an unconditional upsert, with no compare-and-set, so the
gate re-reads the champion under a lock and moves the alias only if it is still the one it scored
against. With the default SQLite tracking store every writer shares this host's file system, and an
``flock`` on a file beside the store is exact (the kernel frees it when a holder dies). A tracking
server shared across hosts needs a lock the hosts share: the flow adds the Prefect global
concurrency limit of a persistent Prefect server (flows/pipeline.py), which components cannot import.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from components.file_lock import file_lock


class PromotionBusy(TimeoutError):
    """Another process held the promotion lock for longer than the caller would wait."""


def sqlite_store(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, else None."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    path = unquote(urlparse(tracking_uri).path)
    return Path(path) if path else None


@contextmanager
def store_file_lock(tracking_uri: str, *, wait_s: float = 600.0) -> Iterator[None]:
    """``flock`` on ``<store>.promotion.lock`` for a SQLite store; nothing to hold for other stores."""
    db = sqlite_store(tracking_uri)
    if db is None:
        yield
        return
    path = db.with_name(db.name + ".promotion.lock")
    with file_lock(path, wait_s=wait_s, busy=lambda: PromotionBusy(
            f"another process held the promotion lock {path} for over {wait_s:g} s")):
        yield
