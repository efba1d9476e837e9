"""The train stage: a diffusion teacher (1D U-Net, v-prediction, cosine schedule) on data/mels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from components.config import MelforgeConfig
from components.features.griffinlim import GriffinLim
from components.features.mel import MelSpec, log_floor_value
from components.features.store import MelStore
from components.models.conditioning import Cells
from components.models.unet import ARCHITECTURE_VERSION, UNet1d, UNetSpec
from components.settings import ProjectPaths
from components.train.augment import Augment
from components.train.launch import join_process_group
from components.train.loop import loop_settings, train_loop
from components.train.objectives import teacher_v_objective
from components.train.previews import sample_normalised, write_previews
from components.train.runner import (batch_source, bf16_autocast, data_fingerprint, fingerprint, resolve_device,
                                     work_dir, write_model_output)


def unet_spec(cfg: MelforgeConfig, example_shape: tuple[int, ...], classes: int = 0) -> UNetSpec:
    m = cfg.model
    return UNetSpec(example_shape=tuple(example_shape), base_channels=m.base_channels,
                    channel_mults=tuple(m.channel_mults), blocks_per_level=m.blocks_per_level,
                    attention_levels=tuple(m.attention_levels), attention_heads=m.attention_heads,
                    dropout=m.dropout, groups=m.groups, classes=classes)


def training_cells(store: MelStore, split_labels: list[str]) -> tuple[Cells, np.ndarray]:
    """The label cells a conditional teacher learns (those of the training clips) and every clip's
    index among them (-1 for an evaluation clip, which nothing trains on)."""
    keys = store.cell_keys(split_labels)
    train = store.rows()
    cells = Cells.from_keys([keys[i] for i in train])
    index = np.full(len(keys), -1, dtype=np.int64)
    index[train] = cells.index([keys[i] for i in train])
    return cells, index


def teacher_batches(cfg: MelforgeConfig, store: MelStore, *, rank: int = 0, world: int = 1,
                    cell_index: np.ndarray | None = None):
    """The teacher's batch source: training clips (with their cells, for a conditional teacher), with
    the configured augmentation (if any)."""
    t = cfg.train
    augment = Augment(stats=store.stats, floor=log_floor_value(MelSpec.from_index(store.index)), layout=store.layout,
                      gain_db=t.augment_gain_db, shift_frames=t.augment_shift_frames)
    return batch_source(store, t.batch_size, cfg.seed, rank=rank, world=world, augment=augment, cell_index=cell_index)


def teacher_fingerprint_model(cfg: MelforgeConfig) -> dict[str, Any]:
    """The model settings the teacher's training depends on: guidance is how it is sampled, not
    trained, and an unconditional teacher keeps the fingerprint it had before conditioning existed
    (so its runs resume)."""
    unused = {"guidance"} | ({"conditioning", "label_dropout"} if cfg.model.conditioning == "none" else set())
    values = cfg.model.model_dump(exclude=unused)
    if cfg.model.conditioning != "none":
        values["cell_labels"] = list(cfg.eval.split_labels)
    return values


def run_train(cfg: MelforgeConfig, paths: ProjectPaths, *, resume: bool = True) -> dict[str, Any] | None:
    """Train (or resume) the teacher; write models/teacher; return its summary (None on ranks other than 0)."""
    device = resolve_device(cfg.train.device)
    rank, world = join_process_group(device, cfg.train.batch_size, "train.batch_size")
    torch.manual_seed(cfg.seed)
    store = MelStore(paths.mels)
    cells, cell_index = (None, None) if cfg.model.conditioning == "none" else training_cells(store, cfg.eval.split_labels)
    spec = unet_spec(cfg, store.example_shape, classes=0 if cells is None else len(cells.names))
    model = UNet1d(spec)
    t = cfg.train
    # augmentation that is off leaves the fingerprint as it was before the option existed (runs resume)
    unused = {key for key in ("augment_gain_db", "augment_shift_frames", "cpu_bf16") if not getattr(t, key)}
    fp = fingerprint("teacher", ARCHITECTURE_VERSION, teacher_fingerprint_model(cfg), t.model_dump(exclude=unused),
                     cfg.seed, data_fingerprint(store))
    work = work_dir(paths, "teacher", fp)
    settings = loop_settings(t, steps=t.steps, log_every=t.log_every, checkpoint_every=t.checkpoint_every,
                             sample_every=t.sample_every, seed=cfg.seed, device=device,
                             bf16=bf16_autocast(device, gpu=t.bf16, cpu=t.cpu_bf16), compile=t.compile, fingerprint=fp)
    ddp = None
    if world > 1:
        model.to(device)
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None)

    def on_sample(step: int, ema: torch.nn.Module) -> None:
        samples = sample_normalised(ema, store.example_shape, count=t.sample_count, steps=cfg.distill.teacher_steps,
                                    seed=cfg.seed + 1, device=device, sampler=cfg.distill.teacher_sampler,
                                    cells=cells, guidance=cfg.model.guidance)
        write_previews(work / "samples", f"step-{step:08d}", samples, stats=store.stats, layout=store.layout,
                       mel_index=store.index, vocoder=GriffinLim.for_index(store.index), audio_count=t.audio_previews,
                       title=f"teacher step {step}: {cfg.distill.teacher_steps}-step {cfg.distill.teacher_sampler} samples")

    objective = teacher_v_objective(t.loss_weighting, classes=spec.classes, label_dropout=cfg.model.label_dropout)
    result = train_loop(model, objective, teacher_batches(cfg, store, rank=rank, world=world, cell_index=cell_index),
                        settings, work, on_sample=on_sample, resume=resume, label="teacher", rank=rank,
                        world=world, ddp_model=ddp)
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        torch.distributed.destroy_process_group()
        return None  # rank 0 alone reports
    outputs = write_model_output(paths.models / "teacher", work, model=result["ema"], spec=spec, store=store,
                                 steps=cfg.distill.teacher_steps, kind="teacher", meta={"fingerprint": fp},
                                 sampler=cfg.distill.teacher_sampler, cells=cells, guidance=cfg.model.guidance,
                                 cfg=cfg, device=device, label="teacher (EMA)")
    summary = {**result["summary"], **outputs, "device": device, "world_size": world,
               "loss_weighting": t.loss_weighting, "work_dir": str(work)}
    if world > 1:
        torch.distributed.destroy_process_group()
    return summary
