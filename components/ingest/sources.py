"""Where audio comes from: local folders, ``s3://bucket/prefix`` and ``builtin:<name>``.

A source lists *entries*; reading an entry may fail (unreadable file, S3 access denied, missing
key) and such failures become quarantine rows, never a crash. A source that itself cannot be
reached (missing folder, missing bucket, no permission to list) raises :class:`SourceError`.
"""

from __future__ import annotations

import csv
import fnmatch
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


class SourceError(RuntimeError):
    """A whole source is unusable; the message names it and says why."""


class EntryError(RuntimeError):
    """One entry could not be read; the message is the quarantine reason."""


@dataclass(frozen=True)
class SourceEntry:
    """One file of a source: where it is, how to read it, and the labels it carries."""

    source: str
    uri: str
    read: Callable[[], bytes]
    labels: dict[str, str] = field(default_factory=dict)


def source_kind(source: str) -> str:
    if source.startswith("builtin:"):
        return "builtin"
    if source.startswith("s3://"):
        return "s3"
    return "local"


def matches_include(relative: str, patterns: list[str]) -> bool:
    """Whether a source-relative path matches any ``data.include`` glob."""
    name = PurePosixPath(relative).name
    for pattern in patterns:
        # '**/*.wav' should also match a file at the top level
        if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(name, pattern.split("/")[-1]):
            return True
    return False


def _parse_labels_csv(text: str, where: str) -> dict[str, dict[str, str]]:
    """Sidecar CSV: a ``path`` (or ``file``) column relative to the source, plus label columns."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise SourceError(f"{where}: labels CSV is empty")
    key = next((c for c in ("path", "file", "filename") if c in reader.fieldnames), None)
    if key is None:
        raise SourceError(f"{where}: labels CSV needs a 'path' column; found columns {reader.fieldnames}")
    table: dict[str, dict[str, str]] = {}
    for row in reader:
        rel = (row.pop(key) or "").strip().lstrip("./")
        table[rel] = {k: (v or "").strip() for k, v in row.items() if k}
    return table


def _labels_for(relative: str, mode: str, table: dict[str, dict[str, str]] | None) -> dict[str, str]:
    if mode in ("csv", "auto") and table is not None:
        return dict(table.get(relative, {}))
    if mode in ("folder", "auto"):
        parent = PurePosixPath(relative).parent
        return {"label": parent.name} if str(parent) not in ("", ".") else {}
    return {}


def local_entries(source: str, *, include: list[str], label_mode: str, labels_csv: str) -> Iterator[SourceEntry]:
    root = Path(source).expanduser()
    if not root.exists():
        raise SourceError(f"source {source!r}: folder does not exist")
    if not root.is_dir():
        raise SourceError(f"source {source!r}: not a folder")
    table = None
    csv_path = root / labels_csv
    if label_mode in ("csv", "auto") and csv_path.is_file():
        table = _parse_labels_csv(csv_path.read_text(encoding="utf-8", errors="replace"), str(csv_path))
    elif label_mode == "csv":
        raise SourceError(f"source {source!r}: data.labels is 'csv' but {csv_path} does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())
    for path in files:
        relative = path.relative_to(root).as_posix()
        if relative == labels_csv or not matches_include(relative, include):
            continue
        yield SourceEntry(source=source, uri=str(path.absolute()), read=_file_reader(path),
                          labels=_labels_for(relative, label_mode, table))


def _file_reader(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise EntryError(f"unreadable: {exc.strerror or type(exc).__name__}") from None

    return read


def s3_client(endpoint_url: str | None):
    """A boto3 S3 client; endpoint from config, else boto3's own AWS_ENDPOINT_URL[_S3] variables."""
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None)


def _s3_error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))


def s3_entries(source: str, *, include: list[str], label_mode: str, labels_csv: str,
               endpoint_url: str | None) -> Iterator[SourceEntry]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    if not bucket:
        raise SourceError(f"source {source!r}: expected s3://bucket/prefix")
    client = s3_client(endpoint_url)
    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
    except ClientError as exc:
        raise SourceError(f"source {source!r}: cannot list bucket ({_s3_error_code(exc)}: {exc})") from None
    except BotoCoreError as exc:
        raise SourceError(f"source {source!r}: S3 endpoint unreachable ({exc})") from None
    base = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    table = None
    csv_key = base + labels_csv
    if label_mode in ("csv", "auto") and csv_key in keys:
        body = client.get_object(Bucket=bucket, Key=csv_key)["Body"].read().decode("utf-8", errors="replace")
        table = _parse_labels_csv(body, f"s3://{bucket}/{csv_key}")
    elif label_mode == "csv":
        raise SourceError(f"source {source!r}: data.labels is 'csv' but s3://{bucket}/{csv_key} does not exist")
    for key in sorted(keys):
        relative = key[len(base):] if key.startswith(base) else key
        if key.endswith("/") or relative == labels_csv or not matches_include(relative, include):
            continue
        yield SourceEntry(source=source, uri=f"s3://{bucket}/{key}", read=_s3_reader(client, bucket, key),
                          labels=_labels_for(relative, label_mode, table))


def _s3_reader(client, bucket: str, key: str) -> Callable[[], bytes]:
    from botocore.exceptions import BotoCoreError, ClientError

    def read() -> bytes:
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            code = _s3_error_code(exc)
            if code in ("AccessDenied", "403", "Forbidden"):
                raise EntryError(f"S3 access denied ({code})") from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise EntryError(f"S3 key missing ({code})") from None
            raise EntryError(f"S3 error {code}") from None
        except BotoCoreError as exc:
            raise EntryError(f"S3 read failed: {exc}") from None

    return read
