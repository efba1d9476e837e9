"""The embedded SQLite stores: a damaged or emptied registry is refused, never silently replaced, and
`melforge restore` brings back the last backup with the same champion."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from components import stores
from components.cli import app
from components.settings import ProjectPaths
from helpers import copy_project

runner = CliRunner()


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> ProjectPaths:
    copy_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    paths = ProjectPaths(root=tmp_path)
    paths.state.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{paths.mlflow_db}")  # the embedded store
    monkeypatch.setenv("PREFECT_HOME", str(paths.state / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return paths


def _registry_with_a_champion(paths: ProjectPaths) -> MlflowClient:
    client = MlflowClient(tracking_uri=f"sqlite:///{paths.mlflow_db}")
    run = client.create_run(client.create_experiment("e"))
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("m", "champion", "2")
    return client


@pytest.mark.parametrize("damage", ["empty", "half"])
def test_a_damaged_registry_is_refused_and_restore_brings_it_back_with_its_champion(workspace, damage):
    _registry_with_a_champion(workspace)
    assert [p.name.split("-")[0] for p in stores.back_up(workspace)] == ["mlflow"]
    assert stores.back_up(workspace) == []  # unchanged: no second copy
    db = workspace.mlflow_db
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.truncate(0 if damage == "empty" else size // 2)
    result = runner.invoke(app, ["data", "summary"])
    assert result.exit_code == 1
    assert f"error: {db} (mlflow store) " in result.output and "melforge restore" in result.output
    assert ("is empty (0 bytes), but this workspace has run before" in result.output if damage == "empty" else
            "malformed" in result.output or "integrity" in result.output)
    result = runner.invoke(app, ["restore"])
    assert result.exit_code == 0, result.output
    assert "restored the mlflow store" in result.output
    assert len(list(db.parent.glob("mlflow.db.damaged-*"))) == 1  # the damaged file is kept, not deleted
    # read in a fresh process: this one's MLflow keeps a pooled connection to the file that was moved aside
    read = subprocess.run([sys.executable, "-c", "import sys; from mlflow import MlflowClient; print(MlflowClient("
                           "tracking_uri=sys.argv[1]).get_model_version_by_alias('m', 'champion').version)",
                           f"sqlite:///{db}"], capture_output=True, text=True, check=True)
    assert read.stdout.strip() == "2"
    assert stores.problem(db) is None and runner.invoke(app, ["data", "summary"]).exit_code != 1


def test_a_new_workspace_may_start_an_empty_store_but_a_missing_one_after_runs_is_refused(workspace):
    stores.check(workspace)  # nothing yet: MLflow creates its store
    workspace.mlflow_db.touch()
    (workspace.models / "teacher").mkdir(parents=True)  # `dvc repro` trains without the tracking store
    stores.check(workspace)  # an empty file and no sign of earlier runs
    _registry_with_a_champion(workspace)
    stores.back_up(workspace)  # what every `melforge run` ends with
    workspace.mlflow_db.unlink()
    with pytest.raises(stores.StoreDamaged, match="is missing, but this workspace has run before"):
        stores.check(workspace)


def test_backups_rotate_and_restore_skips_a_damaged_backup(workspace):
    db = workspace.mlflow_db
    for i in range(stores.KEEP + 2):
        with sqlite3.connect(db) as con:
            con.execute(f"CREATE TABLE t{i} (x)")
        con.close()
        assert len(stores.back_up(workspace)) == 1
    kept = stores.backups(workspace, "mlflow")
    assert len(kept) == stores.KEEP
    kept[0].write_bytes(b"not a database")
    used, _ = stores.restore(workspace, "mlflow")
    assert used == kept[1]
    with pytest.raises(stores.StoreDamaged, match="not a sound SQLite store"):
        stores.restore(workspace, "mlflow", kept[0])
