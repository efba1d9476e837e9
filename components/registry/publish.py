"""Register every evaluated model in MLflow and run the promotion gate.

Each model folder (teacher, every student, every trained GAN) becomes a pyfunc model version under
``registry.model_name`` carrying its provenance (git commit, dvc.lock hash, data digest, params
hash) and its metrics as tags. The served choice from the evaluation becomes the ``challenger``;
it takes ``champion`` only through :func:`promotion_decision`. The current champion is re-scored
against this run's real clips and classifier when it can be (same mel settings), so the two are
compared on the same ruler.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema, TensorSpec

from components.config import MelforgeConfig
from components.evaluate.controls import CONTROL
from components.evaluate.metrics import MetricValue
from components.families import family
from components.gan import DIFFUSION
from components.models.io import MODEL_FILE
from components.provenance import dvc_lock_hash, file_sha256, params_hash
from components.registry.history import (NO_CHANGE, PROMOTED, REJECTED, append_entry, history_rows, make_entry,
                                         read_history, tag_version)
from components.registry.promotion import Decision, promotion_decision
from components.registry.lookup import quoted
from components.registry.promotion_lock import store_file_lock
from components.registry.pyfunc import DENOISER_ARTIFACT, VOCODER_ARTIFACT
from components.registry.tags import metric_from_tags, metric_tags
from components.settings import ProjectPaths

CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_HASH_TAG = "melforge.model_sha256"
VOCODER_HASH_TAG = "melforge.vocoder_sha256"  # "none": served with Griffin-Lim
COMPONENTS_DIR = Path(__file__).resolve().parents[1]
PYFUNC_FILE = COMPONENTS_DIR / "registry" / "pyfunc.py"

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("long", "n"), ColSpec("long", "seed"), ColSpec("double", "seconds", required=False),
                   ColSpec("long", "steps", required=False)]),
    outputs=Schema([TensorSpec(np.dtype("float32"), (-1, -1))]),
)


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "torch", "numpy", "scipy", "librosa", "torchaudio", "pandas")]


def _find_version(client, name: str, model_hash: str, vocoder_hash: str):
    try:
        found = client.search_model_versions(f"name = {quoted(name)} and tags.`{MODEL_HASH_TAG}` = {quoted(model_hash)}")
    except MlflowException:
        return None
    found = [v for v in found if v.tags.get(VOCODER_HASH_TAG, "none") == vocoder_hash]
    return max(found, key=lambda v: int(v.version)) if found else None


def register_model(client, model_dir: Path, *, name: str, tags: dict[str, str], paths: ProjectPaths,
                   vocoder_file: Path | None = None, source_run: str | None = None):
    """Log ``model_dir/model.pt`` (and the learned vocoder that serves it, if any) as a pyfunc model
    in the active run and register it, its source run ``source_run`` (the run that trained it) when
    given; a pair of files registered before (same SHA-256s) is not registered twice."""
    model_file = model_dir / MODEL_FILE
    model_hash = file_sha256(model_file)
    vocoder_hash = file_sha256(vocoder_file) if vocoder_file is not None else "none"
    existing = _find_version(client, name, model_hash, vocoder_hash)
    if existing is not None:
        return existing, False
    artifacts = {DENOISER_ARTIFACT: str(model_file)}
    if vocoder_file is not None:
        artifacts[VOCODER_ARTIFACT] = str(vocoder_file)
    for extra in ("dvc.lock", "params.yaml"):
        if (paths.root / extra).is_file():
            artifacts[extra.replace(".", "_")] = str(paths.root / extra)
    info = mlflow.pyfunc.log_model(
        name=model_dir.name, python_model=str(PYFUNC_FILE), artifacts=artifacts, signature=SIGNATURE,
        code_paths=[str(COMPONENTS_DIR)], pip_requirements=_requirements(),
        input_example={"n": 1, "seed": 0},
        metadata={"sample_rate": int(tags["melforge.sample_rate"]), "sampling_steps": int(tags["melforge.sampling_steps"]),
                  "melforge_model": model_dir.name})
    # the version is created with all its tags at once (one request, not one per tag)
    tags = {**tags, MODEL_HASH_TAG: model_hash, VOCODER_HASH_TAG: vocoder_hash}
    if source_run is None:
        return mlflow.register_model(info.model_uri, name, tags=tags), True
    return client.create_model_version(name, info.model_uri, run_id=source_run, tags=tags, model_id=info.model_id), True


def version_description(row: dict[str, Any], metric: str, role: str) -> str:
    """What the registry page shows first: which model, its sampling cost, its headline metric
    against the real-data floor, and why it is or is not champion."""
    what = f"{row['model']}: {family(row.get('family', DIFFUSION)).describe(row)}"
    m = row["metrics"].get(metric)
    ratio = row.get("floor_ratios", {}).get(metric)
    headline = (f"{metric} {m['value']:.4g} [{m['low']:.4g}, {m['high']:.4g}]" +
                (f", {ratio:.2f}x the real-data floor" if ratio is not None else "") if m else
                f"no {metric} (evaluation {row['status']})")
    return f"{what}. {headline}. {role}"[:5000]


def _version(model_version) -> str:
    return f"v{model_version.version}" if model_version is not None else "none"


def current_champion(client, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def rescore_champion(champion, cfg: MelforgeConfig, paths: ProjectPaths) -> tuple[MetricValue | None, str]:
    """The champion's primary metric against this run's reference, or its recorded one when the
    mel settings differ (then the note says so)."""
    from components.evaluate.reference import Reference
    from components.evaluate.stage import score_generator
    from components.families import load_generator
    from components.vocoder.interface import workspace_vocoder

    metric = cfg.registry.primary_metric
    recorded = metric_from_tags(champion.tags, metric)
    reference = Reference.load(paths.evaluation / "reference")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{champion.name}/{champion.version}", dst_path=tmp))
        model_file = next(local.rglob(MODEL_FILE), None)
        if model_file is None:
            return recorded, "champion's model file not found; compared with its recorded metric"
        try:
            # this run's vocoder, as for the reference's real clips: the same ruler for both models
            gen = load_generator(model_file, vocoder=workspace_vocoder(cfg, paths, reference.spec,
                                                                          griffinlim_iters=cfg.eval.griffinlim_iters))
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:  # e.g. a network layout of an older melforge
            return recorded, f"champion not re-scored: this melforge cannot load its network ({str(exc)[:200]}); " \
                             "compared with its recorded metric"
        try:
            row, _, _ = score_generator(reference, gen, samples=cfg.eval.samples, steps=gen.sampling_steps,
                                        seed=cfg.seed + 2)
        except ValueError as exc:
            return recorded, f"champion not re-scored ({exc}); compared with its recorded metric"
    if row["status"] != "ok" or metric not in row["metrics"]:
        return recorded, f"champion re-scoring failed ({row.get('error')}); compared with its recorded metric"
    m = row["metrics"][metric]
    return MetricValue(m["value"], m["low"], m["high"], m["n_a"], m["n_b"]), "champion re-scored on this run's reference"


def served_vocoder_file(cfg: MelforgeConfig, paths: ProjectPaths) -> Path | None:
    """The learned vocoder file every registered generator carries, or None for Griffin-Lim."""
    from components.vocoder.interface import workspace_vocoder_file

    if cfg.vocoder.kind != "learned":
        return None
    path = workspace_vocoder_file(paths)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: vocoder.kind is 'learned' but the vocoder stage has not run")
    return path


def _ensure_registered_model(client, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="melforge audio generators: mel diffusion teachers and "
                                                         "students, WaveGAN and SpecGAN baselines (tag melforge.family; "
                                                         "pyfunc: predict({'n': 8, 'seed': 0}) -> audio)")


def _own_rows(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each model at its own step count (the teacher is also evaluated at fewer steps), controls left out."""
    teacher_steps = max(r["steps"] for r in results["models"] if r["kind"] == "teacher")
    return {r["model"]: r for r in results["models"]
            if r["kind"] not in ("teacher", CONTROL) or (r["kind"] == "teacher" and r["steps"] == teacher_steps)}


