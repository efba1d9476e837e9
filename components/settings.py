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


class NoProject(RuntimeError):
    """There is no melforge project (no dvc.yaml) at or above the folder a command runs in."""


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds a dvc.yaml (else ``start`` itself)."""
    return existing_project_root(start) or (start or Path.cwd()).resolve()


def existing_project_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` that holds a dvc.yaml, or None."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").is_file():
            return candidate
    return None


def require_project(start: Path | None = None) -> ProjectPaths:
    """The project's paths, checked before anything is written: commands that keep state in a
    workspace refuse to create one where there is no project."""
    root = existing_project_root(start)
    if root is None:
        where = (start or Path.cwd()).resolve()
        raise NoProject(f"no melforge project in {where} or any folder above it (no dvc.yaml); run this from a "
                        "clone of melforge (or a folder holding its dvc.yaml and params.yaml)")
    return ProjectPaths(root=root)


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
    def models(self) -> Path:
        """Every trained model's folder (``models/<teacher|student-N|wavegan|specgan|vocoder>``)."""
        return self.root / "models"

    @property
    def model_metrics(self) -> Path:
        """The model stages' metrics files (``models/metrics/<name>.json``)."""
        return self.models / "metrics"

    @property
    def evaluation(self) -> Path:
        """The evaluate stage's outputs: report, leaderboard, metrics.json, the saved ruler."""
        return self.models / "evaluation"

    @property
    def mlflow_db(self) -> Path:
        return self.state / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.state / "mlartifacts"


def project_paths(root: Path | None = None) -> ProjectPaths:
    return ProjectPaths(root=(root or find_project_root()).resolve())


def tool_defaults() -> dict[str, str]:
    """Defaults that keep every tool offline and telemetry-free, wherever it runs."""
    return {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "true",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        # boto3 must never probe the cloud metadata address.
        "AWS_EC2_METADATA_DISABLED": "true",
        "MPLBACKEND": "Agg",
        "TQDM_DISABLE": "1",
    }


def runtime_defaults(paths: ProjectPaths) -> dict[str, str]:
    """Environment defaults for embedded, offline, telemetry-free operation in a project."""
    state = paths.state
    return {
        **tool_defaults(),
        # MLflow: SQLite store + local artifacts.
        "MLFLOW_TRACKING_URI": f"sqlite:///{paths.mlflow_db}",
        # Prefect: local API (ephemeral server) with its home inside the project state folder.
        "PREFECT_HOME": str(state / "prefect"),
        # DVC: site cache inside the project.
        "DVC_SITE_CACHE_DIR": str(state / "dvc-site-cache"),
        # numba (librosa) compiles once and caches here.
        "NUMBA_CACHE_DIR": str(state / "numba-cache"),
    }


def apply_tool_defaults() -> None:
    """Set the unset tool defaults that need no project (nothing is written anywhere)."""
    for key, value in tool_defaults().items():
        os.environ.setdefault(key, value)


def apply_runtime_defaults(paths: ProjectPaths | None = None) -> ProjectPaths:
    """Set every unset default variable; create the state folder. Returns the paths used."""
    paths = paths or project_paths()
    paths.state.mkdir(parents=True, exist_ok=True)
    for key, value in runtime_defaults(paths).items():
        os.environ.setdefault(key, value)
    return paths
