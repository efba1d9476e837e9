"""Fixtures that start real components on 127.0.0.1: Prefect's test server, an S3-compatible
server (moto), and a throwaway melforge project with git + DVC."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from components.config import validate_params, write_params_file
from helpers import tiny_params
from support import dvc, free_port, run

REPO = Path(__file__).resolve().parents[2]


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
