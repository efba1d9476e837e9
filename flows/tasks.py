"""The Prefect task that runs one DVC stage, shared by the pipeline flow and the GPU hand-off flow.

A stage task runs (or skips, when DVC says it is current) one stage under the workspace lock,
retries only transient failures, and leaves a Prefect artifact with the stage's summary.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import task
from prefect.tasks import exponential_backoff

from components.config import MelforgeConfig
from components.settings import ProjectPaths
from components.stages import metrics_path, stage_row, stage_table
from flows.artifacts import publish_stage
from flows.dvc_runner import is_transient, run_and_commit, stage_is_current, workspace_lock


def _retry_transient(task, task_run, state) -> bool:
    """Retry only failures DVC or the network call transient (lock held, connection reset)."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


@task(name="dvc-stage", retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_transient,
      task_run_name="{stage}")  # timeout and retry policy per stage: stage_task()
def run_dvc_stage(paths: ProjectPaths, stage: str, force: bool = False, known_current: bool = False) -> dict[str, Any]:
    """Run one stage and record it with DVC (skipped when DVC says it is unchanged); return its summary. ``known_current``:
    the caller's whole-pipeline ``dvc status`` already showed it current and nothing upstream ran."""
    with workspace_lock(paths):
        skipped = known_current or (not force and stage_is_current(paths, stage))
        if not skipped:
            run_and_commit(paths, stage)
    summary = read_metrics(paths, stage)
    if stage_row(stage.partition("@")[0]).announced:
        publish_stage(stage, summary, skipped=skipped, table=stage_table(paths, stage))
    return {"stage": stage, "skipped": skipped, "summary": summary}


def stage_task(cfg: MelforgeConfig, stage: str):
    """The stage task with this config's timeout and retry policy (exponential backoff)."""
    o = cfg.orchestration
    return run_dvc_stage.with_options(timeout_seconds=o.timeout_seconds(stage), retries=o.retries,
                                      retry_delay_seconds=exponential_backoff(backoff_factor=o.retry_backoff_seconds))


def read_metrics(paths: ProjectPaths, stage: str) -> dict[str, Any]:
    path = metrics_path(paths, stage)
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}
