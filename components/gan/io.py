"""Saving and loading GAN generators: the weights with their spec and family, in the same kind of
model file as the diffusion models (``model.pt``), so the registry and serving treat them alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from components.gan import MODEL_FAMILY_KEY
from components.gan.specgan import SpecGANNetwork
from components.gan.specs import SpecGANSpec, WaveGANSpec
from components.gan.wavegan import WaveGANNetwork
from components.storage import atomic_save_torch

WAVEGAN, SPECGAN = "wavegan", "specgan"


def save_gan(path: Path, family: str, model: torch.nn.Module, **meta: Any) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save_torch({MODEL_FAMILY_KEY: family, "spec": model.spec.to_dict(), "weights": state, **meta}, path)


def build_generator(family: str, spec: dict[str, Any]) -> torch.nn.Module:
    if family == WAVEGAN:
        return WaveGANNetwork(WaveGANSpec(**spec))
    if family == SPECGAN:
        return SpecGANNetwork(SpecGANSpec(**spec))
    raise ValueError(f"unknown GAN family {family!r} in the model file; allowed: {WAVEGAN}, {SPECGAN}")


def gan_from_payload(payload: dict[str, Any], device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """(generator in eval mode on ``device``, everything else in the file)."""
    model = build_generator(payload[MODEL_FAMILY_KEY], payload["spec"])
    model.load_state_dict(payload["weights"])
    return model.to(device).eval(), {k: v for k, v in payload.items() if k != "weights"}


def latent(n: int, latent_dim: int, generator: torch.Generator) -> torch.Tensor:
    """z ~ U(-1, 1)^latent_dim, as in the WaveGAN paper."""
    return torch.rand(n, latent_dim, generator=generator) * 2 - 1
