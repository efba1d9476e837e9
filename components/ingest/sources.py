"""Where audio comes from: local folders, ``s3://bucket/prefix`` and ``builtin:<name>``.

A source lists *entries*; reading an entry may fail (unreadable file, S3 access denied, missing
key) and such failures become quarantine rows, never a crash. A source that itself is unusable
(missing folder, missing bucket, no permission to list) raises :class:`SourceError`; one that
cannot be reached right now (endpoint down, timeout) raises :class:`SourceUnavailable`, which is
transient: the stage fails without recording anything and is retried.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import os
import posixpath
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from components.transient import TransientError, is_connectivity_error


class SourceError(RuntimeError):
    """A whole source is unusable; the message names it and says why."""


class EntryError(RuntimeError):
    """One entry could not be read; the message is the quarantine reason."""


class SourceUnavailable(TransientError):
    """A source could not be reached (endpoint down, connection reset, timeout, 5xx): the stage
    fails and is retried; nothing read so far is recorded, so no object is lost to quarantine."""


@dataclass(frozen=True)
class SourceEntry:
    """One file of a source: where it is, how to read it, and the labels it carries."""

    source: str
    uri: str
    open: Callable[[], ContextManager[BinaryIO]]  # a seekable binary file, local or a spooled download
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
    """Sidecar CSV: a ``path`` (or ``file``) column relative to the source, plus label columns.
    Paths are normalised (``./a.wav`` and ``x/../a.wav`` are ``a.wav``); a row that leaves the
    source, names no file, or gives one file two different label sets is an error naming its line,
    never silently applied to another file or dropped."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise SourceError(f"{where}: labels CSV is empty")
    key = next((c for c in ("path", "file", "filename") if c in reader.fieldnames), None)
    if key is None:
        raise SourceError(f"{where}: labels CSV needs a 'path' column; found columns {reader.fieldnames}")
    table: dict[str, dict[str, str]] = {}
    first_line: dict[str, int] = {}
    problems = []
    for row in reader:
        line = reader.line_num
        raw = (row.pop(key) or "").strip()
        labels = {k: (v or "").strip() for k, v in row.items() if k}
        rel = posixpath.normpath(raw) if raw else ""
        problem = _row_problem(raw, rel, key, labels, table, first_line)
        if problem:
            problems.append(f"line {line}: {problem}")
        else:
            table[rel] = labels
            first_line.setdefault(rel, line)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise SourceError(f"{where}: {shown} (paths are relative to the folder holding the CSV)")
    return table


def _row_problem(raw: str, rel: str, key: str, labels: dict[str, str], table: dict[str, dict[str, str]],
                 first_line: dict[str, int]) -> str | None:
    """What is wrong with one row of a labels CSV (None: nothing)."""
    if not raw:
        return f"empty {key!r}"
    if raw.startswith("/") or rel == ".." or rel.startswith("../"):
        return f"{raw!r} is outside the folder of the CSV"
    if rel in table and table[rel] != labels:
        return f"{raw!r} is the file of line {first_line[rel]} with other labels"
    return None


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
    # everything but folders: a FIFO, device or socket is listed (and quarantined), never skipped unseen
    files = sorted(p for p in root.rglob("*") if p.is_symlink() or not p.is_dir())
    for path in files:
        relative = path.relative_to(root).as_posix()
        if relative == labels_csv or not matches_include(relative, include):
            continue
        try:
            relative.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes, kept by Python as surrogate escapes
            shown = os.fsencode(path.absolute()).decode("utf-8", errors="backslashreplace")
            yield SourceEntry(source=source, uri=shown, open=_refuse(
                "file name is not valid UTF-8 (shown with \\x escapes); rename it to store it"))
            continue
        yield SourceEntry(source=source, uri=str(path.absolute()), open=_file_opener(path),
                          labels=_labels_for(relative, label_mode, table))


def _refuse(reason: str) -> Callable[[], ContextManager[BinaryIO]]:
    @contextmanager
    def open_entry() -> Iterator[BinaryIO]:
        raise EntryError(reason)
        yield  # never reached: a generator, so the context manager raises on entry

    return open_entry


_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def _file_opener(path: Path) -> Callable[[], ContextManager[BinaryIO]]:
    """Open a regular file only. It is checked before opening (a socket cannot be opened) and again on
    the descriptor, opened without blocking: a FIFO cannot hang the stage and ``/dev/zero`` cannot
    fill memory, through symlinks too. The file is then read in blocks, never whole."""
    def refuse_special(mode: int) -> None:
        if not stat.S_ISREG(mode):
            via = f" (through the symlink to {os.readlink(path)})" if path.is_symlink() else ""
            raise EntryError(f"not a regular file: {_KINDS.get(stat.S_IFMT(mode), 'a special file')}{via}")

    @contextmanager
    def open_entry() -> Iterator[BinaryIO]:
        try:
            refuse_special(os.stat(path).st_mode)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if path.is_symlink() and not path.exists():
                raise EntryError(f"broken symlink to {os.readlink(path)}") from None
            raise EntryError(f"unreadable: {exc.strerror or type(exc).__name__}") from None
        with os.fdopen(fd, "rb") as fh:
            refuse_special(os.fstat(fd).st_mode)  # swapped for something else since the check
            yield fh

    return open_entry


