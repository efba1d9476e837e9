"""Controls: fake "models" that need no training, scored by the same ruler at every evaluation, whose
ranking is known in advance. If the ruler cannot rank them, its verdicts on real models mean nothing.

- ``memoriser``: n training clips replayed. Must sit near 1x the floor on FAD (it *is* a floor
  draw) and be caught by the memorisation check.
- ``blur``: the mean normalised mel of each label cell, each clip's cell drawn as a random training
  clip's: the data's class structure with none of its variety. Must be refused by the gate.
- ``noise``: Gaussian noise in the normalised mel range. Must be refused, and >= 10x the floor.

They appear in metrics.json and the leaderboard marked ``kind: control``, and are never served or
registered.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.evaluate.quality import GateSettings, floor_ratio, gate
from components.evaluate.ruler import random_subset
from components.features.split import TRAIN

CONTROL = "control"
MEMORISER, BLUR, NOISE = "memoriser", "blur", "noise"
CONTROLS = (MEMORISER, BLUR, NOISE)
# what the ruler must show for each control (the targets are 0.8-1.25x; the band here is
# where the stage refuses to go on, so a noisy draw at small n does not stop a pipeline)
MEMORISER_BAND = (0.67, 1.5)
NOISE_MIN_RATIO = 10.0


def control_mels(name: str, store, cells: list[str], n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(normalised mels in the store's layout, their rows in the store when they are real clips)."""
    train = store.rows(TRAIN)
    train_cells = np.asarray(cells)[train]
    rng_seed = seed + {MEMORISER: 11, BLUR: 13, NOISE: 17}[name]
    if name == MEMORISER:
        rows = train[random_subset(len(train), n, seed=rng_seed)]
        return store.batch(rows), rows
    if name == BLUR:
        picks = train_cells[np.random.default_rng(rng_seed).choice(len(train), n, replace=n > len(train))]
        means = {c: store.batch(train[train_cells == c]).astype(np.float64).mean(0) for c in np.unique(picks)}
        return np.stack([means[c] for c in picks]).astype(np.float32), None
    if name == NOISE:
        shape = (n, *store.example_shape)
        return np.clip(np.random.default_rng(rng_seed).standard_normal(shape), -1, 1).astype(np.float32), None
    raise KeyError(f"unknown control {name!r}; controls: {', '.join(CONTROLS)}")


def control_failures(rows: list[dict[str, Any]], floor: dict[str, dict[str, float]],
                     settings: GateSettings) -> list[str]:
    """Why the ruler failed its controls (empty when it ranks them all as it must)."""
    failures = []
    by_name = {r["name"].removeprefix("control-"): r for r in rows if r.get("kind") == CONTROL}
    primary = settings.primary
    for name, row in by_name.items():
        if row["status"] != "ok":
            failures.append(f"control {name}: not scored ({row.get('error')})")
            continue
        outcome = gate(row["metrics"], floor, settings)
        ratio = floor_ratio(primary, row["metrics"][primary]["value"], floor[primary]) \
            if primary in row["metrics"] else float("nan")
        if name == MEMORISER:
            if "memorised" not in outcome["failed"]:
                failures.append(f"control {name}: replayed training clips were not caught by the memorisation check "
                                f"({outcome['reasons'].get('memorised', 'not measured')})")
            if primary.startswith(("fad", "kid")) and not MEMORISER_BAND[0] <= ratio <= MEMORISER_BAND[1]:
                failures.append(f"control {name}: {primary} is {ratio:.2f}x the floor, but a draw of training clips "
                                f"must sit near 1x ({MEMORISER_BAND[0]:g}-{MEMORISER_BAND[1]:g}x): the floor is biased")
        elif outcome["passes"]:
            failures.append(f"control {name}: the gate would accept it ({'; '.join(outcome['reasons'].values())})")
        if name == NOISE and primary.startswith("fad") and ratio < NOISE_MIN_RATIO:
            failures.append(f"control {name}: {primary} is only {ratio:.1f}x the floor (must be >= {NOISE_MIN_RATIO:g}x)")
    return failures
