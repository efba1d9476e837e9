"""From a trained denoiser to audio: seeded DDIM mels of any length, then a vocoder.

The evaluation stage, the registered MLflow model and ``melforge generate`` all go through this
one class, so the same (model, seed, steps, vocoder) gives the same clips everywhere. Everything
needed (network spec, mel statistics, mel settings, sampling steps) travels inside the model file;
the vocoder is the learned one it was registered with, or Griffin-Lim.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.features.mel import MelSpec
from components.features.stats import MelStats, to_logmel
from components.models.io import load_denoiser
from components.models.sampler import ddim_sample
from components.vocoder.interface import GriffinLim, Vocoder


@dataclass
class MelGenerator:
    """A loaded denoiser plus the metadata saved with it."""

    model: torch.nn.Module
    meta: dict[str, Any]
    device: str = "cpu"
    vocoder: Vocoder | None = None  # None: Griffin-Lim with the model's mel.griffinlim_iters

    @classmethod
    def load(cls, path: Path, device: str = "cpu", vocoder: Vocoder | None = None) -> "MelGenerator":
        model, meta = load_denoiser(Path(path), device)
        gen = cls(model=model, meta=meta, device=device, vocoder=vocoder)
        if vocoder is not None and hasattr(vocoder, "check_matches"):
            vocoder.check_matches(gen.spec, origin=f"the model {path}")
        return gen

    @property
    def active_vocoder(self) -> Vocoder:
        return self.vocoder or GriffinLim(self.spec, n_iter=int(self.mel_index["mel"]["griffinlim_iters"]))

    @property
    def mel_index(self) -> dict[str, Any]:
        return self.meta["mel_index"]

    @property
    def spec(self) -> MelSpec:
        return MelSpec.from_index(self.mel_index)

    @property
    def stats(self) -> MelStats:
        return MelStats.from_json(self.meta["mel_stats"])

    @property
    def sample_rate(self) -> int:
        return int(self.mel_index["sample_rate"])

    @property
    def sampling_steps(self) -> int:
        return int(self.meta["sampling_steps"])

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["spec"]["example_shape"])

    @property
    def frames(self) -> int:
        """Mel frames of one training example (all snake channels together)."""
        shape = self.example_shape
        return shape[-1] * (shape[0] if self.mel_index["layout"] == "snake" else 1)

    @property
    def clip_seconds(self) -> float:
        return (self.frames - 1) * self.spec.hop_length / self.sample_rate

    def frames_for_seconds(self, seconds: float) -> int:
        """Enough frames for ``seconds`` of audio, rounded up to what the U-Net accepts
        (divisible by 2^(levels-1), times the snake channels)."""
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        needed = math.ceil(seconds * self.sample_rate / self.spec.hop_length) + 1
        channels = self.example_shape[0] if self.mel_index["layout"] == "snake" else 1
        multiple = channels * 2 ** (len(self.meta["spec"]["channel_mults"]) - 1)
        return max(multiple, math.ceil(needed / multiple) * multiple)

    def sample_normalised(self, n: int, seed: int, *, steps: int | None = None, frames: int | None = None,
                          batch_size: int = 64) -> torch.Tensor:
        """``n`` samples in the model's normalised layout, from noise seeded by ``seed``."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        shape = list(self.example_shape)
        if frames is not None:
            channels = shape[0] if self.mel_index["layout"] == "snake" else 1
            shape[-1] = frames // channels
        noise = torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))
        steps = steps or self.sampling_steps
        out = []
        with torch.no_grad():
            for start in range(0, n, batch_size):
                z = noise[start:start + batch_size].to(self.device)
                out.append(ddim_sample(lambda x, t: self.model(x, t), z, steps).float().cpu())
        return torch.cat(out)

    def to_logmel(self, normalised: torch.Tensor | np.ndarray) -> np.ndarray:
        """Normalised model output -> natural-log mel power (batch, n_mels, frames)."""
        values = normalised.numpy() if isinstance(normalised, torch.Tensor) else normalised
        return to_logmel(values, self.stats, self.mel_index["layout"])

    def to_audio(self, logmel: np.ndarray, *, seconds: float | None = None) -> np.ndarray:
        """(batch, n_mels, frames) -> (batch, samples) float32 audio in [-1, 1], by the vocoder."""
        audio = self.active_vocoder(logmel)  # float32 in [-1, 1] (the Vocoder contract)
        return audio if seconds is None else audio[:, : int(round(seconds * self.sample_rate))]

    def generate(self, n: int, seed: int, *, seconds: float | None = None, steps: int | None = None) -> np.ndarray:
        """``n`` clips of ``seconds`` (default: the training clip length) as (n, samples) audio."""
        frames = self.frames_for_seconds(seconds) if seconds is not None else None
        logmel = self.to_logmel(self.sample_normalised(n, seed, steps=steps, frames=frames))
        return self.to_audio(logmel, seconds=seconds)

    def real_time_factor(self, *, clips: int = 4, steps: int | None = None, repeats: int = 2) -> dict[str, float]:
        """Seconds of compute per second of audio (best of ``repeats``): mel sampling alone and
        mel sampling + the vocoder. Below 1 is faster than real time."""
        audio_seconds = clips * self.clip_seconds
        best_mel, best_total = float("inf"), float("inf")
        for _ in range(repeats):
            _sync(self.device)
            start = time.perf_counter()
            normalised = self.sample_normalised(clips, seed=0, steps=steps)
            _sync(self.device)
            mel_done = time.perf_counter()
            self.to_audio(self.to_logmel(normalised))
            end = time.perf_counter()
            best_mel, best_total = min(best_mel, mel_done - start), min(best_total, end - start)
        return {"rtf_mel": best_mel / audio_seconds, "rtf": best_total / audio_seconds}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
