"""Continuous-time diffusion with the cosine schedule and v-prediction, as small pure functions.

t in [0, 1]; alpha_t = cos(pi t / 2), sigma_t = sin(pi t / 2); z_t = alpha_t x + sigma_t eps.
The network predicts v = alpha_t eps - sigma_t x, so x_hat = alpha_t z_t - sigma_t v_hat and
eps_hat = sigma_t z_t + alpha_t v_hat. Salimans & Ho (2022), "Progressive Distillation for Fast
Sampling of Diffusion Models", §4 and Appendix.
"""

from __future__ import annotations

import math

import torch

LOSS_WEIGHTINGS = ("snr_trunc", "snr+1", "min_snr_5", "min_snr+1_5")
MIN_SNR_GAMMA = 5.0  # Hang et al. (2023), "Efficient Diffusion Training via Min-SNR Weighting Strategy"


def alpha(t: torch.Tensor) -> torch.Tensor:
    return torch.cos(0.5 * math.pi * t)


def sigma(t: torch.Tensor) -> torch.Tensor:
    return torch.sin(0.5 * math.pi * t)


def _bcast(coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(batch,) -> (batch, 1, 1, ...) to broadcast against ``like``."""
    return coef.reshape(coef.shape + (1,) * (like.ndim - coef.ndim))


def diffuse(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """z_t = alpha_t x + sigma_t eps."""
    return _bcast(alpha(t), x) * x + _bcast(sigma(t), x) * eps


def v_from_x_eps(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return _bcast(alpha(t), x) * eps - _bcast(sigma(t), x) * x


def x_from_z_v(z: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return _bcast(alpha(t), z) * z - _bcast(sigma(t), z) * v


def eps_from_z_v(z: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return _bcast(sigma(t), z) * z + _bcast(alpha(t), z) * v


def eps_from_z_x(z: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """eps = (z - alpha x) / sigma (t > 0)."""
    return (z - _bcast(alpha(t), z) * x) / _bcast(sigma(t), z)


def v_from_z_x(z: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return v_from_x_eps(x, eps_from_z_x(z, x, t), t)


def snr(t: torch.Tensor) -> torch.Tensor:
    """alpha_t^2 / sigma_t^2 (inf at t = 0)."""
    return alpha(t) ** 2 / sigma(t) ** 2


def x_loss_weight(t: torch.Tensor, weighting: str) -> torch.Tensor:
    """w(lambda_t) of the x-space loss w * ||x - x_hat||^2: max(SNR, 1), SNR + 1, min(SNR, gamma) with
    gamma = 5 (min-SNR-gamma: the nearly clean steps, whose SNR is huge, stop dominating), or
    min(SNR + 1, gamma) (min-SNR-gamma on SNR + 1, the form used for v-prediction: capped like
    min-SNR where the noise is small, plain v-MSE where it is large)."""
    if weighting == "snr_trunc":
        return torch.clamp(snr(t), min=1.0)
    if weighting == "snr+1":
        return snr(t) + 1.0
    if weighting == "min_snr_5":
        return torch.clamp(snr(t), max=MIN_SNR_GAMMA)
    if weighting == "min_snr+1_5":
        return torch.clamp(snr(t) + 1.0, max=MIN_SNR_GAMMA)
    raise ValueError(f"unknown loss weighting {weighting!r}; allowed: {', '.join(LOSS_WEIGHTINGS)}")


def v_loss_weight(t: torch.Tensor, weighting: str) -> torch.Tensor:
    """The same loss written on v: since x - x_hat = sigma (v_hat - v), w_v = w * sigma^2.

    snr_trunc -> max(alpha^2, sigma^2); snr+1 -> 1 (plain v-MSE); min_snr_5 -> min(alpha^2, gamma sigma^2)
    (= min(SNR, gamma) / (SNR + 1)); min_snr+1_5 -> min(1, gamma sigma^2). Finite for every t in [0, 1].
    """
    if weighting == "snr_trunc":
        return torch.maximum(alpha(t) ** 2, sigma(t) ** 2)
    if weighting == "snr+1":
        return torch.ones_like(t)
    if weighting == "min_snr_5":
        return torch.minimum(alpha(t) ** 2, MIN_SNR_GAMMA * sigma(t) ** 2)
    if weighting == "min_snr+1_5":
        return torch.clamp(MIN_SNR_GAMMA * sigma(t) ** 2, max=1.0)
    raise ValueError(f"unknown loss weighting {weighting!r}; allowed: {', '.join(LOSS_WEIGHTINGS)}")


def ddim_step(z_t: torch.Tensor, x_hat: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM update from time t to s < t given the prediction x_hat:
    z_s = alpha_s x_hat + sigma_s (z_t - alpha_t x_hat) / sigma_t."""
    eps_hat = eps_from_z_x(z_t, x_hat, t)
    return _bcast(alpha(s), z_t) * x_hat + _bcast(sigma(s), z_t) * eps_hat


def log_snr(t: torch.Tensor) -> torch.Tensor:
    """lambda_t = log(alpha_t / sigma_t): half the log signal-to-noise ratio. alpha and sigma are held
    at the dtype's smallest normal number, so the ends are finite (float32 has cos(pi/2) < 0)."""
    tiny = torch.finfo(t.dtype).tiny
    return torch.log(alpha(t).clamp_min(tiny)) - torch.log(sigma(t).clamp_min(tiny))


def multistep_x(x_hat: torch.Tensor, x_prev: torch.Tensor, h: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
    """DPM-Solver++(2M)'s second-order estimate of x over the next step (Lu et al. 2022, Alg. 2):
    D = (1 + 1/(2r)) x_hat - 1/(2r) x_prev, r = h_prev / h, from this step's and the last step's
    predictions and the log-SNR increments h = lambda_s - lambda_t, h_prev = lambda_t - lambda_prev."""
    half_inv_r = _bcast(h / (2 * h_prev), x_hat)
    return (1 + half_inv_r) * x_hat - half_inv_r * x_prev


def exponential_step(z_t: torch.Tensor, d: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The data-prediction exponential-integrator step from t to s < t with x estimated by d:
    z_s = (sigma_s / sigma_t) z_t + alpha_s (1 - e^{-h}) d, h = lambda_s - lambda_t.
    With d = x_hat this is exactly :func:`ddim_step`; with :func:`multistep_x` it is DPM-Solver++(2M)."""
    h = log_snr(s) - log_snr(t)
    return _bcast(sigma(s) / sigma(t), z_t) * z_t + _bcast(alpha(s) * -torch.expm1(-h), z_t) * d


def distillation_target(z_t: torch.Tensor, z_t2: torch.Tensor, t: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """The x~ for which ONE DDIM step z_t -> t2 lands on z_t2 (Salimans & Ho, Algorithm 2):

    x~ = (z_t2 - (sigma_t2 / sigma_t) z_t) / (alpha_t2 - (sigma_t2 / sigma_t) alpha_t).
    At t2 = 0 this is z_t2 itself (the teacher's final x_hat).
    """
    ratio = _bcast(sigma(t2) / sigma(t), z_t)
    return (z_t2 - ratio * z_t) / (_bcast(alpha(t2), z_t) - ratio * _bcast(alpha(t), z_t))


def guided_v(v_cond: torch.Tensor, v_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): v_w = v_uncond + w (v_cond - v_uncond);
    w = 1 is the conditional prediction itself, w > 1 pushes samples towards their label."""
    return v_uncond + w * (v_cond - v_uncond)
