"""The one typed configuration schema of melforge, mirroring the sections of ``params.yaml``.

``params.yaml`` is the record DVC tracks: it always holds the complete, resolved configuration.
Profiles (``demo``, ``full``) are overlays on the schema defaults; ``-S section.key=value``
overrides use the same syntax as ``dvc exp run -S``. Every problem is reported before any work
starts, naming the key and what is allowed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from components.datasets import BUILTIN_NAMES
from components.evaluate.metric_table import primary_pattern
from components.profiles import PROFILES
from components.stage_names import STAGE_NAMES
from components.storage import atomic_write_bytes
from components.validate.checks import CHECKS


class ConfigError(ValueError):
    """A configuration problem, phrased for the user (names the key and what is allowed)."""


# Seeds feed numpy (< 2**32) and torch after small offsets (seed + steps): a seed stays below 2**31.
MAX_SEED = 2**31 - 1
# No configured integer needs more than a 32-bit count; 2**70 is a typo, caught here rather than in training.
MAX_INT = 2**31 - 1
# Sampling steps of a diffusion model, in the config and for `melforge generate --steps`.
MAX_SAMPLING_STEPS = 4096


def _admits_bool(annotation: Any) -> bool:
    return annotation is bool or annotation is Any or any(_admits_bool(arg) for arg in get_args(annotation))


def _scalars(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [item for v in value for item in _scalars(v)]
    if isinstance(value, dict):
        return [item for v in value.values() for item in _scalars(v)]
    return [value]


class Section(BaseModel):
    """Every section: unknown keys, true/false for a number, inf/nan and integers past 32 bits are refused."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        annotation = cls.model_fields[info.field_name].annotation if info.field_name else None
        if annotation is None or isinstance(value, BaseModel) or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return value  # a section checks its own keys
        if annotation is bool and not isinstance(value, bool):
            raise ValueError("expected true or false")
        scalars = _scalars(value)
        if not _admits_bool(annotation) and any(isinstance(v, bool) for v in scalars):
            raise ValueError("expected a number, not true/false")
        if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT for v in scalars):
            raise ValueError(f"integers must be at most {MAX_INT} in size")
        return value


class NsynthMiniConfig(Section):
    """Grid of General MIDI programs x pitches x velocities rendered from the bundled SoundFont."""

    programs: list[int] = Field(default=[0, 24, 40, 56, 73], description="GM programs 0-127")
    pitches: list[int] = Field(default=[48, 55, 60, 67, 72], description="MIDI pitches 0-127")
    velocities: list[int] = Field(default=[48, 64, 80, 100, 112, 127], description="MIDI velocities 1-127")
    note_seconds: float = Field(default=3.0, gt=0, description="how long the key is held")
    seconds: float = Field(default=4.0, gt=0, description="clip length incl. release")
    sample_rate: int = Field(default=16000, ge=4000, le=96000)

    @model_validator(mode="after")
    def _check_ranges(self) -> "NsynthMiniConfig":
        for name, values, lo, hi in (
            ("programs", self.programs, 0, 127),
            ("pitches", self.pitches, 0, 127),
            ("velocities", self.velocities, 1, 127),
        ):
            bad = [v for v in values if not lo <= v <= hi]
            if bad or not values:
                raise ValueError(f"{name} must be a non-empty list of integers in [{lo}, {hi}], got {values}")
        if self.note_seconds > self.seconds:
            raise ValueError("note_seconds must not exceed seconds")
        return self


class DigitsConfig(Section):
    """Spoken digits from espeak-ng over voices x variants x pitches x speeds (SC09-like)."""

    voices: list[str] = Field(default=["en", "en-us", "en-gb-scotland"])
    variants: list[str] = Field(default=["m1", "f1", "m3"])
    pitches: list[int] = Field(default=[35, 50, 65])
    speeds: list[int] = Field(default=[140, 175])
    seconds: float = Field(default=1.0, gt=0)
    sample_rate: int = Field(default=16000, ge=4000, le=96000)

    @model_validator(mode="after")
    def _check_ranges(self) -> "DigitsConfig":
        if not self.voices or not self.variants:
            raise ValueError("voices and variants must be non-empty")
        if any(not 0 <= p <= 99 for p in self.pitches) or not self.pitches:
            raise ValueError(f"pitches must be integers in [0, 99], got {self.pitches}")
        if any(not 80 <= s <= 450 for s in self.speeds) or not self.speeds:
            raise ValueError(f"speeds must be words per minute in [80, 450], got {self.speeds}")
        return self


