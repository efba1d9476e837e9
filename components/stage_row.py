"""What one row of the stage table holds (``components/stages.py`` lists the rows). A leaf, so a family
that trains in a stage of its own can declare that row beside its other facts (``components/families.py``)
without the family table importing any training code."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from components.config import MelforgeConfig

SAMPLES = ("samples",)  # what every training stage logs: its sample WAVs and spectrogram grid


@dataclass(frozen=True)
class Stage:
    """One row of the stage table: what ``melforge stage NAME`` runs and what it leaves where.
    ``{item}`` in a path is the foreach item (``distill@student-8`` -> student-8)."""

    name: str
    # the component's entry point, (cfg, paths, **options) -> its metrics: a function (which imports the
    # stage's code on use) or, for a row declared below the training layer, its "module:function" path
    entry: Callable[..., dict[str, Any] | None] | str
    kind: Literal["data", "training", "evaluation"]  # training runs in a child process a timeout can stop
    output: str  # the folder (or file) it writes, relative to the workspace
    metrics: str  # its metrics file, relative to the workspace
    item: str | None = None  # the option a foreach item is passed as (--student, --family)
    items: Callable[[MelforgeConfig], Iterable[str]] | None = None  # the foreach items this config runs
    artifacts: tuple[str, ...] = ()  # logged to its MLflow run, relative to ``output``
    table: Callable[[Path], list[dict[str, Any]] | None] | None = None  # rows of its Prefect artifact, from ``output``
    announced: bool = True  # whether the flow leaves a Prefect artifact for it (scan is a listing only)

    def entry_point(self) -> Callable[..., dict[str, Any] | None]:
        """The entry point as a function (a "module:function" path imported now)."""
        if callable(self.entry):
            return self.entry
        module, _, function = self.entry.partition(":")
        return getattr(import_module(module), function)
