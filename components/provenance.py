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


def git_state(root: Path) -> dict[str, str]:
    """``git.commit`` and ``git.dirty`` (tracked files changed; untracked files do not count)."""
    return {"git.commit": git(root, "rev-parse", "HEAD") or "unknown",
            "git.dirty": str(bool(git(root, "status", "--porcelain", "--untracked-files=no"))).lower()}


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
