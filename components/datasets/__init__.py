"""Built-in datasets rendered offline and bit-for-bit deterministically (no downloads).

Each built-in set is one *source*: its content hash is the hash of its catalogue (every item's
render spec plus the renderer version), so an unchanged config is never rendered again, and a
changed one is rendered whole, in a fixed order, from a fresh engine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import numpy as np

from components.datasets.item import BuiltinItem
from components.names import BUILTIN_NAMES


def _module(name: str):
    if name == "nsynth-mini":
        from components.datasets import nsynth_mini

        return nsynth_mini
    if name == "digits":
        from components.datasets import digits

        return digits
    raise ValueError(f"unknown built-in dataset {name!r}; allowed: {', '.join(BUILTIN_NAMES)}")


def _section(name: str, data_config):
    return data_config.nsynth_mini if name == "nsynth-mini" else data_config.digits


def builtin_catalogue(name: str, data_config) -> list[BuiltinItem]:
    """Every item of built-in set ``name`` in render order, without rendering anything."""
    return list(_module(name).catalogue(_section(name, data_config)))


def render_builtin(name: str, data_config) -> Iterator[tuple[BuiltinItem, np.ndarray, int]]:
    """Render every item of ``name`` in catalogue order: (item, mono float32 audio, sample rate)."""
    return _module(name).render_all(_section(name, data_config))


def catalogue_fingerprint(items: list[BuiltinItem]) -> str:
    """sha256 of a catalogue (every item's id, render spec and labels)."""
    payload = json.dumps([[i.item_id, i.spec, i.labels] for i in items], sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()


def builtin_fingerprint(name: str, data_config) -> str:
    """Content hash of a built-in source: the fingerprint of its full catalogue."""
    return catalogue_fingerprint(builtin_catalogue(name, data_config))


def builtin_label_values(name: str, data_config) -> dict[str, list[str]]:
    """Every label value the set can produce, per label column (what validation allows)."""
    values: dict[str, set[str]] = {}
    for item in builtin_catalogue(name, data_config):
        for key, val in item.labels.items():
            values.setdefault(key, set()).add(val)
    return {k: sorted(v) for k, v in values.items()}
