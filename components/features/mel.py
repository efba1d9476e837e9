"""Batched log-mel spectrograms: librosa's mel filters, torch's STFT over a whole batch at once."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class MelSpec:
    """Everything that defines the transform (mirrors the ``mel`` config section + sample rate)."""

    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    fmin: float = 0.0
    fmax: float | None = None
    win_length: int | None = None
    log_floor: float = 1e-5

    @classmethod
    def from_config(cls, cfg) -> "MelSpec":
        m = cfg.mel
        return cls(sample_rate=cfg.audio.sample_rate, n_fft=m.n_fft, hop_length=m.hop_length, n_mels=m.n_mels,
                   fmin=m.fmin, fmax=m.fmax, win_length=m.win_length, log_floor=m.log_floor)

    @property
    def window_length(self) -> int:
        return self.win_length or self.n_fft

    def frames_for(self, samples: int) -> int:
        return 1 + samples // self.hop_length  # centred STFT

    def filterbank(self) -> torch.Tensor:
        """(n_mels, n_fft//2+1) Slaney-normalised mel filters from librosa."""
        import librosa

        fb = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.fmin,
                                 fmax=self.fmax)
        return torch.from_numpy(fb.astype(np.float32))


class LogMel:
    """Callable: (batch, samples) float audio -> (batch, n_mels, frames) natural-log mel power."""

    def __init__(self, spec: MelSpec) -> None:
        self.spec = spec
        self.filters = spec.filterbank()
        self.window = torch.hann_window(spec.window_length)

    def power(self, audio: torch.Tensor) -> torch.Tensor:
        """Mel *power* spectrogram (linear), batched."""
        s = self.spec
        stft = torch.stft(audio, n_fft=s.n_fft, hop_length=s.hop_length, win_length=s.window_length,
                          window=self.window, center=True, pad_mode="constant", return_complex=True)
        return torch.matmul(self.filters, stft.abs().pow(2))

    def __call__(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(audio, dtype=torch.float32)
        if x.ndim == 1:
            x = x[None]
        with torch.inference_mode():
            return torch.log(torch.clamp(self.power(x), min=self.spec.log_floor))


def fit_frames(mel: torch.Tensor | np.ndarray, frames: int, fill: float) -> np.ndarray:
    """Crop or pad (with ``fill``, the log floor) the last axis to exactly ``frames``."""
    arr = np.asarray(mel)
    have = arr.shape[-1]
    if have >= frames:
        return arr[..., :frames]
    pad = [(0, 0)] * (arr.ndim - 1) + [(0, frames - have)]
    return np.pad(arr, pad, constant_values=fill)


def log_floor_value(spec: MelSpec) -> float:
    return math.log(spec.log_floor)
