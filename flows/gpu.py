"""Training handed to another machine: the teacher, every student and the GANs that are on, where this flow runs.

The pipeline calls this flow's deployment (a GPU work pool: process on a GPU host, Docker with
device requests, or Kubernetes with ``nvidia.com/gpu``) with ``run_deployment`` when
``orchestration.training_deployment`` is set. Data moves only through the DVC remote: the worker
pulls ``data/mels`` (and ``data/clips`` when a GAN trains) for the caller's dvc.lock, runs the model stages through DVC, pushes the
models, and hands the updated dvc.lock back as a Prefect artifact of its flow run; the caller
adopts that lock and pulls the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from components.params_file import load_config
from components.settings import apply_runtime_defaults, project_paths
from components.stages import input_stages, model_stages
from components.storage import atomic_write_bytes
from flows.dvc_runner import dvc_pull, dvc_push, workspace_lock
from flows.tasks import stage_task

LOCK_ARTIFACT_KEY = "melforge-model-lock"
FENCE = "```"


def model_inputs(root: Path, cfg) -> list[str]:
    """The data stages whose outputs travel to the GPU machine (the mels, and the clips when a GAN trains)."""
    return input_stages(root, model_stages(cfg))


def lock_markdown(lock_text: str) -> str:
    return f"dvc.lock after the model stages\n\n{FENCE}yaml\n{lock_text}{FENCE}\n"


def lock_from_markdown(markdown: str) -> str:
    start = markdown.index(f"{FENCE}yaml\n") + len(FENCE) + 5
    return markdown[start:markdown.rindex(FENCE)]


@flow(name="melforge-train-models", log_prints=True)
def melforge_train_models(params_yaml: str, dvc_lock: str, root: str | None = None) -> dict[str, Any]:
    """Pull the data version of ``dvc_lock``, run train, distill and the GANs through DVC, push the models,
    publish the new dvc.lock."""
    paths = apply_runtime_defaults(project_paths(Path(root) if root else None))
    logger = get_run_logger()
    atomic_write_bytes(paths.params, params_yaml.encode())
    atomic_write_bytes(paths.root / "dvc.lock", dvc_lock.encode())
    cfg = load_config(paths.params)
    with workspace_lock(paths):
        dvc_pull(paths, *model_inputs(paths.root, cfg))
    stages = model_stages(cfg)
    ran = []
    for stage in stages:
        outcome = stage_task(cfg, stage)(paths, stage)
        if not outcome["skipped"]:
            ran.append(stage)
    with workspace_lock(paths):
        dvc_push(paths, *stages)
    lock = (paths.root / "dvc.lock").read_text()
    create_markdown_artifact(key=LOCK_ARTIFACT_KEY, markdown=lock_markdown(lock),
                             description="melforge: dvc.lock after remote training")
    logger.info("model stages run here: %s", ", ".join(ran) or "none (all current)")
    return {"stages_run": ran}
