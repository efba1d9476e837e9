"""The student's target: one DDIM step that lands where two teacher DDIM steps land."""

from __future__ import annotations

import torch
from torch import nn

from components.models.diffusion import ddim_step, diffuse, distillation_target, x_from_z_v, x_loss_weight
from components.models.sampler import predict_x


@torch.no_grad()
def two_teacher_steps(teacher: nn.Module, z_t: torch.Tensor, t: torch.Tensor, n: int,
                      clip: float | None = 1.0) -> torch.Tensor:
    """z_t -> z_{t-0.5/N} -> z_{t-1/N}: two (clipped) teacher DDIM steps, N = the *student's* steps."""
    t_mid, t_end = t - 0.5 / n, t - 1.0 / n
    z_mid = ddim_step(z_t, predict_x(teacher, z_t, t, clip), t, t_mid)
    return ddim_step(z_mid, predict_x(teacher, z_mid, t_mid, clip), t_mid, t_end)


def student_objective(teacher: nn.Module, student_steps: int, weighting: str):
    """Algorithm 2 (Salimans & Ho 2022): t = i/N (i uniform in 1..N), z_t = alpha_t x + sigma_t eps, target x~ from two
    teacher steps; loss w(lambda_t) ||x~ - x_hat_student(z_t)||^2. At i = 1 the teacher's final
    x_hat is the target (x~ = z_0 exactly, since sigma_0 = 0 and alpha_0 = 1)."""
    n = student_steps

    def objective(student: nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        i = torch.randint(1, n + 1, (x.shape[0],), generator=generator).to(x.device)
        t = i.to(x.dtype) / n
        eps = torch.randn(x.shape, generator=generator).to(x.device)
        z_t = diffuse(x, eps, t)
        x_tilde = distillation_target(z_t, two_teacher_steps(teacher, z_t, t, n), t, t - 1.0 / n)
        x_hat = x_from_z_v(z_t, student(z_t, t), t)
        per_example = (x_tilde.float() - x_hat.float()).pow(2).flatten(1).mean(dim=1)
        return (x_loss_weight(t, weighting) * per_example).mean()

    return objective
