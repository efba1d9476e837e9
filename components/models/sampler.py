"""Deterministic samplers on a uniform time grid, one plain function each, and :data:`SAMPLERS`,
the table from a sampler's name to it. Every sampler makes ``steps`` network evaluations.

- ``ddim``: first order (Song et al. 2021); what the distilled students are trained to follow.
- ``dpm++2m``: DPM-Solver++(2M) (Lu et al. 2022): the same evaluations, each step extrapolating
  from the last two x predictions in log-SNR; first order on the first and the last step (t = 0).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from components.models.diffusion import ddim_step, exponential_step, log_snr, multistep_x, x_from_z_v

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


@torch.no_grad()
def dpmpp_2m_sample(v_fn: VFunction, noise: torch.Tensor, steps: int, *, clip: float | None = 1.0) -> torch.Tensor:
    """DPM-Solver++(2M) from pure noise (t = 1) to data (t = 0) in ``steps`` network calls."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    z, x_prev, h_prev = noise, None, None
    batch = noise.shape[0]
    for i in range(steps, 0, -1):
        t = torch.full((batch,), i / steps, dtype=noise.dtype, device=noise.device)
        s = torch.full((batch,), (i - 1) / steps, dtype=noise.dtype, device=noise.device)
        x_hat = predict_x(v_fn, z, t, clip)
        if i == 1:  # to t = 0 (lambda = inf): the last prediction is the sample
            return x_hat
        h = log_snr(s) - log_snr(t)
        z = exponential_step(z, x_hat if x_prev is None else multistep_x(x_hat, x_prev, h, h_prev), t, s)
        x_prev, h_prev = x_hat, h
    return z


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"ddim": ddim_sample, "dpm++2m": dpmpp_2m_sample}


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler called ``name`` (a key of :data:`SAMPLERS`)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; allowed: {', '.join(SAMPLERS)}")
    return SAMPLERS[name]
