"""Listening to and looking at samples: DDIM -> denormalised mels -> PNG grid + WAVs.

Training previews use Griffin-Lim: the generators train independently of the vocoder stage, so a
learned vocoder may not exist yet. Evaluation and serving use the configured vocoder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.features.mel import MelSpec, log_floor_value
from components.features.plots import save_mel_grid
from components.features.stats import MelStats, to_logmel
from components.models.conditioning import Cells, label_v_function
from components.models.sampler import get_sampler


def sample_normalised(model: torch.nn.Module, example_shape: tuple[int, ...], *, count: int, steps: int,
                      seed: int, device: str | torch.device = "cpu", sampler: str = "ddim",
                      cells: Cells | None = None, guidance: float = 1.0) -> torch.Tensor:
    """``count`` samples in the model's (normalised, possibly packed) layout, from fixed noise, by the
    sampler called ``sampler`` (:data:`components.models.sampler.SAMPLERS`); a conditional model
    (``cells``) samples cells drawn from ``seed`` too, with classifier-free ``guidance``."""
    noise = torch.randn((count, *example_shape), generator=torch.Generator().manual_seed(seed)).to(device)
    v_fn = label_v_function(model, None if cells is None else cells.draw(count, seed), guidance)
    model.eval()
    with torch.no_grad():
        return get_sampler(sampler)(v_fn, noise, steps).float().cpu()


def write_previews(folder: Path, tag: str, samples: torch.Tensor, *, stats: MelStats, layout: str,
                   mel_index: dict[str, Any], vocoder: Callable[[np.ndarray], np.ndarray], audio_count: int,
                   title: str) -> list[Path]:
    """Write ``<tag>.png`` (grid) and ``<tag>-NN.wav`` (through the ``vocoder`` the stage hands in) for a
    batch of samples."""
    import soundfile as sf

    logmel = to_logmel(samples.numpy(), stats, layout)
    folder.mkdir(parents=True, exist_ok=True)
    spec = MelSpec.from_index(mel_index)
    paths = [save_mel_grid(logmel, folder / f"{tag}.png", floor=log_floor_value(spec), title=title)]
    if audio_count:
        audio = vocoder(logmel[:audio_count])
        for k, clip in enumerate(audio):
            path = folder / f"{tag}-{k:02d}.wav"
            sf.write(path, clip, mel_index["sample_rate"])
            paths.append(path)
    return paths
