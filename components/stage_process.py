"""Training stages in a child process that a timeout or cancel can really stop.

The child is forked from a forkserver that has already imported torch and the training code, so a
stage starts in ~0.35 s instead of paying Python and torch start-up (~3.5 s) every time; the
forkserver itself starts (``warm_up``) and imports in its own process while the data stages run. Each child
leads its own process group, so stopping it also stops anything it started (torchrun on a
multi-GPU host, data-loader workers).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

# what a training stage imports, loaded once by the forkserver (measured: a fresh child otherwise
# imports ~1,900 modules: torch._dynamo and sympy via the optimiser, librosa.filters with scipy and
# numba, matplotlib for the sample plots)
PRELOAD = ["__main__", "components.stage_process", "components.stages", "components.train.teacher",
           "components.distill.stage", "components.vocoder.stage", "components.gan.stage", "components.features.packing", "torch._dynamo", "librosa.filters", "matplotlib.pyplot"]
_CONTEXT = multiprocessing.get_context("forkserver")  # the preload is set by warm_up, not at import


class StageProcessFailed(RuntimeError):
    """The stage's child process raised or was killed. ``line`` is the failure in one line (what the
    command line prints); the child's full traceback is in ``error_file``."""

    def __init__(self, line: str, error_file: Path) -> None:
        self.line, self.error_file = line, error_file
        super().__init__(f"{line} (traceback: {error_file})" if error_file.is_file() else line)


def warm_up() -> None:
    """Start the forkserver now; it imports torch and the training code in its own process while
    this one goes on. Python 3.11's forkserver ignores this process's sys.path and imports its
    preload with the working directory first on the path, so it is started with PYTHONSAFEPATH=1:
    it imports the installed code (and writes no __pycache__ into a project's copy), not whatever
    `components/` the working directory holds."""
    from multiprocessing import forkserver

    _CONTEXT.set_forkserver_preload(PRELOAD)  # read only when the server starts (a no-op later)
    before = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        forkserver.ensure_running()  # spawns the server and returns; the preload runs over there
    finally:
        if before is None:
            os.environ.pop("PYTHONSAFEPATH", None)
        else:
            os.environ["PYTHONSAFEPATH"] = before


def _stop_with(parent: int, poll_s: float = 0.5) -> None:
    """Kill this process group once ``parent`` is gone: the child leads its own session, so
    nothing else would stop it after a ``kill -9`` of the run (it would keep training, and race the
    next run for the same output folder)."""
    def watch() -> None:
        while True:
            time.sleep(poll_s)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os.killpg(0, signal.SIGKILL)  # checkpoints are written atomically: the next run resumes

    threading.Thread(target=watch, name="melforge-parent-watch", daemon=True).start()


def _child(stage: str, root: str, options: dict[str, Any], error_file: str, environ: dict[str, str],
           parent: int) -> None:
    os.setsid()  # its own process group: the parent stops it and everything it started at once
    _stop_with(parent)
    os.environ.clear()  # the caller's environment now, not the one the forkserver started with
    os.environ.update(environ)
    try:
        from components.params_file import load_config
        from components.settings import apply_runtime_defaults, project_paths
        from components.stages import run_stage

        paths = apply_runtime_defaults(project_paths(Path(root)))
        if stage == "train":
            from components.train.launch import maybe_relaunch_distributed

            os.chdir(root)  # torchrun re-runs `melforge stage train` in the workspace
            maybe_relaunch_distributed(["stage", "train"])
        run_stage(stage, load_config(paths.params), paths, **options)
    except SystemExit as exc:  # torchrun's exit status
        if exc.code not in (0, None):
            Path(error_file).write_text(f"distributed training exited with status {exc.code}")
            os._exit(1)
    except BaseException as exc:
        from components.errors import describe

        # the first line is the failure for the command line; the traceback follows for the log
        Path(error_file).write_text(f"stage {_label(stage, options)}: {describe(exc)}\n\n{traceback.format_exc()}")
        os._exit(1)


def _label(stage: str, options: dict[str, Any]) -> str:
    item = options.get("student") or options.get("family")
    return f"{stage}@{item}" if item else stage


def _peak_rss(pid: int) -> int | None:
    """The process's peak resident memory so far (VmHWM), in bytes; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _killed(label: str, signum: int, peak: int | None) -> str:
    """Why a child that a signal stopped stopped, in one line: SIGKILL from nobody we know of is most
    often the kernel's out-of-memory killer, so say how much memory it had reached."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    if signum != signal.SIGKILL:
        return f"stage {label} was stopped by {name}"
    from components.errors import gib

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    reached = f" after reaching {gib(peak)} of memory (this machine has {gib(total)})" if peak else ""
    return (f"stage {label} was killed by SIGKILL{reached}: most likely the kernel's out-of-memory killer; "
            "lower the batch size (train.batch_size, distill.batch_size) or free memory, then run again "
            "(training resumes from its last checkpoint)")


def run_in_child(stage: str, root: Path, options: dict[str, Any], *, state_dir: Path, poll_s: float = 0.2) -> None:
    """Run ``components.stages.run_stage(stage, ...)`` from params.yaml in a child process; wait for
    it in short polls (so Prefect's timeout/cancel exceptions land) and stop its whole process
    group if this thread is interrupted. ``state_dir`` gets ``<stage>.pid`` while it runs and
    ``<stage>.error`` (its traceback) when it fails. Raises StageProcessFailed."""
    label = _label(stage, options)
    state_dir.mkdir(parents=True, exist_ok=True)
    error_file, pid_file = state_dir / f"{label}.error", state_dir / f"{label}.pid"
    error_file.unlink(missing_ok=True)
    warm_up()  # no-op when the forkserver runs already
    child = _CONTEXT.Process(target=_child, args=(stage, str(root), options, str(error_file), dict(os.environ), os.getpid()),
                             name=f"melforge-{label}")
    child.start()
    pid_file.write_text(f"{child.pid}\n")
    peak = None
    try:
        while child.is_alive():
            peak = _peak_rss(child.pid) or peak
            child.join(poll_s)
    finally:
        if child.is_alive():
            stop_group(child)
        pid_file.unlink(missing_ok=True)
    if child.exitcode != 0:
        detail = error_file.read_text() if error_file.is_file() else ""
        if (child.exitcode or 0) < 0:
            line = _killed(label, -child.exitcode, peak)
        else:
            line = detail.split("\n", 1)[0].strip() or f"stage {label} exited with status {child.exitcode}"
        raise StageProcessFailed(line, error_file)


def stop_group(child: Any, grace_s: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL what is left after ``grace_s``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:  # stopped before it became a group leader: the child alone
            if not child.is_alive():
                break
            os.kill(child.pid, sig)
        child.join(wait)
        if not child.is_alive():
            break
