"""Sharded, memory-mappable array storage with atomic writes.

Many tiny files are slow for DVC and S3, so clips and mels live in ``.npy`` shards of hundreds of
rows. Every file is written to a temporary name and renamed into place: a killed stage never
leaves half a file behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def _default_mode() -> int:
    """0o666 minus the umask: what a plain open() would have created (mkstemp makes 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield a fresh temp folder beside ``final``; on success it replaces ``final`` in one swap.

    On error the temp folder is removed and ``final`` is left exactly as it was.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


class ShardWriter:
    """Append fixed-shape rows; every ``shard_size`` rows become one ``<prefix>-NNNNN.npy``.

    Memory holds at most one shard, so writing stays flat however long the corpus is.
    """

    def __init__(self, folder: Path, *, prefix: str, shard_size: int, row_shape: tuple[int, ...],
                 dtype: np.dtype | str = np.float32) -> None:
        self.folder = folder
        self.prefix = prefix
        self.shard_size = shard_size
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self._buffer = np.empty((shard_size, *self.row_shape), dtype=self.dtype)
        self._fill = 0
        self.shards: list[dict[str, Any]] = []
        self.rows = 0

    @property
    def next_location(self) -> tuple[str, int]:
        """(shard file name, row) the next appended row will have."""
        return self._shard_name(len(self.shards)), self._fill

    def _shard_name(self, index: int) -> str:
        return f"{self.prefix}-{index:05d}.npy"

    def append(self, row: np.ndarray) -> tuple[str, int]:
        if row.shape != self.row_shape:
            raise ValueError(f"row shape {row.shape} != shard row shape {self.row_shape}")
        location = self.next_location
        self._buffer[self._fill] = row
        self._fill += 1
        self.rows += 1
        if self._fill == self.shard_size:
            self.flush()
        return location

    def flush(self) -> None:
        if self._fill == 0:
            return
        name = self._shard_name(len(self.shards))
        atomic_save_npy(self.folder / name, self._buffer[: self._fill])
        self.shards.append({"file": name, "rows": self._fill})
        self._fill = 0

    def close(self) -> list[dict[str, Any]]:
        self.flush()
        return self.shards


class ShardReader:
    """Random access to rows of a shard set, memory-mapped (nothing is loaded up front)."""

    def __init__(self, folder: Path, shards: list[dict[str, Any]]) -> None:
        self.folder = folder
        self.files = [s["file"] for s in shards]
        counts = np.array([int(s["rows"]) for s in shards], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self._maps: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def shard(self, name: str) -> np.ndarray:
        if name not in self._maps:
            self._maps[name] = np.load(self.folder / name, mmap_mode="r")
        return self._maps[name]

    def row(self, shard_file: str, index: int) -> np.ndarray:
        return self.shard(shard_file)[index]

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} out of range [0, {len(self)})")
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.shard(self.files[k])[i - self.offsets[k]]

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Gather rows (any order) into one array; touches only the pages it needs."""
        return np.stack([np.asarray(self[int(i)]) for i in indices]) if len(indices) else np.empty((0,))
