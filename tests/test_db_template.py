"""New tool databases start from a migrated template: built once, copied after, never clobbering."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from components import db_template
from components.db_template import copy_template, create_database, sqlite_file


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MELFORGE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _migrator(db: Path, calls: list[Path]):
    def migrate() -> None:
        calls.append(db)
        with sqlite3.connect(db) as con:
            con.execute("create table alembic_version (version_num text)")
            con.execute("insert into alembic_version values ('head-1')")
    return migrate


def _tables(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("select * from alembic_version").fetchall()


def test_first_database_is_migrated_and_kept_later_ones_are_copies(tmp_path: Path, cache: Path) -> None:
    calls: list[Path] = []
    first, second = tmp_path / "a" / "tool.db", tmp_path / "b" / "tool.db"
    create_database(first, "tool-1.0", _migrator(first, calls))
    assert calls == [first] and (cache / "tool-1.0.db").is_file()
    create_database(second, "tool-1.0", _migrator(second, calls))
    assert calls == [first], "the second workspace must not migrate again"
    assert _tables(second) == [("head-1",)]
    assert not list(second.parent.glob(".*tmp")) and not list(cache.glob(".*tmp"))


def test_copying_a_wal_template_writes_nothing_beside_it(tmp_path: Path, cache: Path) -> None:
    """Tools keep their databases in WAL mode; reading the template must not leave -shm/-wal files in the cache."""
    first = tmp_path / "a" / "tool.db"

    def migrate() -> None:
        _migrator(first, [])()
        with sqlite3.connect(first) as con:
            con.execute("pragma journal_mode=wal")

    create_database(first, "tool-1.0", migrate)
    before = sorted(p.name for p in cache.iterdir())
    create_database(tmp_path / "b" / "tool.db", "tool-1.0", _migrator(tmp_path / "b" / "tool.db", []))
    assert sorted(p.name for p in cache.iterdir()) == before == ["tool-1.0.db"]
    assert _tables(tmp_path / "b" / "tool.db") == [("head-1",)]


def test_a_new_tool_version_gets_its_own_template(tmp_path: Path, cache: Path) -> None:
    calls: list[Path] = []
    create_database(tmp_path / "a.db", "tool-1.0", _migrator(tmp_path / "a.db", calls))
    create_database(tmp_path / "b.db", "tool-2.0", _migrator(tmp_path / "b.db", calls))
    assert len(calls) == 2 and sorted(p.name for p in cache.glob("*.db")) == ["tool-1.0.db", "tool-2.0.db"]


def test_an_existing_database_is_never_replaced(tmp_path: Path, cache: Path) -> None:
    calls: list[Path] = []
    create_database(tmp_path / "a.db", "tool-1.0", _migrator(tmp_path / "a.db", calls))
    existing = tmp_path / "mine.db"
    with sqlite3.connect(existing) as con:
        con.execute("create table runs (id integer)")
    assert copy_template(existing, "tool-1.0") is False
    create_database(existing, "tool-1.0", _migrator(existing, calls))
    with sqlite3.connect(existing) as con:
        assert [r[0] for r in con.execute("select name from sqlite_master where type='table'")] == ["runs"]


def test_a_damaged_template_is_replaced_not_copied(tmp_path: Path, cache: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    cache.mkdir()
    (cache / "tool-1.0.db").write_bytes(b"not a database")
    calls: list[Path] = []
    db = tmp_path / "tool.db"
    create_database(db, "tool-1.0", _migrator(db, calls))
    assert calls == [db] and _tables(db) == [("head-1",)]
    assert _tables(cache / "tool-1.0.db") == [("head-1",)], "a sound template is saved again"
    assert "tool-1.0.db is not a sound SQLite database" in caplog.text


def test_an_unwritable_cache_only_costs_the_migration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MELFORGE_CACHE_DIR", str(blocker / "cache"))
    calls: list[Path] = []
    db = tmp_path / "tool.db"
    create_database(db, "tool-1.0", _migrator(db, calls))
    assert calls == [db] and _tables(db) == [("head-1",)]


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:////work/x/mlflow.db", Path("/work/x/mlflow.db")),
    ("sqlite+aiosqlite:////home/u/.prefect/prefect.db", Path("/home/u/.prefect/prefect.db")),
    ("sqlite:///rel/m.db?timeout=5", Path("rel/m.db")),
    ("sqlite:///:memory:", None),
    ("sqlite+aiosqlite:///file::memory:?cache=shared", None),
    ("postgresql+asyncpg://u:p@db/prefect", None),
    ("http://127.0.0.1:5000", None),
])
def test_sqlite_file(url: str, expected: Path | None) -> None:
    assert sqlite_file(url) == expected


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MELFORGE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert db_template.cache_dir() == tmp_path / "melforge"


def test_a_second_mlflow_store_is_a_working_copy(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    import mlflow.store.db.utils as db_utils

    from components import tracking
    from components.settings import ProjectPaths

    migrations = []
    real = db_utils._initialize_tables
    monkeypatch.setattr(db_utils, "_initialize_tables", lambda engine: (migrations.append(engine.url), real(engine)))
    runs = []
    for name in ("a", "b"):
        paths = ProjectPaths(root=tmp_path / name)
        paths.state.mkdir(parents=True)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{paths.mlflow_db}")
        tracking.setup_experiment("melforge", paths)
        with mlflow.start_run() as run:
            mlflow.log_metric("x", 1.0)
        runs.append(mlflow.get_run(run.info.run_id))
    assert len(migrations) == 1, "the second workspace replayed MLflow's migrations"
    assert (cache / f"mlflow-{mlflow.__version__}.db").is_file()
    assert runs[1].data.metrics == {"x": 1.0}
    assert runs[1].info.artifact_uri.startswith((tmp_path / "b").as_uri())
    # MLflow's UI opens the experiment on its runs table, not the GenAI overview, and describes it
    experiment = mlflow.get_experiment_by_name("melforge")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "champion" in experiment.tags["mlflow.note.content"]
    mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, "mlflow.note.content", "mine")
    tracking.setup_experiment("melforge", paths)  # an operator's own description is kept
    assert mlflow.get_experiment_by_name("melforge").tags["mlflow.note.content"] == "mine"
    mlflow.set_tracking_uri(None)
