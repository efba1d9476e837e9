"""Seeded generation from a saved model: any clip length, same seed -> same audio."""

from __future__ import annotations

import json
import numpy as np
import pytest

from components.generate_cli import GenerationError, generate_to_folder
from components.generation import MelGenerator
from components.vocoder.interface import VocoderMismatch, load_vocoder
from helpers import write_tiny_model, write_tiny_vocoder


@pytest.fixture
def generator(tmp_path):
    return MelGenerator.load(write_tiny_model(tmp_path / "model.pt", seed=0))


def test_frames_for_seconds_rounds_up_to_what_the_unet_accepts(generator):
    assert generator.frames == 32 and generator.clip_seconds == pytest.approx(31 * 128 / 8000)
    frames = generator.frames_for_seconds(1.0)  # ceil(8000 / 128 = 62.5) = 63 hops, +1 centred frame = 64, even
    assert frames == 64 and (frames - 1) * 128 >= 8000
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


def test_a_generator_with_a_learned_vocoder_uses_it_and_refuses_one_trained_on_other_mels(tmp_path):
    model = write_tiny_model(tmp_path / "model.pt", seed=0)
    learned = MelGenerator.load(model, vocoder=load_vocoder(write_tiny_vocoder(tmp_path / "vocoder.pt")))
    griffin = MelGenerator.load(model)
    a, b = learned.generate(2, seed=3, seconds=0.5), griffin.generate(2, seed=3, seconds=0.5)
    assert a.shape == b.shape == (2, 4000) and not np.allclose(a, b)
    assert learned.active_vocoder.kind == "learned" and griffin.active_vocoder.kind == "griffinlim"
    with pytest.raises(VocoderMismatch, match="hop_length: vocoder 64"):
        MelGenerator.load(model, vocoder=load_vocoder(write_tiny_vocoder(tmp_path / "other.pt", hop_length=64)))


def test_generate_from_a_local_model_takes_the_vocoder_asked_for(tmp_path):
    model = write_tiny_model(tmp_path / "m" / "model.pt", seed=0)
    vocoder = write_tiny_vocoder(tmp_path / "v" / "vocoder.pt")
    files = {}
    for choice in ("griffinlim", str(vocoder.parent), str(vocoder)):
        written, _ = generate_to_folder(None, str(model.parent), n=1, seconds=0.5, seed=0, steps=None,
                                        out=tmp_path / f"out-{len(files)}", vocoder=choice)
        files[choice] = written[0].read_bytes()
    assert files[str(vocoder.parent)] == files[str(vocoder)] != files["griffinlim"]
    records = [json.loads((tmp_path / f"out-{k}" / "melforge-seed0.json").read_text()) for k in range(2)]
    assert records[0]["model"] == "m" and records[0]["steps"] == 2 and records[0]["version"] is None
    assert records[0]["vocoder"].startswith("Griffin-Lim") and records[1]["vocoder"].startswith("learned vocoder")
    with pytest.raises(GenerationError, match="vocoder: .*missing.pt: no trained vocoder"):
        generate_to_folder(None, str(model.parent), n=1, seconds=0.5, seed=0, steps=None, out=tmp_path / "x",
                           vocoder=str(tmp_path / "missing.pt"))
    with pytest.raises(GenerationError, match="applies to a local model"):
        generate_to_folder(None, "champion", n=1, seconds=0.5, seed=0, steps=None, out=tmp_path / "y",
                           vocoder="griffinlim")


def test_a_model_is_sampled_by_the_sampler_its_file_names(tmp_path):
    import torch

    from components.models.sampler import get_sampler

    old = MelGenerator.load(write_tiny_model(tmp_path / "old.pt", seed=0, steps=4))  # files from before the choice
    second = MelGenerator.load(write_tiny_model(tmp_path / "dpm.pt", seed=0, steps=4, sampler="dpm++2m"))
    assert (old.sampler, second.sampler) == ("ddim", "dpm++2m")
    noise = torch.randn((2, 16, 32), generator=torch.Generator().manual_seed(3))
    for gen, name in ((old, "ddim"), (second, "dpm++2m")):
        expected = get_sampler(name)(lambda z, t: gen.model(z, t), noise, 4)
        torch.testing.assert_close(gen.sample_normalised(2, seed=3), expected)
    assert not torch.allclose(old.sample_normalised(2, seed=3), second.sample_normalised(2, seed=3))
