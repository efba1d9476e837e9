"""A trained mel VAE as a generator: one decoder pass from z ~ N(0, I), then the vocoder, as every
mel model (components/generation.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from components.generation import Generator
from components.vae import VAE
from components.vae.model import MelVAE, VAESpec, prior


def vae_from_payload(payload: dict[str, Any], device: str | torch.device = "cpu") -> tuple[MelVAE, dict[str, Any]]:
    """(the VAE in eval mode on ``device``, everything else in its model file)."""
    model = MelVAE(VAESpec(**payload["spec"]))
    model.load_state_dict(payload["weights"])
    return model.to(device).eval(), {k: v for k, v in payload.items() if k != "weights"}


@dataclass
class VAEGenerator(Generator):
    """z ~ N(0, I) -> the decoder -> one normalised (n_mels, frames) log-mel, flat layout -> the vocoder."""

    family = VAE

    @staticmethod
    def network_from_payload(payload: dict[str, Any], device: str) -> tuple[torch.nn.Module, dict[str, Any]]:
        return vae_from_payload(payload, device)

    @property
    def clip_seconds(self) -> float:
        return (self.model.spec.frames - 1) * self.spec.hop_length / self.sample_rate

    def steps_for(self, steps: int | None) -> int:
        if steps not in (None, 1):
            raise ValueError(f"a {self.family} generator makes a clip in one decoder pass; steps must be 1 or unset, "
                             f"got {steps}")
        return 1

    def sample_output(self, n: int, seed: int, *, steps: int | None = None, batch_size: int = 64) -> torch.Tensor:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.steps_for(steps)
        z = prior(n, self.model.spec, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return torch.cat([self.model(z[i:i + batch_size].to(self.device)).float().cpu() for i in range(0, n, batch_size)])
