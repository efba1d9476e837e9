"""Prefect artifacts for each stage: what a person wants to see in the Prefect UI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from components.metric_table import metric_info
from components.tracking import ui_url


def _fmt(value: Any) -> str:
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return f"[{value}]({value})"
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


def _interval(m: dict[str, float] | None) -> str:
    return "—" if not m else f"{m['value']:.4g} [{m['low']:.4g}, {m['high']:.4g}]"


def evaluation_markdown(results: dict[str, Any], *, report_uri: str, local_report: Path) -> str:
    """Steps-vs-quality table (primary metric with its 95% interval, IS, RTF), the floor, the served model."""
    primary = results["primary_metric"]
    floor = results["floor"]
    extra = [m for m in ("fadinf_classifier",) if m in floor] + \
        [m for m in floor if metric_info(m).prefix == "is"][:1] + \
        [m for m in ("coverage_classifier", "fad_crepe") if m in floor] + ["memorised"]
    cols = [primary, *[m for m in extra if m != primary]]
    lines = ["## melforge evaluation", "",
             f"{results['matched_sizes']['generated']} generated clips per model vs the "
             f"{results['matched_sizes']['real']} clips of the evaluation set (never trained on); the floor is as many "
             "training clips; 95% intervals. Controls (replayed training clips, per-cell mean mels, noise) must be refused.", "",
             "| model | steps | status | " + " | ".join(cols) + " | RTF |", "|---|---|---|" + "---|" * (len(cols) + 1)]
    for r in results["models"]:
        star = " ★" if r["name"] == results["served"]["model"] else ""
        lines.append(f"| {r['name']}{star} | {r['steps']} | {r['status']} | "
                     + " | ".join(_interval(r["metrics"].get(c)) for c in cols) + f" | {_fmt(r.get('rtf', '—'))} |")
    lines.append("| floor (training clips vs evaluation set) | | | " + " | ".join(_interval(floor.get(c)) for c in cols) + " | |")
    lines += ["", f"**Served:** {results['served']['model']} — {results['served']['reason']}", "",
              f"HTML report: `{local_report}`" + (f" · [MLflow run artifacts]({report_uri}) (evaluate/report.html)" if report_uri else "")]
    return "\n".join(lines)


def publish_evaluation(metrics_file: Path, *, report_uri: str, local_report: Path) -> None:
    results = json.loads(metrics_file.read_text())
    create_markdown_artifact(key="melforge-evaluation", markdown=evaluation_markdown(results, report_uri=report_uri,
                                                                                     local_report=local_report),
                             description="melforge evaluation: quality vs sampling steps")


def publish_registry(decision: dict[str, Any], *, tracking_ui: str) -> None:
    name = decision["model_name"]
    version = decision["candidate"].rsplit("/", 1)[-1]
    verdict = {"promoted": "promoted to **champion**",
               "no change": "already the champion: nothing changed"}.get(decision.get("action", ""),
                                                                         "not promoted (champion unchanged)")
    lines = ["## melforge registry", "",
             f"Candidate [{decision['candidate']}]({ui_url(tracking_ui, f'models/{name}/versions/{version}')}) "
             f"({decision['candidate_model']}, alias `challenger`): {verdict}.", "",
             f"Reason: {decision['reason']}", "", f"Champion now: `{decision['champion']}`", "",
             "| model | version | newly registered |", "|---|---|---|"]
    lines += [f"| {r['model']} | {r['version']} | {'yes' if r['new'] else 'no (same model file)'} |"
              for r in decision["registered"]]
    create_markdown_artifact(key="melforge-registry", markdown="\n".join(lines),
                             description="melforge registry: promotion decision")
    if decision.get("history"):
        create_table_artifact(key="melforge-promotion-history", table=decision["history"],
                              description=f"melforge registry: every decision about {name}@champion, oldest first "
                                          "(also on the registered model's melforge.history.* tags)")
