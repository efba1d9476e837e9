"""A cheap fingerprint of every source (listing only, no decoding) for DVC to depend on.

DVC cannot see inside ``s3://`` prefixes or folders outside the workspace; the ``scan`` stage
writes what they hold (paths, sizes, modification times / ETags, built-in catalogue hashes) to
``data/sources.json``, so ingest re-runs exactly when a source changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.config import MelforgeConfig
from components.datasets import builtin_fingerprint
from components.ingest.sources import SourceError, list_s3, matches_include, s3_client, source_kind
from components.storage import atomic_write_json


def scan_sources(cfg: MelforgeConfig) -> dict[str, Any]:
    d = cfg.data
    listing: dict[str, Any] = {}
    for source in d.sources:
        kind = source_kind(source)
        if kind == "builtin":
            listing[source] = {"fingerprint": builtin_fingerprint(source.removeprefix("builtin:"), d)}
        elif kind == "local":
            root = Path(source).expanduser()
            if not root.is_dir():
                raise SourceError(f"source {source!r}: folder does not exist")
            files = {}
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root).as_posix()
                if path.is_file() and (rel == d.labels_csv or matches_include(rel, d.include)):
                    st = path.stat()
                    files[rel] = [st.st_size, st.st_mtime_ns]
            listing[source] = {"files": files}
        else:
            client = s3_client(d.s3_endpoint_url, timeout_s=d.s3_timeout_seconds, attempts=d.s3_attempts)
            objects = list_s3(client, source)  # an unreachable endpoint raises SourceUnavailable: retried
            listing[source] = {"objects": {o["Key"]: [o["Size"], o.get("ETag", "")] for o in objects}}
    return {"sources": listing, "include": d.include, "labels": d.labels}


def run_scan(cfg: MelforgeConfig, listing_path: Path) -> dict[str, Any]:
    """The scan stage: write every source's listing to ``listing_path`` (atomically)."""
    listing = scan_sources(cfg)
    atomic_write_json(listing_path, listing)
    return {"sources": len(listing["sources"])}
