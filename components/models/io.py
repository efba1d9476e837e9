"""Saving and loading trained denoisers with everything needed to sample and listen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from components.models.unet import UNet1d, UNetSpec
from components.storage import atomic_save_torch, load_torch

MODEL_FILE = "model.pt"
STATUS_FILE = "status.json"  # in a model folder instead of MODEL_FILE: the family is off in this config


def save_denoiser(path: Path, model: torch.nn.Module, spec: UNetSpec, **meta: Any) -> None:
    """Weights (the EMA ones for a teacher), the network spec, sampling steps, mel stats, config."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save_torch({"spec": spec.to_dict(), "weights": state, **meta}, path)


def load_denoiser(path: Path, device: str | torch.device = "cpu") -> tuple[UNet1d, dict[str, Any]]:
    return denoiser_from_payload(read_model_file(path), device)


def read_model_file(path: Path) -> dict[str, Any]:
    """The contents of any melforge model file (diffusion or GAN), read safely."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model; run the stage that produces it first")
    return load_torch(path)  # weights_only: a tampered file cannot run code


def denoiser_from_payload(payload: dict[str, Any], device: str | torch.device = "cpu") -> tuple[UNet1d, dict[str, Any]]:
    model = UNet1d(UNetSpec.from_dict(payload["spec"]))
    model.load_state_dict(payload["weights"])
    meta = {k: v for k, v in payload.items() if k != "weights"}
    return model.to(device).eval(), meta
