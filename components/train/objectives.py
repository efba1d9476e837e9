"""Training objectives: (model, clean batch, generator) -> scalar loss."""

from __future__ import annotations

import torch
from torch import nn

from components.models.diffusion import diffuse, v_from_x_eps, v_loss_weight


def _per_example_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)


def teacher_v_objective(weighting: str):
    """Diffusion loss on v with t ~ U(0, 1): w_v(t) * ||v_hat - v||^2 (= w(lambda) ||x_hat - x||^2)."""

    def objective(model: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        t = torch.rand(x.shape[0], generator=generator).to(x.device)
        eps = torch.randn(x.shape, generator=generator).to(x.device)
        z = diffuse(x, eps, t)
        v_hat = model(z, t)
        return (v_loss_weight(t, weighting) * _per_example_mse(v_hat, v_from_x_eps(x, eps, t))).mean()

    return objective
