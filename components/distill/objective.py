"""The student's target: one DDIM step that lands where two teacher DDIM steps land."""

from __future__ import annotations

import torch
from torch import nn

from components.models.diffusion import ddim_step, diffuse, distillation_target, x_from_z_v, x_loss_weight
from components.models.conditioning import label_v_function
from components.models.sampler import VFunction, predict_x
from components.train.loop import Draws, LabelledBatch, examples_and_labels


@torch.no_grad()
def two_teacher_steps(teacher: VFunction, z_t: torch.Tensor, t: torch.Tensor, n: int,
                      clip: float | None = 1.0) -> torch.Tensor:
    """z_t -> z_{t-0.5/N} -> z_{t-1/N}: two (clipped) teacher DDIM steps, N = the *student's* steps."""
    t_mid, t_end = t - 0.5 / n, t - 1.0 / n
    z_mid = ddim_step(z_t, predict_x(teacher, z_t, t, clip), t, t_mid)
    return ddim_step(z_mid, predict_x(teacher, z_mid, t_mid, clip), t_mid, t_end)


def student_objective(teacher: nn.Module, student_steps: int, weighting: str, guidance: float = 1.0):
    """Algorithm 2 (Salimans & Ho 2022): t = i/N (i uniform in 1..N), z_t = alpha_t x + sigma_t eps, target x~ from two
    teacher steps; loss w(lambda_t) ||x~ - x_hat_student(z_t)||^2. At i = 1 the teacher's final
    x_hat is the target (x~ = z_0 exactly, since sigma_0 = 0 and alpha_0 = 1).

    On a :class:`LabelledBatch` the teacher steps are the guided conditional teacher's (``guidance``)
    and the student sees the same labels: it learns the guided sampler in one evaluation per step
    (the w-fixed case of Meng et al. 2023, "On Distillation of Guided Diffusion Models")."""
    n = student_steps

    def objective(student: nn.Module, batch: torch.Tensor | LabelledBatch, draws: Draws) -> torch.Tensor:
        x, labels = examples_and_labels(batch)
        i = draws.randint(1, n + 1, x.shape[0]).to(x.device)
        t = i.to(x.dtype) / n
        eps = draws.randn(x.shape).to(x.device)
        z_t = diffuse(x, eps, t)
        teacher_v = label_v_function(teacher, labels, guidance)
        x_tilde = distillation_target(z_t, two_teacher_steps(teacher_v, z_t, t, n), t, t - 1.0 / n)
        v_student = student(z_t, t) if labels is None else student(z_t, t, labels)
        x_hat = x_from_z_v(z_t, v_student, t)
        per_example = (x_tilde.float() - x_hat.float()).pow(2).flatten(1).mean(dim=1)
        return (x_loss_weight(t, weighting) * per_example).mean()

    return objective
