"""`melforge reproduce <name>/<version>`: rebuild a registered model from its code and data version.

The model version records the git commit, and carries the ``params.yaml`` and ``dvc.lock`` of
the run that produced it. In a temporary git worktree at that commit, with those two files, the
data stages' outputs are pulled from the DVC remote (sharing this project's cache), the model
stages are re-run, and the result is compared with what was registered.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.models.io import MODEL_FILE
from components.provenance import git
from components.registry.tags import recorded_metrics
from components.settings import ProjectPaths
from components.stages import DATA_STAGES, TABLE

MODEL_STAGES = [row.name for row in TABLE if row.kind == "training"]  # a foreach name stands for all its stages


class ReproduceError(RuntimeError):
    """Reproduction could not be attempted (missing commit, data not in the remote...)."""


@dataclass
class Comparison:
    model: str
    version: str
    commit: str
    data_recorded: str
    data_rebuilt: str
    weights_identical: bool
    tolerance: float
    metrics: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def data_equal(self) -> bool:
        return self.data_recorded == self.data_rebuilt

    @property
    def reproduced(self) -> bool:
        return self.data_equal and bool(self.metrics) and all(m["within"] for m in self.metrics)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReproduceError(f"{what} failed ({' '.join(cmd[:4])}...):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout + proc.stderr


def _dvc(worktree: Path, env: dict[str, str], *args: str, what: str) -> str:
    return _run([sys.executable, "-m", "dvc", *args], worktree, env, what)


def missing_from_remote(output: str) -> list[str]:
    """The outputs a failed ``dvc pull`` could find neither in the cache nor on the remote (its
    "Checkout failed for following targets" list); empty when it failed for another reason."""
    if "Missing cache files" not in output and "Checkout failed" not in output:
        return []
    lines = output.split("Checkout failed for following targets:", 1)[-1].splitlines()
    targets = []
    for line in lines[1:] if len(lines) > 1 else []:
        if not line.strip() or line.startswith(("Is your cache", "<http", "ERROR", "WARNING")):
            break
        targets.append(line.strip())
    return targets or ["(some outputs)"]


def _pull_data(root: Path, worktree: Path, env: dict[str, str], model: str) -> None:
    """``dvc pull`` of the data stages; data missing from the remote is one clear line, not DVC's
    "Everything is up to date." followed by its checkout failure."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "pull", *DATA_STAGES], cwd=worktree, env=env,
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return
    output = proc.stdout + proc.stderr
    missing = missing_from_remote(output)
    if missing:
        remotes = ", ".join(f"{n} = {u}" for n, u in _remote_urls(root).items()) or "no remote configured"
        raise ReproduceError(
            f"the data version {model} was trained on is in neither the DVC cache nor the remote ({remotes}): "
            f"missing {', '.join(missing)}; push it from a workspace that has it (`dvc push`) or point the "
            "remote at where it lives (`dvc remote modify`), then run reproduce again")
    raise ReproduceError(f"dvc pull of the recorded data version failed:\n{output[-3000:]}")


def _share_dvc_storage(root: Path, worktree: Path, env: dict[str, str]) -> None:
    """Point the worktree at this project's DVC cache and remotes (relative remote paths in the
    committed config would otherwise resolve inside the temporary folder)."""
    _dvc(worktree, env, "cache", "dir", "--local", str(root / ".dvc" / "cache"), what="dvc cache dir")
    for name, url in _remote_urls(root).items():
        _dvc(worktree, env, "remote", "modify", "--local", name, "url", url, what="dvc remote modify")


def _remote_urls(root: Path) -> dict[str, str]:
    """Every DVC remote of the project (all config levels merged) with its URL; DVC's config API
    already makes a local remote's relative path absolute."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {name: str(remote["url"]) for name, remote in repo.config["remote"].items()}


def _same_weights(a: Path | None, b: Path) -> bool:
    """Bit-identical tensors (file bytes differ anyway: torch.save names the archive after the file)."""
    import torch

    from components.storage import load_torch

    if a is None or not b.is_file():
        return False
    wa, wb = load_torch(a)["weights"], load_torch(b)["weights"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _features_digest(lock: dict[str, Any]) -> str:
    outs = lock.get("stages", {}).get("features", {}).get("outs", [])
    return next((o["md5"] for o in outs if o.get("path") == "data/mels"), "unknown")


def _registered(client, root: Path, name: str, version: str) -> tuple[dict[str, str], str, str, list[str]]:
    """(tags, commit, model folder, notes) of a melforge model version whose commit this repository has."""
    tags = dict(client.get_model_version(name, version).tags)
    commit, model = tags.get("git.commit", "unknown"), tags.get("melforge.model")
    if commit == "unknown" or not model:
        raise ReproduceError(f"{name}/{version} has no git.commit / melforge.model tags; it was not registered by melforge")
    if not git(root, "cat-file", "-t", commit) == "commit":
        raise ReproduceError(f"commit {commit} of {name}/{version} is not in this repository; `git fetch` it first")
    notes = (["the run's working tree had uncommitted changes; the rebuild uses the commit as it is"]
             if tags.get("git.dirty") == "true" else [])
    return tags, commit, model, notes


def _recorded_files(name: str, version: str, scratch: str) -> dict[str, Path | None]:
    """The registered version's dvc.lock, params.yaml and model.pt (downloaded into ``scratch``)."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=scratch))
    recorded = {n: next(local.rglob(n), None) for n in ("dvc.lock", "params.yaml", "model.pt")}
    if recorded["dvc.lock"] is None or recorded["params.yaml"] is None:
        raise ReproduceError(f"{name}/{version} carries no dvc.lock / params.yaml; cannot tell its data version")
    return recorded


