"""Every decision about the ``champion`` alias, appended and never overwritten.

MLflow keeps only where an alias points now (its users' long-standing ask, mlflow issue 2169, is a
history of which version served when). Each gate decision and each rollback is one tag on the
registered model, ``melforge.history.<NNNN>`` holding a compact JSON record: when, what happened,
the candidate, the champion before and after, the metric values with their intervals, the reason
and the run. Keys only grow, so no record is ever rewritten; the records are read back in order.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from components.evaluate.metrics import MetricValue

HISTORY_PREFIX = "melforge.history."
HISTORY_KEY = re.compile(r"^melforge\.history\.(\d+)$")
PROMOTED, REJECTED, NO_CHANGE, ROLLED_BACK = "promoted", "rejected", "no change", "rolled back"
ACTIONS = (PROMOTED, REJECTED, NO_CHANGE, ROLLED_BACK)
MOVED = (PROMOTED, ROLLED_BACK)  # the actions that move the alias


def metric_record(value: MetricValue | None) -> list[float] | None:
    """[value, low, high] of a metric, or None."""
    return None if value is None else [value.value, value.low, value.high]


def make_entry(action: str, *, candidate: str | None, before: str | None, after: str | None, reason: str,
               metric: str | None = None, candidate_value: MetricValue | None = None,
               champion_value: MetricValue | None = None, run_id: str | None = None,
               at: datetime | None = None) -> dict[str, Any]:
    """One decision. Versions are strings ("3") or None (no champion)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown decision {action!r}; expected one of {', '.join(ACTIONS)}")
    when = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="seconds")
    return {"at": when, "action": action, "candidate": candidate, "before": before, "after": after,
            "metric": metric, "candidate_value": metric_record(candidate_value),
            "champion_value": metric_record(champion_value), "reason": reason, "run_id": run_id}


def read_history(client, name: str) -> list[dict[str, Any]]:
    """The model's decisions, oldest first; a record that is not JSON is shown as its raw text."""
    tags = client.get_registered_model(name).tags or {}
    numbered = sorted((int(m.group(1)), value) for key, value in tags.items() if (m := HISTORY_KEY.match(key)))
    out = []
    for seq, value in numbered:
        try:
            record = json.loads(value)
        except json.JSONDecodeError:
            record = {"action": "unreadable", "reason": value}
        out.append({"seq": seq, **record})
    return out


def append_entry(client, name: str, entry: dict[str, Any]) -> int:
    """Store ``entry`` under the next free number and return it. Call under the promotion lock
    (components/registry/promotion_lock.py), which also orders the alias moves."""
    tags = client.get_registered_model(name).tags or {}
    seq = 1 + max((int(m.group(1)) for key in tags if (m := HISTORY_KEY.match(key))), default=0)
    client.set_registered_model_tag(name, f"{HISTORY_PREFIX}{seq:04d}", json.dumps(entry, separators=(",", ":")))
    return seq


def tag_version(client, name: str, version: str, *, champion: bool, reason: str, before: str | None) -> None:
    """A version's own record of the latest decision that changed something about it (the gate's
    or a rollback's): ``melforge.promotion``, ``melforge.promotion_reason``, ``melforge.previous_champion``."""
    for key, value in {"melforge.promotion": "champion" if champion else "rejected",
                       "melforge.promotion_reason": reason[:5000],
                       "melforge.previous_champion": before or "none"}.items():
        client.set_model_version_tag(name, version, key, value)


def previous_champion(history: list[dict[str, Any]], current: str | None) -> str | None:
    """The version that held ``champion`` before ``current`` took it: the ``before`` of the latest
    move onto ``current``; None when there was none."""
    for entry in reversed(history):
        if entry.get("action") in MOVED and entry.get("after") == current:
            return entry.get("before")
    return None


def _value(record: list[float] | None) -> str:
    return "" if not record else f"{record[0]:.4g} [{record[1]:.4g}, {record[2]:.4g}]"


def history_rows(history: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The records as table rows of plain strings (what `melforge champion` prints)."""
    return [{"#": str(e["seq"]), "when": str(e.get("at", "")), "decision": str(e.get("action", "")),
             "candidate": f"v{e['candidate']}" if e.get("candidate") else "",
             "champion": f"{'v' + e['before'] if e.get('before') else 'none'} -> "
                         f"{'v' + e['after'] if e.get('after') else 'none'}",
             "metric": f"{e['metric']} {_value(e.get('candidate_value'))}" if e.get("metric") else "",
             "reason": str(e.get("reason", ""))} for e in history]
