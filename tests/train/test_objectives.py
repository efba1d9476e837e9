"""The teacher's loss is the one chosen on evidence (min-SNR-gamma, docs/benchmarks.md): a change of
weighting, in a profile or in the objective, must be deliberate."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from components.params_file import profile_params
from components.profiles import PROFILES
from components.models.diffusion import alpha, sigma, v_from_x_eps
from components.train.loop import Draws
from components.train.objectives import teacher_v_objective


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_trains_its_teacher_with_min_snr_gamma(profile):
    assert profile_params(profile)["train"]["loss_weighting"] == "min_snr_5"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_samples_its_teacher_with_ddim(profile):
    # DPM-Solver++(2M) equalled DDIM on the demo teacher at 8 and 16 steps, and the students are
    # distilled to follow DDIM: the teacher keeps the solver its students learn from
    assert profile_params(profile)["distill"]["teacher_sampler"] == "ddim"


class _Zero(nn.Module):
    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(z)


def test_the_teacher_objective_weights_v_errors_by_min_snr_gamma():
    x = torch.randn(6, 4, 8, generator=torch.Generator().manual_seed(0))
    draw = torch.Generator().manual_seed(1)  # the objective's own draws, repeated here
    t = torch.rand(6, generator=draw)
    eps = torch.randn(x.shape, generator=draw)
    v = v_from_x_eps(x, eps, t)
    weight = torch.minimum(alpha(t) ** 2, 5 * sigma(t) ** 2)  # min(SNR, 5) / (SNR + 1)
    expected = (weight * v.pow(2).flatten(1).mean(1)).mean()
    got = teacher_v_objective("min_snr_5")(_Zero(), x, Draws(torch.Generator().manual_seed(1)))
    torch.testing.assert_close(got, expected)
    plain = teacher_v_objective("snr+1")(_Zero(), x, Draws(torch.Generator().manual_seed(1)))
    assert not torch.allclose(got, plain)
