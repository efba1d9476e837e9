"""The reference paper's packing (Progressive distillation diffusion for raw music generation, §3.1):
a long 1 x F x (K*W) spectrogram <-> K x F x W, folding the time axis into K channels in a
snake-like order (every other segment reversed) so neighbouring frames stay neighbours across the
fold: the last frame of channel 0 sits at the same position as the first frame of channel 1.
"""

from __future__ import annotations

import numpy as np


def pack_snake(mel: np.ndarray, channels: int) -> np.ndarray:
    """(..., F, K*W) -> (..., K, F, W)."""
    frames = mel.shape[-1]
    if frames % channels:
        raise ValueError(f"frames ({frames}) must be divisible by channels ({channels})")
    width = frames // channels
    segments = [mel[..., k * width:(k + 1) * width] for k in range(channels)]
    segments = [seg if k % 2 == 0 else seg[..., ::-1] for k, seg in enumerate(segments)]
    return np.ascontiguousarray(np.stack(segments, axis=-3))


def unpack_snake(packed: np.ndarray) -> np.ndarray:
    """(..., K, F, W) -> (..., F, K*W); exact inverse of :func:`pack_snake`."""
    channels = packed.shape[-3]
    segments = [packed[..., k, :, :] if k % 2 == 0 else packed[..., k, :, ::-1] for k in range(channels)]
    return np.ascontiguousarray(np.concatenate(segments, axis=-1))
