"""A denoiser conditioned on its clip's label cell (e.g. pitch x program, digit x voice).

Why: on the demo, an unconditional teacher decides *which* note a sample becomes in the last
few, noisiest steps, and that is where nearly all of its distance from the data was made; told the
cell, it only has to decide how the note sounds (docs/benchmarks.md, "Label conditioning").

The network learns the unconditional prediction too (a share ``label_dropout`` of the training
labels is replaced by "no label"), so sampling can use classifier-free guidance (Ho & Salimans
2022): :func:`components.models.diffusion.guided_v`. The cells, and how many training clips each
has, travel in the model file, so a generator draws labels as often as the training data holds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from components.models.diffusion import guided_v
from components.models.sampler import VFunction


@dataclass(frozen=True)
class Cells:
    """The label cells a conditional denoiser knows: names (``pitch=60|program=24``) and training counts."""

    names: tuple[str, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.counts) or not self.names:
            raise ValueError(f"cells: {len(self.names)} names but {len(self.counts)} counts (need at least one of each)")

    @classmethod
    def from_keys(cls, keys: list[str]) -> "Cells":
        """The cells of the training clips' keys, sorted by name."""
        names, counts = np.unique(np.asarray(keys, dtype=object).astype(str), return_counts=True)
        return cls(tuple(str(n) for n in names), tuple(int(c) for c in counts))

    def index(self, keys: list[str]) -> np.ndarray:
        """Cell indices of ``keys`` (every key must be a known cell)."""
        lookup = {name: i for i, name in enumerate(self.names)}
        unknown = sorted({k for k in keys if k not in lookup})
        if unknown:
            raise ValueError(f"unknown label cell(s) {', '.join(unknown[:5])}; this model knows "
                             f"{', '.join(self.names[:10])}{' ...' if len(self.names) > 10 else ''}")
        return np.array([lookup[k] for k in keys], dtype=np.int64)

    def draw(self, n: int, seed: int) -> torch.Tensor:
        """``n`` cell indices, a pure function of ``seed``: the cells of the training clips in a random
        order (again in a new order after every pass), as a random subset of training clips would
        hold them. Drawn independently instead, 64 draws over the demo's 25 cells leave some cells out
        and others four times over, which alone moved the demo teacher's FAD by ±30% between seeds."""
        rng = np.random.default_rng([seed, 0xCE11])
        pool = np.repeat(np.arange(len(self.counts)), self.counts)
        passes = [rng.permutation(pool) for _ in range(-(-n // len(pool)))]
        return torch.from_numpy(np.concatenate(passes)[:n].astype(np.int64))

    def to_json(self) -> dict[str, Any]:
        return {"names": list(self.names), "counts": list(self.counts)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Cells":
        return cls(tuple(obj["names"]), tuple(int(c) for c in obj["counts"]))


def conditioning_meta(cells: Cells | None, guidance: float) -> dict[str, Any]:
    """What a conditional model's file records of its conditioning (nothing for an unconditional one)."""
    return {} if cells is None else {"cells": cells.to_json(), "guidance": guidance}


def conditioning_of(meta: dict[str, Any]) -> tuple[Cells | None, float]:
    """(cells, guidance) a model file records: (None, 1.0) for an unconditional model; a student's
    guidance is 1 (its teacher's is in its weights)."""
    return (Cells.from_json(meta["cells"]) if "cells" in meta else None), float(meta.get("guidance", 1.0))


def drop_labels(labels: torch.Tensor, share: float, classes: int, uniform: Callable[[int], torch.Tensor]) -> torch.Tensor:
    """``labels`` with a random ``share`` replaced by ``classes`` (no label): the unconditional
    prediction that guidance needs is learned by the same network. ``uniform(n)``: n draws from U(0, 1)."""
    if share <= 0:
        return labels
    dropped = uniform(labels.shape[0]).to(labels.device) < share
    return torch.where(dropped, torch.full_like(labels, classes), labels)


def label_v_function(model: nn.Module, labels: torch.Tensor | None, guidance: float = 1.0) -> VFunction:
    """(z, t) -> v_hat for a sampler: unconditional (``labels`` None), conditional (w = 1: one network
    evaluation per step), or guided (w != 1: the conditional and unconditional halves in one batch)."""
    if labels is None:
        return lambda z, t: model(z, t)
    if guidance == 1.0:
        return lambda z, t: model(z, t, labels.to(z.device))
    no_label = torch.full_like(labels, model.spec.classes)
    both = torch.cat([labels, no_label])

    def v_fn(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_cond, v_uncond = model(torch.cat([z, z]), torch.cat([t, t]), both.to(z.device)).chunk(2)
        return guided_v(v_cond, v_uncond, guidance)

    return v_fn


def evaluations_per_step(cells: Cells | None, guidance: float) -> int:
    """Network evaluations per sampling step: two for a guided conditional model, else one."""
    return 2 if cells is not None and guidance != 1.0 else 1
