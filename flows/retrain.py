"""Scheduled retraining: re-scan the configured sources; retrain only if the data changed.

DVC decides: after a fresh ``scan``, ``ingest`` is up to date exactly when no source changed.
Then the flow stops and says so (and records the check in MLflow with the data digest); otherwise
it runs the whole pipeline, whose registry step promotes only through the gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from components import tracking
from components.params_file import resolve_params
from components.provenance import git_state
from components.settings import apply_runtime_defaults, project_paths
from components.stages import pipeline_order
from flows.dvc_runner import out_hash, stale_stages, workspace_lock
from flows.pipeline import melforge_pipeline, one_pipeline_per_workspace, stage_task


@flow(name="melforge-retrain", log_prints=True)
def melforge_retrain(root: str | None = None, push: bool = True) -> dict[str, Any]:
    """Re-ingest the sources; run the pipeline only when DVC says the data changed (or the last
    pipeline did not finish)."""
    paths = apply_runtime_defaults(project_paths(Path(root) if root else None))
    logger = get_run_logger()
    cfg = resolve_params(paths.params)
    with one_pipeline_per_workspace(paths, cfg):
        stage_task(cfg, "scan")(paths, "scan", force=True)
        with workspace_lock(paths):
            stale = stale_stages(paths)
        data_changed = "ingest" in stale
        incomplete = [s for s in pipeline_order(cfg) if s != "scan" and s in stale]
        digest = out_hash(paths, "features", "data/mels") or "none"
    if not data_changed and not incomplete:
        reason = f"data unchanged (data/mels {digest}); nothing to retrain"
        logger.info(reason)
        tracking.setup_experiment(cfg.experiment, paths)
        with tracking.parent_run("retrain-check", params={}, tags={"melforge.retrain": "skipped",
                                                                    "dvc.data_digest": digest, **git_state(paths.root)}):
            pass
        create_markdown_artifact(key="melforge-retrain", markdown=f"## melforge retrain\n\n**Skipped**: {reason}.",
                                 description="melforge retraining decision")
        return {"retrained": False, "reason": reason, "data_digest": digest}
    reason = "sources changed" if data_changed else f"pipeline incomplete ({', '.join(incomplete)})"
    logger.info("retraining: %s", reason)
    summary = melforge_pipeline(root=str(paths.root), push=push)
    create_markdown_artifact(
        key="melforge-retrain",
        markdown=f"## melforge retrain\n\n**Retrained** ({reason}): data {digest} -> {summary['data_digest']}; "
                 f"candidate {summary.get('registered', '—')}, promoted: {summary.get('promoted', '—')}.",
        description="melforge retraining decision")
    return {"retrained": True, "reason": reason, "data_digest": summary["data_digest"], "previous_digest": digest,
            "pipeline": summary}
