"""The one mel -> audio interface: previews, evaluation, ``melforge generate`` and the pyfunc model
all turn log-mels into sound through a :class:`Vocoder`, either Griffin-Lim or the learned one.

    vocoder = load_vocoder(path)            # or GriffinLim(spec, n_iter=32)
    audio = vocoder(logmel)                 # (batch, n_mels, frames) -> (batch, samples) in [-1, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from components.features.griffinlim import GriffinLim
from components.features.mel import MelSpec
from components.level import LEGACY_CEILING_DBFS, limit_peak
from components.storage import atomic_save_torch, load_torch
from components.vocoder import VOCODER_FILE
from components.vocoder.model import ARCHITECTURE_VERSION, Vocos, VocoderSpec

KINDS = ("griffinlim", "learned")
# the mel settings a vocoder must share with the mels it is given
MATCHED_FIELDS = ("sample_rate", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "window_length", "log_floor")


# Griffin-Lim's phase raises a clip's crest factor: real clips normalised to a -1 dBFS peak come back
# above full scale in ~60% of cases. A vocoder turns such a clip down to this ceiling (one gain per
# clip, components/level.py); the model's level convention then sets the delivered level.
PEAK_CEILING_DBFS = LEGACY_CEILING_DBFS


class VocoderMismatch(ValueError):
    """A learned vocoder given mels made with other settings."""


class Vocoder(Protocol):
    kind: str

    def synthesise(self, logmel: np.ndarray) -> np.ndarray:
        """(batch, n_mels, frames) natural-log mel power -> (batch, samples) float32 as made, at the
        mels' own level (no ceiling): what a level convention measures its gain on."""

    def __call__(self, logmel: np.ndarray) -> np.ndarray:
        """:meth:`synthesise`, every clip turned down to at most PEAK_CEILING_DBFS (:func:`limit_peak`)."""


@dataclass
class LearnedVocoder:
    """A trained :class:`Vocos` with the mel settings it was trained on."""

    model: Vocos
    spec: MelSpec
    meta: dict[str, Any]
    device: str = "cpu"
    chunk: int = 16
    kind: str = "learned"

    def synthesise(self, logmel: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(logmel), dtype=torch.float32)
        if x.ndim == 2:
            x = x[None]
        if x.shape[1] != self.spec.n_mels:
            raise VocoderMismatch(f"the learned vocoder takes {self.spec.n_mels} mel bins, got {x.shape[1]}")
        with torch.inference_mode():
            parts = [self.model(x[i:i + self.chunk].to(self.device)).float().cpu() for i in range(0, len(x), self.chunk)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, 0), np.float32)

    def __call__(self, logmel: np.ndarray) -> np.ndarray:
        return limit_peak(self.synthesise(logmel))

    def describe(self) -> str:
        return f"learned vocoder (Vocos, {self.meta.get('steps', '?')} steps)"

    def check_matches(self, spec: MelSpec, origin: str = "the model") -> None:
        """Raise VocoderMismatch naming every mel setting that differs from ``spec``."""
        diffs = [f"{f}: vocoder {getattr(self.spec, f)!r}, {origin} {getattr(spec, f)!r}"
                 for f in MATCHED_FIELDS if getattr(self.spec, f) != getattr(spec, f)]
        if diffs:
            raise VocoderMismatch(f"the learned vocoder was trained on other mel settings than {origin} ({'; '.join(diffs)}); "
                                  "retrain it (melforge run) or use vocoder.kind=griffinlim")


def save_vocoder(path: Path, model: Vocos, mel_spec: MelSpec, **meta: Any) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save_torch({"kind": "vocos", "architecture_version": ARCHITECTURE_VERSION, "spec": model.spec.to_dict(),
                       "mel_spec": {f: getattr(mel_spec, f) for f in MelSpec.__dataclass_fields__},
                       "weights": state, **meta}, path)


def load_vocoder(path: Path, device: str = "cpu") -> LearnedVocoder:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained vocoder; run the vocoder stage (melforge stage vocoder) "
                                "or set vocoder.kind=griffinlim")
    payload = load_torch(path)
    if payload.get("kind") != "vocos" or payload.get("architecture_version") != ARCHITECTURE_VERSION:
        raise VocoderMismatch(f"{path}: not a vocoder this melforge can load (kind {payload.get('kind')!r}, "
                              f"architecture {payload.get('architecture_version')!r}, expected vocos {ARCHITECTURE_VERSION})")
    model = Vocos(VocoderSpec.from_dict(payload["spec"]))
    model.load_state_dict(payload["weights"])
    meta = {k: v for k, v in payload.items() if k not in ("weights",)}
    return LearnedVocoder(model=model.to(device).eval(), spec=MelSpec(**payload["mel_spec"]), meta=meta, device=device)


def make_vocoder(kind: str, spec: MelSpec, *, griffinlim_iters: int, file: Path | None = None,
                 device: str = "cpu") -> Vocoder:
    """The configured vocoder for mels made with ``spec``: ``learned`` loads ``file`` and checks it
    was trained on the same mel settings."""
    if kind == "griffinlim":
        return GriffinLim(spec, n_iter=griffinlim_iters)
    if kind != "learned":
        raise ValueError(f"vocoder.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if file is None:
        raise ValueError("vocoder.kind is 'learned' but no vocoder file was given")
    vocoder = load_vocoder(file, device)
    vocoder.check_matches(spec)
    return vocoder


def vocoder_dir(models_dir: Path) -> Path:
    """Where the vocoder stage writes (``models/vocoder``)."""
    return Path(models_dir) / "vocoder"


def workspace_vocoder_file(paths) -> Path:
    """The learned vocoder a workspace's vocoder stage writes (``models/vocoder/vocoder.pt``)."""
    return vocoder_dir(paths.models) / VOCODER_FILE


def workspace_vocoder(cfg, paths, spec: MelSpec, *, griffinlim_iters: int, device: str = "cpu") -> Vocoder:
    """The vocoder a workspace's params choose (``vocoder.kind``) for mels made with ``spec``."""
    return make_vocoder(cfg.vocoder.kind, spec, griffinlim_iters=griffinlim_iters, file=workspace_vocoder_file(paths),
                        device=device)
