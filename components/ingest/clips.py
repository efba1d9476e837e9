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


class ClipSlicer:
    """Cut a stream into (offset, clip) windows of exactly ``clip_samples``, holding at most a clip and
    a block in memory. Windows start every ``hop_samples``. A final partial window is zero-padded
    when it holds at least ``min_last_fraction`` of a clip, else dropped; audio shorter than a clip
    is one padded clip under the same rule."""

    def __init__(self, *, clip_samples: int, hop_samples: int, min_last_fraction: float) -> None:
        if clip_samples <= 0 or hop_samples <= 0:
            raise ValueError("clip_samples and hop_samples must be positive")
        self.clip, self.hop, self.min_last = clip_samples, hop_samples, min_last_fraction
        self.buffer = np.zeros(0, dtype=np.float32)  # samples from ``start`` on
        self.start = 0  # where the next window starts
        self.skip = 0  # samples still to drop before it (hop > clip)
        self.windows = 0

    def feed(self, samples: np.ndarray) -> list[tuple[int, np.ndarray]]:
        samples = samples.astype(np.float32, copy=False)
        if self.skip:
            dropped = min(self.skip, len(samples))
            samples, self.skip = samples[dropped:], self.skip - dropped
        self.buffer = np.concatenate([self.buffer, samples])
        out = []
        while len(self.buffer) >= self.clip:
            out.append((self.start, self.buffer[: self.clip].copy()))
            self.start += self.hop
            self.skip = max(0, self.hop - len(self.buffer))
            self.buffer = self.buffer[self.hop:]
        self.windows += len(out)
        return out

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """The final, partial window (if long enough); no more samples may follow."""
        if self.skip or not len(self.buffer) or len(self.buffer) < self.min_last * self.clip:
            return []
        window = np.pad(self.buffer, (0, self.clip - len(self.buffer)))
        self.buffer = np.zeros(0, dtype=np.float32)
        self.windows += 1
        return [(self.start, window)]


def slice_clips(audio: np.ndarray, *, clip_samples: int, hop_samples: int,
                min_last_fraction: float) -> list[tuple[int, np.ndarray]]:
    """:class:`ClipSlicer` over a whole signal."""
    slicer = ClipSlicer(clip_samples=clip_samples, hop_samples=hop_samples, min_last_fraction=min_last_fraction)
    return slicer.feed(audio) + slicer.finish()


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