class DataConfig(Section):
    """Where audio comes from and how it is stored."""

    sources: list[str] = Field(default=["builtin:nsynth-mini"], min_length=1)
    include: list[str] = Field(default=["**/*.wav", "**/*.flac", "**/*.ogg", "**/*.mp3"])
    labels: Literal["auto", "csv", "folder", "none"] = "auto"
    labels_csv: str = Field(default="labels.csv", description="sidecar CSV name inside a source")
    s3_endpoint_url: str | None = Field(default=None, description="else AWS_ENDPOINT_URL[_S3]")
    s3_timeout_seconds: float = Field(default=15.0, gt=0, le=600,
                                      description="connect and read timeout of every S3 call")
    s3_attempts: int = Field(default=3, ge=1, le=20,
                             description="tries per S3 call (botocore's standard retry mode) before the stage fails")
    shard_size: int = Field(default=256, ge=1, le=100_000)
    nsynth_mini: NsynthMiniConfig = NsynthMiniConfig()
    digits: DigitsConfig = DigitsConfig()

    @model_validator(mode="after")
    def _check_sources(self) -> "DataConfig":
        for src in self.sources:
            if not src.strip():
                raise ValueError("sources must not contain empty strings")
            if src.startswith("builtin:") and src.removeprefix("builtin:") not in BUILTIN_NAMES:
                raise ValueError(f"unknown built-in dataset {src!r}; allowed: "
                                 f"{', '.join('builtin:' + n for n in BUILTIN_NAMES)}")
        return self


class AudioConfig(Section):
    """How decoded audio becomes clips."""

    sample_rate: int = Field(default=16000, ge=4000, le=192000)
    clip_seconds: float = Field(default=4.0, gt=0, le=600)
    hop_seconds: float | None = Field(default=None, gt=0, description="None = clip_seconds")
    min_last_clip_fraction: float = Field(default=0.5, ge=0, le=1)
    silence_floor_db: float = Field(default=-60.0, le=0, description="clips with RMS below are dropped")
    normalise: Literal["peak", "loudness", "none"] = "peak"
    peak_dbfs: float = Field(default=-1.0, le=0)
    loudness_dbfs: float = Field(default=-20.0, le=0, description="target RMS level for 'loudness'")
    min_source_sample_rate: int = Field(default=4000, ge=1)
    max_source_sample_rate: int = Field(default=384000, ge=1)
    max_channels: int = Field(default=16, ge=1)
    max_source_seconds: float = Field(default=4 * 3600, gt=0)

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round((self.hop_seconds or self.clip_seconds) * self.sample_rate))


class ValidateConfig(Section):
    """Great Expectations suite thresholds; expectations in ``warn_only`` are reported, not fatal."""

    min_duration_seconds: float = Field(default=0.25, ge=0)
    max_duration_seconds: float = Field(default=600.0, gt=0)
    min_clips_per_class: int = Field(default=1, ge=0)
    class_label: str | None = Field(default=None, description="label column for per-class minimum; None = first label")
    allowed_labels: dict[str, list[str]] = Field(default={}, description="label column -> allowed values")
    max_quarantine_fraction: float = Field(default=0.5, ge=0, le=1,
                                           description="largest share of a source's files that may be quarantined")
    max_quarantine_increase: float = Field(
        default=0.2, ge=0, le=1,
        description="largest rise of that share against the last run that passed validation (0.2 = 20 points)")
    warn_only: list[str] = Field(default=["min_clips_per_class"], description="checks reported but not fatal")

    @model_validator(mode="after")
    def _check(self) -> "ValidateConfig":
        unknown = sorted(set(self.warn_only) - set(CHECKS))
        if unknown:
            raise ValueError(f"warn_only: unknown checks {unknown}; allowed: {sorted(CHECKS)}")
        if self.max_duration_seconds <= self.min_duration_seconds:
            raise ValueError("max_duration_seconds must be > min_duration_seconds")
        return self


