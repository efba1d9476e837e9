"""The mel VAE: a 1D convolutional encoder (mel bins as channels, time halved ``levels`` times) to a
diagonal Gaussian over ``latent`` channels, and the mirror-image decoder back to normalised mels in
[-1, 1] (the pipeline clips them there)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class VAESpec:
    n_mels: int
    frames: int
    hidden: int = 128
    latent: int = 16
    levels: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(channels, frames) of z: the prior the decoder samples from."""
        return self.latent, self.frames // 2 ** self.levels


def _block(channels: int) -> nn.Module:
    return nn.Sequential(nn.GroupNorm(8 if channels % 8 == 0 else 1, channels), nn.SiLU(),
                         nn.Conv1d(channels, channels, 3, padding=1))


class MelVAE(nn.Module):
    def __init__(self, spec: VAESpec) -> None:
        super().__init__()
        if spec.frames % 2 ** spec.levels:
            raise ValueError(f"mel.frames ({spec.frames}) must be divisible by 2^vae.levels = {2 ** spec.levels}")
        self.spec = spec
        h = spec.hidden
        down = [nn.Conv1d(spec.n_mels, h, 5, padding=2)]
        for _ in range(spec.levels):
            down += [_block(h), nn.Conv1d(h, h, 4, stride=2, padding=1)]
        self.encoder = nn.Sequential(*down, _block(h), nn.Conv1d(h, 2 * spec.latent, 3, padding=1))
        up = [nn.Conv1d(spec.latent, h, 3, padding=1)]
        for _ in range(spec.levels):
            up += [_block(h), nn.ConvTranspose1d(h, h, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*up, _block(h), nn.Conv1d(h, spec.n_mels, 5, padding=2))
        # updates of stage 1 so far: the KL weight's warm-up reads it, and it travels in every checkpoint
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def encode(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, n_mels, frames) -> (mean, log-variance), each (batch, latent, frames / 2^levels)."""
        mean, logvar = self.encoder(mels).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z -> normalised mels in [-1, 1]."""
        return torch.tanh(self.decoder(z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The generator's pass: z ~ N(0, I) of :attr:`VAESpec.latent_shape` -> mels."""
        return self.decode(z)


class MelDiscriminator(nn.Module):
    """Stage 2's critic: strided 2D convolutions over a mel (bins x frames) to a map of patch scores,
    keeping each layer's output for feature matching; returns [(scores, features)] as the vocoder's
    discriminators do, so the same hinge and feature-matching losses apply."""

    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        chans = [1, *(width * 2 ** min(i, 3) for i in range(layers))]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 5, 2, padding=2) for a, b in zip(chans, chans[1:]))
        self.out = nn.Conv2d(chans[-1], 1, 3, padding=1)

    def forward(self, mels: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        x, features = mels[:, None], []
        for conv in self.convs:
            x = nn.functional.leaky_relu(conv(x), 0.2)
            features.append(x)
        return [(self.out(x).flatten(1), features)]


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor, elements: int) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) = 1/2 sum(mean^2 + exp(logvar) - 1 - logvar) per example,
    averaged over the batch and divided by ``elements``, the mel cells of one example (so its weight
    compares with the per-cell reconstruction loss)."""
    per_example = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1)
    return per_example.mean() / elements


def prior(n: int, spec: VAESpec, generator: torch.Generator) -> torch.Tensor:
    """z ~ N(0, I): ``n`` latents of the decoder's input shape."""
    return torch.randn((n, *spec.latent_shape), generator=generator)
