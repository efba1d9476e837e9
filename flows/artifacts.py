"""Prefect artifacts for each stage: what a person wants to see in the Prefect UI."""

from __future__ import annotations

import re
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)


def stage_markdown(stage: str, summary: dict[str, Any], *, skipped: bool) -> str:
    state = "unchanged — skipped by DVC (figures from the last run)" if skipped else "ran"
    lines = [f"### Stage `{stage}`: {state}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in summary.items()]
    return "\n".join(lines)


def artifact_key(stage: str) -> str:
    """Prefect keys allow lowercase letters, digits and dashes only (``distill@student-8`` -> ``distill-student-8``)."""
    return "melforge-" + re.sub(r"[^a-z0-9-]+", "-", stage.lower())


def publish_stage(stage: str, summary: dict[str, Any], *, skipped: bool,
                  table: list[dict[str, Any]] | None = None) -> None:
    key = artifact_key(stage)
    create_markdown_artifact(key=key, markdown=stage_markdown(stage, summary, skipped=skipped),
                             description=f"melforge stage {stage}")
    if table:
        create_table_artifact(key=f"{key}-details", table=table[:200],
                              description=f"melforge stage {stage}: details (first 200 rows)")


def publish_pipeline(summary: dict[str, Any]) -> None:
    lines = ["## melforge pipeline", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in summary.items()]
    create_markdown_artifact(key="melforge-pipeline", markdown="\n".join(lines), description="melforge run summary")
