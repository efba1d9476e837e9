"""The teacher learns a distribution, judged by its samples (not by its loss).

A toy data set with a known answer: four fixed 'mel' patterns (a few lit bins each, like the
harmonics of four notes, with an onset). After a short CPU training run the DDIM samples must
look like the patterns: each sample close to one of them, every pattern drawn, and the per-bin
mean and std of the samples matching the data. Samples of noise fail every one of these checks.
"""

from __future__ import annotations

import torch

from components.config_training import TrainConfig
from components.models.diffusion import alpha, sigma, v_from_z_x
from components.models.sampler import ddim_sample
from components.models.unet import UNet1d, UNetSpec
from components.train.loop import LoopSettings, train_loop
from components.train.objectives import teacher_v_objective

CHANNELS, FRAMES = 8, 16
TRAIN_STEPS = 2400  # ~1 minute on 2 cores; at 600 steps the samples are still mixtures of patterns
# tolerances, in normalised units (data in [-1, 1])
SAMPLES = 128
NEAREST_RMSE = 0.2  # a sample "is" a pattern when its RMSE to it is below this
MIN_CLOSE_FRACTION = 0.9  # of the samples
MIN_PER_PATTERN = 12  # of 128 samples (32 expected; an exact sampler draws >= 12 with probability > 0.9999)
STAT_TOLERANCE = 0.25  # max |difference| of per-bin mean and of per-bin std (multinomial noise of 128 draws
#                        moves them by up to ~0.2: measured with the exact posterior-mean denoiser)


def toy_patterns() -> torch.Tensor:
    """(4, 8, 16): lit bins at +0.8 from an onset frame on, the rest at -0.6."""
    patterns = torch.full((4, CHANNELS, FRAMES), -0.6)
    for k, (bins, onset) in enumerate([((0, 3), 2), ((1, 4, 6), 0), ((2, 5), 4), ((3, 7), 1)]):
        for b in bins:
            patterns[k, b, onset:] = 0.8
    return patterns


def sample_report(samples: torch.Tensor, patterns: torch.Tensor) -> dict[str, float]:
    """How well ``samples`` match the uniform mixture of ``patterns``."""
    rmse = (samples[:, None] - patterns[None]).pow(2).flatten(2).mean(-1).sqrt()  # (samples, patterns)
    nearest, which = rmse.min(dim=1)
    counts = torch.bincount(which[nearest < NEAREST_RMSE], minlength=len(patterns))
    data = patterns.repeat(-(-len(samples) // len(patterns)), 1, 1)
    bin_mean = lambda x: x.mean(dim=(0, 2))  # noqa: E731 - per mel bin
    bin_std = lambda x: x.std(dim=(0, 2))  # noqa: E731
    return {"close_fraction": float((nearest < NEAREST_RMSE).float().mean()),
            "fewest_per_pattern": int(counts.min()),
            "mean_error": float((bin_mean(samples) - bin_mean(data)).abs().max()),
            "std_error": float((bin_std(samples) - bin_std(data)).abs().max())}


def looks_like_the_data(report: dict[str, float]) -> bool:
    return (report["close_fraction"] >= MIN_CLOSE_FRACTION and report["fewest_per_pattern"] >= MIN_PER_PATTERN
            and report["mean_error"] <= STAT_TOLERANCE and report["std_error"] <= STAT_TOLERANCE)


def test_noise_fails_the_sample_checks():
    patterns = toy_patterns()
    noise = torch.randn((SAMPLES, CHANNELS, FRAMES), generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    assert not looks_like_the_data(sample_report(noise, patterns))
    blurred = patterns.mean(0, keepdim=True).repeat(SAMPLES, 1, 1)  # the mean pattern: a model that averages
    assert not looks_like_the_data(sample_report(blurred, patterns))
    one_mode = patterns[:1].repeat(SAMPLES, 1, 1)  # mode collapse
    assert not looks_like_the_data(sample_report(one_mode, patterns))
    assert looks_like_the_data(sample_report(patterns.repeat(SAMPLES // 4, 1, 1), patterns))


def test_ddim_with_the_exact_denoiser_passes_the_sample_checks():
    """The checks' tolerances hold for a perfect model: DDIM with the mixture's posterior mean."""
    patterns = toy_patterns()

    def exact_v(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = alpha(t)[:, None], sigma(t)[:, None]
        distance = (z[:, None] - a[:, :, None, None] * patterns[None]).pow(2).flatten(2).sum(-1)
        weights = torch.softmax(-distance / (2 * s ** 2), dim=1)
        return v_from_z_x(z, torch.einsum("bk,kcf->bcf", weights, patterns), t)

    noise = torch.randn((SAMPLES, CHANNELS, FRAMES), generator=torch.Generator().manual_seed(1))
    assert looks_like_the_data(sample_report(ddim_sample(exact_v, noise, 16), patterns))


def test_teacher_samples_match_a_toy_distribution(tmp_path):
    torch.manual_seed(0)
    patterns = toy_patterns()
    net = UNet1d(UNetSpec(example_shape=(CHANNELS, FRAMES), base_channels=16, channel_mults=(1, 2),
                          attention_levels=(1,), attention_heads=2, groups=4))
    settings = LoopSettings(steps=TRAIN_STEPS, lr=3e-3, warmup_steps=20, min_lr_ratio=0.1, ema_decay=0.99, log_every=50,
                            seed=0)

    def batch_at(step: int) -> torch.Tensor:
        rows = torch.randint(0, len(patterns), (32,), generator=torch.Generator().manual_seed(step))
        return patterns[rows]

    # the pipeline's own loss weighting (the schema default), so this test guards the recipe that ships
    result = train_loop(net, teacher_v_objective(TrainConfig().loss_weighting), batch_at, settings, tmp_path, resume=False)
    noise = torch.randn((SAMPLES, CHANNELS, FRAMES), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        samples = ddim_sample(lambda z, t: result["ema"](z, t), noise, 16)
    report = sample_report(samples, patterns)
    assert looks_like_the_data(report), report
