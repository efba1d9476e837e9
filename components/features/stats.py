"""Per-mel-bin statistics and the normalisation they define.

Normalised value: clip((x - mean) / std, -k, k) / k with k = ``clip_sigma`` (SpecGAN's +-3 sigma),
so the data lie in [-1, 1]; :func:`denormalise` is its exact inverse for every unclipped value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class RunningBinStats:
    """Streaming per-bin mean/std over (batch, bins, frames) arrays, accumulated in float64."""

    def __init__(self, n_bins: int) -> None:
        self.count = 0
        self.total = np.zeros(n_bins, np.float64)
        self.total_sq = np.zeros(n_bins, np.float64)

    def update(self, batch: np.ndarray) -> None:
        values = np.asarray(batch, dtype=np.float64)
        self.count += values.shape[0] * values.shape[2]
        self.total += values.sum(axis=(0, 2))
        self.total_sq += np.square(values).sum(axis=(0, 2))

    def finish(self, clip_sigma: float) -> "MelStats":
        if self.count == 0:
            raise ValueError("no frames seen: cannot compute mel statistics")
        mean = self.total / self.count
        var = np.maximum(self.total_sq / self.count - mean**2, 0.0)
        std = np.sqrt(var)
        return MelStats(mean=mean, std=np.maximum(std, 1e-3), clip_sigma=clip_sigma)


@dataclass(frozen=True)
class MelStats:
    mean: np.ndarray  # (bins,)
    std: np.ndarray  # (bins,)
    clip_sigma: float

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "clip_sigma": self.clip_sigma,
                "formula": "clip((x-mean)/std, -k, k)/k, k=clip_sigma; x = natural-log mel power"}

    @classmethod
    def from_json(cls, obj: dict) -> "MelStats":
        return cls(mean=np.asarray(obj["mean"], np.float64), std=np.asarray(obj["std"], np.float64),
                   clip_sigma=float(obj["clip_sigma"]))

    def normalise(self, logmel: np.ndarray) -> np.ndarray:
        """(..., bins, frames) log-mel -> values in [-1, 1]."""
        z = (logmel - self.mean[:, None]) / self.std[:, None]
        return (np.clip(z, -self.clip_sigma, self.clip_sigma) / self.clip_sigma).astype(np.float32)

    def denormalise(self, normalised: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalise` (exact wherever the forward pass did not clip)."""
        x = np.asarray(normalised, np.float64) * self.clip_sigma * self.std[:, None] + self.mean[:, None]
        return x.astype(np.float32)


def to_logmel(normalised: np.ndarray, stats: MelStats, layout: str) -> np.ndarray:
    """Normalised examples in a layout (``flat`` or packed ``snake``) -> natural-log mel power
    (batch, n_mels, frames): what every sample preview, generated clip and evaluation needs."""
    from components.features.packing import unpack_snake

    values = np.asarray(normalised)
    return stats.denormalise(unpack_snake(values) if layout == "snake" else values)
