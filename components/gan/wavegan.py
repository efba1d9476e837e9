"""WaveGAN (Donahue, McAuley & Puckette 2019, "Adversarial Audio Synthesis", Table 2 / §3).

Generator: z ~ U(-1, 1)^latent -> dense -> (16 dim, base) -> ``layers`` transposed 1D convolutions
(kernel 25, stride 4), ReLU between, tanh at the end. With the paper's sizes (dim 64, 5 layers):
16 frames x 4^5 = 16384 samples, about 1 s at 16 kHz. Critic: the mirror image with leaky ReLU
(0.2) and phase shuffle (n = 2) after every layer but the last, then a dense layer to one score.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from components.gan.specs import WaveGANSpec


class PhaseShuffle(nn.Module):
    """Shift each example by a random n in [-r, r] samples, reflection-padded (length unchanged)."""

    def __init__(self, radius: int) -> None:
        super().__init__()
        self.radius = radius

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """out[b, :, t] = x[b, :, t - n_b], n_b ~ U{-r..r}, reading reflections beyond either end."""
        if self.radius == 0 or not self.training:
            return x
        r, length = self.radius, x.shape[-1]
        shifts = torch.randint(-r, r + 1, (x.shape[0],), generator=generator).to(x.device)
        padded = F.pad(x, (r, r), mode="reflect")  # one batched pad, then one gather of each example's window
        index = (r - shifts)[:, None, None] + torch.arange(length, device=x.device)
        return padded.gather(-1, index.expand(-1, x.shape[1], -1))


class WaveGANNetwork(nn.Module):
    def __init__(self, spec: WaveGANSpec) -> None:
        super().__init__()
        self.spec = spec
        self.dense = nn.Linear(spec.latent_dim, spec.base_frames * spec.width(0))
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose1d(spec.width(i), spec.width(i + 1), spec.kernel, spec.stride, padding=spec.padding,
                               output_padding=spec.stride + 2 * spec.padding - spec.kernel)
            for i in range(spec.layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(batch, latent_dim) -> (batch, samples) in [-1, 1]."""
        s = self.spec
        x = F.relu(self.dense(z)).view(z.shape[0], s.width(0), s.base_frames)
        for i, deconv in enumerate(self.deconvs):
            x = deconv(x)
            x = torch.tanh(x) if i == s.layers - 1 else F.relu(x)
        return x[:, 0]


class WaveGANCritic(nn.Module):
    """(batch, samples) -> (batch,) scores; phase shuffle after every convolution but the last."""

    takes_generator = True

    def __init__(self, spec: WaveGANSpec) -> None:
        super().__init__()
        self.spec = spec
        self.convs = nn.ModuleList(nn.Conv1d(spec.width(spec.layers - i), spec.width(spec.layers - i - 1), spec.kernel,
                                             spec.stride, padding=spec.padding) for i in range(spec.layers))
        self.shuffle = PhaseShuffle(spec.phase_shuffle)
        self.dense = nn.Linear(spec.base_frames * spec.width(0), 1)

    def forward(self, audio: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = audio[:, None]
        for i, conv in enumerate(self.convs):
            x = F.leaky_relu(conv(x), 0.2)
            if i < len(self.convs) - 1:
                x = self.shuffle(x, generator)
        return self.dense(x.flatten(1))[:, 0]
