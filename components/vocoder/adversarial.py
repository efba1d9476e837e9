"""Optional adversarial training for the vocoder: multi-period and multi-resolution discriminators.

Multi-period (HiFi-GAN, Kong et al. 2020 §2.2): the waveform folded into (T/p, p) for p in
periods, 2D convolutions along time only. Multi-resolution (UnivNet, Jang et al. 2021; as in Vocos):
2D convolutions on linear STFT magnitudes at several resolutions. Losses are the hinge form
Vocos uses,

    L_D = mean(relu(1 - D(x))) + mean(relu(1 + D(G(s))))
    L_G = mean(relu(1 - D(G(s))))  +  feature matching  mean_l |D_l(x) - D_l(G(s))|_1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from components.vocoder.losses import stft_magnitude

Outputs = list[tuple[torch.Tensor, list[torch.Tensor]]]  # per discriminator: (score map, feature maps)


def _conv_stack(convs: nn.ModuleList, out: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU convolutions, keeping every layer's output for feature matching; (scores, features)."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        features.append(x)
    return out(x).flatten(1), features


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, width: int) -> None:
        super().__init__()
        self.period = period
        chans = [1, width, 4 * width, 16 * width, 16 * width]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)) for a, b in zip(chans, chans[1:]))
        self.out = nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, length = audio.shape
        pad = (-length) % self.period
        x = F.pad(audio, (0, pad), mode="reflect" if pad < length else "constant")
        return _conv_stack(self.convs, self.out, x.view(batch, 1, -1, self.period))


class ResolutionDiscriminator(nn.Module):
    def __init__(self, n_fft: int, hop: int, width: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        chans = [1, width, width, width, width]
        strides = [(1, 1), (2, 1), (2, 1), (2, 1)]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, (9, 3), s, padding=(4, 1)) for a, b, s in zip(chans, chans[1:], strides))
        self.out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.out, stft_magnitude(audio, self.n_fft, self.hop).unsqueeze(1))


class Discriminators(nn.Module):
    def __init__(self, periods: Sequence[int], resolutions: Sequence[tuple[int, int]], width: int) -> None:
        super().__init__()
        self.members = nn.ModuleList([*(PeriodDiscriminator(p, width) for p in periods),
                                      *(ResolutionDiscriminator(n, h, width) for n, h in resolutions)])

    def forward(self, audio: torch.Tensor) -> Outputs:
        return [member(audio) for member in self.members]


def discriminator_hinge(real: Outputs, fake: Outputs) -> torch.Tensor:
    """sum_k mean(relu(1 - D_k(x))) + mean(relu(1 + D_k(G(s))))."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for (r, _), (f, _) in zip(real, fake))


def generator_hinge(fake: Outputs) -> torch.Tensor:
    """sum_k mean(relu(1 - D_k(G(s))))."""
    return sum(F.relu(1 - f).mean() for f, _ in fake)


def feature_matching(real: Outputs, fake: Outputs) -> torch.Tensor:
    """sum_k mean_l |D_k,l(x) - D_k,l(G(s))|_1 (real features detached)."""
    total = torch.zeros((), device=fake[0][0].device)
    for (_, real_feats), (_, fake_feats) in zip(real, fake):
        total = total + sum((r.detach() - f).abs().mean() for r, f in zip(real_feats, fake_feats)) / len(fake_feats)
    return total


class AdversarialCritic:
    """The discriminators, their optimiser, and one update per generator step (train_loop's critic).

    ``update`` draws G's output without gradients, so the generator is only changed by its own
    step; ``state_dict`` goes into every checkpoint so a resumed run continues exactly.
    """

    def __init__(self, discriminators: Discriminators, *, lr: float, make_pair, start: int = 0) -> None:
        self.module = discriminators
        self.optimizer = torch.optim.AdamW(discriminators.parameters(), lr=lr, betas=(0.8, 0.99))
        self.make_pair = make_pair  # (generator net, batch, torch.Generator) -> (real audio, fake audio)
        self.start = start  # steps of reconstruction-only training before the discriminators join
        self.active = False  # whether the current step's objective adds the adversarial terms

    def to(self, device: torch.device) -> "AdversarialCritic":
        self.module.to(device)
        return self

    def update(self, net: nn.Module, batch: torch.Tensor, generator: torch.Generator, step: int) -> torch.Tensor | None:
        self.active = step >= self.start
        if not self.active:
            return None
        with torch.no_grad():
            real, fake = self.make_pair(net, batch, generator)
        loss = discriminator_hinge(self.module(real), self.module(fake.detach()))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
