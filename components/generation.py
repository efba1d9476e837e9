"""From a trained generator to audio, whatever its family: seeded clips, then (for mel models) a vocoder.

The evaluation stage, the registered MLflow model and ``melforge generate`` all go through these
classes, so the same (model, seed, steps, vocoder) gives the same clips everywhere. Everything
needed (network spec, mel statistics, mel settings, sampling steps) travels inside the model file.

- :class:`MelGenerator`: the diffusion teacher and students; DDIM mels of any length, then the vocoder.
- :class:`SpecGANGenerator`: SpecGAN; one network evaluation per fixed-size mel, then the vocoder.
- :class:`WaveGANGenerator`: WaveGAN; one network evaluation per waveform, no vocoder.

:func:`components.families.load_generator` picks the class from the model file (the family table).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.features.mel import LogMel, MelSpec, fit_frames, log_floor_value
from components.features.stats import MelStats, to_logmel
from components.gan import DIFFUSION, MODEL_FAMILY_KEY
from components.level import LevelConvention
from components.models.conditioning import Cells, conditioning_of, evaluations_per_step, label_v_function
from components.models.io import denoiser_from_payload, read_model_file
from components.models.sampler import get_sampler
from components.vocoder.interface import GriffinLim, Vocoder


@dataclass
class Generator(ABC):
    """A loaded network plus the metadata saved with it; subclasses say how it makes clips."""

    model: torch.nn.Module
    meta: dict[str, Any]
    device: str = "cpu"
    vocoder: Vocoder | None = None  # None: Griffin-Lim with the model's mel.griffinlim_iters

    family = DIFFUSION
    uses_vocoder = True

    @staticmethod
    def network_from_payload(payload: dict[str, Any], device: str) -> tuple[torch.nn.Module, dict[str, Any]]:
        """(network in eval mode on ``device``, the rest of the model file): each family reads its own."""
        return denoiser_from_payload(payload, device)

    @classmethod
    def from_payload(cls, payload: dict[str, Any], device: str = "cpu", vocoder: Vocoder | None = None) -> "Generator":
        model, meta = cls.network_from_payload(payload, device)
        return cls(model=model, meta=meta, device=device, vocoder=vocoder if cls.uses_vocoder else None)

    def steps_for(self, steps: int | None) -> int:
        """The sampling steps a request for ``steps`` (None: the model's own) is served with."""
        return steps or self.sampling_steps

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
    def level(self) -> LevelConvention:
        """The level its clips are delivered at: the real clips' convention, stored in the model file."""
        return LevelConvention.from_index(self.mel_index)

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
    @abstractmethod
    def clip_seconds(self) -> float:
        """Length of one generated clip at the training length."""

    def network_evaluations(self, steps: int | None = None) -> int:
        """Forward passes of the network per clip."""
        return 1

    @abstractmethod
    def sample_output(self, n: int, seed: int, *, steps: int | None = None) -> torch.Tensor:
        """The network's raw output for ``n`` clips from noise seeded by ``seed``."""

    def output_to_logmel(self, output: torch.Tensor) -> np.ndarray:
        """Raw output -> natural-log mels (n, n_mels, frames): what the metrics read."""
        return self.to_logmel(output)

    def output_to_clips(self, output: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Raw output -> (natural-log mels (n, n_mels, frames), audio (n, samples) in [-1, 1])."""
        logmel = self.output_to_logmel(output)
        if not np.isfinite(logmel).all():  # no vocoder on NaNs: the caller reports the failure
            return logmel, np.empty((len(logmel), 0), np.float32)
        return logmel, self.to_audio(logmel)

    def sample(self, n: int, seed: int, *, steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` clips of the training length as (log mels, audio): what evaluation scores."""
        return self.output_to_clips(self.sample_output(n, seed, steps=steps))

    def to_logmel(self, normalised: torch.Tensor | np.ndarray) -> np.ndarray:
        """Normalised model output -> natural-log mel power (batch, n_mels, frames)."""
        values = normalised.numpy() if isinstance(normalised, torch.Tensor) else normalised
        return to_logmel(values, self.stats, self.meta.get("layout", self.mel_index["layout"]))

    def to_audio(self, logmel: np.ndarray, *, seconds: float | None = None) -> np.ndarray:
        """(batch, n_mels, frames) -> (batch, samples) float32 audio by the vocoder, at the model's level."""
        audio = self.level.deliver(logmel, self.active_vocoder.synthesise, self.spec.log_floor)
        return audio if seconds is None else self.level.apply(audio[:, : int(round(seconds * self.sample_rate))])

    def check_vocoder(self, origin: str) -> None:
        """A learned vocoder must have been trained on this model's mel settings."""
        if self.uses_vocoder and self.vocoder is not None and hasattr(self.vocoder, "check_matches"):
            self.vocoder.check_matches(self.spec, origin=origin)

    def generate(self, n: int, seed: int, *, seconds: float | None = None, steps: int | None = None) -> np.ndarray:
        """``n`` clips of ``seconds`` (default: the training clip length) as (n, samples) audio.
        A GAN makes clips of one fixed length: shorter requests are cut, longer ones refused."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if seconds is not None and seconds > self.clip_seconds + 1e-9:
            raise ValueError(f"{self.family} makes clips of at most {self.clip_seconds:.3f} s (its training length); "
                             f"asked for {seconds:g} s")
        _, audio = self.sample(n, seed, steps=steps)
        return audio if seconds is None else self.level.apply(audio[:, : int(round(seconds * self.sample_rate))])

    def real_time_factor(self, *, clips: int = 4, steps: int | None = None, repeats: int = 2) -> dict[str, float]:
        """Seconds of compute per second of audio (best of ``repeats``): the network alone
        (``rtf_mel`` for mel models) and everything up to audio (``rtf``). Below 1 is faster than real time."""
        audio_seconds = clips * self.clip_seconds
        best_network, best_total = float("inf"), float("inf")
        for _ in range(repeats):
            _sync(self.device)
            start = time.perf_counter()
            output = self.sample_output(clips, seed=0, steps=steps)
            _sync(self.device)
            network_done = time.perf_counter()
            self.output_to_clips(output)
            end = time.perf_counter()
            best_network, best_total = min(best_network, network_done - start), min(best_total, end - start)
        times = {"rtf": best_total / audio_seconds}
        if self.uses_vocoder:
            times["rtf_mel"] = best_network / audio_seconds
        return times


@dataclass
class MelGenerator(Generator):
    """A loaded diffusion denoiser: mels of any length, by the sampler its file names."""

    @classmethod
    def load(cls, path: Path, device: str = "cpu", vocoder: Vocoder | None = None) -> "MelGenerator":
        payload = read_model_file(Path(path))
        family = payload.get(MODEL_FAMILY_KEY, DIFFUSION)
        if family != DIFFUSION:
            raise TypeError(f"{path}: a {family} model, not a diffusion model")
        gen = cls.from_payload(payload, device, vocoder)
        gen.check_vocoder(f"the model {path}")
        return gen

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

    def network_evaluations(self, steps: int | None = None) -> int:
        return (steps or self.sampling_steps) * evaluations_per_step(self.cells, self.guidance)

    @property
    def cells(self) -> Cells | None:
        """The label cells of a conditional model (None: unconditional)."""
        return conditioning_of(self.meta)[0]

    @property
    def guidance(self) -> float:
        """Its classifier-free guidance w when sampled (1: none; a student carries its teacher's in its weights)."""
        return conditioning_of(self.meta)[1]

    @property
    def sampler(self) -> str:
        """How this model is sampled (saved in its file; DDIM for files older than the choice)."""
        return str(self.meta.get("sampler", "ddim"))

    def frames_for_seconds(self, seconds: float) -> int:
        """Enough frames for ``seconds`` of audio, rounded up to what the U-Net accepts
        (divisible by 2^(levels-1), times the snake channels)."""
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        needed = math.ceil(seconds * self.sample_rate / self.spec.hop_length) + 1
        channels = self.example_shape[0] if self.mel_index["layout"] == "snake" else 1
        multiple = channels * 2 ** (len(self.meta["spec"]["channel_mults"]) - 1)
        return max(multiple, math.ceil(needed / multiple) * multiple)

    def sample_output(self, n: int, seed: int, *, steps: int | None = None) -> torch.Tensor:
        return self.sample_normalised(n, seed, steps=steps)

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
        cells = self.cells
        labels = None if cells is None else cells.draw(n, seed)  # as often as the training clips hold each cell
        steps = steps or self.sampling_steps
        sample = get_sampler(self.sampler)
        out = []
        with torch.no_grad():
            for start in range(0, n, batch_size):
                z = noise[start:start + batch_size].to(self.device)
                chunk = None if labels is None else labels[start:start + batch_size]
                out.append(sample(label_v_function(self.model, chunk, self.guidance), z, steps).float().cpu())
        return torch.cat(out)

    def generate(self, n: int, seed: int, *, seconds: float | None = None, steps: int | None = None) -> np.ndarray:
        """``n`` clips of ``seconds`` (default: the training clip length): the U-Net is
        convolutional in time, so any length is sampled directly."""
        frames = self.frames_for_seconds(seconds) if seconds is not None else None
        logmel = self.to_logmel(self.sample_normalised(n, seed, steps=steps, frames=frames))
        return self.to_audio(logmel, seconds=seconds)


class GANGenerator(Generator):
    """What both GAN families share: one network evaluation per clip from z ~ U(-1, 1)."""

    @staticmethod
    def network_from_payload(payload: dict[str, Any], device: str) -> tuple[torch.nn.Module, dict[str, Any]]:
        from components.gan.io import gan_from_payload

        return gan_from_payload(payload, device)

    def steps_for(self, steps: int | None) -> int:
        _gan_steps(self.family, steps)
        return 1


def _gan_steps(family: str, steps: int | None) -> None:
    if steps not in (None, 1):
        raise ValueError(f"a {family} generator makes a clip in one network evaluation; steps must be 1 or unset, "
                         f"got {steps}")


@dataclass
class SpecGANGenerator(GANGenerator):
    """SpecGAN: z ~ U(-1, 1) -> one normalised (n_mels, frames) log-mel, flat layout -> the vocoder."""

    family = "specgan"

    @property
    def clip_seconds(self) -> float:
        return (self.model.spec.frames - 1) * self.spec.hop_length / self.sample_rate

    def sample_output(self, n: int, seed: int, *, steps: int | None = None, batch_size: int = 64) -> torch.Tensor:
        return _sample_gan(self, n, seed, steps, batch_size)


@dataclass
class WaveGANGenerator(GANGenerator):
    """WaveGAN: z ~ U(-1, 1) -> one waveform, cut to the clip length; its log-mel is analysed with the
    features stage's own transform, so it is scored exactly like a real clip."""

    family = "wavegan"
    uses_vocoder = False

    @property
    def clip_samples(self) -> int:
        return int(self.meta["clip_samples"])

    @property
    def clip_seconds(self) -> float:
        return self.clip_samples / self.sample_rate

    def sample_output(self, n: int, seed: int, *, steps: int | None = None, batch_size: int = 64) -> torch.Tensor:
        return _sample_gan(self, n, seed, steps, batch_size)[:, : self.clip_samples]

    @cached_property
    def analysis(self) -> LogMel:
        """The features stage's transform, built once (its mel filterbank is not free to compute)."""
        return LogMel(self.spec)

    def output_to_logmel(self, output: torch.Tensor) -> np.ndarray:
        return self._analyse(self.level.apply(output.float().numpy()))

    def output_to_clips(self, output: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        audio = self.level.apply(output.float().numpy())  # scored as delivered, like a real clip at its level
        return self._analyse(audio), audio

    def _analyse(self, audio: np.ndarray) -> np.ndarray:
        frames = int(self.meta["frames"])  # the features stage's fixed frame count
        return fit_frames(self.analysis(torch.from_numpy(audio)).numpy(), frames, log_floor_value(self.spec))


def _sample_gan(gen: Generator, n: int, seed: int, steps: int | None, batch_size: int) -> torch.Tensor:
    from components.gan.io import latent

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _gan_steps(gen.family, steps)
    z = latent(n, gen.model.spec.latent_dim, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return torch.cat([gen.model(z[i:i + batch_size].to(gen.device)).float().cpu() for i in range(0, n, batch_size)])


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
