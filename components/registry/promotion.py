"""Pure decisions, no MLflow: which model to serve and whether a challenger becomes champion."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from components.evaluate.metrics import MetricValue
from components.evaluate.quality import lower_is_better, meets_quality_floor


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def _better_by(value: float, reference: float, fraction: float, metric: str) -> bool:
    """Is ``value`` better than ``reference`` by at least ``fraction`` of |reference|?"""
    slack = fraction * abs(reference)
    return value <= reference - slack if lower_is_better(metric) else value >= reference + slack


def _within(value: float, reference: float, fraction: float, metric: str) -> bool:
    """Is ``value`` no worse than ``reference`` by more than ``fraction`` of |reference|?"""
    slack = fraction * abs(reference)
    return value <= reference + slack if lower_is_better(metric) else value >= reference - slack


def choose_served(rows: list[dict[str, Any]], metric: str, tolerance: float) -> dict[str, Any]:
    """The fewest-step distilled student whose ``metric`` is within ``tolerance`` (relative) of the
    teacher at its full step count; the teacher itself when none is."""
    teachers = [r for r in rows if r["kind"] == "teacher" and r["status"] == "ok" and metric in r["metrics"]]
    if not teachers:
        raise ValueError(f"no successful teacher evaluation with metric {metric!r}; cannot choose a model to serve")
    teacher = max(teachers, key=lambda r: r["steps"])
    t = teacher["metrics"][metric]["value"]
    ok = [r for r in rows if r["kind"] == "student" and r["status"] == "ok" and metric in r["metrics"]
          and _within(r["metrics"][metric]["value"], t, tolerance, metric)]
    base = {"metric": metric, "tolerance": tolerance, "teacher_value": t}
    if not ok:
        return {**base, "model": teacher["name"].split("@")[0], "steps": teacher["steps"], "value": t,
                "reason": f"no student within {tolerance:.0%} of the teacher's {metric} ({t:.4g}); serving the teacher"}
    best = min(ok, key=lambda r: r["steps"])
    v = best["metrics"][metric]["value"]
    return {**base, "model": best["name"], "steps": best["steps"], "value": v,
            "reason": f"{best['name']} ({best['steps']} steps) has {metric} {v:.4g} vs the teacher's {t:.4g} "
                      f"({teacher['steps']} steps): within {tolerance:.0%}"}


def promotion_decision(candidate: MetricValue | None, champion: MetricValue | None, *, metric: str,
                       min_improvement: float, require_disjoint: bool, candidate_error: str | None = None,
                       floor: dict[str, float] | None = None, max_floor_ratio: float = 3.0,
                       min_real_ratio: float = 0.5) -> Decision:
    """Challenger -> champion only if it is good in absolute terms (within the quality floor: see
    :func:`meets_quality_floor`, when the real-vs-real ``floor`` of ``metric`` is known) and really
    better than the champion: by ``min_improvement`` (relative) on ``metric`` and, if required, with
    non-overlapping 95% intervals. A failed evaluation never wins."""
    if candidate_error:
        return Decision(False, f"evaluation failed ({candidate_error}); champion unchanged")
    if candidate is None or not math.isfinite(candidate.value):
        return Decision(False, f"candidate has no finite {metric}; champion unchanged")
    if floor is not None:
        ok, why = meets_quality_floor(metric, candidate.value, floor, max_floor_ratio=max_floor_ratio,
                                      min_real_ratio=min_real_ratio)
        if not ok:
            return Decision(False, f"below the quality floor: {why}; champion unchanged")
    if champion is None:
        return Decision(True, f"no champion yet; candidate {metric} = {candidate.value:.4g}")
    cv, hv = candidate.value, champion.value
    direction = "lower" if lower_is_better(metric) else "higher"
    if not _better_by(cv, hv, min_improvement, metric):
        return Decision(False, f"{metric} {cv:.4g} is not {min_improvement:.0%} {direction} than the champion's "
                               f"{hv:.4g}; champion kept")
    if require_disjoint and candidate.overlaps(champion):
        return Decision(False, f"{metric} {cv:.4g} [{candidate.low:.4g}, {candidate.high:.4g}] beats the champion's "
                               f"{hv:.4g} [{champion.low:.4g}, {champion.high:.4g}] but the 95% intervals overlap; "
                               "champion kept")
    return Decision(True, f"{metric} {cv:.4g} [{candidate.low:.4g}, {candidate.high:.4g}] beats the champion's "
                          f"{hv:.4g} [{champion.low:.4g}, {champion.high:.4g}] by >= {min_improvement:.0%} "
                          "with disjoint intervals" if require_disjoint else
                          f"{metric} {cv:.4g} beats the champion's {hv:.4g} by >= {min_improvement:.0%}")
