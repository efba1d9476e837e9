"""Which model to serve: the cheapest one, of any family, within tolerance of the best (the
evaluate stage decides; the registry reads its choice)."""

from __future__ import annotations

from typing import Any

from components.evaluate.quality import lower_is_better, within


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
    close = [r for r in candidates if within(value[id(r)], b, tolerance, metric)]
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
