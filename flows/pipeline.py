"""The melforge pipeline flow: every stage through DVC, tracked in MLflow, shown in Prefect.

DVC decides what runs (unchanged stages are skipped and dvc.lock stays the record); each stage is
a Prefect task with retries for transient errors; one MLflow parent run holds a nested run per
stage and the dataset input; every stage leaves a Prefect artifact.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.deployments import run_deployment

from components import stage_process, tracking
from components.config import MelforgeConfig
from components.params_file import resolve_params
from components.provenance import git_state
from components.run_lock import hold_workspace
from components.settings import ProjectPaths, apply_runtime_defaults, project_paths
from components.stages import (declared_params, model_dir, model_stages, pipeline_order, select_params, stage_artifacts,
                               stage_row)
from components.storage import atomic_write_bytes
from flows.artifacts import publish_evaluation, publish_pipeline, publish_registry
from flows.dvc_runner import dvc_pull, dvc_push, out_hash, stage_is_current, stale_stages, workspace_lock
from flows.gpu import LOCK_ARTIFACT_KEY, lock_from_markdown, model_inputs
from flows.tasks import read_metrics, stage_task



@task(name="registry", retries=1, retry_delay_seconds=5)
def register_models(cfg: MelforgeConfig, paths: ProjectPaths, run_tags: dict[str, str], parent_run_id: str,
                    trained_by: dict[str, str] | None = None) -> dict[str, Any]:
    """Register every evaluated model and gate the served one (champion moves only if it is better).
    ``trained_by``: model folder -> the MLflow run of the stage that trained it in this pipeline run."""
    from components.registry.publish import publish

    with tracking.child_run("registry", parent_run_id, tags={"melforge.stage": "registry"}):
        decision = publish(cfg, paths, run_tags=run_tags, lock=lambda: promotion_slot(cfg), trained_by=trained_by)
        tracking.log_json(decision, "registry/decision.json")
    publish_registry(decision, tracking_ui=tracking.ui_base_url())
    return decision


def promotion_limit_name(tracking_uri: str, model_name: str) -> str:
    return "melforge-promotion-" + hashlib.sha1(f"{tracking_uri}|{model_name}".encode()).hexdigest()[:12]


@contextmanager
def promotion_slot(cfg: MelforgeConfig) -> Iterator[None]:
    """Held while ``champion`` is re-read and moved: the file lock beside a SQLite tracking store
    (every writer of that file is on this host), and on a persistent Prefect server also a global
    concurrency slot named after the tracking store and model, which runs on other hosts that share
    a tracking server also take. MLflow's alias write is an unconditional upsert, so the lock has
    to come from somewhere else."""
    import mlflow

    from components.registry.promotion_lock import store_file_lock
    from flows.local_api import uses_persistent_server

    uri = mlflow.get_tracking_uri()
    with store_file_lock(uri):
        if not uses_persistent_server():
            yield
            return
        from prefect.client.orchestration import get_client
        from prefect.concurrency.sync import concurrency

        name = promotion_limit_name(uri, cfg.registry.model_name)
        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(name, 1)
        with concurrency(name, occupy=1, timeout_seconds=600, lease_duration=300, strict=True):
            yield


def hand_off_training(paths: ProjectPaths, cfg: MelforgeConfig, deployment: str) -> None:
    """Run the model stages on another machine through a Prefect deployment (a GPU work pool).

    Only when some model stage is out of date. The data goes through the DVC remote (pushed here
    first); the worker returns its dvc.lock as an artifact; this workspace adopts it and pulls the
    models, after which the local train/distill stages are current and skipped.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    logger = get_run_logger()
    stages = model_stages(cfg)
    with workspace_lock(paths):
        stale = [s for s in stages if not stage_is_current(paths, s)]
        if not stale:
            return
        dvc_push(paths, *model_inputs(paths.root, cfg))  # the worker pulls data/mels (and data/clips for a GAN) from the remote
    logger.info("handing %s to deployment %s", ", ".join(stale), deployment)
    flow_run = run_deployment(name=deployment, timeout=None, parameters={
        "params_yaml": paths.params.read_text(), "dvc_lock": (paths.root / "dvc.lock").read_text()})
    if not flow_run.state or not flow_run.state.is_completed():
        raise RuntimeError(f"training deployment {deployment} ended {flow_run.state.type if flow_run.state else 'without a state'}"
                           f" (flow run {flow_run.id}); champion untouched")
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[LOCK_ARTIFACT_KEY])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    if not artifacts:
        raise RuntimeError(f"training deployment {deployment} (flow run {flow_run.id}) published no dvc.lock")
    with workspace_lock(paths):
        atomic_write_bytes(paths.root / "dvc.lock", lock_from_markdown(str(artifacts[0].data)).encode())
        dvc_pull(paths, *stages)


