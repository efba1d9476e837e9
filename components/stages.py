"""Component entry points, one per DVC stage: what ``melforge stage NAME`` and dvc.yaml call.

Each reads params.yaml (the record DVC tracks), runs its component and writes its outputs and
``data/metrics/<stage>.json``. No orchestrator, no tracking server: ``dvc repro`` alone works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from components.config import MelforgeConfig
from components.settings import ProjectPaths
from components.storage import atomic_write_json


def metrics_path(paths: ProjectPaths, stage: str):
    return paths.data / "metrics" / f"{stage}.json"


def _scan(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.ingest.scan import scan_sources

    listing = scan_sources(cfg)
    atomic_write_json(paths.data / "sources.json", listing)
    return {"sources": len(listing["sources"])}


def _ingest(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.ingest.stage import run_ingest

    return run_ingest(cfg, paths.clips, metrics_path(paths, "ingest"))


def _validate(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.validate.stage import run_validate

    return run_validate(cfg, paths.clips, paths.validation, metrics_path(paths, "validate"))


def _features(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.features.stage import run_features

    return run_features(cfg, paths.clips, paths.mels, metrics_path(paths, "features"))


STAGES: dict[str, Callable[[MelforgeConfig, ProjectPaths], dict[str, Any]]] = {
    "scan": _scan,
    "ingest": _ingest,
    "validate": _validate,
    "features": _features,
}
PIPELINE_ORDER = ("scan", "ingest", "validate", "features")


def run_stage(name: str, cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; allowed: {', '.join(STAGES)}")
    return STAGES[name](cfg, paths)
