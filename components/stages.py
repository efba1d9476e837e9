"""Component entry points, one per DVC stage: what ``melforge stage NAME`` and dvc.yaml call.

Each reads params.yaml (the record DVC tracks), runs its component and writes its outputs and
``data/metrics/<stage>.json``. No orchestrator, no tracking server: ``dvc repro`` alone works.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.config import MelforgeConfig
from components.settings import ProjectPaths
from components.names import DATA_STAGES
from components.storage import atomic_write_json


def declared_params(root: Path, stage: str) -> list[str]:
    """The params.yaml keys a DVC stage depends on, as dvc.yaml declares them (one place):
    ``train`` -> [seed, model, train, distill.teacher_steps]; ``gan@wavegan`` -> [..., gan.wavegan, ...]."""
    import yaml

    name, _, item = stage.partition("@")
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    if name not in stages:
        raise KeyError(f"dvc.yaml has no stage {name!r}; it has {', '.join(stages)}")
    spec = stages[name].get("do", stages[name])  # a foreach stage's template
    return [str(key).replace("${item}", item).replace("${key}", item)
            for key in spec.get("params", []) if not isinstance(key, dict)]  # {file: keys}: another params file


def select_params(params: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The nested subset of ``params`` holding exactly ``keys`` (dotted), e.g. {"distill": {"teacher_steps": 16}}."""
    selected: dict[str, Any] = {}
    for key in keys:
        *parents, leaf = key.split(".")
        value, node = params, selected
        for part in key.split("."):
            value = value[part]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return selected


def metrics_path(paths: ProjectPaths, stage: str) -> Path:
    """Where a DVC stage (``ingest``, ``train``, ``distill@student-8``...) writes its metrics."""
    if stage == "train":
        return paths.model_metrics / "teacher.json"
    if stage.startswith(("distill@", "gan@")):
        return paths.model_metrics / f"{stage.partition('@')[2]}.json"
    if stage in ("evaluate", "vocoder"):
        return paths.model_metrics / f"{stage}.json"
    return paths.data / "metrics" / f"{stage}.json"


def model_dir(paths: ProjectPaths, stage: str) -> Path | None:
    """The model folder a training stage produces (None for data stages)."""
    if stage == "train":
        return paths.models / "teacher"
    if stage.startswith(("distill@", "gan@")):
        return paths.models / stage.partition("@")[2]
    if stage == "vocoder":
        return paths.models / "vocoder"
    return None


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

    return run_validate(cfg, paths.clips, paths.validation, metrics_path(paths, "validate"),
                        history=paths.state / "validation" / "quarantine_shares.json")


def _features(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.features.stage import run_features

    return run_features(cfg, paths.clips, paths.mels, metrics_path(paths, "features"))


def _vocoder(cfg: MelforgeConfig, paths: ProjectPaths, *, resume: bool = True) -> dict[str, Any]:
    from components.vocoder.stage import run_vocoder

    return run_vocoder(cfg, paths, resume=resume)


def _train(cfg: MelforgeConfig, paths: ProjectPaths, *, resume: bool = True) -> dict[str, Any]:
    from components.train.teacher import run_train

    return run_train(cfg, paths, resume=resume)


def _distill(cfg: MelforgeConfig, paths: ProjectPaths, *, student: str | None = None, resume: bool = True) -> dict[str, Any]:
    from components.distill.stage import run_distill

    if student is None:
        raise ValueError(f"the distill stage needs --student NAME; this config has {', '.join(cfg.distill.stages)}")
    return run_distill(cfg, paths, student, resume=resume)


def _gan(cfg: MelforgeConfig, paths: ProjectPaths, *, family: str | None = None, resume: bool = True) -> dict[str, Any]:
    from components.names import GAN_FAMILIES
    from components.gan.stage import run_gan

    if family not in GAN_FAMILIES:
        raise ValueError(f"the gan stage needs --family NAME, one of {', '.join(GAN_FAMILIES)}; got {family!r}")
    return run_gan(cfg, paths, family, resume=resume)


def _evaluate(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.evaluate.stage import run_evaluate

    return run_evaluate(cfg, paths)


STAGES: dict[str, Callable[..., dict[str, Any]]] = {
    "scan": _scan,
    "ingest": _ingest,
    "validate": _validate,
    "features": _features,
    "vocoder": _vocoder,
    "train": _train,
    "distill": _distill,
    "gan": _gan,
    "evaluate": _evaluate,
}


def pipeline_order(cfg: MelforgeConfig) -> list[str]:
    """DVC stage names in run order: data stages, the vocoder, the teacher, every distillation stage, the GAN
    baselines (a family that is off records only that), evaluation."""
    from components.names import GAN_FAMILIES

    return [*DATA_STAGES, "vocoder", "train", *(f"distill@{name}" for name in cfg.distill.stages),
            *(f"gan@{family}" for family in GAN_FAMILIES), "evaluate"]


def model_stages(cfg: MelforgeConfig) -> list[str]:
    """The stages that train a generator, in run order: the teacher, every student, and every GAN family
    that is on (what a GPU machine runs when training is handed off)."""
    return [s for s in pipeline_order(cfg) if s == "train" or s.startswith("distill@")
            or (s.startswith("gan@") and s.partition("@")[2] in cfg.gan.enabled)]


def stage_options(stage: str) -> tuple[str, dict[str, str]]:
    """A DVC stage name as the entry point's name and options: ``distill@student-8`` ->
    ("distill", {"student": "student-8"}), ``gan@wavegan`` -> ("gan", {"family": "wavegan"})."""
    name, _, item = stage.partition("@")
    return name, ({("family" if name == "gan" else "student"): item} if item else {})


def run_stage(name: str, cfg: MelforgeConfig, paths: ProjectPaths, **options: Any) -> dict[str, Any]:
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; allowed: {', '.join(STAGES)}")
    return STAGES[name](cfg, paths, **options)
