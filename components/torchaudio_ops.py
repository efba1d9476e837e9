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
