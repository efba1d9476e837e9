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
    from components.params_file import resolve_params
    from flows.retrain import melforge_retrain

    # a generous timeout again: what is tested is the completion, not how fast a loaded machine trains 12 steps
    resolve_params(project / "params.yaml", overrides=["train.steps=12", "orchestration.stage_timeout_minutes={default: 30}"])
    retrain = melforge_retrain(root=str(project))
    assert retrain["retrained"] is True and retrain["reason"].startswith("pipeline incomplete (train")
    summary = retrain["pipeline"]
    assert {"ingest", "validate", "features"} <= set(summary["stages_skipped"])  # continued after features
    assert "train" in summary["stages_run"] and summary["promoted"] is True


HOLD_SLOT = """
import sys, time
from pathlib import Path
from components.settings import ProjectPaths
from flows.pipeline import prefect_workspace_slot
with prefect_workspace_slot(ProjectPaths(Path(sys.argv[1])), wait_s=10, lease_s=60):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_on_a_persistent_prefect_server_a_killed_holders_slot_expires_with_its_lease(project, tmp_path):
    """A persistent server (`prefect server start`, as `melforge services up` runs it) revokes the
    workspace slot of a holder that died once its lease runs out, so runs from deployments never
    wait for a dead one for good. (Local runs use the kernel-freed run lock instead.)"""
    import os
    import signal
    import subprocess
    import sys
    import time

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from components.settings import project_paths
    from flows.pipeline import prefect_workspace_slot, workspace_limit_name
    from helpers import wait_until_healthy
    from support import free_port

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "1"})
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_until_healthy(f"{api}/health", server, what="the Prefect server")
        holder = subprocess.Popen([sys.executable, "-c", HOLD_SLOT, str(project)], env={**env, "PREFECT_API_URL": api},
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "holding"
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        name = workspace_limit_name(project_paths(project))
        killed_at = time.monotonic()
        with temporary_settings(updates={PREFECT_API_URL: api}):
            with get_client(sync_client=True) as client:
                assert client.read_global_concurrency_limit_by_name(name).active_slots == 1
                while client.read_global_concurrency_limit_by_name(name).active_slots:
                    assert time.monotonic() - killed_at < 120, "the dead holder's lease never expired"
                    time.sleep(1)
            with prefect_workspace_slot(project_paths(project), wait_s=5):
                pass  # the workspace is usable again, with no manual reset
            # moving `champion` goes through the tracking store's promotion slot on the same server
            import mlflow

            from components.params_file import load_config
            from flows.pipeline import promotion_limit_name, promotion_slot

            cfg = load_config(project / "params.yaml")
            # a store of its own: Prefect's slot service is cached per limit name with the client of
            # the API it first met, so a name the session's test harness has used would be taken there
            mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
            try:
                limit = promotion_limit_name(mlflow.get_tracking_uri(), cfg.registry.model_name)
                with promotion_slot(cfg):
                    with get_client(sync_client=True) as client:  # held on that server while champion moves
                        held = client.read_global_concurrency_limit_by_name(limit)
                        assert (held.limit, held.active_slots) == (1, 1)
            finally:
                mlflow.set_tracking_uri(None)
            with get_client(sync_client=True) as client:
                assert client.read_global_concurrency_limit_by_name(limit).active_slots == 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