def _served_role(client, name: str, version, outcome: dict[str, Any]) -> str:
    """What the served model's version page says it is after the gate."""
    if outcome["action"] == PROMOTED:
        return f"Champion: {outcome['reason']}"
    if outcome["action"] == NO_CHANGE:
        reason = client.get_model_version(name, version.version).tags.get("melforge.promotion_reason", "")
        return f"Champion (unchanged by this run): {reason}"
    return f"Served by its evaluation, not champion: {outcome['reason']}"


def publish(cfg: MelforgeConfig, paths: ProjectPaths, *, run_tags: dict[str, str],
            lock: Callable[[], ContextManager[None]] | None = None,
            trained_by: dict[str, str] | None = None) -> dict[str, Any]:
    """Register every model of the evaluation, then gate the served one. Call inside an MLflow run.
    ``lock``: held while the champion is re-read and moved (see :func:`apply_promotion`);
    ``trained_by``: model folder -> the run that trained it, each new version's source run."""

    results = json.loads((paths.evaluation / "metrics.json").read_text())
    name = cfg.registry.model_name
    client = mlflow.MlflowClient()
    _ensure_registered_model(client, name)
    own_rows = _own_rows(results)
    base = {**run_tags, "dvc.lock_sha256": dvc_lock_hash(paths.root), "params_sha256": params_hash(cfg.to_params()),
            "melforge.primary_metric": cfg.registry.primary_metric}
    vocoder_file = served_vocoder_file(cfg, paths)
    base["melforge.vocoder"] = cfg.vocoder.kind
    versions: dict[str, Any] = {}
    registered = []
    for model, row in own_rows.items():
        tags = {**base, **metric_tags(row, cfg.registry.primary_metric), "melforge.model": model, "melforge.kind": row["kind"],
                "melforge.family": row.get("family", DIFFUSION),
                "melforge.sampling_steps": str(row["steps"]), "melforge.evaluation": row["status"],
                "melforge.sample_rate": str(cfg.audio.sample_rate)}
        if row.get("error"):
            tags["melforge.evaluation_error"] = row["error"]
        versions[model], new = register_model(client, paths.models / model, name=name, tags=tags, paths=paths,
                                              vocoder_file=vocoder_file, source_run=(trained_by or {}).get(model))
        registered.append({"model": model, "version": versions[model].version, "new": new})

    served = results["served"]["model"]
    candidate, row = versions[served], own_rows[served]
    m = row["metrics"].get(cfg.registry.primary_metric)
    outcome = apply_promotion(
        client, name, candidate,
        MetricValue(m["value"], m["low"], m["high"], m["n_a"], m["n_b"]) if m else None,
        champion_metric=lambda champion: rescore_champion(champion, cfg, paths),
        metric=cfg.registry.primary_metric, min_improvement=cfg.registry.min_improvement,
        require_disjoint=cfg.registry.require_disjoint_intervals,
        candidate_error=(row.get("error") or "failed") if row["status"] != "ok" else None,
        quality=row.get("gate"), lock=lock)
    for model, version in versions.items():
        role = _served_role(client, name, version, outcome) if model == served else \
            f"Not served: the evaluation served {served} ({results['served']['reason']})"
        client.update_model_version(name, version.version, description=version_description(
            own_rows[model], cfg.registry.primary_metric, role))
    return {"model_name": name, "registered": registered, "candidate": f"{name}/{candidate.version}",
            "candidate_model": served, "primary_metric": cfg.registry.primary_metric,
            "candidate_value": m["value"] if m else math.nan, **outcome,
            "history": history_rows(read_history(client, name))}


