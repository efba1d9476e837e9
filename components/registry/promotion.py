"""The champion gate, a pure decision (no MLflow): does a challenger become champion? Which model is
served is evaluation's choice (:mod:`components.evaluate.serving`); the registry only reads it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.evaluate.metrics import MetricValue
from components.metric_table import lower_is_better
from components.evaluate.quality import better_by


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def promotion_decision(candidate: MetricValue | None, champion: MetricValue | None, *, metric: str,
                       min_improvement: float, require_disjoint: bool, candidate_error: str | None = None,
                       quality: dict | None = None) -> Decision:
    """Challenger -> champion only if it is good in absolute terms (``quality``: the evaluation's
    :func:`components.evaluate.quality.gate` outcome for it: primary metric near the floor, enough
    diversity, no memorisation flag) and really better than the champion: by ``min_improvement``
    (relative) on ``metric`` and, if required, with non-overlapping 95% intervals. A failed
    evaluation never wins."""
    if candidate_error:
        return Decision(False, f"evaluation failed ({candidate_error}); champion unchanged")
    if candidate is None or not math.isfinite(candidate.value):
        return Decision(False, f"candidate has no finite {metric}; champion unchanged")
    if quality is not None and not quality["passes"]:
        why = "; ".join(quality["reasons"][f] for f in quality["failed"])
        return Decision(False, f"below the quality floor ({', '.join(quality['failed'])}): {why}; champion unchanged")
    if champion is None:
        return Decision(True, f"no champion yet; candidate {metric} = {candidate.value:.4g}")
    cv, hv = candidate.value, champion.value
    direction = "lower" if lower_is_better(metric) else "higher"
    if not better_by(cv, hv, min_improvement, metric):
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
