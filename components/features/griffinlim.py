"""mel -> audio by Griffin-Lim, so every mel can be listened to, and the round-trip error metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from components.features.mel import LogMel, MelSpec
from components.level import limit_peak


NNLS_ITERATIONS = 50


def nnls_mel_inverse(mel_power: torch.Tensor, filterbank: torch.Tensor, *, iterations: int = NNLS_ITERATIONS) -> torch.Tensor:
    """argmin_{X >= 0} ||F X - P||_F^2 for a batch of mel power spectra P (batch, n_mels, frames).

    The objective of ``librosa.feature.inverse.mel_to_stft`` (librosa solves it with L-BFGS-B per
    call), solved here for the whole batch at once by accelerated projected gradient (FISTA, Beck &
    Teboulle 2009): X_{k+1} = max(0, Y_k - F^T (F Y_k - P) / L), L = ||F^T F||_2, from the clamped
    pseudo-inverse. Unlike the clamped pseudo-inverse alone, the result is the best non-negative fit.
    """
    step = 1.0 / float(torch.linalg.matrix_norm(filterbank, ord=2)) ** 2
    fb_t = filterbank.T.contiguous()
    batch, n_mels, frames = mel_power.shape
    target = mel_power.permute(1, 0, 2).reshape(n_mels, batch * frames)  # every frame is one column
    x = torch.clamp(torch.linalg.pinv(filterbank) @ target, min=0.0)
    y, t = x.clone(), 1.0
    # in place and fused into the products: the (bins x columns) passes, not the thin products, cost the time
    for _ in range(iterations):
        residual = torch.addmm(target, filterbank, y, beta=-1)  # F y - P
        x_next = torch.addmm(y, fb_t, residual, alpha=-step).clamp_(min=0.0)
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        momentum = (t - 1) / t_next
        y = x.mul_(-momentum).add_(x_next, alpha=1 + momentum)  # x_next + momentum (x_next - x), in x's buffer
        x, t = x_next, t_next
    return x.reshape(-1, batch, frames).permute(1, 0, 2).contiguous()


def griffin_lim(magnitude: torch.Tensor, *, n_fft: int, hop_length: int, win_length: int, n_iter: int,
                length: int | None = None, momentum: float = 0.99) -> torch.Tensor:
    """Phase from a batch of linear STFT magnitudes (batch, freq, frames) -> audio (batch, samples).

    Fast Griffin-Lim (Perraudin et al. 2013): c_k = STFT(ISTFT(|S| e^{i phase_k})),
    t_k = c_k - a c_{k-1} with a = momentum / (1 + momentum), phase_{k+1} = t_k / |t_k|, from a
    uniformly random start (seeded, so reconstructions repeat). The same iteration as torchaudio's
    ``griffinlim`` (a test holds them equal), written with in-place updates: on CPU the complex
    elementwise passes cost as much as the transforms.
    """
    window = torch.hann_window(win_length, dtype=magnitude.dtype)
    transform = dict(n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window)
    # a generator of its own (the global one seeded 0 draws the same): the caller's random state is untouched
    phase = torch.rand(magnitude.shape, dtype=magnitude.dtype.to_complex(), generator=torch.Generator().manual_seed(0))
    a = momentum / (1 + momentum)
    previous = None
    for _ in range(n_iter):
        inverse = torch.istft(phase.mul_(magnitude), length=length, **transform)
        rebuilt = torch.stft(inverse, center=True, pad_mode="reflect", normalized=False, onesided=True,
                             return_complex=True, **transform)
        phase = rebuilt.clone() if previous is None else torch.sub(rebuilt, previous, alpha=a)
        phase.div_(phase.abs().add_(1e-16))
        previous = rebuilt
    return torch.istft(phase.mul_(magnitude), length=length, **transform)


def mel_to_audio(logmel: np.ndarray, spec: MelSpec, *, n_iter: int = 32, length: int | None = None) -> np.ndarray:
    """(batch, n_mels, frames) natural-log mel power -> (batch, samples) audio.

    Mel power -> linear power by non-negative least squares, square root for magnitude, then
    Griffin-Lim for the phase.
    """
    mel_power = torch.exp(torch.as_tensor(np.asarray(logmel), dtype=torch.float32))
    if mel_power.ndim == 2:
        mel_power = mel_power[None]
    linear = nnls_mel_inverse(mel_power, spec.filterbank()).sqrt()
    audio = griffin_lim(linear, n_fft=spec.n_fft, hop_length=spec.hop_length, win_length=spec.window_length,
                        n_iter=n_iter, length=length)
    return audio.numpy()


def spectral_convergence_db(reference_logmel: np.ndarray, audio: np.ndarray, spec: MelSpec) -> np.ndarray:
    """Per clip: 20*log10(||M - M_hat||_F / ||M||_F) on mel magnitudes of ``audio`` re-analysed (lower is better)."""
    return mel_spectral_convergence_db(reference_logmel, LogMel(spec)(audio).numpy())


def mel_spectral_convergence_db(reference_logmel: np.ndarray, estimate_logmel: np.ndarray) -> np.ndarray:
    """Per clip: 20*log10(||M - M_hat||_F / ||M||_F) on the magnitudes of two log-mels, over the frames both have."""
    ref = np.sqrt(np.exp(np.asarray(reference_logmel, np.float64)))
    est = np.sqrt(np.exp(np.asarray(estimate_logmel, np.float64)))
    frames = min(ref.shape[-1], est.shape[-1])
    ref, est = ref[..., :frames], est[..., :frames]
    sc = np.linalg.norm((ref - est).reshape(len(ref), -1), axis=1) / np.linalg.norm(ref.reshape(len(ref), -1), axis=1)
    return 20.0 * np.log10(np.maximum(sc, 1e-12))


@dataclass
class GriffinLim:
    """Phase by Griffin-Lim from the non-negative least-squares linear spectrum."""

    spec: MelSpec
    n_iter: int = 32
    kind: str = "griffinlim"

    def synthesise(self, logmel: np.ndarray) -> np.ndarray:
        return mel_to_audio(np.asarray(logmel), self.spec, n_iter=self.n_iter)

    def __call__(self, logmel: np.ndarray) -> np.ndarray:
        return limit_peak(self.synthesise(logmel))

    def describe(self) -> str:
        return f"Griffin-Lim ({self.n_iter} iterations)"

    @classmethod
    def for_index(cls, mel_index: dict[str, Any]) -> "GriffinLim":
        """The mel store's own Griffin-Lim (its mel settings and ``mel.griffinlim_iters``): the vocoder of
        training previews, which needs nothing trained."""
        return cls(MelSpec.from_index(mel_index), n_iter=mel_index["mel"]["griffinlim_iters"])
