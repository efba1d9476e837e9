"""SpecGAN (Donahue et al. 2019, §4): a DCGAN over the pipeline's own normalised log-mels.

Generator: z -> dense -> (width(0), H / 2^L, W / 2^L) -> L transposed 2D convolutions (kernel 5,
stride 2), ReLU between, tanh at the end (the pipeline's mels are normalised and clipped to [-1, 1]).
Critic: the mirror image with leaky ReLU (0.2), then a dense layer to one score. The output is the
diffusion model's example shape (n_mels x frames, flat layout), so the same statistics turn it back
into log-mels and the same vocoder into audio.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from components.gan.specs import SpecGANSpec, reachable_shape_problem


class SpecGANNetwork(nn.Module):
    def __init__(self, spec: SpecGANSpec) -> None:
        super().__init__()
        problem = reachable_shape_problem(spec)
        if problem:
            raise ValueError(problem)
        self.spec = spec
        h, w = spec.base
        self.dense = nn.Linear(spec.latent_dim, spec.width(0) * h * w)
        pad = spec.kernel // 2
        self.deconvs = nn.ModuleList(nn.ConvTranspose2d(spec.width(i), spec.width(i + 1), spec.kernel, 2, padding=pad,
                                                        output_padding=1) for i in range(spec.layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(batch, latent_dim) -> (batch, n_mels, frames) in [-1, 1]."""
        h, w = self.spec.base
        x = F.relu(self.dense(z)).view(z.shape[0], self.spec.width(0), h, w)
        for i, deconv in enumerate(self.deconvs):
            x = deconv(x)
            x = torch.tanh(x) if i == len(self.deconvs) - 1 else F.relu(x)
        return x[:, 0]


class SpecGANCritic(nn.Module):
    def __init__(self, spec: SpecGANSpec) -> None:
        super().__init__()
        self.spec = spec
        pad = spec.kernel // 2
        self.convs = nn.ModuleList(nn.Conv2d(spec.width(spec.layers - i), spec.width(spec.layers - i - 1), spec.kernel, 2,
                                             padding=pad) for i in range(spec.layers))
        h, w = spec.base
        self.dense = nn.Linear(spec.width(0) * h * w, 1)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        x = mels[:, None]
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return self.dense(x.flatten(1))[:, 0]
