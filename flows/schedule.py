"""Cron schedules served from this machine: ``melforge schedule --cron "0 2 * * *"``.

Builds the same deployments as ``prefect.yaml`` (retrain on a schedule, the full pipeline on
demand or on its own schedule) and serves them with a local process runner: no work pool or
worker needed. For a shared server and workers, use ``prefect deploy --all`` with prefect.yaml.
"""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.schedules import CronSchedule
from pydantic import ValidationError

from flows.pipeline import melforge_pipeline
from flows.retrain import melforge_retrain


class ScheduleError(ValueError):
    """A schedule the user asked for cannot be built (bad cron string or time zone)."""


def cron_schedule(cron: str, timezone: str, option: str) -> CronSchedule:
    try:
        return CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as exc:
        problem = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ScheduleError(f"{option} {cron!r} (time zone {timezone!r}): {problem}; "
                            "expected five cron fields like '0 2 * * *' (02:00 every day)") from None


def build_deployments(*, retrain_cron: str, pipeline_cron: str | None, timezone: str, root: str) -> list[Any]:
    deployments = [melforge_retrain.to_deployment(
        name="retrain", schedules=[cron_schedule(retrain_cron, timezone, "--cron")], parameters={"root": root},
        description="Re-ingest the sources; retrain and gate only if the data changed.", tags=["melforge"])]
    pipeline_schedules = [cron_schedule(pipeline_cron, timezone, "--pipeline-cron")] if pipeline_cron else []
    deployments.append(melforge_pipeline.to_deployment(
        name="pipeline", schedules=pipeline_schedules, parameters={"root": root},
        description="The whole pipeline (unchanged stages skipped by DVC).", tags=["melforge"]))
    return deployments


def serve_schedules(deployments: list[Any]) -> None:
    """Block, running scheduled (and manually triggered) runs in subprocesses of this process."""
    from prefect import serve

    serve(*deployments)
