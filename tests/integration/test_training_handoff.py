"""Training handed to another machine through a Prefect deployment; data and models travel only
through the DVC remote. The "GPU worker" is a second clone of the project; run_deployment is
replaced by a direct call of the deployment's flow (a real Prefect flow run in the harness)."""

from __future__ import annotations

import pytest

from support import run

pytestmark = pytest.mark.integration


def test_training_is_handed_to_a_deployment_and_the_models_come_back(project, prefect_server, mlflow_store,
                                                                      tmp_path, monkeypatch):
    import flows.pipeline as pipeline
    from flows.gpu import melforge_train_models

    worker = tmp_path / "worker"
    run(["git", "clone", "-q", str(project), str(worker)], tmp_path)
    calls = []

    def run_deployment(name, timeout, parameters):
        from prefect.client.orchestration import get_client

        calls.append(name)
        state = melforge_train_models(**parameters, root=str(worker), return_state=True)
        with get_client(sync_client=True) as client:
            return client.read_flow_run(state.state_details.flow_run_id)

    monkeypatch.setattr(pipeline, "run_deployment", run_deployment)
    summary = pipeline.melforge_pipeline(root=str(project),
                                         overrides=["orchestration.training_deployment=melforge-train-models/gpu"])
    assert calls == ["melforge-train-models/gpu"]
    assert {"train", "distill@student-2", "distill@student-1"} <= set(summary["stages_skipped"])  # adopted, not re-run
    assert "evaluate" in summary["stages_run"] and summary["promoted"] is True
    for model in ("teacher", "student-2", "student-1"):
        here, there = project / "models" / model / "model.pt", worker / "models" / model / "model.pt"
        assert here.read_bytes() == there.read_bytes()
    assert not (project / ".melforge" / "runs").exists() or not list((project / ".melforge" / "runs").glob("teacher-*"))

    # a second run: nothing stale, nothing handed off
    again = pipeline.melforge_pipeline(root=str(project))
    assert calls == ["melforge-train-models/gpu"] and "train" in again["stages_skipped"]
