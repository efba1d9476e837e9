"""One look for every progress bar melforge shows (rich)."""

from __future__ import annotations

import os
import sys

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar() -> Progress:
    """A rich progress bar; silent when MELFORGE_PROGRESS=0 or stderr is not a terminal under CI."""
    quiet = os.environ.get("MELFORGE_PROGRESS", "1") == "0"
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        disable=quiet, transient=not sys.stderr.isatty(),
    )
