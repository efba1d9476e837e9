"""The validate stage: run the suite over ``data/clips/manifest.parquet``.

Writes ``data/validation/`` (results.json, failures.csv with the clip ids that broke each
expectation, and GX Data Docs under docs/). A critical failure raises :class:`ValidationFailed`
*after* the outputs are written, so the report is there to read; warnings are only reported.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from components.config import MelforgeConfig
from components.datasets import builtin_label_values
from components.ingest.sources import source_kind
from components.ingest.store import LABEL_PREFIX, QUARANTINE, read_manifest
from components.storage import atomic_write_json, staged_directory
from components.validate.suite import Check, build_checks

ROW_ID = {"manifest": "clip_id", "class_counts": "class", "quarantine": "source"}  # names a failing row
RESULTS = "results.json"
FAILURES = "failures.csv"
DOCS = "docs"


class ValidationFailed(RuntimeError):
    """A critical expectation failed; the message names it and how many rows broke it."""


def allowed_label_values(cfg: MelforgeConfig) -> dict[str, list[str]]:
    """Label vocabularies: every built-in source's own, plus ``validate.allowed_labels``."""
    allowed: dict[str, set[str]] = {k: set(v) for k, v in cfg.validate_.allowed_labels.items()}
    for source in cfg.data.sources:
        if source_kind(source) == "builtin":
            for key, values in builtin_label_values(source.removeprefix("builtin:"), cfg.data).items():
                allowed.setdefault(key, set()).update(values)
    return {k: sorted(v) for k, v in allowed.items()}


def class_counts(manifest: pd.DataFrame, cfg: MelforgeConfig, label_columns: list[str]) -> pd.DataFrame:
    column = LABEL_PREFIX + cfg.validate_.class_label if cfg.validate_.class_label else label_columns[0]
    if column not in manifest.columns:
        raise ValueError(f"validate.class_label: no label column {column.removeprefix(LABEL_PREFIX)!r}; "
                         f"have {[c.removeprefix(LABEL_PREFIX) for c in label_columns]}")
    counts = manifest.groupby(column).size().rename("clips").reset_index()
    return counts.rename(columns={column: "class"}).assign(label=column.removeprefix(LABEL_PREFIX))


def _severity(expectation_config) -> str:
    severity = getattr(expectation_config, "severity", "critical")
    return str(getattr(severity, "value", severity))


def _run_gx(tables: dict[str, pd.DataFrame], checks: list[Check], docs_dir: Path) -> list[dict[str, Any]]:
    import great_expectations as gx

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # the run shows its own progress
    context.add_data_docs_site(site_name="melforge", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    source = context.data_sources.add_pandas("melforge")
    definitions = []
    for table, frame in tables.items():
        suite = context.suites.add(gx.ExpectationSuite(name=f"melforge_{table}"))
        for check in checks:
            if check.table == table:
                check.expectation.meta = {"check": check.name}
                suite.add_expectation(check.expectation)
        batch = source.add_dataframe_asset(name=table).add_batch_definition_whole_dataframe(f"{table}_all")
        definitions.append((table, frame, context.validation_definitions.add(
            gx.ValidationDefinition(name=f"validate_{table}", data=batch, suite=suite))))
    results = []
    for table, frame, definition in definitions:
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"checkpoint_{table}", validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["melforge"])],
            result_format={"result_format": "COMPLETE",
                           "unexpected_index_column_names": [ROW_ID[table]]},
        ))
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        results += [_result_row(r, table, frame) for run_result in outcome.run_results.values() for r in run_result.results]
    return results


def _result_row(r: Any, table: str, frame: pd.DataFrame) -> dict[str, Any]:
    """One expectation's outcome as a plain row (the failing rows named by their ids, at most 1000)."""
    cfg = r.expectation_config
    res = r.result or {}
    return {
        "check": (cfg.meta or {}).get("check", cfg.type), "expectation": cfg.type, "table": table,
        "column": cfg.kwargs.get("column"), "severity": _severity(cfg),
        "success": bool(r.success), "element_count": int(res.get("element_count") or len(frame)),
        "unexpected_count": int(res.get("unexpected_count") or 0),
        "unexpected_ids": [str(x.get(ROW_ID[table])) if isinstance(x, dict) else str(x)
                           for x in (res.get("unexpected_index_list") or [])][:1000],
        "observed_value": res.get("observed_value"),
        "exception": (r.exception_info or {}).get("exception_message") if r.exception_info else None,
    }


