"""The mel dataset on disk: memory-mapped ``.npy`` shards, an index, stats and a manifest.

A training loader reads random batches by row without loading the data set into memory.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.features.split import SPLIT_COLUMN, TRAIN, cell_keys, choose_cell_labels, split_rows
from components.features.stats import MelStats
from components.ingest.store import LABEL_PREFIX
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

    @functools.cached_property
    def split(self) -> np.ndarray:
        """``train`` / ``eval`` per row (the features stage's evaluation split)."""
        manifest = self.manifest()
        if SPLIT_COLUMN not in manifest.columns:
            raise ValueError(f"{self.folder / MANIFEST}: no {SPLIT_COLUMN!r} column (written by an older melforge); "
                             "re-run the features stage")
        return manifest[SPLIT_COLUMN].astype(str).to_numpy()

    def labels(self) -> pd.DataFrame:
        """One column per label (``pitch``, ``program``, ...), one row per clip."""
        manifest = self.manifest()
        frame = manifest[[c for c in manifest.columns if c.startswith(LABEL_PREFIX)]]
        return frame.rename(columns=lambda c: c.removeprefix(LABEL_PREFIX))

    def cell_keys(self, requested: list[str]) -> list[str]:
        """Each clip's label cell (``pitch=60|program=24``), over the labels the split uses
        (``eval.split_labels``, or the same guess the features stage made)."""
        labels = self.labels()
        return cell_keys(labels[choose_cell_labels(labels, requested)])

    def rows(self, split: str = TRAIN) -> np.ndarray:
        """Row indices of one side of the split: what a training stage may draw from is ``rows(TRAIN)``."""
        return split_rows(self.split, split)

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> np.ndarray:
        return np.asarray(self.reader[i])

    def batch(self, indices: np.ndarray) -> np.ndarray:
        return self.reader.take(np.asarray(indices))

    def batches(self, batch_size: int, *, seed: int = 0, epochs: int = 1,
                split: str = TRAIN) -> Iterator[np.ndarray]:
        """Shuffled batches of one side of the split (last short batch kept), reproducible from ``seed``."""
        rng = np.random.default_rng(seed)
        rows = self.rows(split)
        for _ in range(epochs):
            order = rows[rng.permutation(len(rows))]
            for start in range(0, len(order), batch_size):
                yield self.batch(np.sort(order[start:start + batch_size]))