def _dataset_summary(paths: ProjectPaths) -> pd.DataFrame:
    manifest = pd.read_parquet(paths.clips / "manifest.parquet")
    labels = [c for c in manifest.columns if c.startswith("label_")]
    keys = ["source", *labels[:1]]
    return manifest.groupby(keys).agg(clips=("clip_id", "size"), seconds=("duration_seconds", "sum")).reset_index()


def workspace_limit_name(paths: ProjectPaths) -> str:
    return "melforge-workspace-" + hashlib.sha1(str(paths.root.resolve()).encode()).hexdigest()[:12]


@contextmanager
def one_pipeline_per_workspace(paths: ProjectPaths, cfg: MelforgeConfig) -> Iterator[None]:
    """One pipeline at a time in a workspace (DVC refuses two concurrent repros): the kernel-freed
    run lock always (components.run_lock), and on a persistent Prefect server also the
    workspace's global concurrency slot, so runs started by deployments on other machines that
    share the workspace wait too (that server expires the lease of a holder that died)."""
    from flows.local_api import uses_persistent_server

    wait_s = cfg.orchestration.workspace_wait_minutes * 60
    logger = get_run_logger()
    with hold_workspace(paths.state, wait_s=wait_s, say=logger.warning, temp_folders=[paths.data, paths.models]):
        if not uses_persistent_server():
            yield
            return
        with prefect_workspace_slot(paths, wait_s=wait_s):
            yield


@contextmanager
def prefect_workspace_slot(paths: ProjectPaths, *, wait_s: float, lease_s: float = 300.0) -> Iterator[None]:
    """Hold the workspace's Prefect global concurrency slot (limit 1); its lease is renewed while
    held and expires ``lease_s`` after a holder dies."""
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    name = workspace_limit_name(paths)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    acquired = False
    try:
        with concurrency(name, occupy=1, timeout_seconds=wait_s, lease_duration=lease_s, strict=True):
            acquired = True
            yield
    except TimeoutError:
        if acquired:  # a stage's own timeout, raised while the slot was held
            raise
        raise TimeoutError(f"another melforge pipeline has been running in {paths.root} for longer than "
                           f"orchestration.workspace_wait_minutes ({wait_s / 60:g}); "
                           f"Prefect concurrency limit {name!r}") from None


@flow(name="melforge-pipeline", log_prints=True)
def melforge_pipeline(profile: str | None = None, overrides: list[str] | None = None, push: bool = True,
                      root: str | None = None, back_up: bool = True) -> dict[str, Any]:
    """scan -> ingest -> validate -> features -> vocoder -> train -> distill@... -> gan@... -> evaluate through DVC, then the
    registry gate, in one MLflow parent run. ``back_up``: take the rotating backup of the workspace's
    SQLite stores at the end (`melforge run` takes it itself, once its temporary Prefect server stopped)."""
    paths = apply_runtime_defaults(project_paths(Path(root) if root else None))
    cfg: MelforgeConfig = resolve_params(paths.params, profile=profile, overrides=overrides)
    with one_pipeline_per_workspace(paths, cfg):
        try:
            return _run_pipeline(paths, cfg, push=push)
        finally:
            if back_up:
                back_up_stores(paths)


def back_up_stores(paths: ProjectPaths) -> None:
    """The rotating backup of the workspace's SQLite stores (components/stores.py) after a run started
    by a deployment or a schedule; a failed backup is a warning, never the run's failure."""
    from components.errors import describe
    from components.stores import back_up

    logger = get_run_logger()
    try:
        for path in back_up(paths):
            logger.info("backed up %s", path)
    except (OSError, sqlite3.Error) as exc:
        logger.warning("could not back up the stores: %s", describe(exc))


def _run_pipeline(paths: ProjectPaths, cfg: MelforgeConfig, *, push: bool) -> dict[str, Any]:
    """The stages, the data record, the registry gate and the summary, in one MLflow parent run."""
    tracking.setup_experiment(cfg.experiment, paths)
    params = cfg.to_params()
    started, code = datetime.now(timezone.utc), git_state(paths.root)  # the code as the run found it
    with tracking.parent_run(f"pipeline-{cfg.profile}-{started:%Y%m%d-%H%M%S}", params=params,
                             tags={"melforge.profile": cfg.profile, **code}) as run:
        outcomes = _run_stages(paths, cfg, params, run.info.run_id)
        digest = _record_data_version(paths, push=push)
        trained_by = {model_dir(paths, s).name: o["mlflow_run_id"] for s, o in outcomes.items()
                      if model_dir(paths, s) is not None and not o["skipped"] and o.get("mlflow_run_id")}
        code = {**code, "melforge.evaluation_run": outcomes.get("evaluate", {}).get("mlflow_run_id", "none")}
        registry = _register(paths, cfg, run.info.run_id, digest, code, trained_by) if cfg.registry.enabled else {}
        summary = _summary(paths, cfg, outcomes, registry, run.info.run_id, digest)
        # a run in which DVC skipped every stage and the champion did not move changed nothing
        ran = [s for s in summary["stages_run"] if s != "scan"]  # the source listing is refreshed every run
        changed = bool(ran) or registry.get("action") not in (None, "no change")
        tracking.tag_active_run({"melforge.changed": str(changed).lower()})
        tracking.log_json(summary, "pipeline_summary.json")
    publish_pipeline(summary)
    return summary


