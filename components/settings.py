"""Where melforge keeps its state, and the environment defaults that make every tool run embedded.

Every default here is applied only when the variable is unset, so the ecosystem's own variables
(MLFLOW_TRACKING_URI, PREFECT_API_URL, AWS_ENDPOINT_URL, ...) switch a tool to a real server with
no code change. Call :func:`apply_runtime_defaults` before importing prefect, mlflow or dvc.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATE_DIR_NAME = ".melforge"


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds a dvc.yaml (else ``start`` itself)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").is_file():
            return candidate
    return here


@dataclass(frozen=True)
class ProjectPaths:
    """Every well-known path of a melforge workspace, derived from its root."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR_NAME

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def clips(self) -> Path:
        return self.data / "clips"

    @property
    def validation(self) -> Path:
        return self.data / "validation"

    @property
    def mels(self) -> Path:
        return self.data / "mels"

    @property
    def reports(self) -> Path:
        return self.data / "reports"

    @property
    def mlflow_db(self) -> Path:
        return self.state / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.state / "mlartifacts"

    @property
    def dvc_remote(self) -> Path:
        return self.state / "dvc-remote"


def project_paths(root: Path | None = None) -> ProjectPaths:
    return ProjectPaths(root=(root or find_project_root()).resolve())


def runtime_defaults(paths: ProjectPaths) -> dict[str, str]:
    """Environment defaults for embedded, offline, telemetry-free operation."""
    state = paths.state
    return {
        # MLflow: SQLite store + local artifacts, no telemetry.
        "MLFLOW_TRACKING_URI": f"sqlite:///{paths.mlflow_db}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # Prefect: local API (ephemeral server) with its home inside the project state folder.
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "true",
        # DVC: no analytics, site cache inside the project.
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(state / "dvc-site-cache"),
        # Great Expectations: no analytics.
        "GX_ANALYTICS_ENABLED": "false",
        # boto3 must never probe the cloud metadata address.
        "AWS_EC2_METADATA_DISABLED": "true",
        # numba (librosa) compiles once and caches here.
        "NUMBA_CACHE_DIR": str(state / "numba-cache"),
        "MPLBACKEND": "Agg",
        "TQDM_DISABLE": "1",
    }


def apply_runtime_defaults(paths: ProjectPaths | None = None) -> ProjectPaths:
    """Set every unset default variable; create the state folder. Returns the paths used."""
    paths = paths or project_paths()
    paths.state.mkdir(parents=True, exist_ok=True)
    for key, value in runtime_defaults(paths).items():
        os.environ.setdefault(key, value)
    return paths
