"""Orchestration guarantees: one pipeline per workspace, stage timeouts that really stop training,
and a failed run that leaves champion alone and resumes from the last completed stage."""

from __future__ import annotations

import threading

import mlflow
import psutil
import pytest

pytestmark = pytest.mark.integration


class _StagePids:
    """Records the pid of every training child while it runs (from .melforge/stages/<stage>.pid)."""

    def __init__(self, project) -> None:
        self.folder, self.pids, self._stop = project / ".melforge" / "stages", set(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            for pid_file in self.folder.glob("*.pid"):
                try:
                    self.pids.add(int(pid_file.read_text()))
                except (OSError, ValueError):
                    continue

    def __enter__(self) -> "_StagePids":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def alive(self) -> list[int]:
        return [pid for pid in self.pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


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
    with _StagePids(project) as children, pytest.raises(Exception, match="timed out"):
        melforge_pipeline(root=str(project), overrides=slow)
    assert list((project / ".melforge" / "runs").glob("teacher-*")), "training never started"
    assert children.pids, "no training child process was seen"
    assert not children.alive(), "the training process outlived the timeout"
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
