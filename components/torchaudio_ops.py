"""The only module that imports torchaudio (2.11, its last release, in maintenance mode).

Keeping every torchaudio call here means replacing it later touches one file.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited (sinc, Kaiser window) resampling of a (channels, samples) float32 array."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    out = AF.resample(tensor, orig_sr, target_sr, lowpass_filter_width=16, rolloff=0.945,
                      resampling_method="sinc_interp_kaiser", beta=14.769656459379492)
    return out.numpy()


def griffin_lim(magnitude: torch.Tensor, *, n_fft: int, hop_length: int, win_length: int, n_iter: int,
                length: int | None = None) -> torch.Tensor:
    """Phase reconstruction from a batch of linear STFT magnitudes (batch, freq, frames) -> audio."""
    window = torch.hann_window(win_length, dtype=magnitude.dtype)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)  # GL starts from random phase: fix it so reconstructions are repeatable
    try:
        return AF.griffinlim(magnitude, window, n_fft, hop_length, win_length, power=1.0, n_iter=n_iter,
                             momentum=0.99, length=length, rand_init=True)
    finally:
        torch.random.set_rng_state(generator_state)
