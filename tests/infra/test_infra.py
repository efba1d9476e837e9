"""The deployment files parse and agree with each other (Docker and Kubernetes cannot run here)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
POOLS = {p.stem: json.loads(p.read_text()) for p in (REPO / "infra" / "work-pools").glob("*.json")}
POOL_NAMES = {"melforge-process": "process", "melforge-gpu": "process-gpu", "melforge-gpu-docker": "docker-gpu",
              "melforge-gpu-k8s": "kubernetes-gpu"}


def _placeholders(node) -> set[str]:
    text = json.dumps(node)
    return set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", text))


@pytest.mark.parametrize("name", sorted(POOLS))
def test_work_pool_templates_reference_only_declared_variables(name):
    template = POOLS[name]
    declared = set(template["variables"]["properties"])
    used = _placeholders(template["job_configuration"])
    assert used <= declared, f"{name}: undeclared {sorted(used - declared)}"
    assert {"command", "env"} <= used  # the worker's flow-run command and environment reach the job


def test_gpu_templates_request_gpus():
    docker = POOLS["docker-gpu"]["job_configuration"]["container_create_kwargs"]["device_requests"][0]
    assert docker["driver"] == "nvidia" and docker["capabilities"] == [["gpu"]] and docker["count"] == "{{ gpu_count }}"
    container = POOLS["kubernetes-gpu"]["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpus }}"


def test_compose_services_and_gpu_worker():
    compose = yaml.safe_load((REPO / "infra" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "minio", "mlflow", "prefect-server", "worker-cpu", "worker-gpu"} <= set(services)
    assert "postgresql://" in services["mlflow"]["command"] and "s3://" in services["mlflow"]["command"]
    assert "postgresql+asyncpg://" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert devices["driver"] == "nvidia" and "gpu" in devices["capabilities"]
    env = services["worker-cpu"]["environment"]
    for var in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                "MELFORGE_DVC_REMOTE", "MELFORGE_GIT_URL"):
        assert var in env, var
    created = services["work-pools"]["command"]
    for pool in ("melforge-process", "melforge-gpu"):
        assert f"create {pool} " in created
    assert (REPO / "infra" / "Dockerfile").is_file() and "uv pip sync" in (REPO / "infra" / "Dockerfile").read_text()


def test_prefect_yaml_deployments_point_at_real_flows_and_pools():
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import Flow

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"] for d in spec["deployments"]}
    assert {"pipeline", "retrain", "gpu", "gpu-docker", "gpu-k8s"} <= names
    env_used = set(re.findall(r"\$([A-Z][A-Z0-9_]*)", yaml.safe_dump(spec["pull"])))
    compose_env = yaml.safe_load((REPO / "infra" / "compose.yaml").read_text())["services"]["worker-cpu"]["environment"]
    assert env_used <= set(compose_env), f"pull steps need {sorted(env_used - set(compose_env))}"
    for d in spec["deployments"]:
        module, attr = d["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), attr)
        assert isinstance(flow, Flow), d["entrypoint"]
        pool = d["work_pool"]["name"]
        assert pool in POOL_NAMES, pool
        declared = set(POOLS[POOL_NAMES[pool]]["variables"]["properties"])
        assert set(d["work_pool"].get("job_variables", {})) <= declared
        for schedule in d.get("schedules", []):
            CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone", "UTC"))
        if d["name"].startswith("gpu"):
            assert d["entrypoint"] == "flows/gpu.py:melforge_train_models"
