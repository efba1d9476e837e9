"""DDP on CPU ranks: two processes exchanging gradients over gloo (``torchrun --standalone
--nproc-per-node 2``) train the teacher exactly as one process does at the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import tiny_params

from components.params_file import validate_params, write_params_file

STEPS = 20
# augmentation on: its draws are split across ranks as the objective's are
TRAIN = {"steps": STEPS, "batch_size": 4, "log_every": 1, "checkpoint_every": 10, "sample_every": 0,
         "augment_gain_db": 3.0, "augment_shift_frames": 2}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A workspace with the tiny clips and mels and a params.yaml whose teacher trains 20 steps."""
    from components.features.stage import run_features
    from components.ingest.stage import run_ingest
    from components.settings import ProjectPaths

    root = tmp_path_factory.mktemp("ddp")
    cfg = validate_params(tiny_params(train=TRAIN))
    paths = ProjectPaths(root=root)
    run_ingest(cfg, paths.clips)
    run_features(cfg, paths.clips, paths.mels)
    write_params_file(root / "params.yaml", cfg)
    (root / "dvc.yaml").write_text("stages: {}\n")  # marks the project root
    return root


def _copy(workspace: Path, dest: Path) -> Path:
    shutil.copytree(workspace, dest)
    return dest


CLI = ["-m", "components.cli", "stage", "train"]


def _env() -> dict[str, str]:
    """One thread per rank (two ranks on two cores), this checkout's code."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _train(root: Path, ranks: int, timeout: float = 300) -> subprocess.CompletedProcess:
    launcher = [] if ranks == 1 else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
    return subprocess.run([sys.executable, *launcher, *CLI], cwd=root, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _run_dir(root: Path) -> Path:
    (found,) = (root / ".melforge" / "runs").glob("teacher-*")
    return found


def _losses(root: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (_run_dir(root) / "metrics.jsonl").read_text().splitlines()]


def _weights(root: Path, step: int) -> dict[str, torch.Tensor]:
    return torch.load(_run_dir(root) / "checkpoints" / f"step-{step:08d}.pt", weights_only=False)["model"]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12))


@pytest.fixture(scope="module")
def single_and_two_ranks(workspace, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    one, two = _copy(workspace, base / "one"), _copy(workspace, base / "two")
    for root, ranks in ((one, 1), (two, 2)):
        done = _train(root, ranks)
        assert done.returncode == 0, done.stderr[-3000:]
    return one, two


def test_two_cpu_ranks_train_the_teacher_as_one_process_does(single_and_two_ranks):
    one, two = single_and_two_ranks
    losses_one, losses_two = _losses(one), _losses(two)
    assert len(losses_one) == len(losses_two) == STEPS  # rank 0 alone logs: one line per step, not two
    worst = max(abs(a - b) / abs(b) for a, b in zip(losses_two, losses_one))
    assert worst < 1e-5, worst
    w_one, w_two = _weights(one, STEPS), _weights(two, STEPS)
    assert w_one.keys() == w_two.keys()
    # the whole weight vector: a parameter whose true gradient is 0 (the attention's key bias: softmax
    # ignores it) gets Adam steps of float noise, different in any other summation order, so a
    # per-tensor ratio there measures the noise, not the run (measured: 4.5e-5 on that bias, 1.5e-7 overall)
    keys = [k for k in w_one if w_one[k].is_floating_point()]
    whole_one, whole_two = (torch.cat([w[k].flatten() for k in keys]) for w in (w_one, w_two))
    assert _relative(whole_two, whole_one) < 1e-5
    assert float((whole_two - whole_one).abs().max()) < 1e-5


def test_only_rank_0_writes_the_model_metrics_and_checkpoints(single_and_two_ranks):
    _, two = single_and_two_ranks
    summary = json.loads((two / "models" / "metrics" / "teacher.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == STEPS
    assert (two / "models" / "teacher").is_dir()
    assert sorted(p.name for p in (_run_dir(two) / "checkpoints").glob("*.pt")) == \
        [f"step-{10:08d}.pt", f"step-{STEPS:08d}.pt"]


def test_two_ranks_resume_bit_exactly(single_and_two_ranks, tmp_path):
    """A 2-rank run that stopped after its step-10 checkpoint, resumed on 2 ranks, ends with exactly
    the uninterrupted 2-rank run's weights."""
    _, two = single_and_two_ranks
    again = _copy(two, tmp_path / "again")
    (_run_dir(again) / "checkpoints" / f"step-{STEPS:08d}.pt").unlink()
    done = _train(again, 2)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((again / "models" / "metrics" / "teacher.json").read_text())
    assert summary["resumed_from_step"] == 10
    w_two, w_again = _weights(two, STEPS), _weights(again, STEPS)
    assert all(torch.equal(w_two[k], w_again[k]) for k in w_two)
    assert _losses(again) == _losses(two)


def _rank_process(launcher: subprocess.Popen, rank: int, timeout: float = 120):
    """The worker process of ``rank`` under a torchrun launcher (found by its RANK environment)."""
    import time

    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(launcher.pid).children(recursive=True):
            try:
                if child.environ().get("RANK") == str(rank):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise TimeoutError(f"no rank {rank} worker under torchrun after {timeout} s")


def test_a_killed_rank_fails_the_stage_fast_naming_it_and_the_rerun_resumes(workspace, tmp_path):
    import signal
    import time

    root = _copy(workspace, tmp_path / "killed")
    params = (root / "params.yaml").read_text()
    assert f"  steps: {STEPS}\n" in params
    (root / "params.yaml").write_text(params.replace(f"  steps: {STEPS}\n", "  steps: 400\n", 1))  # time to kill it
    launcher = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                                 *CLI], cwd=root, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        victim = _rank_process(launcher, 1)
        checkpoints = root / ".melforge" / "runs"
        deadline = time.monotonic() + 240
        while not list(checkpoints.glob("teacher-*/checkpoints/step-*.pt")) and time.monotonic() < deadline:
            time.sleep(0.2)  # killed after a checkpoint, so the re-run has one to resume from
        killed_at = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        output, _ = launcher.communicate(timeout=60)
        failed_after = time.monotonic() - killed_at
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    print(f"the stage failed {failed_after:.1f} s after rank 1 was killed")
    assert failed_after <= 30, failed_after
    assert "rank      : 1" in output or "rank: 1" in output, output[-3000:]
    kept = max(int(p.stem.split("-")[1]) for p in checkpoints.glob("teacher-*/checkpoints/step-*.pt"))
    done = _train(root, 2)  # the same command again
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((root / "models" / "metrics" / "teacher.json").read_text())
    assert summary["resumed_from_step"] == kept >= 10 and summary["steps"] == 400
