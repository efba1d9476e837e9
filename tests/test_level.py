"""The level generated clips are delivered at: the real clips' convention, carried in the model file;
a clip is scaled by one gain, never clipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.generation import MelGenerator
from components.level import LevelConvention, limit_peak
from helpers import write_tiny_model

CEILING = 10 ** (-1 / 20)


def _clips() -> np.ndarray:
    """A Griffin-Lim-like clip past full scale, a quiet one, and a silent one."""
    t = np.linspace(0, 1, 4000, endpoint=False)
    return np.stack([1.7 * np.sin(2 * np.pi * 5 * t), 0.05 * np.sin(2 * np.pi * 7 * t), np.zeros_like(t)])


def test_peak_mode_puts_every_audible_clip_at_the_real_peak_by_one_gain():
    clips = _clips()
    out = LevelConvention("peak", peak_dbfs=-1.0).apply(clips)
    assert out.dtype == np.float32 and out.shape == clips.shape
    assert np.abs(out[:2]).max(-1) == pytest.approx([CEILING, CEILING], rel=1e-6)
    assert np.allclose(out[1] / CEILING, clips[1] / 0.05, atol=1e-5)  # the waveform's shape is kept
    assert not out[2].any() and (np.abs(out) >= 1.0).sum() == 0


def test_loudness_mode_sets_the_rms_unless_the_peak_would_pass_its_ceiling():
    t = np.linspace(0, 1, 4000, endpoint=False)
    sine, spiky = 0.01 * np.sin(2 * np.pi * 5 * t), np.zeros_like(t)
    spiky[100] = 0.5  # one click: its RMS target would need a gain far past full scale
    out = LevelConvention("loudness", peak_dbfs=-1.0, loudness_dbfs=-20.0).apply(np.stack([sine, spiky]))
    assert 20 * np.log10(np.sqrt(np.mean(out[0].astype(np.float64) ** 2))) == pytest.approx(-20.0, abs=1e-4)
    assert np.abs(out[1]).max() == pytest.approx(CEILING, rel=1e-6)


def test_none_mode_only_turns_down_what_would_pass_the_ceiling():
    clips = _clips()
    out = LevelConvention("none", peak_dbfs=-1.0).apply(clips)
    assert np.abs(out[0]).max() == pytest.approx(CEILING, rel=1e-6)
    assert np.allclose(out[0] / CEILING, clips[0] / 1.7, atol=1e-6)
    assert np.array_equal(out[1], clips[1].astype(np.float32))
    assert np.array_equal(limit_peak(clips), out) and limit_peak(np.zeros((2, 0))).shape == (2, 0)
    assert LevelConvention("peak").apply(np.zeros((0, 10))).shape == (0, 10)


def test_the_convention_round_trips_through_an_index_and_old_indexes_keep_the_old_ceiling():
    level = LevelConvention("loudness", peak_dbfs=-2.0, loudness_dbfs=-18.0)
    assert LevelConvention.from_index({"level": level.to_json()}) == level
    assert LevelConvention.from_index({}) == LevelConvention("none", -1.0)
    assert "peak-normalised to -1 dBFS" in LevelConvention("peak").describe()
    with pytest.raises(ValueError, match="level mode must be one of peak, loudness, none; got 'loud'"):
        LevelConvention("loud")
    with pytest.raises(ValueError, match="peak_dbfs must be <= 0"):
        LevelConvention("peak", peak_dbfs=1.0)


def test_a_model_delivers_32_clips_at_its_stored_level_with_none_at_full_scale(tmp_path):
    stored = MelGenerator.load(write_tiny_model(tmp_path / "a.pt", seed=0, level={"mode": "peak", "peak_dbfs": -1.0,
                                                                                   "loudness_dbfs": -20.0}))
    legacy = MelGenerator.load(write_tiny_model(tmp_path / "b.pt", seed=0))
    audio = stored.generate(32, seed=1)
    peaks_db = 20 * np.log10(np.abs(audio).max(-1))
    assert (np.abs(audio) >= 1.0).sum() == 0 and np.allclose(peaks_db, -1.0, atol=1e-4)
    cut = stored.generate(4, seed=1, seconds=0.3)  # a shorter clip is levelled as delivered, not before the cut
    assert np.allclose(20 * np.log10(np.abs(cut).max(-1)), -1.0, atol=1e-4)
    assert legacy.level == LevelConvention("none", -1.0) and np.abs(legacy.generate(4, seed=1)).max() <= CEILING + 1e-6


def test_delivery_applies_the_gain_before_the_mel_floor_as_the_data_got_it():
    """A model's clip 12 dB louder than the convention, over silence at the mel floor (what a model
    writes), must come out with the real clip's noise floor: levelled after synthesis instead, its
    silence is turned down with it, 12 dB below any real clip's."""
    from components.evaluate.signal import level_stats
    from components.features.mel import LogMel, MelSpec
    from components.vocoder.interface import GriffinLim

    spec = MelSpec(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)
    t = np.arange(32000) / 16000
    clip = np.where(t < 0.8, np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t), 0.0).astype(np.float32)
    level = LevelConvention("peak", peak_dbfs=-1.0)
    real = LogMel(spec)(torch.from_numpy(level.apply(clip[None]))).numpy()  # the data's order: level, then floor
    floor = np.log(spec.log_floor)
    loud = np.where(real > floor + 0.01, real + np.log(10 ** 1.2), real)  # the note 12 dB up, silence kept
    vocoder = GriffinLim(spec, n_iter=16)
    delivered = {name: level_stats(level.deliver(m, vocoder.synthesise, spec.log_floor))
                 for name, m in (("real", real), ("loud", loud))}
    after = level_stats(level.apply(vocoder(loud)))
    assert delivered["loud"]["peak_db"] == pytest.approx(delivered["real"]["peak_db"], abs=1e-3)
    assert abs(delivered["loud"]["noise_floor_db"][0] - delivered["real"]["noise_floor_db"][0]) < 1.0
    assert after["noise_floor_db"][0] < delivered["real"]["noise_floor_db"][0] - 8.0
