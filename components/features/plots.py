"""Pictures of mels for people: a grid of spectrograms as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_mel_grid(mels: np.ndarray, path: Path, *, floor: float, top: float | None = None,
                  titles: list[str] | None = None, title: str = "", columns: int = 4) -> Path:
    """(n, n_mels, frames) natural-log mels -> one PNG grid, low frequencies at the bottom.

    Every panel shares one colour scale, from ``floor`` (the mel floor: black; anything below it is
    shown as it) to ``top`` (default: the grid's loudest cell). Pass the same ``top`` to grids that
    are compared (real clips and each model's). Per-panel autoscaling painted the background of
    any panel holding values below the floor purple, so a generated grid looked noisy where its
    mels were as silent as the real ones."""
    top = float(np.max(mels)) if top is None else float(top)
    top = max(top, floor + 1e-6)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(mels)
    cols = min(columns, max(1, n))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(mels[k], origin="lower", aspect="auto", cmap="magma", vmin=floor, vmax=top)
            if titles:
                ax.set_title(titles[k], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
