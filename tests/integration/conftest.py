"""Fixtures that start real components on 127.0.0.1: Prefect's test server, an S3-compatible
server (moto), and a throwaway melforge project with git + DVC."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import profile_params, validate_params, write_params_file
from helpers import TINY_NSYNTH

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> str:
    full_env = os.environ.copy()
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env['PATH']}"
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def dvc(cwd: Path, *args: str, env: dict | None = None) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd, env)


def tiny_params(**sections) -> dict:
    params = profile_params("demo")
    params["data"]["nsynth_mini"].update(TINY_NSYNTH)
    params["audio"]["clip_seconds"] = 1.0
    params["mel"].update({"n_mels": 32, "hop_length": 250, "frames": 64, "griffinlim_iters": 4,
                          "griffinlim_eval_clips": 2})
    for name, values in sections.items():
        params[name].update(values)
    return params


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh melforge workspace: the repo's dvc.yaml and components, tiny params, git + DVC."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    shutil.copytree(REPO / "components", root / "components", ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".gitignore").write_text("/data/\n.melforge/\n__pycache__/\n")
    write_params_file(root / "params.yaml", validate_params(tiny_params()))
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.email", "ci@melforge.local"], root)
    run(["git", "config", "user.name", "melforge ci"], root)
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    dvc(root, "remote", "add", "-d", "local", str(tmp_path / "dvc-remote"))
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    return root


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3-compatible server on 127.0.0.1 (in memory), with placeholder credentials."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "melforge-test", "AWS_SECRET_ACCESS_KEY": "melforge-test",
           "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())
