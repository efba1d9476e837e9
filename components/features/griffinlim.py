"""mel -> audio by Griffin-Lim, so every mel can be listened to, and the round-trip error metric."""

from __future__ import annotations

import numpy as np
import torch

from components.features.mel import LogMel, MelSpec
from components.torchaudio_ops import griffin_lim


def mel_to_audio(logmel: np.ndarray, spec: MelSpec, *, n_iter: int = 32, length: int | None = None) -> np.ndarray:
    """(batch, n_mels, frames) natural-log mel power -> (batch, samples) audio.

    Mel power -> linear power by the filterbank's pseudo-inverse (clamped at 0), square root for
    magnitude, then Griffin-Lim for the phase.
    """
    mel_power = torch.exp(torch.as_tensor(np.asarray(logmel), dtype=torch.float32))
    if mel_power.ndim == 2:
        mel_power = mel_power[None]
    inverse = torch.linalg.pinv(spec.filterbank())
    linear = torch.clamp(torch.matmul(inverse, mel_power), min=0.0).sqrt()
    audio = griffin_lim(linear, n_fft=spec.n_fft, hop_length=spec.hop_length, win_length=spec.window_length,
                        n_iter=n_iter, length=length)
    return audio.numpy()


def spectral_convergence_db(reference_logmel: np.ndarray, audio: np.ndarray, spec: MelSpec) -> np.ndarray:
    """Per clip: 20*log10(||M - M_hat||_F / ||M||_F) on mel magnitudes (lower is better)."""
    ref = np.sqrt(np.exp(np.asarray(reference_logmel, np.float64)))
    est = np.sqrt(np.exp(LogMel(spec)(audio).numpy().astype(np.float64)))
    frames = min(ref.shape[-1], est.shape[-1])
    ref, est = ref[..., :frames], est[..., :frames]
    sc = np.linalg.norm((ref - est).reshape(len(ref), -1), axis=1) / np.linalg.norm(ref.reshape(len(ref), -1), axis=1)
    return 20.0 * np.log10(np.maximum(sc, 1e-12))
