"""Pure decisions, no MLflow: which model to serve (across families) and whether a challenger becomes champion."""

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


def servable_rows(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Rows that are a registered model at its own sampling cost: the teacher at its full step count,
    every student, every GAN; only successful evaluations that have ``metric``."""
    ok = [r for r in rows if r["status"] == "ok" and metric in r["metrics"]]
    teachers = [r for r in ok if r["kind"] == "teacher"]
    full = max((r["steps"] for r in teachers), default=None)
    return [r for r in ok if r["kind"] != "teacher" or r["steps"] == full]


def serving_cost(row: dict[str, Any], measured: bool) -> float:
    """Seconds of compute per second of audio when every candidate was timed, else network evaluations per clip."""
    return float(row["rtf"]) if measured else float(row.get("network_evaluations", row["steps"]))


def choose_served(rows: list[dict[str, Any]], metric: str, tolerance: float) -> dict[str, Any]:
    """The cheapest servable model, whatever its family (diffusion teacher, student, GAN), whose
    ``metric`` is within ``tolerance`` (relative) of the best servable model's. Cheapest: lowest real-time
    factor when every candidate has one, else fewest network evaluations per clip."""
    candidates = servable_rows(rows, metric)
    if not candidates:
        raise ValueError(f"no successful evaluation with metric {metric!r}; cannot choose a model to serve")
    value = {id(r): r["metrics"][metric]["value"] for r in candidates}
    best = (min if lower_is_better(metric) else max)(candidates, key=lambda r: value[id(r)])
    b = value[id(best)]
    close = [r for r in candidates if _within(value[id(r)], b, tolerance, metric)]
    measured = all("rtf" in r for r in close)
    chosen = min(close, key=lambda r: (serving_cost(r, measured), r["steps"], r is not best))
    v = value[id(chosen)]
    cost = f"RTF {chosen['rtf']:.3g}" if measured else f"{serving_cost(chosen, False):g} network evaluations per clip"
    name = chosen["model"] if "model" in chosen else chosen["name"].split("@")[0]
    reason = (f"{chosen['name']} is the best on {metric} ({v:.4g})" if chosen is best else
              f"{chosen['name']} has {metric} {v:.4g} vs the best's {b:.4g} ({best['name']}): within {tolerance:.0%}")
    return {"metric": metric, "tolerance": tolerance, "best_model": best["name"], "best_value": b,
            "model": name, "steps": chosen["steps"], "family": chosen.get("family", "diffusion"), "value": v,
            "cost": cost, "reason": f"{reason}, and the cheapest such model ({cost})"}


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