class MelConfig(Section):
    """Log-mel spectrogram features."""

    n_mels: int = Field(default=64, ge=8, le=512)
    n_fft: int = Field(default=1024, ge=64, le=16384)
    hop_length: int = Field(default=500, ge=16)
    win_length: int | None = Field(default=None, ge=16)
    fmin: float = Field(default=0.0, ge=0)
    fmax: float | None = Field(default=None, gt=0)
    frames: int = Field(default=128, ge=8, description="frames per example (cropped / padded)")
    layout: Literal["flat", "snake"] = "flat"
    pack_channels: int = Field(default=3, ge=1, description="channels of the snake layout")
    log_floor: float = Field(default=1e-5, gt=0)
    clip_sigma: float = Field(default=3.0, gt=0)
    batch_size: int = Field(default=64, ge=1)
    griffinlim_iters: int = Field(default=32, ge=1)
    griffinlim_eval_clips: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _check(self) -> "MelConfig":
        if self.win_length is not None and self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if self.fmax is not None and self.fmax <= self.fmin:
            raise ValueError(f"fmax ({self.fmax}) must be > fmin ({self.fmin})")
        if self.layout == "snake" and self.frames % self.pack_channels:
            raise ValueError(f"frames ({self.frames}) must be divisible by pack_channels ({self.pack_channels}) for layout 'snake'")
        return self


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


class TrainConfig(Section):
    """Teacher training (AdamW, warm-up + cosine LR, EMA, gradient clipping)."""

    steps: int = Field(default=2400, ge=1)
    batch_size: int = Field(default=16, ge=1)
    lr: float = Field(default=1.5e-3, gt=0)
    warmup_steps: int = Field(default=50, ge=0)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1)
    weight_decay: float = Field(default=0.0, ge=0)
    ema_decay: float = Field(default=0.998, ge=0, lt=1, description="EMA of the teacher's weights; the warm-up "
                             "min(decay, (1+step)/(10+step)) holds it lower until step (10*decay-1)/(1-decay)")
    grad_clip: float = Field(default=1.0, gt=0)
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


class DistillConfig(Section):
    """Progressive distillation: teacher_steps -> teacher_steps/2 -> ... -> final_steps."""

    teacher_steps: int = Field(default=16, ge=2, le=MAX_SAMPLING_STEPS)
    final_steps: int = Field(default=4, ge=1, le=MAX_SAMPLING_STEPS)
    updates_per_stage: int = Field(default=100, ge=1)
    batch_size: int = Field(default=16, ge=1)
    lr: float = Field(default=3e-4, gt=0, description="peak LR of each stage; the demo's 100 updates per stage reach "
                      "1.03x the teacher at 3e-4, 1.22x at 1e-4 (docs/benchmarks.md)")
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1, description="LR annealed within each stage")
    ema_decay: float = Field(default=0.0, ge=0, lt=1)
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