def _run_stages(paths: ProjectPaths, cfg: MelforgeConfig, params: dict[str, Any],
                parent_run_id: str) -> dict[str, dict[str, Any]]:
    """Every stage in order through DVC, each logged as a nested MLflow run. One ``dvc status``
    after the scan tells which stages are current, until a stage runs and changes that."""
    logger = get_run_logger()
    outcomes: dict[str, dict[str, Any]] = {}
    delegated = cfg.orchestration.training_deployment
    stale: set[str] | None = None  # None once a stage ran: ask DVC per stage
    order = pipeline_order(cfg)
    for position, stage in enumerate(order):
        if delegated and stage == "train":
            hand_off_training(paths, cfg, delegated)
            stale = None
        run_id = tracking.open_stage_run(stage, parent_run_id) if stage != "scan" else None
        outcome = outcomes[stage] = _run_stage(paths, cfg, params, stage, run_id=run_id,
                                               known_current=stale is not None and stage not in stale)
        if stage == "scan":
            with workspace_lock(paths):
                stale = stale_stages(paths)
        elif not outcome["skipped"]:
            stale = None
        _warm_up_if_training_ahead(order[position + 1:], stale)
        if stage != "scan":
            _record_stage(paths, params, stage, outcome, run_id)
        logger.info("stage %s: %s", stage, "skipped (unchanged)" if outcome["skipped"] else "ran")
    return outcomes


def _warm_up_if_training_ahead(ahead: list[str], stale: set[str] | None) -> None:
    """Start the training forkserver (it imports torch meanwhile) when a training stage will run."""
    training = {s for s in ahead if stage_row(s.partition("@")[0]).kind == "training"}
    if training and (stale is None or training & stale):
        stage_process.warm_up()


def _record_stage(paths: ProjectPaths, params: dict[str, Any], stage: str, outcome: dict[str, Any],
                  run_id: str | None) -> None:
    """The stage's nested MLflow run (artifacts only when it ran: a skipped stage's files are those of the
    run that made them); for the evaluation, its Prefect artifact too."""
    outcome["mlflow_run_id"] = tracking.log_stage(
        stage, summary=outcome["summary"], params=_sections(paths, params, stage),
        artifacts=[] if outcome["skipped"] else stage_artifacts(paths, stage),
        skipped=outcome["skipped"], history=_history(paths, stage), run_id=run_id)
    if stage == "evaluate":
        report_uri = "" if outcome["skipped"] else tracking.artifact_url(outcome["mlflow_run_id"])
        publish_evaluation(paths.evaluation / "metrics.json", report_uri=report_uri,
                           local_report=paths.evaluation / "report.html")


def _run_stage(paths: ProjectPaths, cfg: MelforgeConfig, params: dict[str, Any], stage: str, *,
               known_current: bool, run_id: str | None) -> dict[str, Any]:
    """One stage task; a failure or an interrupt (Ctrl-C, SIGTERM: KILLED) is logged as its nested run."""
    try:
        # scan is a cheap listing of the sources: always refreshed so DVC sees changed folders
        return stage_task(cfg, stage)(paths, stage, force=(stage == "scan"), known_current=known_current)
    except BaseException as exc:
        tracking.log_stage(stage, summary=read_metrics(paths, stage), params=_sections(paths, params, stage),
                           artifacts=stage_artifacts(paths, stage), skipped=False, run_id=run_id,
                           status=tracking.end_status(exc), error=f"{type(exc).__name__}: {exc}")
        raise


def _record_data_version(paths: ProjectPaths, *, push: bool) -> str:
    """Log the mels as the run's dataset input, tag the run with the DVC digests, push to the remote."""
    digest = out_hash(paths, "features", "data/mels") or "unknown"
    tracking.log_dataset(_dataset_summary(paths), name="melforge-mels", digest=digest.removesuffix(".dir"),
                         source=str(paths.mels))
    tracking.tag_active_run({"dvc.data_digest": digest, "dvc.clips_digest": out_hash(paths, "ingest", "data/clips") or ""})
    if push:
        with workspace_lock(paths):
            dvc_push(paths)
        tracking.tag_active_run({"dvc.pushed": "true"})
    return digest


