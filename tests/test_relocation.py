"""A workspace copied to another folder, the original deleted: its MLflow store is re-rooted on
open, so runs write into the copy and registered models load from it (a real SQLite store)."""

from __future__ import annotations

import shutil

import mlflow

from components import tracking
from components.settings import ProjectPaths


def test_a_copied_workspace_writes_and_reads_only_its_own_folder(tmp_path, monkeypatch):
    original = ProjectPaths(root=tmp_path / "original")
    original.state.mkdir(parents=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{original.mlflow_db}")
    tracking.setup_experiment("melforge", original)
    (tmp_path / "model.txt").write_text("weights")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "model.txt"), "model")
    client = mlflow.MlflowClient()
    client.create_registered_model("m")
    client.create_model_version("m", f"runs:/{run.info.run_id}/model", run.info.run_id)
    mlflow.set_tracking_uri(None)

    shutil.copytree(original.root, tmp_path / "copy")
    shutil.rmtree(original.root)
    copy = ProjectPaths(root=tmp_path / "copy")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{copy.mlflow_db}")
    tracking.setup_experiment("melforge", copy)
    assert mlflow.get_experiment_by_name("melforge").artifact_location == copy.mlflow_artifacts.as_uri()
    old = mlflow.get_run(run.info.run_id)
    assert old.info.artifact_uri.startswith(copy.root.as_uri())
    got = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model/model.txt", dst_path=str(tmp_path / "dl"))
    assert open(got).read() == "weights"
    registered = mlflow.artifacts.download_artifacts("models:/m/1", dst_path=str(tmp_path / "registered"))
    assert open(f"{registered}/model.txt").read() == "weights"
    with mlflow.start_run() as new:
        mlflow.log_artifact(str(tmp_path / "model.txt"), "model")
    assert new.info.artifact_uri.startswith(copy.mlflow_artifacts.as_uri())
    assert not original.root.exists()  # nothing was written back into the deleted folder
    assert tracking.reroot_local_store(copy, mlflow.get_experiment_by_name("melforge").artifact_location) is False
    mlflow.set_tracking_uri(None)