MAX_ROUNDS = 5  # champions that moved while this candidate was being scored, before giving up


def apply_promotion(client, name: str, candidate, candidate_metric: MetricValue | None, *,
                    champion_metric: Callable[[Any], tuple[MetricValue | None, str]], metric: str,
                    min_improvement: float, require_disjoint: bool, candidate_error: str | None,
                    quality: dict[str, Any] | None = None,
                    lock: Callable[[], ContextManager[None]] | None = None) -> dict[str, Any]:
    """``challenger`` -> the candidate; ``champion`` -> the candidate only if the gate says so. The
    decision is appended to the model's history (components/registry/history.py) and, unless nothing
    changed, becomes tags of the candidate version. ``promoted`` is true only when the alias moved.

    Compare-and-set: scoring the champion takes minutes, so under ``lock`` (default: a file lock
    beside a SQLite store, components/registry/promotion_lock.py) the champion is read again and the
    alias moves only if it is still the one scored against; if another run moved it meanwhile, the
    candidate is scored again against the new one. The outcome then does not depend on the order
    in which two runs sharing one store finish."""
    lock = lock or (lambda: store_file_lock(client.tracking_uri))
    client.set_registered_model_alias(name, CHALLENGER, candidate.version)
    notes: list[str] = []
    previous: MetricValue | None = None
    action = REJECTED
    for _ in range(MAX_ROUNDS):
        champion = current_champion(client, name)
        note = ""
        if champion is not None and champion.version == candidate.version:
            decision, action = Decision(False, "no change: the candidate is already the champion (same model file)"), NO_CHANGE
            break
        previous = None
        if champion is not None:
            previous, note = champion_metric(champion)
        decision = promotion_decision(candidate_metric, previous, metric=metric, min_improvement=min_improvement,
                                      require_disjoint=require_disjoint, candidate_error=candidate_error,
                                      quality=quality)
        if champion is not None and previous is None and decision.promote:
            decision = Decision(False, f"the champion has no {metric} to compare with; champion kept")
        if not decision.promote:
            break
        with lock():
            now = current_champion(client, name)
            if _version(now) == _version(champion):
                client.set_registered_model_alias(name, CHAMPION, candidate.version)
                action = PROMOTED
                reason = _reason(decision, note, notes)
                _record(client, name, candidate, champion, action, reason, metric, candidate_metric, previous)
                break
        notes.append(f"the champion moved from {_version(champion)} to {_version(now)} while this candidate was "
                     "scored; scored again against the new one")
    else:
        decision = Decision(False, f"the champion moved {MAX_ROUNDS} times while this candidate was scored; "
                                   "champion left as it is")
    reason = _reason(decision, note, notes)
    if action != PROMOTED:
        with lock():
            _record(client, name, candidate, champion, action, reason, metric, candidate_metric, previous)
    now = current_champion(client, name)
    return {"promoted": action == PROMOTED, "action": action, "reason": reason,
            "champion": f"{name}/{now.version}" if now is not None else "none"}


def _reason(decision: Decision, note: str, notes: list[str]) -> str:
    return decision.reason + (f" ({note})" if note else "") + "".join(f"; {n}" for n in notes)


def _record(client, name: str, candidate, champion, action: str, reason: str, metric: str,
            candidate_metric: MetricValue | None, champion_value: MetricValue | None) -> None:
    """Append the decision to the model's history; a decision that changed something also becomes the
    candidate version's own record (a no-op run leaves the reason it was promoted for in place)."""
    run = mlflow.active_run()
    before = str(champion.version) if champion is not None else None
    after = str(candidate.version) if action == PROMOTED else before
    append_entry(client, name, make_entry(action, candidate=str(candidate.version), before=before, after=after,
                                          reason=reason, metric=metric, candidate_value=candidate_metric,
                                          champion_value=champion_value, run_id=run.info.run_id if run else None))
    if action == NO_CHANGE:
        return
    tag_version(client, name, candidate.version, champion=action == PROMOTED, reason=reason, before=before)
