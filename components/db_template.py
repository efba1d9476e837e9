"""New SQLite databases for Prefect and MLflow, copied from an empty, migrated template.

Both tools create their SQLite database by replaying every schema migration (Prefect ~3.6 s on
2 cores, MLflow ~0.7 s), and melforge keeps one database of each per workspace, so every new
workspace (a fresh clone, each integration test) paid that again. The first database a machine
builds for a given tool version is kept, empty, in the user cache; later workspaces start from a
copy of it. The tools still check the schema on open (and migrate it if it is behind), so a copy
is exactly what the migrations would have produced.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where templates live: $MELFORGE_CACHE_DIR, else $XDG_CACHE_HOME/melforge, else ~/.cache/melforge."""
    if os.environ.get("MELFORGE_CACHE_DIR"):
        return Path(os.environ["MELFORGE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "melforge"


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLAlchemy SQLite URL (``sqlite:///…``, ``sqlite+aiosqlite:///…``); None
    for any other database or an in-memory one."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+")[0] != "sqlite" or not rest or ":memory:" in rest or "mode=memory" in rest:
        return None
    return Path(rest.split("?")[0])


def _snapshot(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (the backup API, so WAL content is included)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def _scratch(path: Path) -> Path:
    """A private name next to ``path`` (created by open(), so with the usual permissions)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def template_path(name: str) -> Path:
    return cache_dir() / f"{name}.db"


def _is_sound(path: Path) -> bool:
    """True when ``path`` opens as a SQLite database that passes SQLite's quick check. Opened as
    immutable (a published template never changes): a plain read-only open of a WAL-mode database
    writes its -shm and -wal files beside it, in the user's cache, on every new workspace."""
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            return con.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        finally:
            con.close()
    except sqlite3.Error:
        return False


def copy_template(db: Path, name: str) -> bool:
    """Create ``db`` as a copy of template ``name`` if the template exists and ``db`` does not.
    The copy is linked into place only if the name is still free, so an existing database is
    never replaced. A damaged template is removed (with a warning naming it) instead of copied,
    so the tool migrates a new database and a sound template is saved again. Returns True when
    ``db`` was created here."""
    template = template_path(name)
    if db.exists() or not template.is_file():
        return False
    if not _is_sound(template):
        log.warning("database template %s is not a sound SQLite database; removed, %s is migrated instead", template, db)
        template.unlink(missing_ok=True)
        return False
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = _scratch(db)
    try:
        shutil.copyfile(template, tmp)
        os.link(tmp, db)
    except OSError:  # FileExistsError: another process created db meanwhile; or no hard links here
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def save_template(db: Path, name: str) -> None:
    """Keep a snapshot of ``db`` (just migrated, still empty) as template ``name``. Best effort:
    a cache that cannot be written only means the next workspace migrates again."""
    template = template_path(name)
    if template.is_file():
        return
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        tmp = _scratch(template)
        try:
            _snapshot(db, tmp)
            os.replace(tmp, template)  # concurrent writers each publish a complete file
        finally:
            tmp.unlink(missing_ok=True)
    except (OSError, sqlite3.Error) as exc:
        log.warning("could not keep a database template in %s: %s", template.parent, exc)


def create_database(db: Path, name: str, migrate: Callable[[], None]) -> None:
    """Make a missing ``db``: a copy of template ``name``, or else ``migrate()`` (which must create
    ``db`` with the tool's schema and nothing else) followed by saving it as the template."""
    if db.exists() or copy_template(db, name):
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    migrate()
    save_template(db, name)
