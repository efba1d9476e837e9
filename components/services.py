"""`melforge services up|down|status`: real servers on 127.0.0.1, without Docker.

- an S3-compatible endpoint (moto's server; in memory: its data is gone when it stops — use
  MinIO from infra/compose.yaml for anything that must persist) with the buckets
  ``melforge-dvc`` (DVC remote) and ``melforge-mlflow`` (MLflow artifacts);
- an MLflow tracking server (SQLite backend in .melforge/services/, artifacts proxied to S3);
- a Prefect server (its own PREFECT_HOME in .melforge/services/).

Each runs detached in its own process group; pid files and logs live in .melforge/services/.
``up`` prints the environment that points the pipeline at them (also written to env.sh).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from components.settings import ProjectPaths
from components.storage import atomic_write_bytes

ACCESS_KEY, SECRET_KEY, REGION = "melforge", "melforge-secret", "us-east-1"
DVC_BUCKET, MLFLOW_BUCKET = "melforge-dvc", "melforge-mlflow"


class ServiceError(RuntimeError):
    """A service did not start (the message carries the end of its log)."""


@dataclass(frozen=True)
class Ports:
    s3: int = 9000
    mlflow: int = 5000
    prefect: int = 4200


def folder(paths: ProjectPaths) -> Path:
    return paths.state / "services"


def urls(ports: Ports) -> dict[str, str]:
    return {"s3": f"http://127.0.0.1:{ports.s3}", "mlflow": f"http://127.0.0.1:{ports.mlflow}",
            "prefect": f"http://127.0.0.1:{ports.prefect}/api"}


def environment(ports: Ports) -> dict[str, str]:
    """What the pipeline needs to use these servers (the tools' own variables)."""
    u = urls(ports)
    return {"MLFLOW_TRACKING_URI": u["mlflow"], "PREFECT_API_URL": u["prefect"], "AWS_ENDPOINT_URL_S3": u["s3"],
            "MLFLOW_S3_ENDPOINT_URL": u["s3"], "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION}


def _health_url(name: str, ports: Ports) -> str:
    u = urls(ports)
    return {"s3": f"{u['s3']}/moto-api/", "mlflow": f"{u['mlflow']}/health", "prefect": f"{u['prefect']}/health"}[name]


def _commands(paths: ProjectPaths, ports: Ports) -> dict[str, tuple[list[str], dict[str, str]]]:
    state = folder(paths)
    py = sys.executable
    s3_env = {**environment(ports)}
    return {
        "s3": ([py, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(ports.s3)], {}),
        "mlflow": ([py, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{state / 'mlflow.db'}",
                    "--artifacts-destination", f"s3://{MLFLOW_BUCKET}/artifacts", "--host", "127.0.0.1",
                    "--port", str(ports.mlflow), "--workers", "1"],
                   {**s3_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}),
        "prefect": ([py, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(ports.prefect)],
                    {"PREFECT_HOME": str(state / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                     "PREFECT_API_URL": ""}),
    }


def _pid(paths: ProjectPaths, name: str) -> int | None:
    pid_file = folder(paths) / f"{name}.pid"
    if not pid_file.is_file():
        return None
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (ValueError, ProcessLookupError, PermissionError):
        return None


def healthy(name: str, ports: Ports) -> bool:
    try:
        with urllib.request.urlopen(_health_url(name, ports), timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _create_buckets(ports: Ports) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=urls(ports)["s3"], aws_access_key_id=ACCESS_KEY,
                      aws_secret_access_key=SECRET_KEY, region_name=REGION)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in (DVC_BUCKET, MLFLOW_BUCKET):
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)


def up(paths: ProjectPaths, ports: Ports, *, timeout_s: float = 180.0) -> dict[str, str]:
    """Start whatever is not running yet (S3 first: MLflow's artifacts live there); wait for health."""
    state = folder(paths)
    state.mkdir(parents=True, exist_ok=True)
    for name, (cmd, extra_env) in _commands(paths, ports).items():
        if _pid(paths, name) is None:
            if healthy(name, ports):
                raise ServiceError(f"{name}: port in use by another process ({_health_url(name, ports)} answers); "
                                   "stop it or choose another port")
            log = open(state / f"{name}.log", "ab")
            env = {**os.environ, **extra_env}
            env = {k: v for k, v in env.items() if v != ""}
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                    cwd=state)
            (state / f"{name}.pid").write_text(str(proc.pid))
        _wait(paths, name, ports, timeout_s)
        if name == "s3":
            _create_buckets(ports)
    atomic_write_bytes(state / "env.sh", "".join(f"export {k}={v}\n" for k, v in environment(ports).items()).encode())
    atomic_write_bytes(state / "ports", f"{ports.s3} {ports.mlflow} {ports.prefect}\n".encode())
    return environment(ports)


def _wait(paths: ProjectPaths, name: str, ports: Ports, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not healthy(name, ports):
        if _pid(paths, name) is None or time.monotonic() > deadline:
            log = folder(paths) / f"{name}.log"
            tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
            raise ServiceError(f"{name} did not become healthy at {_health_url(name, ports)}; log {log}:\n{tail}")
        time.sleep(0.5)


def saved_ports(paths: ProjectPaths) -> Ports:
    f = folder(paths) / "ports"
    if f.is_file():
        s3, mlflow, prefect = (int(v) for v in f.read_text().split())
        return Ports(s3, mlflow, prefect)
    return Ports()


def down(paths: ProjectPaths) -> list[str]:
    """Stop every service this project started (SIGTERM to its process group, then SIGKILL)."""
    stopped = []
    for name in ("prefect", "mlflow", "s3"):
        pid = _pid(paths, name)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGTERM)
                for _ in range(40):
                    time.sleep(0.25)
                    os.kill(pid, 0)
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            stopped.append(name)
        (folder(paths) / f"{name}.pid").unlink(missing_ok=True)
    return stopped


def status(paths: ProjectPaths) -> list[dict[str, str]]:
    ports = saved_ports(paths)
    rows = []
    for name in ("s3", "mlflow", "prefect"):
        pid = _pid(paths, name)
        rows.append({"service": name, "pid": str(pid or "-"), "url": urls(ports)[name],
                     "state": "healthy" if pid and healthy(name, ports) else ("starting/unhealthy" if pid else "stopped")})
    return rows
