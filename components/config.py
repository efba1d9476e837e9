"""The one typed configuration schema of melforge, mirroring the sections of ``params.yaml``.

``params.yaml`` is the record DVC tracks: it always holds the complete, resolved configuration.
Profiles (``demo``, ``full``) are overlays on the schema defaults; ``-S section.key=value``
overrides use the same syntax as ``dvc exp run -S``. Every problem is reported before any work
starts, naming the key and what is allowed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from components.config_base import MAX_SEED, Section
from components.config_training import DistillConfig, GANConfig, ModelConfig, TrainConfig, VocoderConfig
from components.metric_table import primary_pattern
from components.names import BUILTIN_NAMES, CHECK_NAMES
from components.profiles import PROFILES
from components.vae.settings import VAEConfig


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
        unknown = sorted(set(self.warn_only) - set(CHECK_NAMES))
        if unknown:
            raise ValueError(f"warn_only: unknown checks {unknown}; allowed: {sorted(CHECK_NAMES)}")
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
        # each key is checked against the stage table on loading (params_file.table_problems), not here:
        # the schema knows no stage
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
    vae: VAEConfig = VAEConfig()
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
        nyquist = self.audio.sample_rate / 2
        if self.mel.fmax is not None and self.mel.fmax > nyquist:
            raise ValueError(f"mel.fmax ({self.mel.fmax}) must be <= audio.sample_rate/2 ({nyquist})")
        return self

    def to_params(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)
