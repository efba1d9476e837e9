"""`melforge run` under the faults an operator meets: Ctrl-C and SIGTERM stop it in seconds with
MLflow, Prefect and dvc.lock agreeing; a second run names the holder; `kill -9` leaves nothing
locked; the next run completes with no manual step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest
import yaml

pytestmark = pytest.mark.integration
MELFORGE = str(Path(sys.executable).parent / "melforge")
SLOW = ["-S", "train.steps=100000", "-S", "train.checkpoint_every=20"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_", "AWS_"))}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", "MELFORGE_PROGRESS": "0"})
    return env


def _start(project: Path, *args: str) -> subprocess.Popen:
    # its own process group, as a terminal's foreground job is: Ctrl-C goes to the whole group. It
    # starts with SIGINT ignored, as a shell script's `cmd &` leaves it: melforge must not depend on
    # inheriting a default handler
    return subprocess.Popen([MELFORGE, "run", "--no-push", *args], cwd=project, env=_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def _training_pid(project: Path, proc: subprocess.Popen, timeout_s: float = 240) -> int:
    """Wait until the training child has written a checkpoint; return its pid."""
    pid_file = project / ".melforge" / "stages" / "train.pid"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended before training started ({proc.returncode}):\n{out}\n{err}")
        if pid_file.is_file() and list((project / ".melforge" / "runs").glob("teacher-*/checkpoints/step-*.pt")):
            try:
                return int(pid_file.read_text())
            except ValueError:
                pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail("training did not start in time")


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _runs(project: Path) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{project / '.melforge' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("melforge")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])


def _locked_stages(project: Path) -> set[str]:
    lock = project / "dvc.lock"
    return set((yaml.safe_load(lock.read_text()) or {}).get("stages", {})) if lock.is_file() else set()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_stops_in_seconds_and_leaves_mlflow_and_dvc_agreeing(project, sig):
    run = _start(project, *SLOW)
    trainer = _training_pid(project, run)

    # a second run in the same workspace says at once who holds it, then gives up, writing nothing
    params_before = (project / "params.yaml").read_text()
    second = subprocess.run([MELFORGE, "run", "-S", "orchestration.workspace_wait_minutes=0.05"], cwd=project,
                            env=_env(), capture_output=True, text=True, timeout=60)
    assert second.returncode == 1, second.stderr
    assert f"pid {run.pid} on host" in second.stderr and "waiting for the workspace" in second.stderr
    assert (project / "params.yaml").read_text() == params_before

    started = time.monotonic()
    os.killpg(run.pid, sig)  # what a terminal (Ctrl-C) or `timeout`/systemd (SIGTERM) sends
    out, err = run.communicate(timeout=60)
    stopped_in = time.monotonic() - started
    assert stopped_in <= 10, f"took {stopped_in:.1f} s to stop:\n{err[-3000:]}"
    assert run.returncode == 128 + sig, err[-3000:]
    assert "interrupted" in err and "Connection refused" not in err
    assert _gone(trainer), "the training child outlived the run"

    parent = next(r for r in _runs(project) if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "KILLED"
    train = [r for r in _runs(project) if r.info.run_name == "train"]
    assert [r.info.status for r in train] == ["KILLED"]
    assert "features" in _locked_stages(project) and "train" not in _locked_stages(project)
    assert not (project / "models" / "teacher").exists()
    assert _flow_run_states(project) == ["CRASHED"]  # Prefect's record agrees


def _flow_run_states(project: Path) -> list[str]:
    """The flow runs' final states in the workspace's own Prefect database (its server is gone)."""
    import sqlite3

    with sqlite3.connect(project / ".melforge" / "prefect" / "prefect.db") as db:
        return [row[0] for row in db.execute("SELECT state_type FROM flow_run")]


def test_after_kill_9_the_next_run_starts_at_once_and_completes(project):
    run = _start(project, *SLOW)
    trainer = _training_pid(project, run)
    run.send_signal(signal.SIGKILL)  # the run alone, as the OOM killer would
    run.wait()
    deadline = time.monotonic() + 5
    while not _gone(trainer) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(trainer), "the training child kept running after its run was killed"

    started = time.monotonic()
    rerun = subprocess.run([MELFORGE, "run", "--no-push", "-S", "train.steps=12", "-S", "train.checkpoint_every=6"],
                           cwd=project, env=_env(), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-5000:]
    assert "waiting for the workspace" not in rerun.stderr
    assert "took over the workspace" in rerun.stderr and f"pid {run.pid}" in rerun.stderr
    assert "promoted" in rerun.stdout
    assert {"ingest", "features", "train", "evaluate"} <= _locked_stages(project)
    assert time.monotonic() - started < 600


def test_a_failing_stage_in_a_run_is_one_error_line_with_no_traceback_and_the_traceback_in_the_log(project, tmp_path):
    """Prefect logs a failed task with its traceback; on the console the run says it in one line."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "labels.csv").write_text("path,digit\n../outside.wav,1\n")
    run = subprocess.run([MELFORGE, "run", "--no-push", "-S", f"data.sources=[{source}]"], cwd=project, env=_env(),
                         capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output[-3000:]
    assert f"{source / 'labels.csv'}: line 2: '../outside.wav' is outside the folder of the CSV" in errors[0]
    assert "Traceback" not in output, output[-3000:]
    assert "Traceback" in (project / ".melforge" / "logs" / "errors.log").read_text()
