"""One built-in example, shared by the data sets' renderers and the catalogue in ``datasets``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BuiltinItem:
    """One built-in example: a stable id, what renders it, and its labels."""

    item_id: str
    spec: dict[str, object]
    labels: dict[str, str] = field(default_factory=dict)
