"""Pure signal functions of ingestion: mono mix-down, slicing, levels, normalisation."""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(channels, samples) or (samples,) -> (samples,) by averaging channels."""
    if audio.ndim == 1:
        return audio.astype(np.float32, copy=False)
    return audio.mean(axis=0, dtype=np.float64).astype(np.float32)


def rms_dbfs(clip: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(np.square(clip, dtype=np.float64)) + EPS))


def peak(clip: np.ndarray) -> float:
    return float(np.max(np.abs(clip))) if clip.size else 0.0


def slice_clips(audio: np.ndarray, *, clip_samples: int, hop_samples: int,
                min_last_fraction: float) -> list[tuple[int, np.ndarray]]:
    """Cut ``audio`` into (offset, clip) windows of exactly ``clip_samples``.

    Windows start every ``hop_samples``. A final partial window is zero-padded when it holds at
    least ``min_last_fraction`` of a clip, else dropped. Audio shorter than a clip is one padded
    clip under the same rule.
    """
    if clip_samples <= 0 or hop_samples <= 0:
        raise ValueError("clip_samples and hop_samples must be positive")
    n = len(audio)
    out: list[tuple[int, np.ndarray]] = []
    start = 0
    while start < n:
        window = audio[start:start + clip_samples]
        if len(window) < clip_samples:
            if len(window) < min_last_fraction * clip_samples:  # never empty: start < n
                break
            window = np.pad(window, (0, clip_samples - len(window)))
            out.append((start, window.astype(np.float32, copy=False)))
            break
        out.append((start, window.astype(np.float32, copy=False)))
        start += hop_samples
    return out


def normalise(clip: np.ndarray, *, mode: str, peak_dbfs: float, loudness_dbfs: float) -> np.ndarray:
    """Scale a clip: ``peak`` -> max |x| at ``peak_dbfs``; ``loudness`` -> RMS at ``loudness_dbfs``
    (then limited so the peak never exceeds ``peak_dbfs``); ``none`` -> unchanged."""
    if mode == "none":
        return clip
    ceiling = 10.0 ** (peak_dbfs / 20.0)
    p = peak(clip)
    if p <= EPS:
        return clip
    if mode == "peak":
        gain = ceiling / p
    elif mode == "loudness":
        rms = float(np.sqrt(np.mean(np.square(clip, dtype=np.float64))))
        gain = min(10.0 ** (loudness_dbfs / 20.0) / max(rms, EPS), ceiling / p)
    else:
        raise ValueError(f"unknown normalise mode {mode!r}; allowed: peak, loudness, none")
    return (clip * np.float32(gain)).astype(np.float32)
