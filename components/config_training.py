"""The schema of the trainable sections of params.yaml: the U-Net, teacher training, distillation,
the vocoder and the GAN baselines (a family added later keeps its section in its own package's
``settings.py``). Each inherits the one optimiser section (``OptimConfig``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from components.config_base import (MAX_SAMPLING_STEPS, Betas, ConfigError, EmaDecay, GradClip, LearningRate, MinLrRatio,
                                    OptimConfig, Section, WarmupSteps)
from components.names import GAN_FAMILIES


class ModelConfig(Section):
    """The 1D U-Net (mel bins as channels; the snake layout folds K x F into channels).

    ``base_channels`` must be at least the input's channels (mel.n_mels, times mel.pack_channels
    for the snake layout): a narrower stem cannot see all of its input, and the noise in what it
    cannot see passes untouched into every sample (checked in MelforgeConfig)."""

    base_channels: int = Field(default=64, ge=8)
    channel_mults: list[int] = Field(default=[1, 2, 2], min_length=1)
    blocks_per_level: int = Field(default=1, ge=1)
    attention_levels: list[int] = Field(default=[2], description="level indices with self-attention")
    attention_heads: int = Field(default=4, ge=1)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    groups: int = Field(default=8, ge=1)
    conditioning: Literal["none", "cells"] = Field(
        default="cells", description="cells: the teacher (and its students) learn each clip's label cell, the "
        "split's cells (eval.split_labels), and generators draw cells as often as the training clips hold them; "
        "none: unconditional. On the demo, cells reached 2.1x the floor where unconditional was 6.3x at "
        "the same training minutes (docs/benchmarks.md)")
    label_dropout: float = Field(default=0.1, ge=0, lt=1, description="share of training labels replaced by "
                                 "'no label', so the same network learns the unconditional prediction guidance needs")
    guidance: float = Field(default=1.5, ge=0, description="classifier-free guidance w for sampling the conditional "
                            "teacher: v = v_uncond + w (v_cond - v_uncond); 1 = no guidance (one network evaluation "
                            "per step, else two); the students learn the guided teacher and sample with one")

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        levels = len(self.channel_mults)
        bad = [lvl for lvl in self.attention_levels if not 0 <= lvl < levels]
        if bad:
            raise ValueError(f"attention_levels {bad} outside the {levels} levels [0, {levels - 1}]")
        if any(m < 1 for m in self.channel_mults):
            raise ValueError(f"channel_mults must be positive, got {self.channel_mults}")
        return self


class TrainConfig(OptimConfig):
    """Teacher training (AdamW, warm-up + cosine LR, EMA, gradient clipping)."""

    steps: int = Field(default=2400, ge=1)
    batch_size: int = Field(default=16, ge=1)
    lr: LearningRate = 1.5e-3
    warmup_steps: WarmupSteps = 50
    min_lr_ratio: MinLrRatio = 0.1
    ema_decay: EmaDecay = Field(default=0.998, description="EMA of the teacher's weights; the warm-up "
                             "min(decay, (1+step)/(10+step)) holds it lower until step (10*decay-1)/(1-decay)")
    loss_weighting: Literal["snr_trunc", "snr+1", "min_snr_5", "min_snr+1_5"] = Field(
        default="min_snr_5", description="the diffusion loss's weight over noise levels: min_snr_5 (min-SNR-gamma, "
                                         "gamma = 5), snr+1 (plain v-MSE), snr_trunc, or min_snr+1_5 (min-SNR's cap, "
                                         "plain v-MSE at large noise). min_snr_5 reached the demo's quality at a "
                                         "third of snr+1's steps; min_snr+1_5 was worse (docs/benchmarks.md)")
    augment_gain_db: float = Field(default=0.0, ge=0, le=24,
                                   description="light augmentation: each training clip at a random gain within "
                                               "+-this many dB, floored at the mel floor (0 = off)")
    augment_shift_frames: int = Field(default=0, ge=0,
                                      description="light augmentation: each training clip shifted by up to +-this "
                                                  "many frames, padded with silence (0 = off)")
    log_every: int = Field(default=10, ge=1)
    checkpoint_every: int = Field(default=500, ge=0, description="0 = only at the end")
    sample_every: int = Field(default=1200, ge=0, description="0 = only at the end")
    sample_count: int = Field(default=8, ge=1)
    audio_previews: int = Field(default=2, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = Field(default=True, description="bf16 autocast on GPU (ignored on CPU: see cpu_bf16)")
    cpu_bf16: bool = Field(default=False, description="bf16 autocast when the teacher trains on a CPU with native "
                                                     "bf16 instructions (AVX512-BF16 or AMX); ignored on other CPUs, "
                                                     "where emulated bf16 is slower than fp32. Distillation stays fp32 "
                                                     "on CPU (its targets difference teacher predictions)")
    compile: bool = False


class DistillConfig(OptimConfig):
    """Progressive distillation: teacher_steps -> teacher_steps/2 -> ... -> final_steps."""

    teacher_steps: int = Field(default=16, ge=2, le=MAX_SAMPLING_STEPS)
    final_steps: int = Field(default=4, ge=1, le=MAX_SAMPLING_STEPS)
    updates_per_stage: int = Field(default=100, ge=1)
    batch_size: int = Field(default=16, ge=1)
    lr: LearningRate = Field(default=3e-4, description="peak LR of each stage; the demo's 100 updates per stage reach "
                      "1.03x the teacher at 3e-4, 1.22x at 1e-4 (docs/benchmarks.md)")
    checkpoint_every: int = Field(default=250, ge=1,
                                  description="updates between a stage's checkpoints (an interrupted stage resumes "
                                              "from the last one; not part of the result, so not a DVC param)")
    loss_weighting: Literal["snr_trunc", "snr+1", "min_snr_5", "min_snr+1_5"] = "snr_trunc"
    teacher_sampler: Literal["ddim", "dpm++2m"] = Field(
        default="ddim", description="how the teacher is sampled (previews, evaluation, serving; saved in its model "
                                    "file): ddim, or dpm++2m (second order: at n steps about as good as DDIM at 2n). "
                                    "Students always sample with DDIM, the solver they are distilled to follow")
    stages: dict[str, dict[str, Any]] = Field(default={}, description="derived: one entry per student (for dvc.yaml)")
    final_student: str = Field(default="", description="derived: the last student (for dvc.yaml)")

    @model_validator(mode="after")
    def _derive_stages(self) -> "DistillConfig":
        n, final = self.teacher_steps, self.final_steps
        if n & (n - 1) or final & (final - 1):
            raise ValueError(f"teacher_steps ({n}) and final_steps ({final}) must be powers of two")
        if final >= n:
            raise ValueError(f"final_steps ({final}) must be < teacher_steps ({n})")
        derived: dict[str, dict[str, Any]] = {}
        parent, steps = "teacher", n // 2
        while steps >= final:
            derived[f"student-{steps}"] = {"steps": steps, "teacher": parent}
            parent, steps = f"student-{steps}", steps // 2
        object.__setattr__(self, "stages", derived)  # always derived, never hand-edited
        object.__setattr__(self, "final_student", f"student-{final}")
        return self


class VocoderConfig(OptimConfig):
    """The mel -> audio step every sound goes through, and the learned (Vocos-style) vocoder's training."""

    kind: Literal["griffinlim", "learned"] = Field(
        default="griffinlim", description="what turns mels into audio for previews, evaluation, generate and the pyfunc model")
    dim: int = Field(default=256, ge=8, description="ConvNeXt backbone width")
    intermediate: int = Field(default=768, ge=8, description="ConvNeXt block hidden width")
    layers: int = Field(default=8, ge=1, description="ConvNeXt blocks")
    kernel: int = Field(default=7, ge=1, description="depthwise convolution width (frames); odd")
    steps: int = Field(default=0, ge=0, description="training steps; 0 trains nothing (kind must be griffinlim)")
    batch_size: int = Field(default=16, ge=1)
    segment_frames: int = Field(default=32, ge=4, description="mel frames per training segment")
    warmup_steps: WarmupSteps = 100
    min_lr_ratio: MinLrRatio = 0.05
    ema_decay: EmaDecay = 0.995
    mel_weight: float = Field(default=4.0, ge=0, description="weight of the mel terms (log-mel L1 + mel spectral convergence; MR-STFT has weight 1)")
    stft_resolutions: list[tuple[int, int]] = Field(
        default=[(512, 128), (1024, 256), (2048, 512)], description="(n_fft, hop) pairs of the MR-STFT loss")
    adversarial: bool = Field(default=False, description="add multi-period + multi-resolution discriminators (hinge GAN)")
    adversarial_start: int = Field(default=0, ge=0, description="steps of reconstruction-only training before the GAN terms")
    adversarial_weight: float = Field(default=1.0, ge=0)
    feature_matching_weight: float = Field(default=2.0, ge=0)
    discriminator_lr: float = Field(default=2e-4, gt=0)
    discriminator_width: int = Field(default=16, ge=1)
    periods: list[int] = Field(default=[2, 3, 5, 7, 11])
    log_every: int = Field(default=10, ge=1)
    checkpoint_every: int = Field(default=500, ge=0)
    sample_every: int = Field(default=1000, ge=0)
    eval_clips: int = Field(default=16, ge=1, description="evaluation-set clips (never trained on) for the vocoder-vs-Griffin-Lim comparison")
    audio_previews: int = Field(default=2, ge=0)
    rtf_repeats: int = Field(default=3, ge=1, description="best-of repeats for the real-time factors")
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _check(self) -> "VocoderConfig":
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel ({self.kernel}) must be odd so frames stay aligned")
        if self.kind == "learned" and self.steps == 0:
            raise ValueError("kind 'learned' needs a trained vocoder: set steps >= 1, or kind griffinlim")
        bad = [r for r in self.stft_resolutions if r[1] < 1 or r[0] < 16 or r[1] > r[0]]
        if not self.stft_resolutions or bad:
            raise ValueError(f"stft_resolutions must be (n_fft >= 16, 1 <= hop <= n_fft) pairs, got {bad or '[]'}")
        if any(p < 1 for p in self.periods) or (self.adversarial and not self.periods):
            raise ValueError(f"periods must be positive integers (at least one with adversarial), got {self.periods}")
        return self


