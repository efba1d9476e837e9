"""What an embedding cannot see, measured on the audio itself: how much of a clip is periodic (voiced),
how clean that periodicity is (harmonicity), whether its pitch sits on a note the data has, and its
level: peak, loudness, clipping and noise floor (a generated clip that hisses where real ones are
silent, or reaches full scale where real ones peak below it, scores well on a class embedding).

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
NOISE_PERCENTILE = 10.0  # a clip's noise floor: this percentile of its frame levels (dBFS)
FULL_SCALE = 0.999  # a sample at or above this |x| has hit the vocoder's clip at 1.0
LEVEL_FLOOR_DB = -120.0  # digital silence reads as this, not -inf
SILENT_CELL_DB = 1.0  # a mel cell this close to the mel floor counts as silent
LEVEL_JND_DB = 1.0  # about the smallest level change a listener notices: the margin of the in-range test


def _frames(audio: np.ndarray, *, centre: bool = True) -> np.ndarray:
    """(clips, samples) -> (clips, frames, FRAME), mean removed per frame unless ``centre`` is False."""
    audio = np.asarray(audio, np.float32)
    if audio.shape[-1] < FRAME:
        audio = np.pad(audio, [(0, 0), (0, FRAME - audio.shape[-1])])
    count = 1 + (audio.shape[-1] - FRAME) // HOP
    index = np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]
    frames = audio[:, index]
    return frames - frames.mean(-1, keepdims=True) if centre else frames


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


def _db(power: np.ndarray) -> np.ndarray:
    return np.maximum(10 * np.log10(np.maximum(power, 1e-30)), LEVEL_FLOOR_DB)


def level_stats(audio: np.ndarray) -> dict[str, np.ndarray]:
    """Per clip, in dB relative to full scale: ``peak_db`` = 20 log10 max|x|; ``loudness_db`` = the
    RMS level of its audible frames (within SILENCE_DB of its loudest frame); ``noise_floor_db`` = the
    NOISE_PERCENTILE-th percentile of its frame RMS levels (frames of FRAME samples, mean kept), where
    a clean clip is silent and a hissing one is not; ``clipped`` = 1 when any sample reaches full scale."""
    audio = np.asarray(audio, np.float32)
    power = (_frames(audio, centre=False).astype(np.float64) ** 2).mean(-1)
    levels = _db(power)
    audible = levels > levels.max(-1, keepdims=True) + SILENCE_DB
    loud = (power * audible).sum(-1) / np.maximum(audible.sum(-1), 1)
    magnitude = np.abs(audio).max(-1).astype(np.float64)
    return {"peak_db": _db(magnitude ** 2), "loudness_db": _db(loud),
            "noise_floor_db": np.percentile(levels, NOISE_PERCENTILE, axis=-1),
            "clipped": (magnitude >= FULL_SCALE).astype(np.float64)}


def mel_silence(logmel: np.ndarray, log_floor: float) -> np.ndarray:
    """Per clip: the share of its mel cells at the mel floor (within SILENT_CELL_DB of ``log_floor``,
    the power every real mel is floored at, or below it). The black of a spectrogram grid: real clips
    have it where they are silent; a model that lays a noise floor under everything has less of it.
    Read on the mels, so no vocoder stands between it and the model."""
    logmel = np.asarray(logmel, np.float64).reshape(len(logmel), -1)
    return (logmel <= np.log(log_floor) + SILENT_CELL_DB * np.log(10) / 10).mean(-1)


def signal_stats(audio: np.ndarray, sample_rate: int, pitches_midi: list[float] | None = None,
                 logmel: np.ndarray | None = None, log_floor: float | None = None) -> dict[str, np.ndarray]:
    """Per clip: ``voiced`` (share of audible frames that are periodic), ``harmonicity`` (mean peak over
    audible frames), the level statistics of :func:`level_stats`, ``mel_silence`` given the clips'
    log-mels and the mel floor, and, given the data's pitches (MIDI numbers), ``on_pitch`` (1 when the median f0
    of the voiced frames is within half a semitone of one of them, else 0)."""
    peak, f0, audible = frame_periodicity(audio, sample_rate)
    voiced = (peak >= VOICED_THRESHOLD) & audible
    n_audible = np.maximum(audible.sum(-1), 1)
    stats = {"voiced": voiced.sum(-1) / n_audible, "harmonicity": (peak * audible).sum(-1) / n_audible,
             **level_stats(audio)}
    if logmel is not None and log_floor is not None:
        stats["mel_silence"] = mel_silence(logmel, log_floor)
    if pitches_midi:
        targets = np.asarray(sorted(pitches_midi), np.float64)
        on = np.zeros(len(f0))
        for i in range(len(f0)):
            if voiced[i].any():
                midi = 69 + 12 * np.log2(np.median(f0[i][voiced[i]]) / 440.0)
                on[i] = float(np.abs(targets - midi).min() <= 0.5)
        stats["on_pitch"] = on
    return stats


def in_range_share(values: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                   names: tuple[str, ...] = ("noise_floor_db", "peak_db"),
                   margin_db: float = LEVEL_JND_DB) -> np.ndarray | None:
    """Per clip: 1 when every one of ``names`` (levels in dB) lies inside the reference clips'
    5th-95th percentile range (the real clips' spread) widened by ``margin_db`` on each side, else 0;
    None when a statistic is missing on either side. The margin matters where the real spread is
    narrower than hearing: the digits' noise floor spans 1.1 dB, and without it a model 0.05 dB
    above the real 95th percentile counted as out of range, as if it hissed."""
    if not all(n in values and n in reference for n in names):
        return None
    inside = np.ones(len(values[names[0]]), bool)
    for name in names:
        low, high = np.percentile(reference[name], [5, 95])
        inside &= (values[name] >= low - margin_db) & (values[name] <= high + margin_db)
    return inside.astype(np.float64)


def midi_pitches(values: list[str]) -> list[float] | None:
    """A label's values as MIDI pitches, or None when they are not all numbers in 0..127."""
    try:
        numbers = sorted({float(v) for v in values})
    except (TypeError, ValueError):
        return None
    return numbers if numbers and all(0 <= v <= 127 for v in numbers) else None
