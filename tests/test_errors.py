"""Every failure is one line naming the thing and the fix; the traceback goes to the log (or --debug)."""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from components.errors import BAD_INPUT, FAILURE, describe, exit_code, redact, store_of
from helpers import copy_project, write_tiny_model


def test_a_full_disk_names_the_path_and_which_store_it_belongs_to(tmp_path):
    db = tmp_path / ".melforge" / "mlflow.db"
    line = describe(OSError(errno.ENOSPC, "No space left on device", str(db)))
    assert line.startswith(f"no space left on the device writing {db} (the MLflow tracking store); ")
    assert "free there now" in line and "run again" in line
    cache = tmp_path / ".dvc" / "cache" / "files" / "md5" / "ab" / "cdef"
    assert "(the DVC cache)" in describe(OSError(errno.ENOSPC, "No space left on device", str(cache)))
    assert store_of(tmp_path / ".melforge" / "runs" / "teacher-x" / "step.pt") == "the training checkpoints"
    assert store_of("/somewhere/else") == ""


def test_a_real_torch_allocation_failure_says_memory_ran_out_and_how_much_the_step_needed():
    with pytest.raises(RuntimeError) as caught:
        torch.empty(2**45)  # 128 TiB of float32
    line = describe(caught.value)
    assert line.startswith("ran out of memory; a step needed 131072.00 GiB more (")
    assert "available now" in line and "train.batch_size" in line
    assert describe(MemoryError()).startswith("ran out of memory (")


def test_sqlite_failures_through_any_wrapper_say_which_store_and_what_to_do(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////ws/.melforge/mlflow.db")
    line = describe(RuntimeError("(sqlite3.DatabaseError) database disk image is malformed [SQL: SELECT 1]"))
    assert line.startswith("a SQLite store is damaged (sqlite:////ws/.melforge/mlflow.db): `melforge restore --list`")
    assert "disk ran out of space" in describe(sqlite3.OperationalError("database or disk is full"))


def test_unknown_errors_keep_their_type_and_first_line_and_never_print_credentials():
    assert describe(KeyError("x")) == "KeyError: 'x'"
    assert describe(ValueError("first\n  second")) == "ValueError: first"
    assert describe(ValueError()) == "ValueError (no message)"
    message = describe(ConnectionError("cannot reach https://alice:s3cret@mlflow.example/api and s3://KEY:SECRET@bucket"))
    assert "s3cret" not in message and "SECRET" not in message
    assert "https://alice:***@mlflow.example/api" in message and "s3://KEY:***@bucket" in message
    assert redact("http://token@host/x") == "http://***@host/x"


def test_exit_codes_tell_bad_input_from_a_failure():
    from components.config_base import ConfigError
    from components.registry.lookup import ModelNotFound

    assert exit_code(ConfigError("train.steps: expected an integer")) == BAD_INPUT
    assert exit_code(ModelNotFound("no model")) == BAD_INPUT
    assert exit_code(OSError(errno.ENOSPC, "full")) == FAILURE


def _melforge(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "components.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_a_tampered_model_file_is_one_error_line_with_its_traceback_in_the_log_or_on_screen_with_debug(tmp_path):
    copy_project(tmp_path)
    model = write_tiny_model(tmp_path / "models" / "teacher" / "model.pt", seed=0)
    data = bytearray(model.read_bytes())
    data[200:210] = b"xxxxxxxxxx"  # inside the pickle: an opcode torch's safe loader refuses
    model.write_bytes(bytes(data))

    result = _melforge(tmp_path, "generate", "--model", str(model), "-n", "1", "--vocoder", "griffinlim", "--out", str(tmp_path / "out"))
    assert result.returncode == FAILURE, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(model) in errors[0] and "tampered or foreign file" in errors[0]
    assert "melforge run` retrains" in result.stderr.replace("\n", " ")
    log = tmp_path / ".melforge" / "logs" / "errors.log"
    assert "Traceback" in log.read_text() and "UnsafeFile" in log.read_text()
    assert not (tmp_path / "out").exists()

    debug = _melforge(tmp_path, "generate", "--model", str(model), "-n", "1", "--vocoder", "griffinlim", "--out", str(tmp_path / "out"), "--debug")
    assert debug.returncode == FAILURE and "Traceback" in debug.stderr and "UnsafeFile" in debug.stderr


def test_memory_running_out_while_a_checkpoint_is_serialised_names_the_file_and_its_size(tmp_path):
    """A real allocation failure: the address space capped just above what the process holds, so
    torch's zip writer cannot grow its buffer (torch itself says only 'unexpected pos')."""
    script = f"""
import resource, sys, torch
from components.errors import describe
from components.storage import atomic_save_torch
weights = torch.ones(40_000_000)  # 160 MB
size = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + 100 * 2**20, resource.RLIM_INFINITY))
try:
    atomic_save_torch({{"w": weights}}, __import__("pathlib").Path({str(tmp_path / 'step.pt')!r}))
except MemoryError as exc:
    print(describe(exc))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    line = result.stdout.strip()
    assert line.startswith(f"ran out of memory: serialising {tmp_path / 'step.pt'} (152.6 MiB of tensors) failed"), result
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("args, words", [
    (["generate", "--seed", str(2**63)], "Invalid value for '--seed': Input should be less than or equal to 2147483647"),
    (["generate", "--no-such-option"], "No such option: --no-such-option"),
])
def test_a_bad_option_is_one_error_line_and_exit_2_not_a_usage_box(tmp_path, args, words):
    copy_project(tmp_path)
    result = _melforge(tmp_path, *args)
    assert result.returncode == BAD_INPUT
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {words}") and lines[0].endswith("(see `melforge generate --help`)")
