"""The level every generated clip is delivered at: the convention the ingest stage gave the real clips
(``audio.normalise``, ``audio.peak_dbfs``, ``audio.loudness_dbfs``), written into the mel index and so
carried inside every model file. A model's clips then peak (or sit) where the clips it learned from
do, whatever its vocoder does to the crest factor, and a clip is only ever scaled, never clipped.

    level = LevelConvention.from_index(mel_index)
    audio = level.apply(vocoder(logmel))   # (batch, samples), each clip by one gain
    audio = level.deliver(logmel, vocoder.synthesise, spec.log_floor)  # gain on the mels, floor after it

:meth:`LevelConvention.deliver` is how mels become delivered audio: the real clips got their level
(ingest) before their mel floor (features), and generated clips get theirs in the same order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from components.ingest.clips import normalise

# What a model file from before the convention was stored gets: its clips are only turned down to
# this ceiling, as they were then.
LEGACY_CEILING_DBFS = -1.0
INDEX_KEY = "level"


def limit_peak(audio: np.ndarray, ceiling_dbfs: float = LEGACY_CEILING_DBFS) -> np.ndarray:
    """(batch, samples) -> float32 with every clip's max |x| at most 10^(ceiling/20), by a per-clip gain
    (no clipping distortion; quieter clips keep their level)."""
    audio = np.asarray(audio, np.float32)
    ceiling = 10 ** (ceiling_dbfs / 20)
    peak = np.abs(audio).max(-1, keepdims=True) if audio.size else np.zeros(audio.shape[:-1] + (1,), np.float32)
    return (audio * np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))).astype(np.float32)


@dataclass(frozen=True)
class LevelConvention:
    """``mode``: ``peak`` (every clip's max |x| at ``peak_dbfs``), ``loudness`` (RMS at ``loudness_dbfs``,
    the peak never above ``peak_dbfs``) or ``none`` (left as made, turned down to ``peak_dbfs`` only
    where it would pass it)."""

    mode: str = "none"
    peak_dbfs: float = LEGACY_CEILING_DBFS
    loudness_dbfs: float = -20.0

    def __post_init__(self) -> None:
        if self.mode not in ("peak", "loudness", "none"):
            raise ValueError(f"level mode must be one of peak, loudness, none; got {self.mode!r}")
        if self.peak_dbfs > 0:
            raise ValueError(f"level peak_dbfs must be <= 0 dBFS, got {self.peak_dbfs}")

    @classmethod
    def from_audio_config(cls, audio: Any) -> "LevelConvention":
        """The convention of the ``audio`` params section the ingest stage applied."""
        return cls(mode=audio.normalise, peak_dbfs=float(audio.peak_dbfs), loudness_dbfs=float(audio.loudness_dbfs))

    @classmethod
    def from_index(cls, index: dict[str, Any]) -> "LevelConvention":
        """The convention stored in a mel index (a model file's ``mel_index``); an index written before
        it was stored gets the old behaviour (a -1 dBFS ceiling)."""
        stored = index.get(INDEX_KEY)
        return cls(**stored) if stored else cls()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def apply(self, audio: np.ndarray) -> np.ndarray:
        """(batch, samples) -> float32 (batch, samples) at this level, one gain per clip; silent clips
        stay silent."""
        audio = np.asarray(audio, np.float32)
        if self.mode != "none":
            audio = np.stack([normalise(clip, mode=self.mode, peak_dbfs=self.peak_dbfs,
                                        loudness_dbfs=self.loudness_dbfs) for clip in audio]) if len(audio) else audio
        return limit_peak(audio, self.peak_dbfs)

    def gains(self, audio: np.ndarray) -> np.ndarray:
        """(batch, samples) -> (batch,) the one gain per clip that :meth:`apply` multiplies it by (1 for
        a silent clip)."""
        audio = np.asarray(audio, np.float32)
        if not audio.size:
            return np.ones(len(audio), np.float64)
        before = np.abs(audio).max(-1).astype(np.float64)
        after = np.abs(self.apply(audio)).max(-1).astype(np.float64)
        return np.where(before > 1e-12, after / np.maximum(before, 1e-12), 1.0)

    def deliver(self, logmel: np.ndarray, synthesise: Callable[[np.ndarray], np.ndarray],
                log_floor: float) -> np.ndarray:
        """(batch, n_mels, frames) natural-log mel power -> (batch, samples) float32 audio at this level,
        made in the data's order: a clip's gain (measured on ``synthesise``'s audio at the mels' own
        level) is applied to its mels, the mel floor (``log_floor``, a power) after it, and only then is
        it synthesised. Real clips were levelled (ingest) before their mels were floored (features);
        levelled after synthesis instead, a model's loud clip carried its silence down with it, below
        any real clip's (31% of the demo teacher's clips), and a quiet one carried it up.

            L' = max(L + ln g^2, ln floor)    (L = ln mel power, g = the clip's gain)
        """
        logmel = np.asarray(logmel, np.float32)
        if not logmel.size:
            return self.apply(synthesise(logmel))
        gain = self.gains(synthesise(logmel))
        levelled = np.maximum(logmel + 2 * np.log(gain)[:, None, None], np.log(log_floor)).astype(np.float32)
        return self.apply(synthesise(levelled))

    def describe(self) -> str:
        if self.mode == "peak":
            return f"peak-normalised to {self.peak_dbfs:g} dBFS"
        if self.mode == "loudness":
            return f"RMS at {self.loudness_dbfs:g} dBFS, peak at most {self.peak_dbfs:g} dBFS"
        return f"as made, peak at most {self.peak_dbfs:g} dBFS"
