"""The VAE family's section of params.yaml (``vae:``), kept with its package: a leaf like the rest of the
schema (it imports only ``config_base``), so ``config.py`` composes it without loading any stage code."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.config_base import EmaDecay, LearningRate, MinLrRatio, OptimConfig, WarmupSteps


class VAEConfig(OptimConfig):
    """The VAE family (components/vae): RAVE's two stages on the pipeline's mels, through the configured vocoder."""

    steps: int = Field(default=0, ge=0, description="stage 1 updates (reconstruction + KL); 0 = this family is off")
    adversarial_steps: int = Field(default=0, ge=0, description="stage 2 updates: encoder frozen, decoder against a "
                                                                "mel discriminator on its reconstructions; 0 = no stage 2")
    batch_size: int = Field(default=32, ge=2)
    lr: LearningRate = 1e-3
    warmup_steps: WarmupSteps = 100
    min_lr_ratio: MinLrRatio = 0.1
    ema_decay: EmaDecay = 0.999
    hidden: int = Field(default=128, ge=8, description="channels of the encoder and decoder")
    latent: int = Field(default=16, ge=1, description="latent channels")
    levels: int = Field(default=2, ge=0, le=6, description="times the encoder halves the frames")
    beta: float = Field(default=0.1, ge=0, description="the KL weight once warmed up")
    beta_warmup_steps: int = Field(default=1000, ge=0, description="updates over which the KL weight rises from 0")
    adversarial_weight: float = Field(default=0.1, ge=0, description="stage 2: weight of the hinge loss beside the reconstruction")
    feature_matching_weight: float = Field(default=1.0, ge=0, description="stage 2: weight of the discriminator's "
                                                                          "feature matching (RAVE's)")
    critic_dim: int = Field(default=16, ge=1, description="channels of the discriminator's first layer")
    critic_layers: int = Field(default=3, ge=1, le=6, description="stride-2 layers of the discriminator")
    critic_lr: float = Field(default=1e-4, gt=0)
    log_every: int = Field(default=10, ge=1)
    checkpoint_every: int = Field(default=500, ge=0, description="0 = only at the end")
    sample_count: int = Field(default=8, ge=1)
    audio_previews: int = Field(default=2, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
