"""Running DVC from a flow: one command at a time per workspace.

Stages run in this process (data stages, evaluation) or in a forked child (training, so a timeout
or cancel stops it) and are then recorded with DVC's own ``commit`` through its Python API, which
writes the same dvc.lock entry and cache objects as ``dvc repro`` without a DVC process and a
``melforge stage`` process per stage. ``dvc repro`` alone still runs the same entry points.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from components.file_lock import file_lock
from components.interrupts import deferred
from components.transient import is_transient as connectivity_failure
from components.settings import ProjectPaths
from components.storage import atomic_write_bytes



class StageFailed(RuntimeError):
    """A stage's component or its DVC commit failed; says which stage, and whether to retry."""

    def __init__(self, stage: str, cause: Exception) -> None:
        self.stage = stage
        self.transient = is_transient(cause)
        super().__init__(f"stage {stage} failed{' (transient)' if self.transient else ''}: {type(cause).__name__}: {cause}")


@contextmanager
def workspace_lock(paths: ProjectPaths, timeout_s: float = 3600.0) -> Iterator[None]:
    """Serialise DVC work in one workspace (DVC itself refuses two concurrent repros)."""
    path = paths.state / "workspace.lock"
    with file_lock(path, wait_s=timeout_s, poll_s=1.0,
                   busy=lambda: TimeoutError(f"another melforge run holds {path}")):
        yield


@contextmanager
def dvc_repo(paths: ProjectPaths) -> Iterator[Any]:
    """The workspace's DVC repository, in this process, with the working directory at its root
    (parts of DVC, the run cache among them, resolve paths against the working directory)."""
    from dvc.repo import Repo

    before = os.getcwd()
    os.chdir(paths.root)
    try:
        with Repo(str(paths.root)) as repo:
            yield repo
    finally:
        os.chdir(before)


def _target(paths: ProjectPaths, stage: str) -> str:
    # absolute, so the answer does not depend on this process's working directory
    return f"{paths.root / 'dvc.yaml'}:{stage}"


def stage_is_current(paths: ProjectPaths, stage: str) -> bool:
    """True when ``dvc status`` reports nothing to do for the stage itself."""
    with dvc_repo(paths) as repo:
        return not repo.status(targets=[_target(paths, stage)])


def stale_stages(paths: ProjectPaths) -> set[str]:
    """Every stage ``dvc status`` reports as changed, in one call for the whole graph."""
    with dvc_repo(paths) as repo:
        return {key.rsplit(":", 1)[-1] for key in repo.status()}


def run_and_commit(paths: ProjectPaths, stage: str) -> None:
    """Run one stage's entry point (what its dvc.yaml ``cmd`` runs) and record it in dvc.lock.

    Components write their outputs into a temp folder swapped in on success, so a failed stage
    leaves the previous outputs (and dvc.lock) as they were; DVC only commits after success.
    """
    from components.stages import stage_options, stage_row

    name, options = stage_options(stage)
    marker = paths.state / "stages" / f"{stage}.computed"
    try:
        if marker.is_file() and _computed_already(paths, stage, marker):
            _commit(paths, stage, marker)  # a commit cut short (a full disk): record what was computed, not recompute it
            return
        marker.unlink(missing_ok=True)
        if stage_row(name).kind == "training":  # in a child process a timeout can stop
            from components.stage_process import run_in_child

            run_in_child(name, paths.root, options, state_dir=paths.state / "stages")
        else:
            from components.params_file import load_config
            from components.stages import run_stage

            run_stage(name, load_config(paths.params), paths, **options)
        _commit(paths, stage, marker)
    except Exception as exc:
        raise StageFailed(stage, exc) from exc


def _commit(paths: ProjectPaths, stage: str, marker: Path) -> None:
    """Record the stage in dvc.lock and its outputs in DVC's cache. First the marker: the stage's
    outputs are whole, so a commit a full disk cuts short need not recompute them. DVC's copies
    into its cache can fail without a file name: a full disk then names the cache."""
    with deferred(), dvc_repo(paths) as repo:  # an interrupt waits until dvc.lock is written whole
        target = _target(paths, stage)
        atomic_write_bytes(marker, _inputs_fingerprint(repo, target).encode())
        try:
            repo.commit(target, force=True)
        except OSError as exc:
            if exc.filename is not None or exc.errno is None:
                raise
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(repo.cache.local.path)) from exc
    marker.unlink(missing_ok=True)


def _inputs_fingerprint(repo: Any, target: str) -> str:
    """What a stage's outputs are a function of, as DVC hashes it: its command, every dependency's
    hash (files, folders, the params it declares) and its output paths."""
    import json

    stage = repo.stage.collect(target)[0]
    deps = []
    for dep in stage.deps:
        dep.save()  # hashed through DVC's state database: unchanged files are not read again
        deps.append([str(dep.def_path), dep.hash_info.to_dict()])
    return json.dumps({"cmd": stage.cmd, "deps": deps, "outs": sorted(str(out.def_path) for out in stage.outs)},
                      sort_keys=True, default=str)


def _computed_already(paths: ProjectPaths, stage: str, marker: Path) -> bool:
    """True when this stage ran to the end on exactly its current inputs but its DVC commit did not
    complete (the marker is written once the stage's outputs are whole, and removed once dvc.lock
    records them), and its outputs are still there."""
    import json

    with dvc_repo(paths) as repo:
        inputs = _inputs_fingerprint(repo, _target(paths, stage))
    if marker.read_text() != inputs:
        return False
    return all((paths.root / out).exists() for out in json.loads(inputs)["outs"])


def dvc_push(paths: ProjectPaths, *stages: str) -> int:
    """``dvc push`` (of ``stages``, or everything) to the default remote; returns files pushed."""
    with dvc_repo(paths) as repo:
        return repo.push(targets=[_target(paths, s) for s in stages] or None)


def dvc_pull(paths: ProjectPaths, *stages: str) -> None:
    """``dvc pull`` of ``stages``' outputs from the default remote into the workspace."""
    with dvc_repo(paths) as repo:
        repo.pull(targets=[_target(paths, s) for s in stages] or None)


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying, by type: DVC's lock held by another process, or a remote that
    could not be reached (components.transient; the cause chain is followed, so a DVC push that
    failed on a dropped S3 connection counts)."""
    from dvc.lock import LockError

    if isinstance(exc, StageFailed):
        return exc.transient
    return isinstance(exc, LockError) or connectivity_failure(exc)


def out_hash(paths: ProjectPaths, stage: str, out: str) -> str | None:
    """The md5 DVC recorded in dvc.lock for one output of a stage."""
    lock = paths.root / "dvc.lock"
    if not lock.is_file():
        return None
    data = yaml.safe_load(lock.read_text()) or {}
    for entry in data.get("stages", {}).get(stage, {}).get("outs", []):
        if entry.get("path") == out:
            return entry.get("md5")
    return None
