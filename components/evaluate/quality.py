"""How far a model is from the real data, against the floor, in numbers and in words, and the one
rule (:func:`gate`) that the champion gate, the verdict words and the controls check all apply.

Distances (FAD, FAD∞, KID) are compared as a ratio to the floor: 1.0 is as close as n training
clips are to the evaluation set. IS, precision, recall, density and coverage are compared as a
fraction of the floor's: 1.0 is as confident, faithful or varied as real clips. Which way each
metric points is declared once, in :mod:`components.metric_table`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from components.metric_table import lower_is_better, metric_info

# A KID floor sits near 0 (it is unbiased); ratios to it are meaningless, so KID is compared with
# the floor's upper 95% bound, never with less than this.
KID_FLOOR_MIN = 1e-4
RATIO_FLOOR_MIN = 1e-6
# a floor whose 95% interval is wider than +-50% of its value cannot carry a ratio
MAX_FLOOR_SPREAD = 0.5


def floor_ratio(metric: str, value: float, floor: dict[str, float]) -> float:
    """value / floor (distances: >= 1 usually, lower is better; fractions: <= 1 usually, higher is better)."""
    compare = metric_info(metric).compare
    if compare == "kid":
        return value / max(floor["high"], KID_FLOOR_MIN)
    if compare not in ("ratio", "fraction"):
        raise ValueError(f"{metric} is not compared as a ratio to the floor")
    # a floor of 0 (a Fréchet distance clipped at 0 when n is tiny) cannot carry a ratio: divide by a
    # tiny positive number instead, so the ratio is huge and finite, and the verdict says "no verdict"
    return value / max(floor["value"], RATIO_FLOOR_MIN)


def carries_ratio(metric: str, floor: dict[str, float]) -> bool:
    """Is a ratio to this floor worth reporting? KID always (it uses the upper bound); a distance or
    fraction only when the floor is above 0 (FAD∞ extrapolated to infinite n often lands below 0 on
    small sets, and a ratio to it would be a meaningless -10^7)."""
    compare = metric_info(metric).compare
    return compare == "kid" or (compare in ("ratio", "fraction") and floor["value"] > 0)


def floor_spread(floor: dict[str, float]) -> float:
    """Half the floor's 95% interval as a fraction of its value."""
    if floor["value"] <= 0:
        return float("inf")
    return (floor["high"] - floor["low"]) / 2 / floor["value"]


def floor_is_reliable(metric: str, floor: dict[str, float]) -> bool:
    """Can a ratio to this floor mean anything? Not when its interval is wider than +-50% of it
    (too few clips). KID is exempt: it is compared with the floor's upper bound, not its value."""
    return metric_info(metric).compare == "kid" or floor_spread(floor) <= MAX_FLOOR_SPREAD


@dataclass(frozen=True)
class GateSettings:
    """What a model must show to be called close to the data, and to become champion."""

    primary: str
    max_floor_ratio: float = 3.0
    min_real_ratio: float = 0.5
    diversity_metric: str = "recall"
    min_diversity_ratio: float = 0.5
    memorised_flag: float = 0.25
    duplicated_flag: float = 0.25

    @classmethod
    def from_config(cls, cfg) -> "GateSettings":
        r = cfg.registry
        return cls(primary=r.primary_metric, max_floor_ratio=r.max_floor_ratio, min_real_ratio=r.min_real_ratio,
                   diversity_metric=r.diversity_metric, min_diversity_ratio=r.min_diversity_ratio,
                   memorised_flag=cfg.eval.memorised_flag, duplicated_flag=cfg.eval.duplicated_flag)


def _value(metrics: dict[str, Any], name: str) -> float | None:
    m = metrics.get(name)
    if m is None:
        return None
    value = m["value"] if isinstance(m, dict) else m.value
    return value if math.isfinite(value) else None


