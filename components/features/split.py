"""The evaluation split: which clips every model is judged on, and so which clips nothing trains on.

Assigned once, in the features stage, and recorded as the ``split`` column (``train`` / ``eval``) of
``data/mels/manifest.parquet``. Stratified by label cell (e.g. pitch x program, digit x voice):
inside each cell the clips are ranked by a hash of their clip id and the first ``k`` go to ``eval``,
so the split is a pure function of the clip ids and a clip keeps its side when others are added.

Why per cell and not one global hash threshold: clips are stored by label, and a global threshold
leaves small cells wholly on one side, so the evaluation set would miss classes the models learn.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

TRAIN = "train"
EVAL = "eval"
SPLIT_COLUMN = "split"


def clip_hash(clip_id: str) -> int:
    """A stable 64-bit rank for a clip id (the same on every machine and Python)."""
    return int(hashlib.sha1(clip_id.encode()).hexdigest()[:16], 16)


def eval_count(size: int, fraction: float, min_per_cell: int) -> int:
    """Evaluation clips in a cell of ``size``: round(fraction x size), raised to ``min_per_cell`` where
    that still leaves at least as many training clips, never all of the cell (0 for a single clip)."""
    if size < 2:
        return 0
    k = max(int(round(fraction * size)), min(min_per_cell, size // 2), 1)
    return min(k, size - 1)


@dataclass
class SplitReport:
    """What the split did, for the stage's metrics and for a person reading them."""

    cell_labels: list[str]
    cells: int
    train: int
    eval: int
    unsplit_cells: list[str] = field(default_factory=list)  # cells with one clip: training only

    def to_json(self) -> dict:
        return {"cell_labels": self.cell_labels, "cells": self.cells, "train_clips": self.train,
                "eval_clips": self.eval, "unsplit_cells": self.unsplit_cells[:50],
                "unsplit_cell_count": len(self.unsplit_cells)}


def cell_keys(labels: pd.DataFrame) -> list[str]:
    """One string per row naming its label cell, e.g. ``pitch=60|program=24`` (``all`` without labels)."""
    if labels.shape[1] == 0:
        return ["all"] * len(labels)
    cols = list(labels.columns)
    return ["|".join(f"{c}={v}" for c, v in zip(cols, row)) for row in labels.astype(str).itertuples(index=False)]


def choose_cell_labels(labels: pd.DataFrame, requested: list[str]) -> list[str]:
    """The label columns that define a cell: the requested ones, else every column with 2..512 values
    and none missing, dropping the finest column (the most values) while most clips would sit alone
    in their cell (e.g. 6 velocities on a grid of one clip per 5 pitches x 5 programs x velocity).
    Set ``eval.split_labels`` where that guess is wrong (the cpu profile: 13 pitches, 6 velocities)."""
    if requested:
        missing = [c for c in requested if c not in labels.columns]
        if missing:
            raise ValueError(f"eval.split_labels: {', '.join(missing)} not in the data; labels present: "
                             f"{', '.join(labels.columns) or 'none'}")
        return list(requested)
    cols = [c for c in labels.columns if labels[c].notna().all() and 2 <= labels[c].nunique() <= 512]
    while cols:
        sizes = pd.Series(cell_keys(labels[cols])).value_counts()
        alone = int(sizes[sizes < 2].sum())
        if alone * 2 <= len(labels):
            break
        cols.remove(max(cols, key=lambda c: (labels[c].nunique(), c)))
    return cols


def assign_split(clip_ids: list[str], labels: pd.DataFrame, *, fraction: float, min_per_cell: int,
                 requested: list[str] | None = None) -> tuple[np.ndarray, SplitReport]:
    """(``train``/``eval`` per clip, report). ``labels``: one column per label, rows in clip order.

    Raises ValueError naming ``eval.fraction`` when no cell can give a clip to the evaluation set.
    """
    if len(clip_ids) != len(labels):
        raise ValueError(f"{len(clip_ids)} clip ids but {len(labels)} label rows")
    cols = choose_cell_labels(labels.reset_index(drop=True), requested or [])
    keys = cell_keys(labels.reset_index(drop=True)[cols])
    split = np.full(len(clip_ids), TRAIN, dtype=object)
    by_cell: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        by_cell.setdefault(key, []).append(row)
    unsplit = []
    for key, rows in sorted(by_cell.items()):
        ranked = sorted(rows, key=lambda r: (clip_hash(clip_ids[r]), clip_ids[r]))
        k = eval_count(len(ranked), fraction, min_per_cell)
        if k == 0:
            unsplit.append(key)
        split[ranked[:k]] = EVAL
    n_eval = int((split == EVAL).sum())
    if n_eval == 0:
        raise ValueError(f"eval.fraction={fraction:g}: no evaluation set can be held out of {len(clip_ids)} clips: "
                         f"every label cell ({', '.join(cols) or 'no labels'}) has a single clip; add clips or "
                         "set eval.split_labels to fewer labels")
    report = SplitReport(cell_labels=cols, cells=len(by_cell), train=len(clip_ids) - n_eval, eval=n_eval,
                         unsplit_cells=unsplit)
    return split.astype(str), report


def split_rows(split: pd.Series | np.ndarray, name: str) -> np.ndarray:
    """Row indices of one side, with a clear error for a manifest written before the split existed."""
    values = np.asarray(split)
    rows = np.flatnonzero(values == name)
    if len(rows) == 0:
        raise ValueError(f"the {name!r} split is empty ({len(values)} clips); re-run the features stage")
    return rows
