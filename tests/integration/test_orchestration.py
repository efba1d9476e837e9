"""Orchestration guarantees: one pipeline per workspace, stage timeouts that really stop training,
and a failed run that leaves champion alone and resumes from the last completed stage."""

from __future__ import annotations

import mlflow
import psutil
import pytest

pytestmark = pytest.mark.integration


def _stage_processes(project, stage: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if f"stage {stage}" in cmd and proc.info["cwd"] == str(project):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_a_second_pipeline_in_the_same_workspace_waits_then_gives_up(project, prefect_server, mlflow_store):
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    from components.settings import project_paths
    from flows.pipeline import melforge_pipeline, workspace_limit_name

    name = workspace_limit_name(project_paths(project))
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    with concurrency(name, occupy=1):  # "another pipeline" holds the workspace
        with pytest.raises(TimeoutError, match="another melforge pipeline"):
            melforge_pipeline(root=str(project), overrides=["orchestration.workspace_wait_minutes=0.05"])
    assert not (project / "data" / "clips").exists()  # nothing ran


def test_a_stage_timeout_kills_training_and_a_rerun_continues(project, prefect_server, mlflow_store):
    from flows.pipeline import melforge_pipeline

    slow = ["train.steps=100000", "orchestration.stage_timeout_minutes={default: 30, train: 0.3}",
            "orchestration.retries=0"]
    with pytest.raises(Exception):
        melforge_pipeline(root=str(project), overrides=slow)
    assert list((project / ".melforge" / "runs").glob("teacher-*")), "training never started"
    assert not _stage_processes(project, "train"), "the training subprocess outlived the timeout"
    assert not (project / "models" / "teacher").exists()  # no half-written model
    client = mlflow.MlflowClient(mlflow_store)
    runs = client.search_runs([client.get_experiment_by_name("melforge").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FAILED"
    assert not client.search_registered_models()  # nothing registered, no champion moved

    # the scheduled retraining flow sees an unfinished pipeline (same data) and completes it
    from components.config import resolve_params
    from flows.retrain import melforge_retrain

    resolve_params(project / "params.yaml", overrides=["train.steps=12"])
    retrain = melforge_retrain(root=str(project))
    assert retrain["retrained"] is True and retrain["reason"].startswith("pipeline incomplete (train")
    summary = retrain["pipeline"]
    assert {"ingest", "validate", "features"} <= set(summary["stages_skipped"])  # continued after features
    assert "train" in summary["stages_run"] and summary["promoted"] is True
