"""Batched log-mel spectrograms: librosa's mel filters, torch's STFT over a whole batch at once."""

from __future__ import annotations

import copy
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

    @classmethod
    def from_index(cls, index: dict) -> "MelSpec":
        """From a mel index (data/mels/index.json, also stored inside every model file)."""
        m = index["mel"]
        return cls(sample_rate=index["sample_rate"], n_fft=m["n_fft"], hop_length=m["hop_length"],
                   n_mels=m["n_mels"], fmin=m["fmin"], fmax=m["fmax"], win_length=m["win_length"],
                   log_floor=m["log_floor"])

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
    """Callable: (batch, samples) float audio -> (batch, n_mels, frames) natural-log mel power.

    Equivalent to librosa's ``melspectrogram(center=True, pad_mode="constant", power=2)`` but
    computed for many clips at once: frames are cut with ``unfold``, transformed by one batched
    ``rfft`` and projected on the mel filters with one GEMM. Work is done in chunks of ``chunk``
    clips so the complex spectrum stays cache-sized (measured: 16 is ~2x faster than 64 on 2 cores).
    """

    def __init__(self, spec: MelSpec, chunk: int = 16) -> None:
        self.spec = spec
        self.chunk = chunk
        self.filters_t = spec.filterbank().T.contiguous()  # (freq, n_mels)
        window = torch.hann_window(spec.window_length)
        if spec.window_length < spec.n_fft:  # centre a shorter window inside the FFT frame
            left = (spec.n_fft - spec.window_length) // 2
            window = torch.nn.functional.pad(window, (left, spec.n_fft - spec.window_length - left))
        self.window = window

    def to(self, device: torch.device | str) -> "LogMel":
        """This transform with its filters and window on ``device`` (for losses on a GPU)."""
        moved = copy.copy(self)
        moved.filters_t, moved.window = self.filters_t.to(device), self.window.to(device)
        return moved

    def power(self, audio: torch.Tensor) -> torch.Tensor:
        """Mel *power* spectrogram (linear), (batch, n_mels, frames)."""
        s = self.spec
        half = s.n_fft // 2
        padded = torch.nn.functional.pad(audio, (half, half))
        frames = padded.unfold(-1, s.n_fft, s.hop_length) * self.window  # (batch, frames, n_fft)
        spectrum = torch.fft.rfft(frames)
        power = spectrum.real.square() + spectrum.imag.square()  # |X|^2: ~3x faster than abs() or a sum over re/im
        return torch.matmul(power, self.filters_t).transpose(1, 2)

    def log_power(self, audio: torch.Tensor) -> torch.Tensor:
        """Natural-log mel power floored at ``log_floor``, with gradients (training losses and inputs)."""
        return torch.log(torch.clamp(self.power(audio), min=self.spec.log_floor))

    def __call__(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(audio, dtype=torch.float32)
        if x.ndim == 1:
            x = x[None]
        with torch.inference_mode():
            parts = [self.log_power(x[i:i + self.chunk]) for i in range(0, len(x), self.chunk)]
            return torch.cat(parts).contiguous() if parts else torch.empty(0, self.spec.n_mels, 0)


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
