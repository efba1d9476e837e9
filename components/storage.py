"""Sharded, memory-mappable array storage with atomic writes.

Many tiny files are slow for DVC and S3, so clips and mels live in ``.npy`` shards of hundreds of
rows. Every file is written to a temporary name and renamed into place: a killed stage never
leaves half a file behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def _default_mode() -> int:
    """0o666 minus the umask: what a plain open() would have created (mkstemp makes 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through ``write(handle)`` to a temp name beside ``path``, then rename it into
    place: readers see the old file or the new one, never half of one. The one implementation of
    atomic writes in melforge. A failed write (a full disk) leaves no temp file behind and names
    the path: ``[Errno 28] No space left on device: '<path>'``."""
    with atomic_path(path) as tmp:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC), "wb") as fh:
            write(fh)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp file beside ``path`` for a writer that needs a file name (SQLite's backup API), renamed
    into place when the block ends and removed if it fails; named as :func:`remove_stale_temp_files`
    expects, so one left by a killed process is cleaned up. A full disk names ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc
        raise


# what atomic_write's mkstemp names a temp file: "." + the target's name + "." + 8 random characters + ".tmp"
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temp_files(folders: list[Path], *, older_than_s: float = 300.0) -> list[Path]:
    """Delete the temp files of atomic writes that were killed (kill -9, OOM, power cut) under
    ``folders``: a name atomic_write gives and no write for ``older_than_s`` (a live write keeps its
    file's mtime fresh). Returns what was removed."""
    removed, now = [], time.time()
    for folder in folders:
        for dirpath, _, names in os.walk(folder):
            for name in names:
                path = Path(dirpath) / name
                if TEMP_NAME.match(name):
                    try:
                        if now - path.lstat().st_mtime > older_than_s:
                            path.unlink()
                            removed.append(path)
                    except FileNotFoundError:
                        continue
    return removed


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(payload))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))


class UnsafeFile(RuntimeError):
    """A torch file holds something other than tensors and plain data: it is never unpickled."""


def atomic_save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`atomic_write` (serialised in memory first, so a full disk is
    reported as ENOSPC with the path, not as torch's 'unexpected pos' from inside its zip writer;
    memory running out while serialising is a MemoryError naming the path and the size)."""
    import io

    import torch

    buffer = io.BytesIO()
    try:
        torch.save(obj, buffer)
    except RuntimeError as exc:  # the zip writer's only word for "the buffer could not grow"
        if "unexpected pos" not in str(exc) and "inline_container" not in str(exc):
            raise
        raise MemoryError(f"serialising {path} ({tensor_bytes(obj) / 2**20:.1f} MiB of tensors) failed: "
                          f"{str(exc).strip()[:120]}") from exc
    atomic_write_bytes(path, buffer.getbuffer())


def tensor_bytes(obj: Any) -> int:
    """Bytes held by the tensors anywhere in a (nested) dict/list/tuple: what serialising it needs."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def load_torch(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors, numbers, strings and containers only, so
    a tampered file cannot run code when it is read."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line or "nsupported" in line]
        reason = lines[0] if lines else type(exc).__name__
        raise UnsafeFile(f"{path}: refusing to load it: it holds objects other than tensors and plain data "
                         f"({reason[:300]}); a tampered or foreign file: replace it (`melforge run` retrains a "
                         "deleted model; `dvc checkout` restores a tracked one) or use a registered model") from None


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield a fresh temp folder beside ``final``; on success it replaces ``final`` by two renames
    (``final`` aside, the temp folder in), then the old copy is removed.

    On error the temp folder is removed and ``final`` is left exactly as it was. Between the two
    renames ``final`` is briefly missing; its old copy is still beside it under ``.<name>.old-<pid>``.
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

    def truncate(self, rows: int) -> None:
        """Forget every row appended after the first ``rows`` (a source that failed half-way): a cut
        inside a shard already written reloads that shard's head into the buffer and deletes it
        and every later shard file."""
        if not 0 <= rows <= self.rows:
            raise ValueError(f"cannot truncate {self.rows} rows to {rows}")
        written = self.rows - self._fill
        if rows < written:
            index, before = 0, 0
            while before + self.shards[index]["rows"] <= rows:
                before += self.shards[index]["rows"]
                index += 1
            head = np.load(self.folder / self.shards[index]["file"])[: rows - before]
            for shard in self.shards[index:]:
                (self.folder / shard["file"]).unlink(missing_ok=True)
            self.shards = self.shards[:index]
            self._buffer[: len(head)] = head
            self._fill = len(head)
        else:
            self._fill = rows - written
        self.rows = rows

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
