"""GAN baselines: WaveGAN's lengths arithmetic and shapes, phase shuffle, the WGAN-GP penalty
against a hand-computed case, exact resume, a toy GAN that learns, serving a GAN like any model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from components.gan.specs import SpecGANSpec, WaveGANSpec, producible_samples_problem, reachable_shape_problem
from components.gan.wavegan import PhaseShuffle, WaveGANCritic, WaveGANNetwork
from components.gan.wgan_gp import critic_loss, generator_loss, gradient_penalty, interpolate

ROOT = Path(__file__).resolve().parents[2]

SMALL = WaveGANSpec(latent_dim=8, dim=4, layers=3, base_frames=4)


def test_the_papers_wavegan_makes_16384_samples_and_small_ones_scale_by_stride_per_layer():
    assert WaveGANSpec().samples == 16384 and WaveGANSpec().padding == 11
    assert SMALL.samples == 4 * 4 ** 3
    assert [SMALL.width(i) for i in range(4)] == [16, 8, 4, 1]
    z = torch.rand(2, 8) * 2 - 1
    audio = WaveGANNetwork(SMALL)(z)
    assert audio.shape == (2, SMALL.samples) and audio.abs().max() <= 1
    assert WaveGANCritic(SMALL)(audio).shape == (2,)


def test_a_clip_length_wavegan_cannot_produce_is_named():
    # the paper's SC09 set-up: 16000-sample clips padded to 16384; less than one base frame (4^5) to spare
    assert producible_samples_problem(WaveGANSpec(), 16384) is None
    assert producible_samples_problem(WaveGANSpec(), 16000) is None
    too_long = producible_samples_problem(WaveGANSpec(), 64000)
    assert "gan.wavegan.base_frames" in too_long and "16 x 4^5 = 16384" in too_long and "64000" in too_long
    assert "base_frames=63" in too_long  # 63 x 1024 = 64512 covers 64000
    assert "64000" in producible_samples_problem(WaveGANSpec(base_frames=80), 64000)  # 81920: too much to spare
    assert "must be odd" in producible_samples_problem(WaveGANSpec(kernel=24), 16384)


def test_phase_shuffle_keeps_the_length_is_the_identity_at_zero_and_shifts_by_at_most_n():
    x = torch.arange(40, dtype=torch.float32).reshape(2, 2, 10)
    assert torch.equal(PhaseShuffle(0)(x), x)
    shuffle = PhaseShuffle(2).train()
    for seed in range(20):
        out = shuffle(x, torch.Generator().manual_seed(seed))
        assert out.shape == x.shape
        # the middle of each row is the input shifted by one n in [-2, 2]
        shift = [n for n in range(-2, 3) if torch.equal(out[0, 0, 2:8], x[0, 0, 2 - n:8 - n])]
        assert len(shift) == 1
    assert torch.equal(shuffle.eval()(x), x)  # no shuffling outside training


def test_the_gradient_penalty_of_a_linear_critic_is_lambda_times_the_squared_norm_gap():
    w = torch.tensor([3.0, 4.0])  # D(x) = w . x: grad = w everywhere, ||w|| = 5

    def critic(x):
        return x @ w

    real, fake = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    eps = torch.tensor([0.25, 0.5])
    assert torch.allclose(interpolate(real, fake, eps), torch.tensor([[0.25, 0.0], [0.5, 1.0]]))
    assert gradient_penalty(critic, real, fake, eps).item() == pytest.approx(16.0)  # (5 - 1)^2
    # E[D(fake)] - E[D(real)] = (0 + 7)/2 - (3 + 4)/2 = 0; + 10 x 16
    assert critic_loss(critic, real, fake, eps).item() == pytest.approx(160.0)
    assert generator_loss(critic, fake).item() == pytest.approx(-3.5)
    assert math.isclose(gradient_penalty(lambda x: x @ (w / 5), real, fake, eps).item(), 0.0, abs_tol=1e-12)


def test_specgan_makes_the_pipelines_mel_shape_and_names_a_shape_its_strides_cannot_reach():
    from components.gan.specgan import SpecGANCritic, SpecGANNetwork

    spec = SpecGANSpec(n_mels=64, frames=128, latent_dim=8, dim=4, layers=4)
    mels = SpecGANNetwork(spec)(torch.rand(3, 8) * 2 - 1)
    assert mels.shape == (3, 64, 128) and mels.abs().max() <= 1
    assert SpecGANCritic(spec)(mels).shape == (3,)
    problem = reachable_shape_problem(SpecGANSpec(n_mels=64, frames=100, layers=4))
    assert "mel.frames (100)" in problem and "2^gan.specgan.layers = 16" in problem
    with pytest.raises(ValueError, match="mel.n_mels"):
        SpecGANNetwork(SpecGANSpec(n_mels=40, frames=128, layers=4))


def test_a_tiny_wgan_gp_moves_its_samples_toward_the_data_through_the_training_loop(tmp_path):
    from torch import nn

    from components.gan.wgan_gp import WGANCritic
    from components.train.loop import LoopSettings, train_loop

    torch.manual_seed(0)
    data_mean, data_std = 3.0, 0.5
    generator_net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
    critic_net = nn.Sequential(nn.Linear(1, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1), nn.Flatten(0))

    def sample_fake(net, n, g):
        return net(torch.randn(n, 2, generator=g))

    critic = WGANCritic(critic_net, sample_fake, lr=1e-3, n_critic=5)

    def objective(net, batch, draws):
        return -critic.module(sample_fake(net, batch.shape[0], draws.generator)).mean()

    def batch_at(step):
        return data_mean + data_std * torch.randn(64, 1, generator=torch.Generator().manual_seed(step))

    with torch.no_grad():
        before = sample_fake(generator_net, 512, torch.Generator().manual_seed(99))
    settings = LoopSettings(steps=800, lr=5e-4, min_lr_ratio=0.5, log_every=50, seed=0, ema_decay=0.0, fingerprint="toy")
    result = train_loop(generator_net, objective, batch_at, settings, tmp_path, critic=critic)
    with torch.no_grad():
        after = sample_fake(result["model"], 512, torch.Generator().manual_seed(99))
    assert abs(after.mean() - data_mean) < 0.5 * abs(before.mean() - data_mean)
    assert "critic_loss" in result["history"][-1]


def test_bad_gan_settings_fail_in_the_config_naming_the_field():
    from components.config_base import ConfigError
    from components.params_file import validate_params
    from helpers import tiny_params

    with pytest.raises(ConfigError, match=r"gan.wavegan.base_frames.*audio.clip_seconds"):
        validate_params(tiny_params(gan={"wavegan": {"steps": 1}}, audio={"clip_seconds": 2.0}))
    with pytest.raises(ConfigError, match=r"mel.n_mels \(32\).*2\^gan.specgan.layers = 64"):
        validate_params(tiny_params(gan={"specgan": {"steps": 1, "layers": 6}}))
    with pytest.raises(ConfigError, match="betas"):
        validate_params(tiny_params(gan={"specgan": {"steps": 1, "betas": [0.5, 1.5]}}))
    # a family that is off is not checked: the demo's 4 s clips need no WaveGAN that fits them
    assert validate_params(tiny_params(gan={"wavegan": {"steps": 0}}, audio={"clip_seconds": 2.0})).gan.enabled == []


def _tiny_wavegan_run(tmp_path, *, stop_after=None):
    from components.gan.io import latent
    from components.gan.wgan_gp import WGANCritic
    from components.train.loop import LoopSettings, train_loop

    torch.manual_seed(0)
    net, critic_net = WaveGANNetwork(SMALL), WaveGANCritic(SMALL)

    def sample_fake(g_net, n, gen):
        return g_net(latent(n, SMALL.latent_dim, gen))

    critic = WGANCritic(critic_net, sample_fake, n_critic=2)

    def objective(g_net, batch, draws):
        return -critic.score(sample_fake(g_net, batch.shape[0], draws.generator), draws.generator).mean()

    def batch_at(step):
        return torch.sin(torch.arange(SMALL.samples) * (0.1 + 0.01 * (step % 3)))[None].repeat(3, 1)

    settings = LoopSettings(steps=6, lr=1e-3, betas=(0.5, 0.9), min_lr_ratio=1.0, ema_decay=0.9, grad_clip=float("inf"),
                            log_every=1, checkpoint_every=3, seed=0, fingerprint="tiny-wavegan")
    result = train_loop(net, objective, batch_at, settings, tmp_path, critic=critic, stop_after=stop_after)
    return result, critic


def test_wgan_gp_training_with_phase_shuffle_resumes_exactly(tmp_path):
    straight, straight_critic = _tiny_wavegan_run(tmp_path / "a")
    _tiny_wavegan_run(tmp_path / "b", stop_after=3)
    resumed, resumed_critic = _tiny_wavegan_run(tmp_path / "b")
    assert resumed["summary"]["resumed_from_step"] == 3
    for a, b in [(straight["model"], resumed["model"]), (straight["ema"], resumed["ema"]),
                 (straight_critic.module, resumed_critic.module)]:
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name
    assert straight["history"][-1]["critic_loss"] == resumed["history"][-1]["critic_loss"]


def _save_tiny_gan(tmp_path, family, level=None):
    from components.gan.io import save_gan
    from components.gan.specgan import SpecGANNetwork
    from helpers import write_tiny_model
    from components.models.io import read_model_file

    meta = read_model_file(write_tiny_model(tmp_path / "diffusion.pt", seed=0, level=level))  # mel settings, stats, level
    if family == "wavegan":
        model = WaveGANNetwork(WaveGANSpec(latent_dim=8, dim=4, layers=3, kernel=9, base_frames=63))  # 4032 samples
        clip = 4000
    else:
        model = SpecGANNetwork(SpecGANSpec(n_mels=16, frames=32, latent_dim=8, dim=4, layers=2))
        clip = 31 * 128
    torch.manual_seed(1)
    path = tmp_path / family / "model.pt"
    path.parent.mkdir()
    save_gan(path, family, model, sampling_steps=1, mel_stats=meta["mel_stats"], mel_index=meta["mel_index"],
             layout="flat", clip_samples=clip, frames=32)
    return path


@pytest.mark.parametrize("family", ["wavegan", "specgan"])
def test_a_saved_gan_generates_seeded_clips_through_the_same_interface_as_diffusion(tmp_path, family):
    import numpy as np

    from components.families import load_generator

    gen = load_generator(_save_tiny_gan(tmp_path, family, level={"mode": "peak", "peak_dbfs": -1.0, "loudness_dbfs": -20.0}))
    assert gen.family == family and gen.network_evaluations() == 1
    logmel, audio = gen.sample(3, seed=5)
    assert logmel.shape == (3, 16, 32) and np.isfinite(logmel).all()
    assert audio.shape[0] == 3 and audio.dtype == np.float32
    assert np.allclose(20 * np.log10(np.abs(audio).max(-1)), -1.0, atol=1e-4)  # at the real clips' level, as stored
    if family == "wavegan":
        assert audio.shape[1] == 4000  # cut back from the 4032 samples the network makes
    assert np.array_equal(gen.generate(2, seed=7), gen.generate(2, seed=7))
    assert not np.array_equal(gen.generate(2, seed=7), gen.generate(2, seed=8))
    assert gen.generate(1, seed=0, seconds=0.25).shape == (1, 2000)
    with pytest.raises(ValueError, match=f"{family} makes clips of at most"):
        gen.generate(1, seed=0, seconds=5.0)
    with pytest.raises(ValueError, match="one network evaluation"):
        gen.generate(1, seed=0, steps=4)
    rtf = gen.real_time_factor(clips=1, repeats=1)
    assert rtf["rtf"] > 0 and ("rtf_mel" in rtf) == (family == "specgan")


def test_melforge_generate_writes_a_local_gans_clips_and_explains_a_request_it_cannot_meet(tmp_path):
    from components.generate_cli import GenerationError, generate_to_folder

    model = _save_tiny_gan(tmp_path, "wavegan")
    written, _ = generate_to_folder(None, str(model.parent), n=2, seconds=0.2, seed=0, steps=None, out=tmp_path / "out")
    assert len(written) == 2 and all(p.stat().st_size > 0 for p in written)
    with pytest.raises(GenerationError, match="wavegan makes clips of at most 0.500 s"):
        generate_to_folder(None, str(model.parent), n=1, seconds=3.0, seed=0, steps=None, out=tmp_path / "bad")


def test_the_gpu_hand_off_carries_the_gan_families_that_are_on_and_the_clips_they_train_on():
    from components.stages import model_stages
    from flows.gpu import model_inputs
    from helpers import tiny_config

    off = tiny_config()
    assert model_stages(off) == ["train", "distill@student-2", "distill@student-1"] and model_inputs(ROOT, off) == ["features"]
    on = tiny_config(gan={"wavegan": {"steps": 2, "layers": 3, "kernel": 9, "base_frames": 250}})
    assert model_stages(on)[-1] == "gan@wavegan" and model_inputs(ROOT, on) == ["ingest", "features"]


def test_the_evaluation_plan_scores_every_gan_family_that_is_on_at_one_network_evaluation():
    from components.families import evaluation_plan
    from helpers import tiny_config

    assert [e["kind"] for e in evaluation_plan(tiny_config())] == ["teacher"] * 3 + ["student"] * 2
    plan = evaluation_plan(tiny_config(gan={"specgan": {"steps": 2, "layers": 2}}))
    assert plan[-1] == {"name": "specgan", "folder": "specgan", "kind": "gan", "family": "specgan", "steps": 1}
    assert {e["family"] for e in plan[:-1]} == {"diffusion"}
