"""Component entry points, one per DVC stage: what ``melforge stage NAME`` and dvc.yaml call.

Each reads params.yaml (the record DVC tracks), runs its component and writes its outputs and
``data/metrics/<stage>.json``. No orchestrator, no tracking server: ``dvc repro`` alone works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.config import MelforgeConfig
from components.families import FAMILIES, evaluation_plan
from components.settings import ProjectPaths
from components.storage import atomic_write_json
from components.vocoder import EVALUATION_FILE
from components.ingest.store import QUARANTINE
from components.names import GAN_FAMILIES
from components.stage_row import SAMPLES, Stage


def _declared(root: Path, stage: str, field: str) -> list[str]:
    """A list field (params, deps) of a DVC stage in dvc.yaml, a foreach item filled in."""
    import yaml

    name, _, item = stage.partition("@")
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    if name not in stages:
        raise KeyError(f"dvc.yaml has no stage {name!r}; it has {', '.join(stages)}")
    spec = stages[name].get("do", stages[name])  # a foreach stage's template
    return [str(key).replace("${item}", item).replace("${key}", item)
            for key in spec.get(field, []) if not isinstance(key, dict)]  # {file: keys}: another params file


def declared_params(root: Path, stage: str) -> list[str]:
    """The params.yaml keys a DVC stage depends on, as dvc.yaml declares them (one place):
    ``train`` -> [seed, model, train, distill.teacher_steps]; ``gan@wavegan`` -> [..., gan.wavegan, ...]."""
    return _declared(root, stage, "params")


def input_stages(root: Path, stages: list[str]) -> list[str]:
    """The data stages whose outputs ``stages`` read (dvc.yaml's deps against the table's outputs): what a
    machine that runs only ``stages`` must pull first."""
    needed = {dep for stage in stages for dep in _declared(root, stage, "deps")}
    return [row.name for row in TABLE if row.kind == "data" and row.output in needed]


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


def _output(stage: str) -> str:
    """A DVC stage's output, relative to the workspace, its foreach item filled in."""
    name, _, item = stage.partition("@")
    return stage_row(name).output.format(item=item)


def output_path(paths: ProjectPaths, stage: str) -> Path:
    """The folder (or file) a DVC stage (``features``, ``distill@student-8``...) writes."""
    return paths.root / _output(stage)


def model_dir(paths: ProjectPaths, stage: str) -> Path | None:
    """The model folder a training stage produces (None for data stages and evaluation)."""
    return output_path(paths, stage) if stage_row(stage.partition("@")[0]).kind == "training" else None


def stage_artifacts(paths: ProjectPaths, stage: str) -> list[Path]:
    """What a stage's MLflow run logs as artifacts (the table's ``artifacts``, inside its output)."""
    return [output_path(paths, stage) / rel for rel in stage_row(stage.partition("@")[0]).artifacts]


def stage_table(paths: ProjectPaths, stage: str) -> list[dict[str, Any]] | None:
    """The rows a stage's Prefect artifact shows (None: a summary only)."""
    row = stage_row(stage.partition("@")[0])
    return row.table(output_path(paths, stage)) if row.table else None


