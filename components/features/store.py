"""The mel dataset on disk: memory-mapped ``.npy`` shards, an index, stats and a manifest.

A training loader reads random batches by row without loading the data set into memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.features.stats import MelStats
from components.storage import ShardReader

INDEX = "index.json"
STATS = "stats.json"
MANIFEST = "manifest.parquet"


@dataclass
class MelStore:
    """Open a ``data/mels`` folder: ``len(store)``, ``store[i]``, ``store.batches(...)``."""

    folder: Path

    def __post_init__(self) -> None:
        index_path = self.folder / INDEX
        if not index_path.is_file():
            raise FileNotFoundError(f"{index_path}: no mel index; run the features stage first (melforge stage features)")
        self.index = json.loads(index_path.read_text())
        self.stats = MelStats.from_json(json.loads((self.folder / STATS).read_text()))
        self.reader = ShardReader(self.folder, self.index["shards"])

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.index["example_shape"])

    @property
    def layout(self) -> str:
        return self.index["layout"]

    def manifest(self) -> pd.DataFrame:
        return pd.read_parquet(self.folder / MANIFEST)

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> np.ndarray:
        return np.asarray(self.reader[i])

    def batch(self, indices: np.ndarray) -> np.ndarray:
        return self.reader.take(np.asarray(indices))

    def batches(self, batch_size: int, *, seed: int = 0, epochs: int = 1) -> Iterator[np.ndarray]:
        """Shuffled batches (last short batch kept), reproducible from ``seed``."""
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            order = rng.permutation(len(self))
            for start in range(0, len(order), batch_size):
                yield self.batch(np.sort(order[start:start + batch_size]))
