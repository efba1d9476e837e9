"""Component entry points, one per DVC stage: what ``melforge stage NAME`` and dvc.yaml call.

Each reads params.yaml (the record DVC tracks), runs its component and writes its outputs and
``data/metrics/<stage>.json``. No orchestrator, no tracking server: ``dvc repro`` alone works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from components.config import MelforgeConfig
from components.settings import ProjectPaths
from components.names import DATA_STAGES


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
    name, _, item = stage.partition("@")
    return paths.root / stage_row(name).metrics.format(item=item)


def model_dir(paths: ProjectPaths, stage: str) -> Path | None:
    """The model folder a training stage produces (None for data stages and evaluation)."""
    name, _, item = stage.partition("@")
    row = stage_row(name)
    return paths.root / row.output.format(item=item) if row.kind == "training" else None


def _scan(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.ingest.scan import run_scan

    return run_scan(cfg, paths.data / "sources.json")


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


@dataclass(frozen=True)
class Stage:
    """One row of the stage table: what ``melforge stage NAME`` runs and what it leaves where.
    ``{item}`` in a path is the foreach item (``distill@student-8`` -> student-8)."""

    name: str
    entry: Callable[..., dict[str, Any]]  # the component's entry point (imported on use)
    kind: Literal["data", "training", "evaluation"]  # training runs in a child process a timeout can stop
    output: str  # the folder (or file) it writes, relative to the workspace
    metrics: str  # its metrics file, relative to the workspace
    item: str | None = None  # the option a foreach item is passed as (--student, --family)


TABLE: tuple[Stage, ...] = (
    Stage("scan", _scan, "data", "data/sources.json", "data/metrics/scan.json"),
    Stage("ingest", _ingest, "data", "data/clips", "data/metrics/ingest.json"),
    Stage("validate", _validate, "data", "data/validation", "data/metrics/validate.json"),
    Stage("features", _features, "data", "data/mels", "data/metrics/features.json"),
    Stage("vocoder", _vocoder, "training", "models/vocoder", "models/metrics/vocoder.json"),
    Stage("train", _train, "training", "models/teacher", "models/metrics/teacher.json"),
    Stage("distill", _distill, "training", "models/{item}", "models/metrics/{item}.json", item="student"),
    Stage("gan", _gan, "training", "models/{item}", "models/metrics/{item}.json", item="family"),
    Stage("evaluate", _evaluate, "evaluation", "models/evaluation", "models/metrics/evaluate.json"),
)
STAGES: dict[str, Callable[..., dict[str, Any]]] = {row.name: row.entry for row in TABLE}


def stage_row(name: str) -> Stage:
    """The table's row for a stage name (``distill``, not ``distill@student-8``)."""
    for row in TABLE:
        if row.name == name:
            return row
    raise KeyError(f"unknown stage {name!r}; allowed: {', '.join(row.name for row in TABLE)}")


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
    option = stage_row(name).item
    return name, ({option: item} if item and option else {})


def run_stage(name: str, cfg: MelforgeConfig, paths: ProjectPaths, **options: Any) -> dict[str, Any]:
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; allowed: {', '.join(STAGES)}")
    return STAGES[name](cfg, paths, **options)
