"""The expectation suite over the clip manifest, built from config (pure GX objects, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import great_expectations.expectations as gxe

from components.config import MelforgeConfig


@dataclass(frozen=True)
class Check:
    """One named expectation and the table it applies to ("manifest", "class_counts" or
    "quarantine": one row per source with its quarantined share and its rise since the last
    accepted run)."""

    name: str
    table: str
    expectation: gxe.Expectation


def build_checks(cfg: MelforgeConfig, label_columns: list[str], allowed_labels: dict[str, list[str]]) -> list[Check]:
    """Every check of the suite; names listed in ``validate.warn_only`` get severity 'warning'."""
    v, a = cfg.validate_, cfg.audio

    def sev(name: str) -> str:
        return "warning" if name in v.warn_only else "critical"

    checks = [
        Check("row_count", "manifest", gxe.ExpectTableRowCountToBeBetween(min_value=1, severity=sev("row_count"))),
        Check("sample_rate", "manifest", gxe.ExpectColumnValuesToBeInSet(
            column="sample_rate", value_set=[a.sample_rate], severity=sev("sample_rate"))),
        Check("duration", "manifest", gxe.ExpectColumnValuesToBeBetween(
            column="duration_seconds", min_value=v.min_duration_seconds, max_value=v.max_duration_seconds,
            severity=sev("duration"))),
        Check("finite", "manifest", gxe.ExpectColumnValuesToBeBetween(
            column="nonfinite", min_value=0, max_value=0, severity=sev("finite"))),
        Check("peak", "manifest", gxe.ExpectColumnValuesToBeBetween(
            column="peak", min_value=0.0, max_value=1.0, severity=sev("peak"))),
        Check("rms", "manifest", gxe.ExpectColumnValuesToBeBetween(
            column="rms_db", min_value=a.silence_floor_db, severity=sev("rms"))),
        Check("unique_clip_ids", "manifest", gxe.ExpectColumnValuesToBeUnique(
            column="clip_id", severity=sev("unique_clip_ids"))),
    ]
    for column in label_columns:
        name = column.removeprefix("label_")
        if name in allowed_labels:
            checks.append(Check(f"labels:{name}", "manifest", gxe.ExpectColumnValuesToBeInSet(
                column=column, value_set=allowed_labels[name],
                severity="warning" if "labels" in v.warn_only else "critical")))
    checks.append(Check("quarantine_share", "quarantine", gxe.ExpectColumnValuesToBeBetween(
        column="share", max_value=v.max_quarantine_fraction, severity=sev("quarantine_share"))))
    checks.append(Check("quarantine_increase", "quarantine", gxe.ExpectColumnValuesToBeBetween(
        column="increase", max_value=v.max_quarantine_increase, severity=sev("quarantine_increase"))))
    if label_columns:
        checks.append(Check("min_clips_per_class", "class_counts", gxe.ExpectColumnValuesToBeBetween(
            column="clips", min_value=v.min_clips_per_class, severity=sev("min_clips_per_class"))))
    return checks
