"""What an embedding cannot see, measured on the audio itself: how much of a clip is periodic (voiced),
how clean that periodicity is (harmonicity), and whether its pitch sits on a note the data has.

A normalised-autocorrelation pitch detector in numpy (the principle of YIN/pYIN without its HMM):
fast enough to run on every evaluated clip, independent of the evaluation classifier, and applied to
generated and real clips through the same vocoder, so the two are compared like for like.
"""

from __future__ import annotations

import numpy as np

FRAME = 1024
HOP = 1024  # non-overlapping frames: a share over a clip needs no overlap, and it halves the cost
FMIN, FMAX = 50.0, 1000.0
VOICED_THRESHOLD = 0.5  # normalised autocorrelation peak that counts as periodic
SILENCE_DB = -45.0  # frames this far below the clip's loudest frame are silence, neither voiced nor not


def _frames(audio: np.ndarray) -> np.ndarray:
    """(clips, samples) -> (clips, frames, FRAME), mean removed per frame."""
    audio = np.asarray(audio, np.float32)
    if audio.shape[-1] < FRAME:
        audio = np.pad(audio, [(0, 0), (0, FRAME - audio.shape[-1])])
    count = 1 + (audio.shape[-1] - FRAME) // HOP
    index = np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]
    frames = audio[:, index]
    return frames - frames.mean(-1, keepdims=True)


def frame_periodicity(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: (normalised autocorrelation peak in the FMIN..FMAX lag range, f0 in Hz, non-silent mask).

    r(tau) / r(0), each lag divided by its overlap (FRAME - tau) / FRAME so long lags are not
    penalised; the f0 is the peak of the first run of lags within 90% of the best one (fewer
    octave-down errors), refined by parabolic interpolation."""
    frames = _frames(audio)
    spectrum = np.fft.rfft(frames, 2 * FRAME, axis=-1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=-1)[..., :FRAME]
    energy = acf[..., 0]
    lo, hi = int(sample_rate / FMAX), min(int(sample_rate / FMIN), FRAME // 2)
    lags = np.arange(lo, hi + 1)
    norm = acf[..., lags] / np.maximum(energy[..., None], 1e-12) * (FRAME / (FRAME - lags))
    peak = norm.max(-1)
    # the first run of lags within 90% of the best peak, and the local maximum inside it
    above = norm >= 0.9 * peak[..., None]
    index = np.arange(len(lags))
    first = np.argmax(above, axis=-1)
    after = index >= first[..., None]
    ended = ~above & after
    stop = np.where(ended.any(-1), np.argmax(ended, axis=-1), len(lags))
    best = np.argmax(np.where(after & (index < stop[..., None]), norm, -np.inf), axis=-1)
    # parabolic interpolation between neighbouring lags (1 lag is ~57 cents at 523 Hz)
    left = np.take_along_axis(norm, np.clip(best - 1, 0, len(lags) - 1)[..., None], -1)[..., 0]
    mid = np.take_along_axis(norm, best[..., None], -1)[..., 0]
    right = np.take_along_axis(norm, np.clip(best + 1, 0, len(lags) - 1)[..., None], -1)[..., 0]
    curve = left - 2 * mid + right
    offset = np.where(np.abs(curve) > 1e-9, 0.5 * (left - right) / np.where(np.abs(curve) > 1e-9, curve, 1.0), 0.0)
    f0 = sample_rate / (lags[best] + np.clip(offset, -0.5, 0.5))
    level_db = 10 * np.log10(np.maximum(energy, 1e-20))
    audible = level_db > level_db.max(-1, keepdims=True) + SILENCE_DB
    audible &= energy > 1e-10 * FRAME
    return np.clip(peak, 0.0, 1.0), f0, audible


def signal_stats(audio: np.ndarray, sample_rate: int, pitches_midi: list[float] | None = None) -> dict[str, np.ndarray]:
    """Per clip: ``voiced`` (share of audible frames that are periodic), ``harmonicity`` (mean peak over
    audible frames) and, given the data's pitches (MIDI numbers), ``on_pitch`` (1 when the median f0
    of the voiced frames is within half a semitone of one of them, else 0)."""
    peak, f0, audible = frame_periodicity(audio, sample_rate)
    voiced = (peak >= VOICED_THRESHOLD) & audible
    n_audible = np.maximum(audible.sum(-1), 1)
    stats = {"voiced": voiced.sum(-1) / n_audible, "harmonicity": (peak * audible).sum(-1) / n_audible}
    if pitches_midi:
        targets = np.asarray(sorted(pitches_midi), np.float64)
        on = np.zeros(len(f0))
        for i in range(len(f0)):
            if voiced[i].any():
                midi = 69 + 12 * np.log2(np.median(f0[i][voiced[i]]) / 440.0)
                on[i] = float(np.abs(targets - midi).min() <= 0.5)
        stats["on_pitch"] = on
    return stats


def midi_pitches(values: list[str]) -> list[float] | None:
    """A label's values as MIDI pitches, or None when they are not all numbers in 0..127."""
    try:
        numbers = sorted({float(v) for v in values})
    except (TypeError, ValueError):
        return None
    return numbers if numbers and all(0 <= v <= 127 for v in numbers) else None
