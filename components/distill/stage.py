"""One distillation stage: the student starts as a copy of its teacher and learns to take N steps
where the teacher took 2N. ``models/<teacher>`` -> ``models/student-<N>``."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from components.config import MelforgeConfig
from components.features.store import MelStore
from components.models.conditioning import Cells, conditioning_of
from components.models.io import MODEL_FILE, load_denoiser
from components.models.unet import UNetSpec
from components.settings import ProjectPaths
from components.train.loop import loop_settings, train_loop
from components.train.runner import (batch_source, bf16_autocast, data_fingerprint, fingerprint, resolve_device,
                                     work_dir, final_samples, write_model_output)
from components.distill.objective import student_objective
from components.train.teacher import training_cells


# what a student's training depends on besides its step count, its teacher and the data. The shape of the
# chain (distill.teacher_steps, final_steps) and the teacher's sampler are not, so growing the chain to
# 1 step reuses the students already trained. dvc.yaml declares the same keys (a test keeps them equal).
STUDENT_TRAINING_PARAMS = ("distill.updates_per_stage", "distill.batch_size", "distill.lr", "distill.betas",
                           "distill.weight_decay", "distill.warmup_steps", "distill.min_lr_ratio", "distill.grad_clip",
                           "distill.ema_decay", "distill.loss_weighting", "train.bf16")


def student_training_params(cfg: MelforgeConfig) -> dict[str, Any]:
    values = {}
    for name in STUDENT_TRAINING_PARAMS:
        section, key = name.split(".")
        values[name] = getattr(getattr(cfg, section), key)
    return values


def teacher_cells(cfg: MelforgeConfig, store: MelStore, meta: dict[str, Any],
                  parent: str) -> tuple[Cells | None, np.ndarray | None, float]:
    """(cells, each clip's cell index, guidance) of a conditional teacher, checked against the data's
    cells now; (None, None, 1.0) for an unconditional one."""
    cells, guidance = conditioning_of(meta)
    if cells is None:
        return None, None, 1.0
    now, index = training_cells(store, cfg.eval.split_labels)
    if now != cells:
        raise ValueError(f"models/{parent} was trained on other label cells than data/mels holds now "
                         f"({len(cells.names)} against {len(now.names)}); re-run the train stage")
    return cells, index, guidance


def run_distill(cfg: MelforgeConfig, paths: ProjectPaths, student: str, *, resume: bool = True) -> dict[str, Any]:
    stages = cfg.distill.stages
    if student not in stages:
        raise KeyError(f"unknown distillation stage {student!r}; this config has {', '.join(stages)}")
    steps, parent = int(stages[student]["steps"]), stages[student]["teacher"]
    device = resolve_device(cfg.train.device)
    teacher, meta = load_denoiser(paths.models / parent / MODEL_FILE, device)
    if meta["sampling_steps"] != 2 * steps:
        raise ValueError(f"models/{parent} samples with {meta['sampling_steps']} steps; {student} needs a "
                         f"{2 * steps}-step teacher (re-run the earlier stages)")
    teacher.requires_grad_(False)
    model = copy.deepcopy(teacher).train().requires_grad_(True)  # the student starts as the teacher
    spec = UNetSpec.from_dict(meta["spec"])
    store = MelStore(paths.mels)
    cells, cell_index, guidance = teacher_cells(cfg, store, meta, parent)
    d = cfg.distill
    # a conditional teacher's guidance is part of what the student learns (its file says which)
    fp = fingerprint("distill", student, student_training_params(cfg), cfg.seed, meta.get("fingerprint"),
                     data_fingerprint(store), *([guidance] if cells is not None else []))
    work = work_dir(paths, student, fp)
    settings = loop_settings(d, steps=d.updates_per_stage, log_every=cfg.train.log_every,
                             checkpoint_every=d.checkpoint_every, sample_every=0, seed=cfg.seed + steps, device=device,
                             bf16=bf16_autocast(device, gpu=cfg.train.bf16, cpu=False), compile=False, fingerprint=fp)
    result = train_loop(model, student_objective(teacher, steps, d.loss_weighting, guidance),
                        batch_source(store, d.batch_size, cfg.seed + steps, cell_index=cell_index), settings, work,
                        resume=resume, label=f"distill {2 * steps}->{steps}")
    final = result["ema"] if d.ema_decay > 0 else result["model"]
    teacher_samples = final_samples(teacher, store, cfg, 2 * steps, device, cells=cells, guidance=guidance)
    student_samples = final_samples(final, store, cfg, steps, device, cells=cells)
    # a student samples with its conditional prediction alone: the teacher's guidance is in its weights
    outputs = write_model_output(paths.models / student, work, model=final, spec=spec, store=store,
                                 steps=steps, kind="student",
                                 meta={"fingerprint": fp, "teacher": parent,
                                       **({"distilled_guidance": guidance} if cells is not None else {})},
                                 cfg=cfg, device=device, label=student, samples=student_samples, cells=cells)
    # how far the N-step student lands from its 2N-step teacher, same noise (normalised units)
    gap = float((student_samples - teacher_samples).pow(2).mean().sqrt())
    summary = {**result["summary"], **outputs, "teacher": parent, "teacher_steps": 2 * steps,
               "student_vs_teacher_rmse": gap, "device": device, "loss_weighting": d.loss_weighting,
               "work_dir": str(work)}
    return summary
