"""A model version's metrics as tags: one machine record and one line a person reads.

``melforge.metrics`` holds every metric of the version's evaluation row as compact JSON
(``{"fad_classifier": [value, low, high, n_a, n_b], ...}``), ``melforge.summary`` the headline in
words, ``melforge.quality`` the gate's verdict. The full evaluation lives on the evaluate run, which
``melforge.evaluation_run`` names. Versions registered before this (one ``metric.<name>`` tag with
``.ci95`` and ``.n`` siblings per metric, about 30 tags) are still read.
"""

from __future__ import annotations

import json
from typing import Any

from components.evaluate.metrics import MetricValue

METRICS_TAG, SUMMARY_TAG = "melforge.metrics", "melforge.summary"
HEADLINE = ("recall_classifier", "fad_crepe", "level_in_range", "voiced_in_range")


def metric_tags(row: dict[str, Any], primary: str | None = None) -> dict[str, str]:
    """The tags of one evaluation row (``primary``: the metric the summary leads with)."""
    record = {name: [m["value"], m["low"], m["high"], m["n_a"], m["n_b"]] for name, m in row["metrics"].items()}
    if "rtf" in row:
        record["rtf"] = [row["rtf"]]
    tags = {METRICS_TAG: json.dumps(record, separators=(",", ":"))}
    lead = [primary] if primary in row["metrics"] else []
    parts = []
    for name in lead + [n for n in HEADLINE if n in row["metrics"] and n not in lead]:
        m = row["metrics"][name]
        ratio = row.get("floor_ratios", {}).get(name)
        parts.append(f"{name} {m['value']:.4g} [{m['low']:.4g}, {m['high']:.4g}]" +
                     (f" ({ratio:.2f}x the floor)" if ratio is not None and name == primary else ""))
    if "rtf" in row:
        parts.append(f"RTF {row['rtf']:.3g}")
    if parts:
        tags[SUMMARY_TAG] = "; ".join(parts)[:5000]
    if "verdict" in row:
        tags["melforge.quality"] = row["verdict"][:5000]
    return tags


def recorded_metrics(tags: dict[str, str]) -> dict[str, MetricValue]:
    """Every metric a version records (RTF excluded: it measures the machine, not the model)."""
    if METRICS_TAG in tags:
        record = json.loads(tags[METRICS_TAG])
        return {name: MetricValue(*(v[:3]), int(v[3]), int(v[4])) for name, v in record.items() if len(v) == 5}
    out = {}  # versions registered before the compact record
    for key in tags:
        if key.startswith("metric.") and key.count(".") == 1 and key != "metric.rtf":
            name = key.removeprefix("metric.")
            low, high = (float(v) for v in tags.get(f"{key}.ci95", f"{tags[key]},{tags[key]}").split(","))
            n_a, n_b = (int(v) for v in tags.get(f"{key}.n", "0,0").split(","))
            out[name] = MetricValue(float(tags[key]), low, high, n_a, n_b)
    return out


def metric_from_tags(tags: dict[str, str], name: str) -> MetricValue | None:
    """One recorded metric, or None."""
    return recorded_metrics(tags).get(name)