def write_offline_index(docs_dir: Path, summary: dict[str, Any], results: list[dict[str, Any]]) -> Path:
    """Replace Great Expectations' index.html, which lists the results only once Bootstrap and jQuery
    load from CDNs (offline it is an empty, unstyled page), with a self-contained page: the summary,
    each suite's run with a link to its Great Expectations page, every expectation and its failing
    rows. GX's own index is kept as gx-index.html."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    gx_index = docs_dir / "index.html"
    if gx_index.is_file():
        gx_index.replace(docs_dir / "gx-index.html")
    suites = []
    for table in dict.fromkeys(r["table"] for r in results):
        rows = [r for r in results if r["table"] == table]
        pages = sorted((docs_dir / "validations" / f"melforge_{table}").rglob("*.html"))
        suites.append({"name": f"melforge_{table}", "expectations": len(rows), "passed": sum(r["success"] for r in rows),
                       "run": pages[-1].parent.name if pages else "",
                       "page": pages[-1].relative_to(docs_dir).as_posix() if pages else ""})
    env = Environment(loader=PackageLoader("components.validate", "templates"), autoescape=select_autoescape(["j2"]),
                      undefined=StrictUndefined)
    html = env.get_template("data_docs.html.j2").render(summary=summary, results=results, suites=suites,
                                                        quarantine=summary.get("quarantine_share", {}))
    gx_index.write_text(html, encoding="utf-8")  # inside the stage's staging folder: renamed into place whole
    return gx_index


def quarantine_table(manifest: pd.DataFrame, quarantine: pd.DataFrame, previous: dict[str, float]) -> pd.DataFrame:
    """Per source: files seen, quarantined, their share, and its rise since the last accepted run
    (an outage that quarantines most of a bucket shows up here even when what is left validates)."""
    rows = []
    for source in sorted(set(manifest["source"]) | set(quarantine["source"])):
        kept = manifest.loc[manifest["source"] == source, "source_uri"].nunique()
        bad = int((quarantine["source"] == source).sum())
        share = bad / (kept + bad) if kept + bad else 0.0
        before = previous.get(source, share)
        rows.append({"source": source, "files": kept + bad, "quarantined": bad, "share": share,
                     "previous_share": before, "increase": share - before})
    return pd.DataFrame(rows, columns=["source", "files", "quarantined", "share", "previous_share", "increase"])


def _read_quarantine(clips_dir: Path) -> pd.DataFrame:
    path = clips_dir / QUARANTINE
    frame = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    return frame if len(frame.columns) else pd.DataFrame(columns=["source", "uri", "reason"])


def _previous_shares(history: Path | None) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(history.read_text()).items()} if history else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _summary(results: list[dict[str, Any]], critical: list[dict[str, Any]], *, rows: int, quarantine: pd.DataFrame,
             seconds: float) -> dict[str, Any]:
    """The stage's summary (its metrics): how many checks passed, which failed, each source's quarantined share."""
    warnings = [r for r in results if not r["success"] and r["severity"] != "critical"]
    return {
        "success": not critical, "expectations": len(results),
        "passed": sum(r["success"] for r in results), "critical_failures": len(critical),
        "warnings": len(warnings), "rows": rows,
        "quarantine_share": {r["source"]: round(float(r["share"]), 4) for r in quarantine.to_dict("records")},
        "failed": [f"{r['check']} ({r['unexpected_count']} of {r['element_count']} rows)" for r in critical + warnings],
        "seconds": seconds,
    }


def _broken(r: dict[str, Any]) -> str:
    """A failed check in the stage's error line: its expectation, column and how many rows broke it."""
    column = f", column {r['column']}" if r["column"] else ""
    exception = f" ({r['exception']})" if r["exception"] else ""
    return f"{r['check']} [{r['expectation']}{column}]: {r['unexpected_count']} of {r['element_count']} rows broke it{exception}"


def run_validate(cfg: MelforgeConfig, clips_dir: Path, out_dir: Path, *,
                 history: Path | None = None) -> dict[str, Any]:
    """Run the suite; ``history`` keeps each source's quarantined share from the last run that
    passed, the baseline of the quarantine_increase check."""
    started = time.perf_counter()
    manifest = read_manifest(clips_dir)
    label_columns = sorted(c for c in manifest.columns if c.startswith(LABEL_PREFIX))
    checks = build_checks(cfg, label_columns, allowed_label_values(cfg))
    quarantine = quarantine_table(manifest, _read_quarantine(clips_dir), _previous_shares(history))
    tables = {"manifest": manifest, "quarantine": quarantine}
    if label_columns:
        tables["class_counts"] = class_counts(manifest, cfg, label_columns)
    with staged_directory(out_dir) as tmp:
        results = _run_gx(tables, checks, tmp / DOCS)
        failures = [{"check": r["check"], "severity": r["severity"], "id": i}
                    for r in results if not r["success"] for i in r["unexpected_ids"]]
        pd.DataFrame(failures, columns=["check", "severity", "id"]).to_csv(tmp / FAILURES, index=False)
        critical = [r for r in results if not r["success"] and r["severity"] == "critical"]
        summary = _summary(results, critical, rows=int(len(manifest)), quarantine=quarantine,
                           seconds=time.perf_counter() - started)
        atomic_write_json(tmp / RESULTS, {"summary": summary, "results": results})
        write_offline_index(tmp / DOCS, summary, results)
    if critical:
        names = "; ".join(_broken(r) for r in critical)
        raise ValidationFailed(f"validation failed on {clips_dir / 'manifest.parquet'}: {names}. "
                               f"Details: {out_dir / RESULTS}, {out_dir / FAILURES}, Data Docs {out_dir / DOCS / 'index.html'}")
    if history is not None:
        atomic_write_json(history, dict(zip(quarantine["source"], quarantine["share"].astype(float))))
    return summary
