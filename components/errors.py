"""Every failure as one line: what went wrong, naming the file, store or server, and what to do.

The command line prints :func:`describe` after ``error:`` and exits with :func:`exit_code`; the
full traceback goes to the workspace's error log (:func:`log_traceback`), or to the screen with
``--debug``. Knows the tools' own failures (OSError's errno, SQLite, MLflow, DVC, torch's
allocators) so that none of them reaches a user as a traceback. Imports nothing heavy: it runs
after a failure, and may run outside a project.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import traceback
from datetime import datetime, timezone
from pathlib import Path

BAD_INPUT = 2  # the user can fix it: a setting, an option, a file they gave
FAILURE = 1  # something failed while doing the work

# where a path lives, for "which store is full": the first matching fragment wins
_STORES = (
    ("mlflow.db", "the MLflow tracking store"),
    ("/.melforge/prefect", "Prefect's database"),
    ("/.melforge/mlartifacts", "the MLflow artifact store"),
    ("/.melforge/backups", "the store backups"),
    ("/.melforge/dvc-remote", "the DVC remote"),
    ("/.melforge/runs", "the training checkpoints"),
    ("/.dvc/cache", "the DVC cache"),
    ("/.dvc/tmp", "DVC's temporary files"),
    ("/data/", "the data folder"),
    ("/models/", "the models folder"),
)
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@\s:]*)(?P<password>:[^/@\s]*)?@")
_ALLOCATION = re.compile(r"tried to allocate (?P<n>\d+) bytes")
_CUDA_ALLOCATION = re.compile(r"Tried to allocate (?P<size>[\d.]+ [KMGT]?i?B)")


def redact(text: str) -> str:
    """Every ``scheme://user:secret@`` in a message becomes ``scheme://user:***@``, and a bare
    ``scheme://token@`` becomes ``scheme://***@``: credentials are never printed."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@" if m["password"] else f"{m['scheme']}***@", text)


def store_of(path: str | os.PathLike) -> str:
    """Which of the workspace's stores a path belongs to, in words ('' when none is known)."""
    text = "/" + str(Path(path).as_posix()).lstrip("/")
    return next((name for fragment, name in _STORES if fragment in text), "")


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _free_space(path: str) -> str:
    """Free space on the file system holding ``path`` (its nearest existing parent)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return f"{gib(shutil.disk_usage(probe).free)} free there now"
    except OSError:
        return "free space unknown"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def out_of_memory(exc: BaseException) -> str | None:
    """The memory failure's one line, or None when ``exc`` is not one. Torch reports the size a CPU
    allocation wanted (``tried to allocate N bytes``) and a GPU one (``Tried to allocate 2.00 GiB``)."""
    text = str(exc)
    fix = "lower the batch size (train.batch_size, distill.batch_size) or free memory, then run again"
    if type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in text:
        match = _CUDA_ALLOCATION.search(text)
        return f"the GPU ran out of memory{f' (a step needed {match[1]} more)' if match else ''}; {fix}"
    match = _ALLOCATION.search(text)
    if isinstance(exc, MemoryError) or match or "Cannot allocate memory" in text:
        need = f"; a step needed {gib(int(match['n']))} more" if match else ""
        have = _available_memory()
        free = f" ({gib(have)} available now)" if have is not None else ""
        detail = f": {_first_line(text)}" if isinstance(exc, MemoryError) and text and not match else ""
        return f"ran out of memory{detail}{need}{free}; {fix}"
    return None


def _os_error(exc: OSError) -> str:
    name = exc.filename if exc.filename is not None else ""
    if exc.errno == errno.ENOSPC:
        where = store_of(name) if name else ""
        target = f" writing {name}" + (f" ({where})" if where else "") if name else ""
        space = f"; {_free_space(name)}" if name else ""
        return (f"no space left on the device{target}{space}: free some space and run again "
                "(finished stages are kept, and a run that was cut short commits what it computed)")
    if exc.errno == errno.EDQUOT:
        return f"disk quota exceeded{f' writing {name}' if name else ''}: free some space and run again"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: {name or exc.strerror}: check the owner and mode of that path"
    if exc.errno == errno.EROFS:
        return f"read-only file system: {name}: the workspace must be writable"
    what = exc.strerror or _first_line(str(exc)) or type(exc).__name__
    return f"{what}: {name}" if name else what


def _sqlite(text: str) -> str | None:
    """SQLite's own failures, wherever a wrapper (SQLAlchemy, MLflow) carried them."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    store = f" ({redact(uri)})" if uri.startswith("sqlite") else ""
    if "database or disk is full" in text:
        return f"a SQLite store is full{store}: the disk ran out of space; free some and run again"
    if "malformed" in text or "file is not a database" in text:
        return (f"a SQLite store is damaged{store}: `melforge restore --list` shows its backups and "
                "`melforge restore` brings the newest back")
    if "database is locked" in text:
        return f"a SQLite store is locked by another process{store}: wait for it to finish, then run again"
    return None


def describe(exc: BaseException) -> str:
    """``exc`` as one line for ``error:``: never empty, never a traceback, credentials redacted."""
    return redact(_describe(exc))


def _describe(exc: BaseException) -> str:
    stage = getattr(exc, "stage", None)
    inner = exc.__cause__
    if stage and inner is not None and type(exc).__name__ == "StageFailed":
        return _describe(inner) if getattr(inner, "line", None) else f"stage {stage}: {_describe(inner)}"
    line = getattr(exc, "line", None)  # StageProcessFailed: the child already described its failure
    if line:
        return line
    memory = out_of_memory(exc)
    if memory:
        return memory
    if isinstance(exc, OSError) and exc.errno is not None:
        return _os_error(exc)
    text = str(exc)
    return _sqlite(text) or _by_module(exc, text)


def _by_module(exc: BaseException, text: str) -> str:
    """Tools' errors by the package that raised them: MLflow, DVC, melforge's own, anything else."""
    module = type(exc).__module__ or ""
    first = _first_line(text)
    if module.startswith("mlflow"):
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        return f"MLflow{f' ({uri})' if uri else ''}: {first or type(exc).__name__}"
    if module.startswith("dvc"):
        return f"DVC: {first or type(exc).__name__}"
    if module.startswith("components") or module.startswith("flows"):
        return text.strip() or f"{type(exc).__name__} (no message)"  # ours: written to be read
    return f"{type(exc).__name__}: {first}" if first else f"{type(exc).__name__} (no message)"


def exit_code(exc: BaseException) -> int:
    """2 for input the user can fix (a setting, an option, a file they named), 1 for a failure."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return BAD_INPUT if names & {"ConfigError", "NoProject", "ModelNotFound", "BadParameter", "UsageError"} else FAILURE


def log_traceback(exc: BaseException, log: Path, command: list[str]) -> Path | None:
    """Append the full traceback to ``log`` (the workspace's error log); its path, or None when it
    cannot be written (the error line must still be printed)."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            fh.write(f"--- {stamp} melforge {redact(' '.join(command))}\n")
            fh.write(redact("".join(traceback.format_exception(exc))))
        return log
    except OSError:
        return None
