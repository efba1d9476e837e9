"""Light data augmentation of the teacher's training clips (issue 23's lever): a random gain and a
small time shift per example, drawn as a pure function of (seed, step) so a resumed run repeats it.

Both act on natural-log mel power and keep silence silent: cells at the mel floor (the black of a
grid: digital silence, clamped) stay there under any gain, other cells move by the gain and stop at
the floor, and a shift pads with the floor and never wraps around."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from components.features.packing import pack_snake, unpack_snake
from components.features.stats import MelStats


def gain(logmel: np.ndarray, gain_db: np.ndarray, floor: float) -> np.ndarray:
    """x' = max(x + g ln(10) / 10, floor) where x > floor, x' = x where x <= floor: a power gain of
    g dB per example, (batch,) over (batch, bins, frames); silence below the clamp stays silence."""
    lifted = np.maximum(logmel + (gain_db * math.log(10) / 10)[:, None, None], floor)
    return np.where(logmel <= floor, logmel, lifted)


def shift(logmel: np.ndarray, frames: np.ndarray, floor: float) -> np.ndarray:
    """x'[..., t] = x[..., t - s] inside the clip, the floor where t - s falls outside it; s per example."""
    out = np.full_like(logmel, floor)
    width = logmel.shape[-1]
    for k, s in enumerate(frames.astype(int)):
        if s >= 0:
            out[k, :, s:] = logmel[k, :, : width - s]
        else:
            out[k, :, : width + s] = logmel[k, :, -s:]
    return out


@dataclass(frozen=True)
class Augment:
    """gain_db: g ~ U(-gain_db, gain_db); shift_frames: s ~ U{-S..S}; both 0 = off."""

    stats: MelStats
    floor: float
    layout: str
    gain_db: float = 0.0
    shift_frames: int = 0

    @property
    def active(self) -> bool:
        return self.gain_db > 0 or self.shift_frames > 0

    def __call__(self, normalised: np.ndarray, rng: np.random.Generator, rank: int = 0, world: int = 1) -> np.ndarray:
        """A batch of stored examples (normalised, in the store's layout) -> augmented, same layout. Under
        DDP the batch is rows ``rank::world`` of the global one, and so are its draws (the global batch's
        draws, sliced): W ranks augment exactly as one process does."""
        if not self.active:
            return normalised
        flat = unpack_snake(normalised) if self.layout == "snake" else normalised
        # a silent cell may have been clipped at -clip_sigma on the way in: put it back on the floor
        silent = flat <= self.stats.normalise(np.full((1, flat.shape[-2], 1), self.floor)) + 1e-6
        logmel = np.where(silent, self.floor, self.stats.denormalise(flat))
        n = len(logmel) * world
        if self.gain_db > 0:
            logmel = gain(logmel, rng.uniform(-self.gain_db, self.gain_db, size=n)[rank::world], self.floor)
        if self.shift_frames > 0:
            logmel = shift(logmel, rng.integers(-self.shift_frames, self.shift_frames + 1, size=n)[rank::world], self.floor)
        out = self.stats.normalise(logmel)
        return pack_snake(out, normalised.shape[-3]) if self.layout == "snake" else out