def _register(paths: ProjectPaths, cfg: MelforgeConfig, run_id: str, digest: str, code: dict[str, str],
              trained_by: dict[str, str]) -> dict[str, Any]:
    run_tags = {"melforge.pipeline_run_id": run_id, "dvc.data_digest": digest, "melforge.profile": cfg.profile, **code}
    registry = register_models(cfg, paths, run_tags, run_id, trained_by)
    tracking.tag_active_run({"melforge.candidate": registry["candidate"],
                             "melforge.promoted": str(registry["promoted"]).lower(),
                             "melforge.champion": registry["champion"]})
    return registry


def _summary(paths: ProjectPaths, cfg: MelforgeConfig, outcomes: dict[str, dict[str, Any]], registry: dict[str, Any],
             run_id: str, digest: str) -> dict[str, Any]:
    """What `melforge run` prints and the pipeline artifact shows."""
    ingest, features = outcomes["ingest"]["summary"], outcomes["features"]["summary"]
    evaluation = outcomes["evaluate"]["summary"]
    models = {model_dir(paths, s).name: o["summary"] for s, o in outcomes.items()
              if model_dir(paths, s) is not None and s != "vocoder" and o["summary"].get("trained", True)}
    summary = {
        "mlflow_run_id": run_id, "profile": cfg.profile,
        "stages_run": [s for s, o in outcomes.items() if not o["skipped"]],
        "stages_skipped": [s for s, o in outcomes.items() if o["skipped"]],
        "clips": ingest.get("clips"), "hours": ingest.get("hours"),
        "quarantined": ingest.get("files_quarantined"),
        "validation": "passed" if outcomes["validate"]["summary"].get("success") else "failed",
        "mel_shape": features.get("example_shape"), "data_digest": digest,
        "griffinlim_sc_db": features.get("griffinlim_spectral_convergence_db"),
        "vocoder": vocoder_line(outcomes["vocoder"]["summary"]),
        "models": [f"{name} ({m.get('sampling_steps')} steps, {m.get('sampling_seconds_4', 0):.2f} s / 4 samples)"
                   for name, m in models.items()],
        "served_model": f"{evaluation.get('served_model')} ({evaluation.get('served_family', 'diffusion')}, "
                        f"{evaluation.get('served_steps')} steps)",
        "served_quality": evaluation.get("served_verdict"),
        **{k.replace("_floor_ratio", "_vs_real"): round(v, 3) for k, v in evaluation.items()
           if k.startswith(("served_is_", "served_fad_classifier_")) and k.endswith("_floor_ratio")},
        "report": str(paths.evaluation / "report.html"),
        "mlflow_run": tracking.run_url(run_id),
    }
    return {**summary, **_registry_summary(registry)}


def _registry_summary(registry: dict[str, Any]) -> dict[str, Any]:
    """The registry's part of the run summary (nothing when the registry is off)."""
    if not registry:
        return {}
    summary = {"registered": registry["candidate"], "promoted": registry["promoted"], "promotion": registry["action"],
               "promotion_reason": registry["reason"], "champion": registry["champion"]}
    if registry["champion"] != "none":
        summary["champion_url"] = tracking.model_version_url(*registry["champion"].rsplit("/", 1))
    return summary


def vocoder_line(summary: dict[str, Any]) -> str:
    """One line on the vocoder for the run summary: what serves, and learned vs Griffin-Lim."""
    baselines = sorted(k.split(".")[0] for k in summary if k.startswith("learned_vs_") and k.endswith(".speedup"))
    if not baselines:
        return str(summary.get("kind", "griffinlim"))
    b = baselines[0]
    return (f"{summary.get('kind')} (learned vs {b.removeprefix('learned_vs_')}: {summary[f'{b}.sc_db_gain']:+.1f} dB SC, "
            f"log-mel L1 {summary[f'{b}.logmel_l1_reduction']:+.0%} lower, {summary[f'{b}.speedup']:.1f}x faster)")


def _sections(paths: ProjectPaths, params: dict[str, Any], stage: str) -> dict[str, Any]:
    """What the stage depends on (its ``params:`` in dvc.yaml), logged as its nested run's params."""
    return select_params(params, declared_params(paths.root, stage))


def _history(paths: ProjectPaths, stage: str) -> list[dict[str, Any]] | None:
    """The training curve a model stage wrote (loss, lr, grad norm, samples/s per logged step)."""
    folder = model_dir(paths, stage)
    if folder is None or not (folder / "metrics.jsonl").is_file():
        return None
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
