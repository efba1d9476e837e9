"""How far a model is from the real data, against the real-vs-real floor, in numbers and in words.

Distances (FAD, KID) are compared as a ratio to the floor: 1.0 is as close as two halves of the real
clips are to each other. The Inception Score is compared as a fraction of the real clips' IS: 1.0
is as confident and as varied as real data. The promotion gate and the report use the same ratios.
"""

from __future__ import annotations

from typing import Any

# A KID floor sits near 0 (it is unbiased); ratios to it are meaningless, so KID is compared with
# the floor's upper 95% bound, never with less than this.
KID_FLOOR_MIN = 1e-4


def lower_is_better(metric: str) -> bool:
    """FAD and KID are distances; the Inception Score (is_*) grows with quality."""
    return not metric.startswith("is_")


def floor_ratio(metric: str, value: float, floor: dict[str, float]) -> float:
    """value / floor for distances (>= 1, lower is better); value / real IS for is_* (<= 1 usually)."""
    if metric.startswith("kid"):
        return value / max(floor["high"], KID_FLOOR_MIN)
    reference = floor["value"]
    return value / reference if reference > 0 else float("inf")


def describe(metric: str, value: float, floor: dict[str, float]) -> str:
    """Words for a reader: 'near the real floor (FAD 1.2x floor)', 'far from data (IS 31% of real)'."""
    ratio = floor_ratio(metric, value, floor)
    name = metric.split("_")[0].upper()
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
            primary: str) -> dict[str, Any]:
    """Ratios to the floor for every metric that has one, and the sentence for the primary metric."""
    ratios = {k: floor_ratio(k, m["value"], floor[k]) for k, m in metrics.items() if k in floor}
    text = describe(primary, metrics[primary]["value"], floor[primary]) if primary in metrics and primary in floor \
        else "not scored"
    return {"floor_ratios": ratios, "verdict": text}


def meets_quality_floor(metric: str, value: float, floor: dict[str, float], *, max_floor_ratio: float,
                        min_real_ratio: float) -> tuple[bool, str]:
    """The absolute gate: a distance within ``max_floor_ratio`` of the floor, an IS of at least
    ``min_real_ratio`` of the real clips'. Returns (passes, why in words)."""
    ratio = floor_ratio(metric, value, floor)
    if lower_is_better(metric):
        ok = ratio <= max_floor_ratio
        return ok, f"{metric} {value:.4g} is {ratio:.2f}x the real-vs-real floor (limit {max_floor_ratio:g}x)"
    ok = ratio >= min_real_ratio
    return ok, f"{metric} {value:.4g} is {ratio:.0%} of the real clips' (needs >= {min_real_ratio:.0%})"


def better_by(value: float, reference: float, fraction: float, metric: str) -> bool:
    """Is ``value`` better than ``reference`` by at least ``fraction`` of |reference|?"""
    slack = fraction * abs(reference)
    return value <= reference - slack if lower_is_better(metric) else value >= reference + slack


def within(value: float, reference: float, fraction: float, metric: str) -> bool:
    """Is ``value`` no worse than ``reference`` by more than ``fraction`` of |reference|?"""
    slack = fraction * abs(reference)
    return value <= reference + slack if lower_is_better(metric) else value >= reference - slack