def s3_client(endpoint_url: str | None, *, timeout_s: float, attempts: int):
    """A boto3 S3 client whose every call is bounded: ``timeout_s`` to connect and per read,
    ``attempts`` tries (botocore's standard retry mode, with backoff). Endpoint from config, else
    boto3's own AWS_ENDPOINT_URL[_S3] variables."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                    retries={"total_max_attempts": attempts, "mode": "standard"})
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)


def _s3_error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))


def s3_failure(source: str, action: str, exc: Exception) -> Exception:
    """The exception to raise for a failed S3 call on a whole source: transient when the endpoint
    could not be reached (retried later), final otherwise (no bucket, no permission, no credentials)."""
    if is_connectivity_error(exc):
        return SourceUnavailable(f"source {source!r}: S3 unreachable while trying to {action} ({type(exc).__name__}: {exc}); "
                                 "nothing was recorded, the stage is retried")
    return SourceError(f"source {source!r}: cannot {action} ({_s3_error_code(exc)}: {exc})")


def list_s3(client, source: str, on_page: Callable[[int], None] | None = None) -> list[dict]:
    """Every object under an ``s3://bucket/prefix`` source (``on_page(objects so far)`` after each page)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    if not bucket:
        raise SourceError(f"source {source!r}: expected s3://bucket/prefix")
    objects: list[dict] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            objects.extend(page.get("Contents", []))
            if on_page is not None:
                on_page(len(objects))
    except (ClientError, BotoCoreError) as exc:
        raise s3_failure(source, "list the bucket", exc) from exc
    return objects


def s3_entries(source: str, *, include: list[str], label_mode: str, labels_csv: str, endpoint_url: str | None,
               timeout_s: float, attempts: int,
               on_page: Callable[[int], None] | None = None) -> Iterator[SourceEntry]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    client = s3_client(endpoint_url, timeout_s=timeout_s, attempts=attempts)
    keys = [obj["Key"] for obj in list_s3(client, source, on_page)]
    base = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    table = None
    csv_key = base + labels_csv
    if label_mode in ("csv", "auto") and csv_key in keys:
        try:
            body = client.get_object(Bucket=bucket, Key=csv_key)["Body"].read().decode("utf-8", errors="replace")
        except (ClientError, BotoCoreError) as exc:
            raise s3_failure(source, f"read s3://{bucket}/{csv_key}", exc) from exc
        table = _parse_labels_csv(body, f"s3://{bucket}/{csv_key}")
    elif label_mode == "csv":
        raise SourceError(f"source {source!r}: data.labels is 'csv' but s3://{bucket}/{csv_key} does not exist")
    for key in sorted(keys):
        relative = key[len(base):] if key.startswith(base) else key
        if key.endswith("/") or relative == labels_csv or not matches_include(relative, include):
            continue
        yield SourceEntry(source=source, uri=f"s3://{bucket}/{key}", open=_s3_opener(client, source, bucket, key),
                          labels=_labels_for(relative, label_mode, table))


def _s3_opener(client, source: str, bucket: str, key: str) -> Callable[[], ContextManager[BinaryIO]]:
    """Download one object into a temporary file, 1 MiB at a time (memory does not grow with its size).
    Only an answer about this object (403, 404) is a quarantine reason; an endpoint that cannot be
    reached, before or during the download, fails the whole stage as transient (SourceUnavailable)."""
    from botocore.exceptions import BotoCoreError, ClientError

    @contextmanager
    def open_entry() -> Iterator[BinaryIO]:
        with tempfile.TemporaryFile() as spool:
            try:
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
                for chunk in body.iter_chunks(1 << 20):
                    spool.write(chunk)
            except (ClientError, BotoCoreError) as exc:
                if is_connectivity_error(exc) or not isinstance(exc, ClientError):
                    # unreachable (transient), or no credentials / bad configuration: the whole source
                    raise s3_failure(source, f"read s3://{bucket}/{key}", exc) from exc
                code = _s3_error_code(exc)
                if code in ("AccessDenied", "403", "Forbidden"):
                    raise EntryError(f"S3 access denied ({code})") from None
                if code in ("NoSuchKey", "404", "NotFound"):
                    raise EntryError(f"S3 key missing ({code})") from None
                raise EntryError(f"S3 error {code}") from None
            spool.seek(0)
            yield spool

    return open_entry
