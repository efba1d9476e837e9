"""The building blocks of the configuration schema: the strict section every params.yaml section is,
the limits every section shares, and the optimiser settings every trainable section inherits.
Import-free within melforge, like the rest of the schema."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


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


# The optimiser's settings, each declared once with its bounds; a trainable section sets only its defaults.
LearningRate = Annotated[float, Field(gt=0, description="peak learning rate")]
Betas = Annotated[tuple[float, float], Field(description="Adam (beta1, beta2)")]
WeightDecay = Annotated[float, Field(ge=0, description="decoupled weight decay (AdamW); 0 = Adam")]
WarmupSteps = Annotated[int, Field(ge=0, description="linear warm-up steps before the cosine decay")]
MinLrRatio = Annotated[float, Field(ge=0, le=1, description="the cosine decay ends at this share of the peak lr (1 = constant)")]
GradClip = Annotated[float | None, Field(gt=0, description="gradient-norm clipping; null = none")]
EmaDecay = Annotated[float, Field(ge=0, lt=1, description="EMA of the weights (what is evaluated and served); 0 = none")]


class OptimConfig(Section):
    """The optimiser every trainable section shares (AdamW, linear warm-up then cosine decay, gradient
    clipping, EMA of the weights): one type, read by one ``train.loop.loop_settings``."""

    lr: LearningRate = 1e-3
    betas: Betas = (0.9, 0.99)
    weight_decay: WeightDecay = 0.0
    warmup_steps: WarmupSteps = 0
    min_lr_ratio: MinLrRatio = 0.0
    grad_clip: GradClip = 1.0
    ema_decay: EmaDecay = 0.0

    @model_validator(mode="after")
    def _check_betas(self) -> "OptimConfig":
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be in [0, 1), got {list(self.betas)}")
        return self
