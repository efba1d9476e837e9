"""WGAN-GP (Gulrajani et al. 2017, Algorithm 1): the critic's and the generator's losses.

    L_D = E[D(x_fake)] - E[D(x_real)] + lambda E[(||grad_x D(x_hat)||_2 - 1)^2],
          x_hat = eps x_real + (1 - eps) x_fake,  eps ~ U(0, 1) per example
    L_G = -E[D(x_fake)]
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Critic = Callable[[torch.Tensor], torch.Tensor]


def interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_hat = eps x_real + (1 - eps) x_fake, eps of shape (batch,)."""
    e = eps.reshape(-1, *([1] * (real.ndim - 1)))
    return e * real + (1 - e) * fake


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] over the batch (differentiable, for the critic's update)."""
    x_hat = interpolate(real, fake.detach(), eps).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def critic_loss(critic: Critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor,
                penalty_weight: float = 10.0) -> torch.Tensor:
    """L_D = E[D(fake)] - E[D(real)] + lambda GP."""
    return critic(fake.detach()).mean() - critic(real).mean() + penalty_weight * gradient_penalty(critic, real, fake, eps)


def generator_loss(critic: Critic, fake: torch.Tensor) -> torch.Tensor:
    """L_G = -E[D(fake)]."""
    return -critic(fake).mean()


class WGANCritic:
    """train_loop's critic for WGAN-GP: ``n_critic`` updates per generator step (Adam, the paper's
    lr 1e-4 and betas (0.5, 0.9)), each on fresh noise, a fresh interpolation draw and fresh phase
    shuffles from the step's generator, so a resumed run repeats them exactly. The generator's
    objective scores its fakes with :meth:`score`: L_G = -E[D(G(z))]."""

    def __init__(self, module: torch.nn.Module, sample_fake, *, lr: float = 1e-4, betas=(0.5, 0.9), n_critic: int = 5,
                 penalty_weight: float = 10.0) -> None:
        self.module = module
        self.optimizer = torch.optim.Adam(module.parameters(), lr=lr, betas=tuple(betas))
        self.sample_fake = sample_fake  # (generator net, batch size, torch.Generator) -> fake batch
        self.n_critic, self.penalty_weight = n_critic, penalty_weight

    def to(self, device):
        self.module.to(device)
        return self

    def score(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """D(x); a critic with phase shuffle draws its shifts from ``generator``."""
        if getattr(self.module, "takes_generator", False):
            return self.module(x, generator)
        return self.module(x)

    def update(self, net, batch: torch.Tensor, generator: torch.Generator, step: int) -> torch.Tensor:
        loss = torch.zeros(())
        for _ in range(self.n_critic):
            with torch.no_grad():
                fake = self.sample_fake(net, batch.shape[0], generator)
            eps = torch.rand(batch.shape[0], generator=generator).to(batch.device)
            loss = critic_loss(lambda x: self.score(x, generator), batch, fake, eps, self.penalty_weight)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return loss.detach()

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