class EvalConfig(Section):
    """Evaluation: the classifier trained on real clips (embeddings + class probabilities), the
    CREPE embedding, how many samples each model draws and how the intervals are estimated."""

    labels: list[str] = Field(default=[], description="label columns to classify; [] = every label with 2..512 classes")
    fraction: float = Field(default=0.3, gt=0, lt=1,
                            description="share of each label cell held out as the evaluation set (features stage): nothing trains on it")
    min_clips_per_cell: int = Field(default=2, ge=1,
                                    description="evaluation clips per label cell at least, where the cell keeps as many for training")
    split_labels: list[str] = Field(default=[], description="label columns whose combinations are the split's cells; [] = every label with 2..512 values, dropping the fewest-valued while most cells hold one clip")
    classifier_steps: int = Field(default=300, ge=1)
    classifier_batch_size: int = Field(default=32, ge=2)
    classifier_lr: float = Field(default=1e-3, gt=0)
    embedding_dim: int = Field(default=128, ge=8)
    samples: int = Field(default=64, ge=4, description="clips generated per model and step count")
    teacher_steps: list[int] = Field(default=[16], description="teacher step counts to evaluate; [] = the teacher's and every student's")
    bootstrap: int = Field(default=100, ge=10, description="bootstrap resamples per 95% interval")
    kid_subsets: int = Field(default=20, ge=1)
    kid_subset_size: int = Field(default=100, ge=2)
    imq_gamma2: float | None = Field(default=None, gt=0, description="gamma^2 of the inverse multi-quadratic KID kernel; null = half the median squared distance between real embeddings (k = 1/2 there)")
    is_splits: int = Field(default=5, ge=1)
    crepe: bool = Field(default=True, description="also embed with torchcrepe's pretrained network")
    crepe_model: Literal["tiny", "full"] = "tiny"
    crepe_hop_seconds: float = Field(default=0.25, gt=0, description="seconds between CREPE frames (mean-pooled per clip)")
    griffinlim_iters: int = Field(default=16, ge=1, description="Griffin-Lim iterations for evaluated audio")
    floor_subsets: int = Field(default=5, ge=2, le=100, description="random stratified sets of n training clips the floor is averaged over")
    nearest_k: int = Field(default=5, ge=1, description="k of the k-NN balls of precision, recall, density and coverage")
    duplicated_flag: float = Field(default=0.25, gt=0, le=1, description="flag a model when more than this share of its clips has a near-copy among its own clips (nearer than 95% of training clips' nearest neighbours at the same n; 5% for real clips)")
    memorised_flag: float = Field(default=0.25, gt=0, le=1, description="flag a model when more than this share of its clips is nearer a training clip than 95% of evaluation clips are (5% for a model that generalises)")
    controls: Literal["enforce", "report", "off"] = Field(
        default="enforce", description="score the controls (replayed training clips, per-cell mean mels, noise): enforce = fail the stage when the ruler cannot rank them; report = only record it")
    rtf_clips: int = Field(default=4, ge=1, description="clips per real-time-factor measurement")
    report_audio: int = Field(default=2, ge=0, description="audio players per model in the HTML report")


class VocoderConfig(Section):
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
    lr: float = Field(default=1e-3, gt=0)
    warmup_steps: int = Field(default=100, ge=0)
    min_lr_ratio: float = Field(default=0.05, ge=0, le=1)
    weight_decay: float = Field(default=0.0, ge=0)
    ema_decay: float = Field(default=0.995, ge=0, lt=1)
    grad_clip: float = Field(default=1.0, gt=0)
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


