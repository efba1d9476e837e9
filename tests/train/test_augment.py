"""Light augmentation (gain, time shift) of the teacher's clips: known values, silence kept, the
same draws for the same step, and the stage's batch source applying it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.features.packing import pack_snake
from components.features.stats import MelStats
from components.train.augment import Augment, gain, shift

FLOOR = math.log(1e-5)


def test_gain_adds_decibels_in_log_power_and_stops_at_the_floor():
    x = np.array([[[FLOOR, FLOOR + 1.0, 0.0]]])
    up = gain(x, np.array([10.0]), FLOOR)
    np.testing.assert_allclose(up, [[[FLOOR, FLOOR + 1.0 + math.log(10), math.log(10)]]])  # +10 dB = x10 power
    down = gain(x, np.array([-20.0]), FLOOR)
    np.testing.assert_allclose(down, [[[FLOOR, FLOOR, -2 * math.log(10)]]])  # floored, never below it


def test_shift_moves_frames_and_pads_with_the_floor_never_wrapping():
    x = np.arange(2 * 2 * 5, dtype=np.float64).reshape(2, 2, 5)
    out = shift(x, np.array([2, -1]), FLOOR)
    np.testing.assert_array_equal(out[0, :, 2:], x[0, :, :3])
    assert (out[0, :, :2] == FLOOR).all()
    np.testing.assert_array_equal(out[1, :, :4], x[1, :, 1:])
    assert (out[1, :, 4] == FLOOR).all()
    np.testing.assert_array_equal(shift(x, np.array([0, 0]), FLOOR), x)


def _stats(bins: int, std: float = 3.0) -> MelStats:
    return MelStats(mean=np.full(bins, -5.0), std=np.full(bins, std), clip_sigma=3.0)


@pytest.mark.parametrize("std", [3.0, 1.0])  # with std 1 the floor lies past 3 sigma: stored silence is clipped
def test_augment_keeps_silence_silent_and_is_off_by_default(std):
    stats = _stats(4, std)
    logmel = np.full((3, 4, 16), FLOOR)
    logmel[:, :, 6:10] = -2.0  # a word in the middle of silence
    batch = stats.normalise(logmel)
    off = Augment(stats=stats, floor=FLOOR, layout="flat")
    assert not off.active and off(batch, np.random.default_rng(0)) is batch
    on = Augment(stats=stats, floor=FLOOR, layout="flat", gain_db=6.0, shift_frames=3)
    out = on(batch, np.random.default_rng(0))
    silent = stats.normalise(np.full((1, 4, 1), FLOOR))[0, 0, 0]
    assert out.shape == batch.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :, :3], silent, atol=1e-6)  # no shift reaches the edges: still silence
    np.testing.assert_allclose(out[:, :, 13:], silent, atol=1e-6)
    assert not np.allclose(out, batch)  # the word moved or changed level
    np.testing.assert_array_equal(on(batch, np.random.default_rng(0)), out)  # the same draws, the same batch


def test_augment_on_the_snake_layout_acts_on_the_unpacked_clip():
    stats = _stats(4)
    rng = np.random.default_rng(1)
    logmel = rng.uniform(FLOOR, 0.0, size=(2, 4, 16))
    flat = Augment(stats=stats, floor=FLOOR, layout="flat", gain_db=3.0, shift_frames=2)
    snake = Augment(stats=stats, floor=FLOOR, layout="snake", gain_db=3.0, shift_frames=2)
    normalised = stats.normalise(logmel)
    expected = pack_snake(flat(normalised, np.random.default_rng(5)), 2)
    np.testing.assert_allclose(snake(pack_snake(normalised, 2), np.random.default_rng(5)), expected)


def test_the_teacher_batch_source_augments_reproducibly(tmp_path):
    from components.features.stage import run_features
    from components.features.store import MelStore
    from components.ingest.stage import run_ingest
    from components.train.teacher import teacher_batches
    from helpers import tiny_config

    cfg = tiny_config()
    run_ingest(cfg, tmp_path / "clips")
    run_features(cfg, tmp_path / "clips", tmp_path / "mels")
    store = MelStore(tmp_path / "mels")
    plain = teacher_batches(cfg, store)(3).numpy()
    augmented = tiny_config(train={"augment_gain_db": 6.0, "augment_shift_frames": 4})
    first, again = teacher_batches(augmented, store)(3).numpy(), teacher_batches(augmented, store)(3).numpy()
    np.testing.assert_array_equal(first, again)
    assert first.shape == plain.shape and not np.allclose(first, plain)


def test_a_shift_as_long_as_the_clip_is_refused_naming_the_fields():
    from components.config_base import ConfigError
    from components.params_file import validate_params
    from helpers import tiny_params

    params = tiny_params(train={"augment_shift_frames": 64})
    with pytest.raises(ConfigError, match=r"train.augment_shift_frames \(64\).*mel.frames \(64\)"):
        validate_params(params)