def _scan(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.ingest.scan import run_scan

    return run_scan(cfg, paths.data / "sources.json")


def _ingest(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.ingest.stage import run_ingest

    return run_ingest(cfg, paths.clips)


def _validate(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.validate.stage import run_validate

    return run_validate(cfg, paths.clips, paths.validation, history=paths.state / "validation" / "quarantine_shares.json")


def _features(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.features.stage import run_features

    return run_features(cfg, paths.clips, paths.mels)


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
    from components.gan.stage import run_gan

    if family not in GAN_FAMILIES:
        raise ValueError(f"the gan stage needs --family NAME, one of {', '.join(GAN_FAMILIES)}; got {family!r}")
    return run_gan(cfg, paths, family, resume=resume)


def _evaluate(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    from components.evaluate.stage import run_evaluate

    return run_evaluate(cfg, paths)


def _quarantine_rows(clips: Path) -> list[dict[str, Any]] | None:
    """Ingest's Prefect table: every quarantined file and why."""
    import pandas as pd

    path = clips / QUARANTINE
    return pd.read_csv(path).to_dict("records") if path.is_file() else None


def _check_rows(validation: Path) -> list[dict[str, Any]] | None:
    """Validation's Prefect table: one row per check of the suite."""
    import json

    path = validation / "results.json"
    if not path.is_file():
        return None
    keys = ("check", "severity", "success", "unexpected_count", "element_count")
    return [{k: r[k] for k in keys} for r in json.loads(path.read_text())["results"]]


# the stages in run order; a family that trains in a stage of its own declares that row in its family row
# (components/families.py), and it runs after the GAN baselines, before evaluation
TABLE: tuple[Stage, ...] = (
    Stage("scan", _scan, "data", "data/sources.json", "data/metrics/scan.json", announced=False),
    Stage("ingest", _ingest, "data", "data/clips", "data/metrics/ingest.json", artifacts=(QUARANTINE,),
          table=_quarantine_rows),
    Stage("validate", _validate, "data", "data/validation", "data/metrics/validate.json",
          artifacts=("results.json", "failures.csv", "docs"), table=_check_rows),
    Stage("features", _features, "data", "data/mels", "data/metrics/features.json", artifacts=("stats.json", "preview")),
    Stage("vocoder", _vocoder, "training", "models/vocoder", "models/metrics/vocoder.json",
          artifacts=(EVALUATION_FILE, "quality_vs_minutes.png", *SAMPLES)),
    Stage("train", _train, "training", "models/teacher", "models/metrics/teacher.json", artifacts=SAMPLES),
    Stage("distill", _distill, "training", "models/{item}", "models/metrics/{item}.json", item="student",
          items=lambda cfg: cfg.distill.stages, artifacts=SAMPLES),
    Stage("gan", _gan, "training", "models/{item}", "models/metrics/{item}.json", item="family",
          items=lambda cfg: GAN_FAMILIES, artifacts=SAMPLES),
    *(row.stage for row in FAMILIES if row.stage),
    Stage("evaluate", _evaluate, "evaluation", "models/evaluation", "models/metrics/evaluate.json",
          artifacts=("report.html", "steps_vs_quality.png", "quality_vs_compute.png", "steps_vs_quality.csv",
                     "metrics.json", *SAMPLES)),
)
STAGE_NAMES = tuple(row.name for row in TABLE)
DATA_STAGES = tuple(row.name for row in TABLE if row.kind == "data")


def stage_row(name: str) -> Stage:
    """The table's row for a stage name (``distill``, not ``distill@student-8``)."""
    for row in TABLE:
        if row.name == name:
            return row
    raise KeyError(f"unknown stage {name!r}; allowed: {', '.join(row.name for row in TABLE)}")


def pipeline_order(cfg: MelforgeConfig) -> list[str]:
    """DVC stage names in run order: data stages, the vocoder, the teacher, every distillation stage, the GAN
    baselines (a family that is off records only that), evaluation: the table's rows, foreach items expanded."""
    return [stage for row in TABLE
            for stage in ([f"{row.name}@{item}" for item in row.items(cfg)] if row.items else [row.name])]


def model_stages(cfg: MelforgeConfig) -> list[str]:
    """The stages that train a generator the evaluation scores, in run order: the teacher, every student,
    every other family that is on (what a GPU machine runs when training is handed off). A stage whose
    output folder the evaluation plan names is one."""
    scored = {f"models/{entry['folder']}" for entry in evaluation_plan(cfg)}
    return [s for s in pipeline_order(cfg) if _output(s) in scored]


def stage_options(stage: str) -> tuple[str, dict[str, str]]:
    """A DVC stage name as the entry point's name and options: ``distill@student-8`` ->
    ("distill", {"student": "student-8"}), ``gan@wavegan`` -> ("gan", {"family": "wavegan"})."""
    name, _, item = stage.partition("@")
    option = stage_row(name).item
    return name, ({option: item} if item and option else {})


def run_stage(name: str, cfg: MelforgeConfig, paths: ProjectPaths, **options: Any) -> dict[str, Any] | None:
    """Run a stage's entry point and write what it returns as its metrics file, the same way for every
    stage (atomically; a stage that fails writes none). None: a rank other than 0 of a distributed run."""
    row = stage_row(name)
    summary = row.entry_point()(cfg, paths, **options)
    if summary is not None:
        item = options.get(row.item, "") if row.item else ""
        atomic_write_json(paths.root / row.metrics.format(item=item), summary)
    return summary
