"""`melforge ui` prints deep links: the runs table, the latest pipeline run, the latest report and the
champion's version page, each only when it exists (a real SQLite MLflow store)."""

from __future__ import annotations

import mlflow

from components import tracking
from components.settings import ProjectPaths


def test_ui_links_point_at_what_exists(tmp_path, monkeypatch):
    paths = ProjectPaths(root=tmp_path)
    paths.state.mkdir(parents=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{paths.mlflow_db}")
    base = "http://127.0.0.1:5001"
    experiment_id = tracking.setup_experiment("melforge", paths)
    mode = "?workflowType=machine_learning"  # MLflow's model-training view, not its GenAI default
    assert tracking.ui_links(base, "melforge", "m") == [("runs", f"{base}/#/experiments/{experiment_id}/runs{mode}")]
    with mlflow.start_run(run_name="pipeline-demo-20261207-120000") as old:
        pass
    with mlflow.start_run(run_name="pipeline-demo-20261207-130000") as parent:
        with mlflow.start_run(run_name="evaluate", nested=True) as evaluate:
            (tmp_path / "report.html").write_text("<html></html>")
            mlflow.log_artifact(str(tmp_path / "report.html"), "evaluate")
        with mlflow.start_run(run_name="evaluate", nested=True):  # a skipped evaluation logs no report
            pass
        client = mlflow.MlflowClient()
        client.create_registered_model("m")
        client.create_model_version("m", f"runs:/{parent.info.run_id}/model", parent.info.run_id)
        client.set_registered_model_alias("m", "champion", "1")
    links = dict(tracking.ui_links(base, "melforge", "m"))
    home = f"{base}/#/experiments/{experiment_id}"
    assert links["latest pipeline run"] == f"{home}/runs/{parent.info.run_id}{mode}" != f"{home}/runs/{old.info.run_id}{mode}"
    assert links["latest report"] == f"{home}/runs/{evaluate.info.run_id}/artifacts/evaluate/report.html{mode}"
    assert links["champion (m/1)"] == f"{base}/#/models/m/versions/1{mode}"
    mlflow.set_tracking_uri(None)
