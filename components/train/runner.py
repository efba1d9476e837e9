"""What the teacher and every distillation stage share: device, data, work folder, outputs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.features.griffinlim import GriffinLim
from components.features.packing import unpack_snake
from components.features.store import MelStore
from components.models.conditioning import Cells, conditioning_meta, evaluations_per_step, label_v_function
from components.models.io import MODEL_FILE, save_denoiser
from components.models.sampler import get_sampler
from components.models.unet import UNetSpec, parameter_count
from components.settings import ProjectPaths
from components.storage import staged_directory
from components.train.augment import Augment
from components.train.loop import LabelledBatch, cpu_has_native_bf16
from components.train.previews import sample_normalised, write_previews


def resolve_device(choice: str) -> str:
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA GPU is visible")
    if choice == "auto":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    return choice


def bf16_autocast(device: str, *, gpu: bool, cpu: bool) -> bool:
    """Whether training on ``device`` runs under bf16 autocast: ``train.bf16`` on a GPU, ``train.cpu_bf16``
    on a CPU only where oneDNN has native bf16 kernels (AVX512-BF16 or AMX); elsewhere bf16 is
    emulated and slower than fp32, so the setting is ignored there."""
    if device.startswith("cuda"):
        return gpu
    return cpu and cpu_has_native_bf16()


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def data_fingerprint(store: MelStore) -> str:
    """The data a run trains on: the mels, their stats and which rows are training clips."""
    return fingerprint(store.index, store.stats.to_json(), store.rows().tolist())


def batch_source(store: MelStore, batch_size: int, seed: int, *, rank: int = 0, world: int = 1,
                 augment: Augment | None = None, cell_index: np.ndarray | None = None):
    """batch_at(step): training clips only (never the evaluation split); the rows of step ``step``, and
    their ``augment`` draws, are a pure function of (seed, step); with DDP each rank takes its slice
    of the global batch. With ``cell_index`` (each row's label cell) the batches are
    :class:`LabelledBatch` es, for a conditional denoiser."""
    train_rows = store.rows()
    n = len(train_rows)

    def batch_at(step: int) -> torch.Tensor:
        rng = np.random.default_rng([seed, step])
        rows = train_rows[rng.choice(n, size=batch_size, replace=n < batch_size)]
        mine = rows[rank::world]
        batch = np.stack([np.asarray(store[int(i)], dtype=np.float32) for i in mine])
        if augment is not None:  # an inactive Augment returns the batch as it is
            batch = augment(batch, np.random.default_rng([seed, step, 31, 0]), rank, world)  # one stream, sliced per rank
        x = torch.from_numpy(batch)
        return x if cell_index is None else LabelledBatch(x, torch.from_numpy(cell_index[mine]))

    return batch_at


def mel_source(store: MelStore, *, batch_size: int, seed: int):
    """batch_at(step): normalised log-mels of training clips, in the flat (n_mels, frames) layout
    the one-shot mel families generate."""
    train_rows = store.rows()

    def batch_at(step: int) -> torch.Tensor:
        rng = np.random.default_rng([seed, step, 29])
        rows = np.sort(train_rows[rng.choice(len(train_rows), size=batch_size, replace=len(train_rows) < batch_size)])
        mels = np.asarray(store.batch(rows), dtype=np.float32)
        return torch.from_numpy(unpack_snake(mels) if store.layout == "snake" else mels)

    return batch_at


def work_dir(paths: ProjectPaths, name: str, fp: str) -> Path:
    """Checkpoints and live metrics live outside the DVC output, keyed by the config fingerprint."""
    folder = paths.state / "runs" / f"{name}-{fp[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sampling_seconds(model: torch.nn.Module, example_shape: tuple[int, ...], steps: int, device: str,
                     count: int = 4, repeats: int = 2, sampler: str = "ddim", cells: Cells | None = None,
                     guidance: float = 1.0) -> float:
    """Best-of wall time to sample ``count`` examples in ``steps`` steps of ``sampler``."""
    noise = torch.randn((count, *example_shape), generator=torch.Generator().manual_seed(0)).to(device)
    v_fn = label_v_function(model, None if cells is None else cells.draw(count, 0), guidance)
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            get_sampler(sampler)(v_fn, noise, steps)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return best


def final_samples(model: torch.nn.Module, store: MelStore, cfg, steps: int, device: str,
                  sampler: str = "ddim", cells: Cells | None = None, guidance: float = 1.0) -> torch.Tensor:
    """The fixed-noise (and, for a conditional model, fixed-cell) samples every model is shown and compared with."""
    return sample_normalised(model, store.example_shape, count=cfg.train.sample_count, steps=steps,
                             seed=cfg.seed + 1, device=device, sampler=sampler, cells=cells, guidance=guidance)


def write_model_output(out_dir: Path, work: Path, *, model: torch.nn.Module, spec: UNetSpec, store: MelStore,
                       steps: int, kind: str, meta: dict[str, Any], cfg, device: str, label: str,
                       samples: torch.Tensor | None = None, sampler: str = "ddim", cells: Cells | None = None,
                       guidance: float = 1.0) -> dict[str, Any]:
    """Final samples (drawn here unless the caller already has them, from ``final_samples``), the
    model file (which records ``sampler``, the way the model is to be sampled, and for a conditional
    model its ``cells`` and ``guidance``) and the run's metrics, swapped into ``out_dir`` atomically."""
    meta = {**meta, **conditioning_meta(cells, guidance)}
    with staged_directory(out_dir) as tmp:
        model.eval()
        if samples is None:
            samples = final_samples(model, store, cfg, steps, device, sampler, cells, guidance)
        preview_dir = tmp / "samples"
        if (work / "samples").is_dir():
            shutil.copytree(work / "samples", preview_dir)
        write_previews(preview_dir, "final", samples, stats=store.stats, layout=store.layout,
                       mel_index=store.index, vocoder=GriffinLim.for_index(store.index),
                       audio_count=cfg.train.audio_previews,
                       title=f"{label}: {steps}-step {sampler} samples")
        seconds = sampling_seconds(model, store.example_shape, steps, device, sampler=sampler, cells=cells,
                                   guidance=guidance)
        save_denoiser(tmp / MODEL_FILE, model, spec, kind=kind, sampling_steps=steps, sampler=sampler,
                      mel_stats=store.stats.to_json(),
                      mel_index=store.index, config=cfg.to_params(), parameters=parameter_count(model), **meta)
        if (work / "metrics.jsonl").is_file():
            shutil.copy(work / "metrics.jsonl", tmp / "metrics.jsonl")
        finite = bool(torch.isfinite(samples).all())
        return {"sampling_steps": steps, "sampler": sampler, "parameters": parameter_count(model), "samples_finite": finite,
                "sample_std": float(samples.std()), "sampling_seconds_4": seconds,
                "network_evaluations": steps * evaluations_per_step(cells, guidance)}

