"""Training objectives: (model, clean batch, the step's draws) -> scalar loss."""

from __future__ import annotations

import torch
from torch import nn

from components.models.conditioning import drop_labels
from components.models.diffusion import diffuse, v_from_x_eps, v_loss_weight
from components.train.loop import Draws, LabelledBatch, examples_and_labels


def _per_example_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)


def teacher_v_objective(weighting: str, *, classes: int = 0, label_dropout: float = 0.0):
    """Diffusion loss on v with t ~ U(0, 1): w_v(t) * ||v_hat - v||^2 (= w(lambda) ||x_hat - x||^2).
    A :class:`LabelledBatch` trains a conditional network of ``classes`` cells, with a share
    ``label_dropout`` of its labels replaced by "no label" (index ``classes``: the unconditional
    prediction that classifier-free guidance needs)."""

    def objective(model: nn.Module, batch: torch.Tensor | LabelledBatch, draws: Draws) -> torch.Tensor:
        x, labels = examples_and_labels(batch)
        t = draws.rand(x.shape[0]).to(x.device)
        eps = draws.randn(x.shape).to(x.device)
        z = diffuse(x, eps, t)
        if labels is None:
            v_hat = model(z, t)
        else:
            v_hat = model(z, t, drop_labels(labels, label_dropout, classes, draws.rand))
        return (v_loss_weight(t, weighting) * _per_example_mse(v_hat, v_from_x_eps(x, eps, t))).mean()

    return objective
