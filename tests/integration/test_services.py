"""`melforge services up` and the pipeline against those real servers: DVC remote and MLflow
artifacts on the S3 endpoint, `dvc pull` into a fresh clone gives identical data, the registered
model loads from the MLflow server in a separate process, the flow run is on the Prefect server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest

from support import dvc, free_port, run

pytestmark = pytest.mark.integration
MELFORGE = str(Path(sys.executable).parent / "melforge")


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_", "AWS_"))}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", "MELFORGE_PROGRESS": "0"}, **extra)
    return env


def test_pipeline_against_services_on_127_0_0_1(project, tmp_path):
    ports = [str(free_port()) for _ in range(3)]
    up = subprocess.run([MELFORGE, "services", "up", "--s3-port", ports[0], "--mlflow-port", ports[1],
                         "--prefect-port", ports[2]], cwd=project, env=_env({}), capture_output=True, text=True)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        services = dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines()
                        if line.startswith("export "))
        env = _env(services)
        status = subprocess.run([MELFORGE, "services", "status"], cwd=project, env=env, capture_output=True,
                                text=True)
        assert status.stdout.count("healthy") == 3, status.stdout

        dvc(project, "remote", "add", "--local", "-d", "services", "s3://melforge-dvc/store", env=env)
        dvc(project, "remote", "modify", "--local", "services", "endpointurl", services["AWS_ENDPOINT_URL_S3"], env=env)
        out = run([MELFORGE, "run"], project, env)
        assert "promoted" in out

        s3 = boto3.client("s3", endpoint_url=services["AWS_ENDPOINT_URL_S3"],
                          aws_access_key_id=services["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=services["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
        assert s3.list_objects_v2(Bucket="melforge-dvc").get("KeyCount", 0) > 0  # DVC remote on S3
        assert s3.list_objects_v2(Bucket="melforge-mlflow").get("KeyCount", 0) > 0  # MLflow artifacts on S3

        # a fresh clone gets identical data from the S3 remote
        run(["git", "add", "dvc.lock", "params.yaml"], project)
        run(["git", "commit", "-qm", "pipeline run"], project)
        clone = tmp_path / "clone"
        run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
        dvc(clone, "remote", "add", "--local", "-d", "services", "s3://melforge-dvc/store", env=env)
        dvc(clone, "remote", "modify", "--local", "services", "endpointurl", services["AWS_ENDPOINT_URL_S3"], env=env)
        dvc(clone, "pull", env=env)
        for path in sorted((project / "data" / "mels").rglob("*.npy")):
            assert (clone / path.relative_to(project)).read_bytes() == path.read_bytes()
        assert "Data and pipelines are up to date" in dvc(clone, "status", env=env)

        # the champion loads from the MLflow server in a separate process
        code = ("import mlflow; m = mlflow.pyfunc.load_model('models:/melforge-mel-diffusion@champion'); "
                "a = m.predict({'n': 2, 'seed': 0}); print('shape', a.shape)")
        loaded = run([sys.executable, "-c", code], tmp_path, env)
        assert "shape (2," in loaded

        # the flow run is recorded on the Prefect server
        request = urllib.request.Request(f"{services['PREFECT_API_URL']}/flow_runs/filter", data=b"{}",
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            runs = json.loads(response.read())
        assert any(r["state_type"] == "COMPLETED" for r in runs)
    finally:
        down = subprocess.run([MELFORGE, "services", "down"], cwd=project, env=_env({}), capture_output=True, text=True)
        assert "stopped" in down.stderr
