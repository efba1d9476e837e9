"""Checkpoints written atomically (temp file + rename); the newest compatible one is resumed."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.storage import atomic_save_torch, load_torch

KEEP_LAST = 2


def rng_states() -> dict[str, Any]:
    """Every generator's state as tensors and plain values (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(),
              "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
              "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_as_tuples(states["python"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_tuples(value: Any) -> Any:
    """random.setstate wants the nested tuples getstate gave (a round trip may return lists)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:08d}.pt"


def write_checkpoint(folder: Path, step: int, state: dict[str, Any]) -> Path:
    path = checkpoint_path(folder, step)
    atomic_save_torch({**state, "step": step, "rng": rng_states()}, path)
    for old in sorted(folder.glob("step-*.pt"))[:-KEEP_LAST]:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(folder: Path, fingerprint: str) -> dict[str, Any] | None:
    """The newest checkpoint written under the same configuration fingerprint, or None."""
    for path in sorted(folder.glob("step-*.pt"), reverse=True):
        try:
            state = load_torch(path)
        except Exception:  # a damaged or foreign file (writes are atomic) is skipped, never unpickled
            continue
        if state.get("fingerprint") == fingerprint:
            return state
    return None
