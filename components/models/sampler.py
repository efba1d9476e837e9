"""Deterministic DDIM sampling on a uniform time grid (every sampler: a plain function)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from components.models.diffusion import ddim_step, x_from_z_v

VFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (z_t, t) -> v_hat


def predict_x(v_fn: VFunction, z: torch.Tensor, t: torch.Tensor, clip: float | None) -> torch.Tensor:
    """x_hat from the network's v prediction, clipped to the data range."""
    x_hat = x_from_z_v(z, v_fn(z, t), t)
    return x_hat.clamp(-clip, clip) if clip is not None else x_hat


@torch.no_grad()
def ddim_sample(v_fn: VFunction, noise: torch.Tensor, steps: int, *, clip: float | None = 1.0) -> torch.Tensor:
    """Run ``steps`` DDIM steps from pure noise (t = 1) to data (t = 0); ``steps`` network calls."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    z = noise
    batch = noise.shape[0]
    for i in range(steps, 0, -1):
        t = torch.full((batch,), i / steps, dtype=noise.dtype, device=noise.device)
        s = torch.full((batch,), (i - 1) / steps, dtype=noise.dtype, device=noise.device)
        z = ddim_step(z, predict_x(v_fn, z, t, clip), t, s)
    return z
