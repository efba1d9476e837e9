"""Seeded generation from a saved model: any clip length, same seed -> same audio."""

from __future__ import annotations

import numpy as np
import pytest

from components.generation import MelGenerator
from helpers import write_tiny_model


@pytest.fixture
def generator(tmp_path):
    return MelGenerator.load(write_tiny_model(tmp_path / "model.pt", seed=0))


def test_frames_for_seconds_rounds_up_to_what_the_unet_accepts(generator):
    assert generator.frames == 32 and generator.clip_seconds == pytest.approx(31 * 128 / 8000)
    frames = generator.frames_for_seconds(1.0)  # 8000 / 128 = 62.5 -> 64 frames (+1 centred) -> 66 -> even
    assert frames % 2 == 0 and (frames - 1) * 128 >= 8000
    with pytest.raises(ValueError, match="seconds must be > 0"):
        generator.frames_for_seconds(0)


def test_generate_any_length_deterministically(generator):
    a = generator.generate(2, seed=7, seconds=1.3)
    b = generator.generate(2, seed=7, seconds=1.3)
    c = generator.generate(2, seed=8, seconds=1.3)
    assert a.shape == (2, int(round(1.3 * 8000))) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(a).max() <= 1.0
    default = generator.generate(1, seed=0)
    assert default.shape[1] >= int(generator.clip_seconds * 8000)


def test_real_time_factor_is_positive(generator):
    rtf = generator.real_time_factor(clips=1, repeats=1)
    assert 0 < rtf["rtf_mel"] <= rtf["rtf"]