class GANTrainingConfig(OptimConfig):
    """What both GAN baselines share: WGAN-GP training (Gulrajani et al. 2017) as in the WaveGAN paper."""

    steps: int = Field(default=0, ge=0, description="generator updates; 0 = this family is off (no stage work, not evaluated)")
    batch_size: int = Field(default=64, ge=2)
    lr: LearningRate = Field(default=1e-4, description="Adam, generator and critic, constant (the paper's)")
    betas: Betas = (0.5, 0.9)
    min_lr_ratio: MinLrRatio = 1.0
    grad_clip: GradClip = None
    n_critic: int = Field(default=5, ge=1, description="critic updates per generator update")
    penalty_weight: float = Field(default=10.0, ge=0, description="WGAN-GP lambda")
    ema_decay: EmaDecay = 0.999
    latent_dim: int = Field(default=100, ge=1)
    dim: int = Field(default=64, ge=1, description="model size d: the widest layer has 16 d (WaveGAN) or 8 d (SpecGAN) channels")
    log_every: int = Field(default=10, ge=1)
    checkpoint_every: int = Field(default=500, ge=0, description="0 = only at the end")
    sample_every: int = Field(default=1000, ge=0, description="0 = only at the end")
    sample_count: int = Field(default=8, ge=1)
    audio_previews: int = Field(default=2, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"



class WaveGANConfig(GANTrainingConfig):
    """WaveGAN (Donahue et al. 2019): base_frames x stride^layers samples; the paper: 16 x 4^5 = 16384."""

    layers: int = Field(default=5, ge=1, description="transposed 1D convolutions in the generator")
    kernel: int = Field(default=25, ge=1)
    stride: int = Field(default=4, ge=2)
    base_frames: int = Field(default=16, ge=1, description="length after the dense layer")
    phase_shuffle: int = Field(default=2, ge=0, description="critic phase shuffle radius n (0 = off)")


class SpecGANConfig(GANTrainingConfig):
    """SpecGAN: a DCGAN over the pipeline's normalised log-mels (mel.n_mels x mel.frames)."""

    layers: int = Field(default=4, ge=1, description="stride-2 transposed 2D convolutions; n_mels and frames must divide by 2^layers")
    kernel: int = Field(default=5, ge=1)


class GANConfig(Section):
    """The GAN baselines of the reference papers, trained and scored beside the diffusion models."""

    wavegan: WaveGANConfig = WaveGANConfig()
    specgan: SpecGANConfig = SpecGANConfig()

    def family(self, name: str) -> GANTrainingConfig:
        if name not in GAN_FAMILIES:
            raise ConfigError(f"unknown GAN family {name!r}; allowed: {', '.join(GAN_FAMILIES)}")
        return getattr(self, name)

    @property
    def enabled(self) -> list[str]:
        return [name for name in GAN_FAMILIES if getattr(self, name).steps > 0]
