"""The workspace's embedded SQLite stores (MLflow's tracking and registry, Prefect's API): checked
before use, backed up after every run, restored on request.

A damaged or emptied ``mlflow.db`` would otherwise be re-created by MLflow without a word: version
numbers start again at 1 and the champion is gone. So a store that fails SQLite's own check, or
is empty in a workspace that has run before, is refused, naming the file and ``melforge restore``.
Backups use SQLite's online backup API (a consistent copy even while another connection writes,
WAL included), are written to a temp name and renamed, and rotate (the newest ``KEEP`` per store).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from components.provenance import file_sha256
from components.settings import ProjectPaths
from components.storage import atomic_path

KEEP = 5
BACKUP_DIR = "backups"


class StoreDamaged(RuntimeError):
    """A store is unreadable, fails its integrity check, or was emptied; the message says what to do."""


@dataclass(frozen=True)
class Store:
    name: str
    path: Path


def stores(paths: ProjectPaths) -> list[Store]:
    return [Store("mlflow", paths.mlflow_db), Store("prefect", paths.state / "prefect" / "prefect.db")]


def backup_dir(paths: ProjectPaths) -> Path:
    return paths.state / BACKUP_DIR


def backups(paths: ProjectPaths, store: str) -> list[Path]:
    """This store's backups, newest first (names carry a sortable UTC time)."""
    return sorted(backup_dir(paths).glob(f"{store}-*.db"), reverse=True)


def problem(db: Path) -> str | None:
    """What is wrong with a SQLite file (None when it is sound, or absent)."""
    if not db.exists():
        return None
    if db.stat().st_size == 0:
        return "is empty (0 bytes)"
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            found = [row[0] for row in con.execute("PRAGMA quick_check").fetchall()]
            tables = con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return f"is not a readable SQLite database ({exc})"
    if found != ["ok"]:
        return "fails SQLite's integrity check (" + "; ".join(found[:3]) + ")"
    if tables == 0:
        return "holds no tables"
    return None


def _has_run_before(paths: ProjectPaths, store: str) -> str | None:
    """Evidence, from this workspace's own records, that the store held something: every `melforge
    run` leaves a backup of it. (Trained models are no evidence: plain `dvc repro` trains without
    ever touching the tracking store.)"""
    found = backups(paths, store)
    return f"{len(found)} backup(s) of it exist in {backup_dir(paths)}" if found else None


def check(paths: ProjectPaths, names: tuple[str, ...] = ("mlflow", "prefect")) -> None:
    """Refuse a damaged store, and an empty or missing one in a workspace that has run before."""
    for store in stores(paths):
        if store.name not in names:
            continue
        trouble = problem(store.path)
        evidence = _has_run_before(paths, store.name)
        empty = trouble in ("is empty (0 bytes)", "holds no tables")
        if (trouble is None and store.path.exists()) or ((trouble is None or empty) and evidence is None):
            continue  # sound, or a new workspace whose store the tool is about to create
        trouble = trouble or "is missing"
        how = ("`melforge restore` brings back the newest sound backup" if backups(paths, store.name) else
               "there is no backup to restore; move the file aside to start a new, empty store")
        raise StoreDamaged(f"{store.path} ({store.name} store) {trouble}" +
                           (f", but this workspace has run before ({evidence})" if evidence else "") +
                           f"; refusing to go on, which would silently start a new store: {how}")


def _copy(source: Path, target: Path) -> None:
    """SQLite online backup of ``source`` into ``target`` (temp file + rename)."""
    with atomic_path(target) as tmp:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()


def back_up(paths: ProjectPaths) -> list[Path]:
    """Back up every sound store whose content differs from its newest backup; keep the newest KEEP.
    Returns the new files. (Content, not mtime: opening a WAL database touches its -shm file.)"""
    written = []
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{time.time_ns() % 1_000_000_000:09d}"
    for store in stores(paths):
        if not store.path.is_file() or problem(store.path) is not None:
            continue
        newest = backups(paths, store.name)
        target = backup_dir(paths) / f"{store.name}-{stamp}.db"
        _copy(store.path, target)
        if newest and file_sha256(newest[0]) == file_sha256(target):
            target.unlink()  # the same content as the newest backup
            continue
        written.append(target)
        for old in backups(paths, store.name)[KEEP:]:
            old.unlink(missing_ok=True)
    return written


def _side_files(db: Path) -> list[Path]:
    return [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def restore(paths: ProjectPaths, store: str = "mlflow", backup: Path | None = None) -> tuple[Path, Path | None]:
    """Put a backup (the newest sound one unless named) in place of the store. The current file and its
    WAL/SHM side files are kept beside it as ``<name>.damaged-<time>`` (a stale WAL must never be
    replayed onto the restored file). Returns (the backup used, where the old file went or None)."""
    target = next((s.path for s in stores(paths) if s.name == store), None)
    if target is None:
        raise StoreDamaged(f"unknown store {store!r}; stores: {', '.join(s.name for s in stores(paths))}")
    candidates = [backup] if backup is not None else backups(paths, store)
    if not candidates:
        raise StoreDamaged(f"no backup of the {store} store in {backup_dir(paths)}; nothing to restore")
    chosen = next((c for c in candidates if c.is_file() and problem(c) is None), None)
    if chosen is None:
        raise StoreDamaged(f"{backup if backup is not None else 'no backup in ' + str(backup_dir(paths))} "
                           "is not a sound SQLite store; nothing restored")
    staged = target.with_name(f".{target.name}.restore.tmp")
    _copy(chosen, staged)
    kept = None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if target.exists():
        kept = target.with_name(f"{target.name}.damaged-{stamp}")
        os.replace(target, kept)
    for side in _side_files(target):
        if side.exists():
            os.replace(side, side.with_name(f"{side.name}.damaged-{stamp}"))
    os.replace(staged, target)
    return chosen, kept