class GANTrainingConfig(Section):
    """What both GAN baselines share: WGAN-GP training (Gulrajani et al. 2017) as in the WaveGAN paper."""

    steps: int = Field(default=0, ge=0, description="generator updates; 0 = this family is off (no stage work, not evaluated)")
    batch_size: int = Field(default=64, ge=2)
    lr: float = Field(default=1e-4, gt=0, description="Adam, generator and critic")
    betas: tuple[float, float] = Field(default=(0.5, 0.9), description="Adam (beta1, beta2)")
    n_critic: int = Field(default=5, ge=1, description="critic updates per generator update")
    penalty_weight: float = Field(default=10.0, ge=0, description="WGAN-GP lambda")
    ema_decay: float = Field(default=0.999, ge=0, lt=1, description="EMA of the generator's weights (what is evaluated); 0 = none")
    latent_dim: int = Field(default=100, ge=1)
    dim: int = Field(default=64, ge=1, description="model size d: the widest layer has 16 d (WaveGAN) or 8 d (SpecGAN) channels")
    log_every: int = Field(default=10, ge=1)
    checkpoint_every: int = Field(default=500, ge=0, description="0 = only at the end")
    sample_every: int = Field(default=1000, ge=0, description="0 = only at the end")
    sample_count: int = Field(default=8, ge=1)
    audio_previews: int = Field(default=2, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _check_betas(self) -> "GANTrainingConfig":
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be in [0, 1), got {list(self.betas)}")
        return self


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


GAN_FAMILIES = ("wavegan", "specgan")


METRIC_PATTERN = primary_pattern()


class RegistryConfig(Section):
    """MLflow model registry: the registered name and the promotion gate."""

    model_name: str = Field(default="melforge-mel-diffusion", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    enabled: bool = Field(default=True, description="register and gate the models after evaluation (melforge run)")
    primary_metric: str = Field(default="fad_classifier", pattern=METRIC_PATTERN,
                                description="fad_/fadinf_/kid_cubic_/kid_imq_ + classifier|crepe (lower is better) or is_<label> (higher)")
    min_improvement: float = Field(default=0.05, ge=0, lt=1,
                                   description="relative improvement over the champion needed for promotion")
    require_disjoint_intervals: bool = Field(default=True,
                                             description="also require the 95% intervals not to overlap")
    serve_tolerance: float = Field(default=0.25, ge=0,
                                   description="serve the cheapest model (any family) within this relative distance of the best one")
    serve_min_level_in_range: float = Field(
        default=0.8, ge=0, le=1, description="among those, serve only a model with at least this share of clips "
        "whose noise floor and peak lie in the real clips' 5-95% range (issue 23's level target), when one exists")
    max_floor_ratio: float = Field(default=3.0, ge=1,
                                   description="quality floor: a FAD/KID primary metric must be <= this x the floor (training clips vs the evaluation set) to become champion")
    min_real_ratio: float = Field(default=0.5, gt=0, le=1,
                                  description="quality floor: an is_* primary metric must be >= this fraction of the real clips' IS")
    diversity_metric: Literal["recall", "coverage"] = Field(
        default="recall", description="the diversity measure (classifier embedding) a champion needs a share of the floor's of (recall: on the demo, coverage saturates at 1 for models and is 0.68 for noise)")
    min_diversity_ratio: float = Field(default=0.5, ge=0, le=1,
                                       description="quality floor: the diversity measure must be >= this fraction of the floor's")


class OrchestrationConfig(Section):
    """How the flow runs stages: per-stage timeouts, retries with backoff, one pipeline per workspace."""

    stage_timeout_minutes: dict[str, float] = Field(
        default={"default": 120.0, "vocoder": 1440.0, "train": 2880.0, "distill": 1440.0, "gan": 1440.0},
        description="per stage (scan, ingest, ..., distill, gan, evaluate); 'default' for the rest")
    retries: int = Field(default=2, ge=0, description="retries of transient failures (DVC lock, network)")
    retry_backoff_seconds: float = Field(default=10.0, gt=0, description="first retry delay; doubles each retry")
    workspace_wait_minutes: float = Field(default=60.0, gt=0,
                                          description="how long a pipeline waits for another one in the same workspace")
    training_deployment: str | None = Field(
        default=None, pattern=r"^[^/]+/[^/]+$",
        description="hand train, distill and the GAN stages that are on to this Prefect deployment (e.g. melforge-train-models/gpu); null = here")

    @model_validator(mode="after")
    def _check_timeouts(self) -> "OrchestrationConfig":
        allowed = {"default", *STAGE_NAMES, "registry"}
        unknown = sorted(set(self.stage_timeout_minutes) - allowed)
        if unknown:
            raise ValueError(f"stage_timeout_minutes: unknown stage(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        if "default" not in self.stage_timeout_minutes:
            raise ValueError("stage_timeout_minutes needs a 'default' entry")
        if any(v <= 0 for v in self.stage_timeout_minutes.values()):
            raise ValueError("stage_timeout_minutes values must be > 0")
        return self

    def timeout_seconds(self, stage: str) -> float:
        key = stage.split("@")[0]
        return 60.0 * self.stage_timeout_minutes.get(key, self.stage_timeout_minutes["default"])


class MelforgeConfig(Section):
    """The whole of params.yaml."""

    profile: str = Field(default="demo", description="the profile this file started from (components/profiles.py), or custom")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="seeds every random choice (numpy and torch)")
    experiment: str = Field(default="melforge", min_length=1, description="MLflow experiment name")
    data: DataConfig = DataConfig()
    audio: AudioConfig = AudioConfig()
    validate_: ValidateConfig = Field(default=ValidateConfig(), alias="validate")
    mel: MelConfig = MelConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    distill: DistillConfig = DistillConfig()
    vocoder: VocoderConfig = VocoderConfig()
    gan: GANConfig = GANConfig()
    eval: EvalConfig = EvalConfig()
    registry: RegistryConfig = RegistryConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in (*PROFILES, "custom"):
            raise ValueError(f"unknown profile {value!r}; allowed: {', '.join([*PROFILES, 'custom'])}")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> "MelforgeConfig":
        for source in self.data.sources:
            if source.startswith("builtin:"):
                key = source.removeprefix("builtin:").replace("-", "_")
                seconds = getattr(self.data, key).seconds
                needed = self.audio.clip_seconds * self.audio.min_last_clip_fraction
                if seconds < needed:
                    raise ValueError(
                        f"data.{key}.seconds ({seconds:g}) is shorter than audio.clip_seconds x "
                        f"audio.min_last_clip_fraction ({needed:g}): every clip of {source} would be dropped; "
                        f"set audio.clip_seconds={seconds:g}")
        packed = self.mel.pack_channels if self.mel.layout == "snake" else 1
        in_channels = self.mel.n_mels * packed
        if self.model.base_channels < in_channels:
            source = (f"mel.n_mels ({self.mel.n_mels}) x mel.pack_channels ({packed}) for mel.layout 'snake'"
                      if packed > 1 else f"mel.n_mels ({self.mel.n_mels})")
            raise ValueError(
                f"model.base_channels ({self.model.base_channels}) is narrower than the U-Net's input, {source} = "
                f"{in_channels} channels: the stem would leave a null space whose noise passes untouched into every "
                f"sample; set model.base_channels >= {in_channels} or reduce mel.n_mels")
        if self.train.augment_shift_frames >= self.mel.frames:
            raise ValueError(f"train.augment_shift_frames ({self.train.augment_shift_frames}) must be smaller than "
                             f"mel.frames ({self.mel.frames}): a shift that large leaves nothing of the clip")
        levels = len(self.model.channel_mults)
        width = self.mel.frames // (self.mel.pack_channels if self.mel.layout == "snake" else 1)
        if width % (2 ** (levels - 1)):
            raise ValueError(f"frames per example ({width}) must be divisible by 2^(len(model.channel_mults)-1) "
                             f"= {2 ** (levels - 1)} for the U-Net's down-sampling; change mel.frames or model.channel_mults")
        if self.registry.primary_metric.endswith("_crepe") and not self.eval.crepe:
            raise ValueError(f"registry.primary_metric {self.registry.primary_metric!r} needs the CREPE embedding; "
                             "set eval.crepe=true or choose a *_classifier metric")
        segment = self.vocoder.segment_frames * self.mel.hop_length
        if segment > self.audio.clip_samples:
            raise ValueError(f"vocoder.segment_frames ({self.vocoder.segment_frames}) x mel.hop_length ({self.mel.hop_length}) "
                             f"= {segment} samples is longer than a clip ({self.audio.clip_samples} samples); "
                             f"set vocoder.segment_frames <= {self.audio.clip_samples // self.mel.hop_length}")
        for problem in gan_problems(self):
            raise ValueError(problem)
        nyquist = self.audio.sample_rate / 2
        if self.mel.fmax is not None and self.mel.fmax > nyquist:
            raise ValueError(f"mel.fmax ({self.mel.fmax}) must be <= audio.sample_rate/2 ({nyquist})")
        return self

    def to_params(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def gan_problems(cfg: MelforgeConfig) -> list[str]:
    """What the enabled GAN families cannot produce with these clip and mel settings."""
    from components.gan.specs import producible_samples_problem, reachable_shape_problem, specgan_spec, wavegan_spec

    problems = []
    if cfg.gan.wavegan.steps:
        problems.append(producible_samples_problem(wavegan_spec(cfg.gan.wavegan), cfg.audio.clip_samples))
    if cfg.gan.specgan.steps:
        problems.append(reachable_shape_problem(specgan_spec(cfg.gan.specgan, cfg.mel.n_mels, cfg.mel.frames)))
    return [p for p in problems if p]


# Profiles are overlays on the schema defaults. demo: a generator in minutes on a laptop CPU.
# cpu: what the recipe reaches without a GPU in about an hour. full: the reference paper's scale (GPU).



def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def profile_params(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}")
    return _deep_merge(MelforgeConfig().to_params(), PROFILES[name])


def _allowed_keys(path: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = MelforgeConfig
    for part in path:
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return [f.alias or n for n, f in model.model_fields.items()]


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        key = ".".join(loc) or "<root>"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            lines.append(f"{origin}: unknown key '{key}'; allowed keys here: {', '.join(allowed)}")
        else:
            got = e.get("input")
            shown = "" if isinstance(got, (dict, list)) and e["type"] == "value_error" else f" (got {got!r})"
            where = f"'{key}': " if loc else ""
            lines.append(f"{origin}: {where}{e['msg'].removeprefix('Value error, ')}{shown}")
    return "\n".join(lines)


def validate_params(params: dict[str, Any], origin: str = "params.yaml") -> MelforgeConfig:
    """Validate a params mapping; raise ConfigError naming every bad key."""
    if not isinstance(params, dict):
        raise ConfigError(f"{origin}: expected a mapping of sections, got {type(params).__name__}")
    try:
        return MelforgeConfig.model_validate(params)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from None


OVERRIDE_GRAMMAR = ("melforge accepts key=value: a dotted key that params.yaml has (mel.n_mels) and a YAML "
                    "value (64, [48, 60], {default: 5}, null); not Hydra's +key=, ++key= or ~key, since every key "
                    "already exists and none can be removed")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value``, the value as YAML: the plain form of ``dvc exp run -S`` (see
    ``OVERRIDE_GRAMMAR``). Merging stays here, not in OmegaConf: a few lines that name the bad key
    in melforge's words, with pydantic validating the result."""
    if text.startswith(("+", "~")):
        raise ConfigError(f"-S {text!r}: {OVERRIDE_GRAMMAR}")
    if "=" not in text:
        raise ConfigError(f"-S {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ConfigError(f"-S {text!r}: expected a dotted key such as mel.n_mels")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"-S {text!r}: value is not valid YAML ({exc})") from None
    return parts, value


def apply_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``params`` with every override applied (unknown keys caught on validation)."""
    result = copy.deepcopy(params)
    for text in overrides:
        parts, value = parse_override(text)
        node = result
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"-S {text!r}: '{'.'.join(parts[:i + 1])}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return result


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one section (lines {seen[key]} and {line}); "
                    "keep one, since the second would silently replace the first", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_params_file(path: Path, *, allow_empty: bool = False) -> dict[str, Any]:
    """params.yaml as a dict. An empty file is refused: it would silently mean "every schema
    default", a configuration nobody chose."""
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run from the project root or create it with `melforge run --profile demo`")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected sections (data:, audio:, mel:, ...), got a {type(data).__name__}")
    if not data and not allow_empty:
        raise ConfigError(f"{path}: is empty; start from a profile with `melforge run --profile demo` "
                          f"(or {', '.join(p for p in PROFILES if p != 'demo')}), which writes it")
    return data


def load_config(path: Path, overrides: list[str] | None = None) -> MelforgeConfig:
    """Load params.yaml, apply ``-S`` overrides, validate."""
    params = apply_overrides(read_params_file(path), overrides or [])
    origin = f"{path.name}" + (" with -S overrides" if overrides else "")
    return validate_params(params, origin)


class _ParamsDumper(yaml.SafeDumper):
    """Sections as blocks, lists of values inline: params.yaml stays short and diff-friendly."""


_ParamsDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def write_params_file(path: Path, config: MelforgeConfig) -> None:
    """Write params.yaml atomically (temp file + rename)."""
    text = "# melforge parameters: the record DVC tracks. Edit, or use `melforge run -S key=value`.\n"
    text += yaml.dump(config.to_params(), Dumper=_ParamsDumper, sort_keys=False, default_flow_style=False, width=100)
    atomic_write_bytes(path, text.encode())


def resolve_params(params_path: Path, *, profile: str | None = None, overrides: list[str] | None = None,
                   write: bool = True) -> MelforgeConfig:
    """The config a run will use: profile (or the current params.yaml) + ``-S`` overrides.

    Validated before anything else happens; written back to params.yaml (atomically, only when
    it changed) so DVC records exactly what ran, like ``dvc exp run -S``.
    """
    if profile is not None:
        base = profile_params(profile)
    elif params_path.is_file():
        base = read_params_file(params_path)
    else:
        base = profile_params("demo")
    merged = apply_overrides(base, overrides or [])
    origin = params_path.name if profile is None else f"profile {profile!r}"
    config = validate_params(merged, origin + (" with -S overrides" if overrides else ""))
    if write:
        current = read_params_file(params_path, allow_empty=True) if params_path.is_file() else None
        if current != config.to_params():
            write_params_file(params_path, config)
    return config
