"""Small builders shared by tests: configs and audio files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from components.config import MelforgeConfig
from components.params_file import apply_overrides, profile_params, validate_params
from components.features.split import TRAIN, assign_split
from components.features.stats import MelStats

TINY_NSYNTH = {"programs": [0, 40], "pitches": [60, 67], "velocities": [100, 127], "seconds": 1.0, "note_seconds": 0.75}


# the VAE family at seconds of work: both stages, on the tiny mels (32 x 64)
TINY_VAE = {"steps": 6, "adversarial_steps": 4, "batch_size": 4, "hidden": 8, "latent": 2, "levels": 1,
            "beta_warmup_steps": 4, "critic_dim": 2, "critic_layers": 2, "log_every": 2,
            "checkpoint_every": 3, "sample_count": 2, "audio_previews": 1, "warmup_steps": 1}


def tiny_params(**sections: dict[str, Any]) -> dict[str, Any]:
    """Demo-profile params shrunk to seconds of work (8 one-second notes: 4 training clips, 4 in the
    evaluation set); sections merge over it."""
    params = profile_params("demo")
    params["data"]["nsynth_mini"].update(TINY_NSYNTH)
    params["audio"]["clip_seconds"] = 1.0
    params["mel"].update({"n_mels": 32, "hop_length": 250, "frames": 64, "griffinlim_iters": 4,
                          "griffinlim_eval_clips": 2})
    params["model"].update({"base_channels": 32, "channel_mults": [1, 2], "attention_levels": [1], "attention_heads": 2})
    params["train"].update({"steps": 12, "batch_size": 4, "warmup_steps": 2, "log_every": 2, "checkpoint_every": 6,
                            "sample_every": 0, "sample_count": 2, "audio_previews": 1})
    params["vocoder"].update({"kind": "learned", "dim": 16, "intermediate": 32, "layers": 1, "steps": 6, "batch_size": 2,
                              "segment_frames": 8, "warmup_steps": 1, "log_every": 2, "checkpoint_every": 3,
                              "sample_every": 0, "eval_clips": 2, "audio_previews": 1, "rtf_repeats": 1,
                              "stft_resolutions": [[128, 32], [256, 64]]})
    params["distill"].update({"teacher_steps": 4, "final_steps": 1, "updates_per_stage": 4, "batch_size": 4})
    params["eval"].update({"teacher_steps": [], "samples": 6, "bootstrap": 10, "classifier_steps": 10, "kid_subsets": 2,
                           "crepe_hop_seconds": 0.25, "griffinlim_iters": 2, "rtf_clips": 1, "report_audio": 1,
                           "controls": "report"})
    # a 12-step model is noise: the quality floor would (rightly) keep it from ever becoming champion,
    # and these runs test the plumbing around promotion, not quality (tests/registry/test_promotion.py
    # and tests/evaluate/test_controls.py do); at n = 4 the controls cannot be told apart either
    params["registry"].update({"max_floor_ratio": 1e9, "min_diversity_ratio": 0.0})
    params["eval"].update({"memorised_flag": 1.0, "duplicated_flag": 1.0})
    for name, values in sections.items():
        params[name].update(values)
    return params


def tiny_config(overrides: list[str] | None = None, **sections: dict[str, Any]) -> MelforgeConfig:
    """:func:`tiny_params` validated, with optional ``-S``-style overrides."""
    return validate_params(apply_overrides(tiny_params(**sections), overrides or []), "test config")


def sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path: Path, audio: np.ndarray, rate: int, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T if audio.ndim == 2 else audio, rate, **kwargs)
    return path


def write_tiny_model(path: Path, seed: int, *, sample_rate: int = 8000, steps: int = 2, level: dict | None = None,
                     **meta) -> Path:
    """A randomly initialised tiny denoiser saved like a trained one (16 mels x 32 frames); ``level``:
    the level convention its mel index stores (None: an index from before it was stored)."""
    import torch

    from components.models.io import save_denoiser
    from components.models.unet import UNet1d, UNetSpec

    torch.manual_seed(seed)
    spec = UNetSpec(example_shape=(16, 32), base_channels=16, channel_mults=(1, 2), attention_levels=(1,),
                    attention_heads=2)
    mel_index = {"sample_rate": sample_rate, "layout": "flat", "example_shape": [16, 32],
                 "mel": {"n_fft": 256, "hop_length": 128, "n_mels": 16, "fmin": 0.0, "fmax": None, "win_length": None,
                         "log_floor": 1e-5, "griffinlim_iters": 2}, **({"level": level} if level else {})}
    stats = {"mean": [-4.0] * 16, "std": [2.0] * 16, "clip_sigma": 3.0}
    path.parent.mkdir(parents=True, exist_ok=True)
    model = UNet1d(spec)
    torch.nn.init.normal_(model.out.weight, std=0.05)  # the trained-from-zero output layer would predict 0 always
    save_denoiser(path, model, spec, **{"kind": "student", "sampling_steps": steps, "mel_stats": stats,
                                        "mel_index": mel_index, "config": {}, "parameters": 0, **meta})
    return path


def write_tiny_vocoder(path: Path, seed: int = 0, *, sample_rate: int = 8000, hop_length: int = 128) -> Path:
    """A randomly initialised tiny learned vocoder for :func:`write_tiny_model`'s mel settings."""
    import torch

    from components.features.mel import MelSpec
    from components.vocoder.interface import save_vocoder
    from components.vocoder.model import Vocos, VocoderSpec

    torch.manual_seed(seed)
    model = Vocos(VocoderSpec(n_mels=16, n_fft=256, hop_length=hop_length, dim=16, intermediate=32, layers=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_vocoder(path, model, MelSpec(sample_rate=sample_rate, n_fft=256, hop_length=hop_length, n_mels=16), steps=1)
    return path


def wait_until_healthy(url: str, process, timeout_s: float = 180.0, what: str = "the server") -> None:
    """Poll ``url`` until it answers 200; fail when ``process`` exits or ``timeout_s`` passes."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, f"{what} never answered on {url}"
            time.sleep(0.5)


@dataclass
class FakeStore:
    """Clips stored by label, as a real store is: ``classes`` well separated classes of 16x32 'mels',
    each class in one contiguous block, split into training and evaluation clips by cell."""

    n: int = 24
    classes: int = 2
    examples: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(0)
        self.labels = np.repeat(np.arange(self.classes), self.n // self.classes)  # sorted by label
        self.n = len(self.labels)
        centres = np.linspace(-0.6, 0.6, self.classes)
        self.examples = (rng.normal(0, 0.1, (self.n, 16, 32)) + centres[self.labels][:, None, None]).astype(np.float32)
        self.stats = MelStats(mean=np.full(16, -4.0), std=np.full(16, 2.0), clip_sigma=3.0)
        self.index = {"sample_rate": 8000, "layout": "flat", "example_shape": [16, 32],
                      "mel": {"n_fft": 256, "hop_length": 128, "n_mels": 16, "fmin": 0.0, "fmax": None,
                              "win_length": None, "log_floor": 1e-5, "griffinlim_iters": 2}}
        self.layout, self.example_shape = "flat", (16, 32)
        frame = self.manifest()
        self.split, _ = assign_split(list(frame["clip_id"]), frame[["label_kind"]].rename(columns=lambda c: c[6:]),
                                     fraction=0.3, min_per_cell=2)

    def __len__(self) -> int:
        return self.n

    def rows(self, side: str = TRAIN) -> np.ndarray:
        return np.flatnonzero(self.split == side)

    def batch(self, rows: np.ndarray) -> np.ndarray:
        return self.examples[rows]

    def manifest(self) -> pd.DataFrame:
        return pd.DataFrame({"clip_id": [f"clip-{i:03d}" for i in range(self.n)],
                             "label_kind": [f"k{v}" for v in self.labels], "label_same": "x"})


def copy_project(root: Path) -> Path:
    """A minimal melforge project in ``root``: the repository's dvc.yaml and a tiny params.yaml."""
    import shutil

    from components.params_file import write_params_file

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).resolve().parents[1] / "dvc.yaml", root / "dvc.yaml")
    write_params_file(root / "params.yaml", tiny_config())
    return root
