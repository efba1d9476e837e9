"""Reconstruction losses for a vocoder: multi-resolution STFT and log-mel L1.

Yamamoto et al. (2020), "Parallel WaveGAN", eq. (1)-(4): at each resolution r,

    L_sc(x, x_hat)  = || |STFT(x)| - |STFT(x_hat)| ||_F / || |STFT(x)| ||_F
    L_mag(x, x_hat) = (1 / N) || log |STFT(x)| - log |STFT(x_hat)| ||_1

and L_mrstft = mean_r (L_sc + L_mag). The mel terms use the pipeline's own mel transform: HiFi-GAN's
L1 on log mels (Kong et al. 2020, eq. 4), || log mel(x) - log mel(x_hat) ||_1, which weighs quiet
bins, plus spectral convergence on mel magnitudes, || sqrt mel(x) - sqrt mel(x_hat) ||_F /
|| sqrt mel(x) ||_F, which weighs the loud partials a listener hears first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from components.features.mel import LogMel

MAGNITUDE_FLOOR = 1e-5


def stft_magnitude(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """|STFT| (batch, n_fft/2 + 1, frames), Hann window, centred."""
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio, n_fft, hop_length=hop, win_length=n_fft, window=window, center=True, return_complex=True)
    return torch.sqrt(torch.clamp(spec.real.square() + spec.imag.square(), min=MAGNITUDE_FLOOR ** 2))


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Per clip || |S| - |S_hat| ||_F / || |S| ||_F (batch,)."""
    return (reference - estimate).flatten(1).norm(dim=1) / reference.flatten(1).norm(dim=1).clamp(min=1e-12)


def log_magnitude_l1(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Per clip mean | log|S| - log|S_hat| | (batch,)."""
    return (reference.log() - estimate.log()).abs().flatten(1).mean(dim=1)


def multi_resolution_stft(reference: torch.Tensor, estimate: torch.Tensor,
                          resolutions: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Per clip mean over resolutions (n_fft, hop) of L_sc + L_mag (batch,)."""
    total = torch.zeros(reference.shape[0], device=reference.device)
    for n_fft, hop in resolutions:
        ref, est = stft_magnitude(reference, n_fft, hop), stft_magnitude(estimate, n_fft, hop)
        total = total + spectral_convergence(ref, est) + log_magnitude_l1(ref, est)
    return total / len(resolutions)


def mel_losses(reference: torch.Tensor, estimate: torch.Tensor, logmel: LogMel) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip (log-mel L1, mel-magnitude spectral convergence), each (batch,), with gradients."""
    ref, est = logmel.power(reference), logmel.power(estimate)
    floor = logmel.spec.log_floor
    l1 = (ref.clamp(min=floor).log() - est.clamp(min=floor).log()).abs().flatten(1).mean(dim=1)
    sc = spectral_convergence(ref.clamp(min=floor * floor).sqrt(), est.clamp(min=floor * floor).sqrt())
    return l1, sc
