"""Signal statistics the embeddings cannot see: voicing, harmonicity, pitch on a training note."""

import numpy as np
import pytest

from components.evaluate.signal import in_range_share, level_stats, mel_silence, midi_pitches, signal_stats

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


def test_levels_have_their_formulas_and_hiss_raises_the_noise_floor():
    quiet = np.concatenate([_tone(60, 8192 / RATE), np.zeros(8192, np.float32)])  # 8 frames of tone, 8 silent
    hiss = quiet + np.random.default_rng(0).normal(0, 0.01, len(quiet)).astype(np.float32)  # -40 dBFS of noise
    loud = np.clip(4 * quiet, -1, 1)
    stats = level_stats(np.stack([quiet, hiss, loud]))
    assert stats["peak_db"][0] == pytest.approx(20 * np.log10(np.abs(quiet).max()), abs=1e-6)
    # the tone's RMS: (0.5^2 + 0.2^2) / 2 -> -8.6 dBFS over its audible (non-silent) frames
    assert stats["loudness_db"][0] == pytest.approx(10 * np.log10((0.25 + 0.04) / 2), abs=0.1)
    assert stats["noise_floor_db"][0] == pytest.approx(-120.0)  # digital silence
    assert stats["noise_floor_db"][1] == pytest.approx(-40.0, abs=0.5)
    assert list(stats["clipped"]) == [0.0, 0.0, 1.0] and stats["peak_db"][2] == pytest.approx(0.0)


def test_mel_silence_is_the_share_of_cells_at_the_mel_floor():
    clean = np.full((1, 8, 10), np.log(1e-5))  # the mel floor
    clean[0, 2, :] = np.log(1.0)  # one loud band over a silent background
    noisy = np.maximum(clean, np.log(1e-3))  # a noise floor 20 dB above the mel floor
    below = np.where(clean < 0, clean - 5.0, clean)  # a model may go below the floor: still silent
    assert mel_silence(np.concatenate([clean, noisy, below]), 1e-5) == pytest.approx([7 / 8, 0.0, 7 / 8])


def test_level_in_range_needs_both_noise_floor_and_peak_inside_the_reference_spread():
    reference = {"noise_floor_db": np.linspace(-80, -60, 101), "peak_db": np.linspace(-3, -1, 101)}
    values = {"noise_floor_db": np.array([-70.0, -40.0, -70.0]), "peak_db": np.array([-2.0, -2.0, 0.0])}
    assert list(in_range_share(values, reference)) == [1.0, 0.0, 0.0]
    assert in_range_share({"peak_db": values["peak_db"]}, reference) is None


def test_level_in_range_allows_one_decibel_beyond_a_spread_narrower_than_hearing():
    # a noise floor as constant as the digits' (real 5-95%: 1.1 dB wide)
    reference = {"noise_floor_db": np.linspace(-65.4, -64.1, 101), "peak_db": np.linspace(-4, -1, 101)}
    values = {"noise_floor_db": np.array([-64.0, -63.3, -62.0, -66.2, -67.0]), "peak_db": np.full(5, -2.0)}
    assert list(in_range_share(values, reference)) == [1.0, 1.0, 0.0, 1.0, 0.0]  # 0.1 dB above: inside
    assert list(in_range_share(values, reference, margin_db=0.0)) == [0.0, 0.0, 0.0, 0.0, 0.0]
