"""Signal statistics the embeddings cannot see: voicing, harmonicity, pitch on a training note."""

import numpy as np
import pytest

from components.evaluate.signal import midi_pitches, signal_stats

RATE = 16000


def _tone(midi: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    f = 440.0 * 2 ** ((midi - 69) / 12)
    return (0.5 * np.sin(2 * np.pi * f * t) + 0.2 * np.sin(4 * np.pi * f * t)).astype(np.float32)


def test_tones_are_voiced_and_on_pitch_and_noise_is_neither():
    noise = np.random.default_rng(0).normal(0, 0.3, RATE).astype(np.float32)
    detuned = _tone(60.7)  # 70 cents sharp of C4: on no note of the data
    audio = np.stack([_tone(48), _tone(60), _tone(72), noise, detuned])
    stats = signal_stats(audio, RATE, [48.0, 60.0, 72.0])
    assert list(stats["voiced"][:3]) == [1.0, 1.0, 1.0] and stats["voiced"][3] < 0.1
    assert np.all(stats["harmonicity"][:3] > 0.95) and stats["harmonicity"][3] < 0.3
    assert list(stats["on_pitch"]) == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_silence_counts_as_neither_voiced_nor_unvoiced():
    clip = np.concatenate([_tone(60, 0.5), np.zeros(RATE // 2, np.float32)])
    assert signal_stats(clip[None], RATE)["voiced"][0] == pytest.approx(1.0)
    assert "on_pitch" not in signal_stats(clip[None], RATE)  # no pitch label, no pitch check


def test_pitch_labels_are_read_as_midi_only_when_they_are():
    assert midi_pitches(["60", "48", "60"]) == [48.0, 60.0]
    assert midi_pitches(["one", "two"]) is None and midi_pitches(["200"]) is None
