"""Where a result came from: git commit, dvc.lock and params hashes, file digests.

Recorded on MLflow runs and registered model versions, read back by ``melforge reproduce``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any, BinaryIO


def git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# what a run writes itself: recorded by their own hashes (dvc.lock_sha256, params_sha256), so a change
# to them is not a change of the code (a run's versions once said dirty where its parent run said clean)
RUN_RECORDS = ("dvc.lock", "params.yaml")


def git_state(root: Path) -> dict[str, str]:
    """``git.commit`` and ``git.dirty``: tracked files other than :data:`RUN_RECORDS` changed
    (untracked files do not count). Take it once, when a run starts, and reuse it."""
    changed = (git(root, "diff", "--name-only", "HEAD") or "").splitlines()  # staged or not, against HEAD
    return {"git.commit": git(root, "rev-parse", "HEAD") or "unknown",
            "git.dirty": str(any(path not in RUN_RECORDS for path in changed)).lower()}


def stream_sha256(fh: BinaryIO) -> str:
    """SHA-256 of what is left in an open binary file, read 1 MiB at a time."""
    digest = hashlib.sha256()
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return stream_sha256(fh)


def params_hash(params: dict[str, Any]) -> str:
    """A stable hash of the resolved configuration (key order does not matter)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def dvc_lock_hash(root: Path) -> str:
    lock = root / "dvc.lock"
    return file_sha256(lock) if lock.is_file() else "none"
