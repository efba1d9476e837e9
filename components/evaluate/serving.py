"""Which model to serve: the cheapest one, of any family, within tolerance of the best (the
evaluate stage decides; the registry reads its choice)."""

from __future__ import annotations

from typing import Any

from components.metric_table import lower_is_better
from components.evaluate.quality import within


def servable_rows(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Rows that are a registered model at its own sampling cost: the teacher at its full step count,
    every student, every GAN (never a control); only successful evaluations that have ``metric``."""
    ok = [r for r in rows if r["status"] == "ok" and metric in r["metrics"] and r["kind"] != "control"]
    teachers = [r for r in ok if r["kind"] == "teacher"]
    full = max((r["steps"] for r in teachers), default=None)
    return [r for r in ok if r["kind"] != "teacher" or r["steps"] == full]


def serving_cost(row: dict[str, Any]) -> float:
    """Network evaluations per clip: deterministic, unlike a wall-clock time on a shared machine (a
    loaded machine once timed an 8-step student 15x slower than a 4-step one)."""
    return float(row.get("network_evaluations", row["steps"]))


def level_ok(row: dict[str, Any], min_level_in_range: float) -> bool:
    """Whether the row's clips sit at the real clips' level often enough to be served: its
    ``level_in_range`` share (noise floor and peak inside the evaluation clips' 5-95% range) is at least
    ``min_level_in_range``. A row without the statistic (no audio measured) is not held back by it."""
    share = row["metrics"].get("level_in_range")
    return share is None or share["value"] >= min_level_in_range


def _level_reason(chosen: dict[str, Any], close: list[dict[str, Any]], any_level: bool, min_level_in_range: float) -> str:
    """What the level requirement did to the choice, for its reason."""
    cheaper = [r["name"] for r in close if serving_cost(r) < serving_cost(chosen)]
    if not any_level and min_level_in_range > 0:
        return f"; no model that close has {min_level_in_range:.0%} of its clips at the real level"
    if cheaper:
        return f" with {min_level_in_range:.0%} of its clips at the real level (cheaper {', '.join(cheaper)}: fewer)"
    return ""


def choose_served(rows: list[dict[str, Any]], metric: str, tolerance: float,
                  min_level_in_range: float = 0.0) -> dict[str, Any]:
    """The cheapest servable model, whatever its family (diffusion teacher, student, GAN), whose
    ``metric`` is within ``tolerance`` (relative) of the best servable model's and whose clips lie in
    the real clips' level range at least ``min_level_in_range`` of the time (when none of the close
    models does, the cheapest close one, and the reason says so). Cheapest: fewest network evaluations
    per clip, then the lower real-time factor (reported beside it)."""
    candidates = servable_rows(rows, metric)
    if not candidates:
        raise ValueError(f"no successful evaluation with metric {metric!r}; cannot choose a model to serve")
    value = {id(r): r["metrics"][metric]["value"] for r in candidates}
    best = (min if lower_is_better(metric) else max)(candidates, key=lambda r: value[id(r)])
    b = value[id(best)]
    close = [r for r in candidates if within(value[id(r)], b, tolerance, metric)]
    level = [r for r in close if level_ok(r, min_level_in_range)]
    chosen = min(level or close, key=lambda r: (serving_cost(r), r.get("rtf", float("inf")), r is not best))
    v = value[id(chosen)]
    cost = f"{serving_cost(chosen):g} network evaluations per clip" + \
        (f", RTF {chosen['rtf']:.3g}" if "rtf" in chosen else "")
    name = chosen["model"] if "model" in chosen else chosen["name"].split("@")[0]
    reason = (f"{chosen['name']} is the best on {metric} ({v:.4g})" if chosen is best else
              f"{chosen['name']} has {metric} {v:.4g} vs the best's {b:.4g} ({best['name']}): within {tolerance:.0%}")
    reason += f", and the cheapest such model ({cost})" + _level_reason(chosen, close, bool(level), min_level_in_range)
    return {"metric": metric, "tolerance": tolerance, "min_level_in_range": min_level_in_range,
            "best_model": best["name"], "best_value": b, "model": name, "steps": chosen["steps"],
            "family": chosen.get("family", "diffusion"), "value": v, "cost": cost, "reason": reason}