def gate(metrics: dict[str, dict[str, float]], floor: dict[str, dict[str, float]], s: GateSettings) -> dict[str, Any]:
    """The quality floor, measure by measure: the primary metric within ``max_floor_ratio`` of the
    floor (an IS at least ``min_real_ratio`` of it), the diversity measure at least
    ``min_diversity_ratio`` of the floor's, no duplication flag (clips that are near-copies of each
    other) and no memorisation flag (clips that are near-copies of training clips).

    Returns {passes, failed: the measures that refused it, reasons: {measure: one sentence}}."""
    failed: list[str] = []
    reasons: dict[str, str] = {}
    primary = _value(metrics, s.primary)
    if primary is None or s.primary not in floor:
        failed.append(s.primary)
        reasons[s.primary] = f"{s.primary} was not measured"
    else:
        ratio = floor_ratio(s.primary, primary, floor[s.primary])
        if lower_is_better(s.primary):
            ok = ratio <= s.max_floor_ratio
            reasons[s.primary] = f"{s.primary} {primary:.4g} is {ratio:.2f}x the floor (limit {s.max_floor_ratio:g}x)"
        else:
            ok = ratio >= s.min_real_ratio
            reasons[s.primary] = f"{s.primary} {primary:.4g} is {ratio:.0%} of the floor's (needs >= {s.min_real_ratio:.0%})"
        if not ok:
            failed.append(s.primary)
    diversity = f"{s.diversity_metric}_classifier"
    value = _value(metrics, diversity)
    if value is not None and diversity in floor:
        ratio = floor_ratio(diversity, value, floor[diversity])
        reasons[diversity] = f"{diversity} {value:.3f} is {ratio:.0%} of the floor's (needs >= {s.min_diversity_ratio:.0%})"
        if ratio < s.min_diversity_ratio:
            failed.append(diversity)
    flags = (("duplicated", s.duplicated_flag, "of its clips have a near-copy among its own clips"),
             ("memorised", s.memorised_flag, "of its clips are nearer a training clip than 95% of evaluation clips are"))
    for name, limit, what in flags:  # real clips: 5% each, by construction
        share = _value(metrics, name)
        if share is not None:
            reasons[name] = f"{share:.0%} {what} (flag above {limit:.0%}; unseen real clips: 5%)"
            if share > limit:
                failed.append(name)
    return {"passes": not failed, "failed": failed, "reasons": reasons}


def describe(metric: str, value: float, floor: dict[str, float]) -> str:
    """Words for a reader: 'near the real floor (FAD 1.2x floor)', 'far from data (IS 31% of real)'."""
    ratio = floor_ratio(metric, value, floor)
    name = metric_info(metric).label
    if lower_is_better(metric):
        shown = f"{name} {ratio:.1f}x floor"
        words = ("near the real floor" if ratio <= 1.5 else "close to the data" if ratio <= 3 else
                 "far from data" if ratio <= 10 else "very far from data (noise-like)")
    else:
        shown = f"{name} {ratio:.0%} of real"
        words = ("near the real floor" if ratio >= 0.8 else "close to the data" if ratio >= 0.5 else
                 "far from data" if ratio >= 0.3 else "very far from data (noise-like)")
    return f"{words} ({shown})"


def verdict(metrics: dict[str, dict[str, float]], floor: dict[str, dict[str, float]],
            settings: GateSettings) -> dict[str, Any]:
    """Ratios to the floor for every metric that has one, the gate's outcome, and the sentence: what
    refused it when the gate does; else no verdict at all when the floor is too uncertain to carry a
    ratio; else the primary metric's words."""
    ratios = {k: floor_ratio(k, m["value"], floor[k]) for k, m in metrics.items()
              if k in floor and carries_ratio(k, floor[k])}
    outcome = gate(metrics, floor, settings)
    primary = settings.primary
    if primary not in metrics or primary not in floor:
        text = "not scored"
    elif not outcome["passes"]:
        text = "refused: " + "; ".join(outcome["reasons"][f] for f in outcome["failed"])
    elif not floor_is_reliable(primary, floor[primary]):
        text = (f"no verdict: the floor's {primary} interval is ±{floor_spread(floor[primary]):.0%} of its value at "
                f"n = {floor[primary].get('n_a')} (more clips needed: eval.samples, eval.fraction)")
    else:
        text = describe(primary, metrics[primary]["value"], floor[primary])
    return {"floor_ratios": ratios, "verdict": text, "gate": outcome}


def better_by(value: float, reference: float, fraction: float, metric: str) -> bool:
    """Is ``value`` better than ``reference`` by at least ``fraction`` of |reference|?"""
    slack = fraction * abs(reference)
    return value <= reference - slack if lower_is_better(metric) else value >= reference + slack


def within(value: float, reference: float, fraction: float, metric: str) -> bool:
    """Is ``value`` no worse than ``reference`` by more than ``fraction`` of |reference|?"""
    slack = fraction * abs(reference)
    return value <= reference + slack if lower_is_better(metric) else value >= reference - slack