def _rebuild(root: Path, worktree: Path, recorded: dict[str, Path | None], what: str,
             say: Callable[[str], None]) -> list[str]:
    """In ``worktree`` (the commit): the recorded params and data version, then every model stage and the
    evaluation re-run; returns the data stages that did not match the recorded lock."""
    shutil.copy(recorded["dvc.lock"], worktree / "dvc.lock")
    shutil.copy(recorded["params.yaml"], worktree / "params.yaml")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(worktree), os.environ.get("PYTHONPATH")])),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    _share_dvc_storage(root, worktree, env)
    say("pulling the recorded data version from the DVC remote")
    _pull_data(root, worktree, env, what)
    status = _dvc(worktree, env, "status", *DATA_STAGES, "--json", what="dvc status")
    stale = json.loads(status.strip().splitlines()[-1] or "{}") if status.strip() else {}
    say(f"re-running the model stages ({', '.join(MODEL_STAGES)}) and evaluate")
    _dvc(worktree, env, "repro", "--force", "--downstream", *MODEL_STAGES, what="dvc repro of the model stages")
    return list(stale)


def _compare_metrics(comparison: Comparison, rebuilt: ProjectPaths, model: str, tags: dict[str, str]) -> None:
    """Each registered metric against the rebuilt evaluation's (RTF left out: it measures the machine)."""
    results = json.loads((rebuilt.evaluation / "metrics.json").read_text())
    rows = [r for r in results["models"] if r["model"] == model]
    row = max(rows, key=lambda r: r["steps"]) if rows else None
    for metric, old in sorted(recorded_metrics(tags).items()):
        new = row["metrics"].get(metric, {}).get("value") if row else None
        within = new is not None and abs(new - old.value) <= comparison.tolerance * max(abs(old.value), 1e-12)
        comparison.metrics.append({"metric": metric, "registered": old.value, "rebuilt": new, "within": within})


def _add_worktree(root: Path, commit: str, say: Callable[[str], None]) -> Path:
    worktree = Path(tempfile.mkdtemp(prefix="melforge-reproduce-wt-"))
    shutil.rmtree(worktree)
    say(f"worktree at {worktree} (commit {commit[:12]})")
    if not git(root, "worktree", "add", "--detach", str(worktree), commit) and not worktree.is_dir():
        raise ReproduceError(f"git worktree add {worktree} {commit} failed")
    return worktree


def reproduce(client, root: Path, name: str, version: str, *, tolerance: float, keep: bool = False,
              say: Callable[[str], None] = print) -> Comparison:
    """Rebuild a registered model from its commit, params and data version; compare weights and metrics."""
    import yaml

    tags, commit, model, notes = _registered(client, root, name, version)
    with tempfile.TemporaryDirectory(prefix="melforge-reproduce-") as scratch:
        recorded = _recorded_files(name, version, scratch)
        lock = yaml.safe_load(recorded["dvc.lock"].read_text())
        worktree = _add_worktree(root, commit, say)
        try:
            stale = _rebuild(root, worktree, recorded, f"{name}/{version}", say)
            if stale:
                notes.append(f"data stages not matching the recorded lock: {', '.join(stale)}")
            rebuilt = ProjectPaths(root=worktree)
            comparison = Comparison(
                model=model, version=str(version), commit=commit, data_recorded=tags.get("dvc.data_digest", _features_digest(lock)),
                data_rebuilt=_features_digest(yaml.safe_load((worktree / "dvc.lock").read_text())) if not stale else "differs",
                weights_identical=_same_weights(recorded["model.pt"], rebuilt.models / model / MODEL_FILE),
                tolerance=tolerance, notes=notes)
            _compare_metrics(comparison, rebuilt, model, tags)
        finally:
            if keep:
                say(f"kept the worktree at {worktree}")
            else:
                git(root, "worktree", "remove", "--force", str(worktree))
                shutil.rmtree(worktree, ignore_errors=True)
    return comparison
