"""Faults an operator meets, at unit scale: a run lock the kernel frees, holders named while
waiting, interrupts that wait for a record to be written, a full disk named as such, tampered
model files refused, and commands outside a project that write nothing."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from components import storage
from components.cli import app
from components.interrupts import deferred
from components.run_lock import LOCK_FILE, WorkspaceBusy, hold_workspace, read_holder
from helpers import copy_project

REPO = Path(__file__).resolve().parents[1]
HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from components.run_lock import hold_workspace
    with hold_workspace(Path(sys.argv[1]), wait_s=60, say=print):
        print("holding", flush=True)
        time.sleep(600)
""")


def _holder(state: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(state)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_waiting_run_names_the_holder_at_once_and_gives_up_with_it(tmp_path):
    holder = _holder(tmp_path)
    try:
        said: list[str] = []
        started = time.monotonic()
        with pytest.raises(WorkspaceBusy, match=f"pid {holder.pid} on host"):
            with hold_workspace(tmp_path, wait_s=1.2, say=said.append, every_s=0.5, poll_s=0.1):
                pytest.fail("got a lock another process holds")
        assert time.monotonic() - started < 5
        assert said and f"pid {holder.pid}" in said[0] and "since" in said[0]
        assert len(said) >= 2  # and again while it waits
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_holder_is_free_at_once_and_reported_as_taken_over(tmp_path):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    said: list[str] = []
    started = time.monotonic()
    with hold_workspace(tmp_path, wait_s=5, say=said.append):
        assert time.monotonic() - started < 1
        assert read_holder(tmp_path / LOCK_FILE)["pid"] == os.getpid()
    assert any("took over" in s and f"pid {holder.pid}" in s for s in said)
    assert (tmp_path / LOCK_FILE).read_text() == ""  # a clean release leaves nothing to take over
    with hold_workspace(tmp_path, wait_s=1, say=said.append):
        pass
    assert sum("took over" in s for s in said) == 1


KILLED_WRITE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from components.storage import atomic_write
    def write(fh):
        fh.write(b"x" * 4096); fh.flush(); print("writing", flush=True); time.sleep(600)
    atomic_write(Path(sys.argv[1]), write)
""")


def test_the_temp_file_of_a_killed_write_is_removed_when_the_next_run_takes_the_workspace(tmp_path):
    target = tmp_path / "models" / "teacher" / "checkpoints" / "step-00000500.pt"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITE, str(target)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    (left,) = target.parent.glob(".step-00000500.pt.*.tmp")
    live = target.parent / ".step-00001000.pt.abcd1234.tmp"  # a write still under way elsewhere: fresh mtime
    live.write_bytes(b"y")
    state = tmp_path / ".melforge"
    said: list[str] = []
    with hold_workspace(state, wait_s=1, say=said.append, temp_folders=[tmp_path / "models"]):
        pass
    assert left.exists() and not said  # younger than the stale age: it may still be being written
    old = time.time() - 3600
    os.utime(left, (old, old))
    with hold_workspace(state, wait_s=1, say=said.append, temp_folders=[tmp_path / "models"]):
        pass
    assert not left.exists() and live.exists() and not target.exists()
    assert said == [f"removed 1 temp file(s) left by killed writes: {left}"]


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with hold_workspace(tmp_path, wait_s=1, say=print):
        with hold_workspace(tmp_path, wait_s=0.1, say=print):  # the flow inside `melforge run`
            pass
        assert read_holder(tmp_path / LOCK_FILE)["pid"] == os.getpid()


def test_an_interrupt_during_a_deferred_section_arrives_after_it():
    finished = False
    with pytest.raises(KeyboardInterrupt):
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            finished = True
    assert finished


def test_a_full_disk_is_reported_as_enospc_with_the_path_and_the_old_file_survives(tmp_path, monkeypatch):
    target = tmp_path / "step-00000010.pt"
    storage.atomic_save_torch({"w": torch.ones(3)}, target)
    before = target.read_bytes()

    real_fdopen = os.fdopen

    class FullDisk:  # writes a little, then gets what the kernel answers when the disk is full
        def __init__(self, fd, mode):
            self.fh = real_fdopen(fd, mode)

        def write(self, data):
            self.fh.write(bytes(data)[:100])
            self.fh.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(storage.os, "fdopen", FullDisk)
    with pytest.raises(OSError, match=r"No space left on device: '.*step-00000010\.pt'") as info:
        storage.atomic_save_torch({"w": torch.zeros(3)}, target)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp file left


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_tampered_model_file_is_refused_without_running_its_payload(tmp_path, monkeypatch):
    from components.models.io import load_denoiser
    from helpers import write_tiny_model

    model = write_tiny_model(tmp_path / "model" / "model.pt", seed=0)
    payload = torch.load(model, weights_only=True)
    payload["extra"] = _Payload()
    with open(model, "wb") as fh:
        torch.save(payload, fh)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(storage.UnsafeFile, match="refusing to load.*os.system|refusing to load.*posix.system"):
        load_denoiser(model)
    assert not (tmp_path / "pwned").exists()
    result = CliRunner().invoke(app, ["generate", "--model", str(model.parent), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and not (tmp_path / "pwned").exists()
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_with_rng_states_loads_with_weights_only(tmp_path):
    from components.train.checkpoint import latest_checkpoint, restore_rng_states, write_checkpoint

    import numpy as np

    np.random.seed(3)
    write_checkpoint(tmp_path, 5, {"fingerprint": "f", "model": {"w": torch.ones(2)}})
    expected = np.random.rand(3)
    np.random.seed(99)
    state = latest_checkpoint(tmp_path, "f")
    restore_rng_states(state["rng"])
    assert np.allclose(np.random.rand(3), expected)


@pytest.mark.parametrize("args", [["run"], ["stage", "scan"], ["data", "summary"], ["ui"],
                                  ["generate", "--model", "champion"]])
def test_commands_outside_a_project_fail_before_writing_anything(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "no melforge project" in result.output and "dvc.yaml" in result.output
    assert list(tmp_path.iterdir()) == []


def test_generate_checks_out_and_size_before_loading_anything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "--model", "no-such-folder", "--out", "a-file"])
    assert result.exit_code == 2 and "--out a-file: exists and is not a folder" in result.output
    result = runner.invoke(app, ["generate", "--seconds", "1e9"])
    assert result.exit_code == 2 and "at most 300" in result.output
    result = runner.invoke(app, ["generate", "--seconds", "200", "-n", "100"])
    assert result.exit_code == 2 and "at most 3600 s" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_empty_params_yaml_is_refused_unless_a_profile_is_given(tmp_path, monkeypatch):
    from components.config_base import ConfigError
    from components.params_file import resolve_params

    (tmp_path / "params.yaml").write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="params.yaml: is empty.*--profile demo"):
        resolve_params(tmp_path / "params.yaml", write=False)
    assert resolve_params(tmp_path / "params.yaml", profile="demo").profile == "demo"


def test_a_stopped_tracking_server_fails_the_run_in_seconds(tmp_path, monkeypatch):
    copy_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    result = CliRunner().invoke(app, ["run"])
    assert time.monotonic() - started < 10
    assert result.exit_code == 2 and "does not answer" in result.output and "MLFLOW_TRACKING_URI" in result.output
    assert not (tmp_path / "data").exists() and not (tmp_path / ".melforge" / "run.lock").exists()


@pytest.mark.parametrize("command", [["run"], ["generate", "--model", "champion", "-n", "1"]])
def test_a_stopped_tracking_server_with_credentials_fails_in_seconds_and_never_prints_the_password(tmp_path, monkeypatch,
                                                                                                  command):
    copy_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:s3cret@127.0.0.1:{free_port()}")
    started = time.monotonic()
    result = CliRunner().invoke(app, command)
    assert time.monotonic() - started < 10
    assert result.exit_code in (1, 2) and "does not answer" in result.output
    assert "alice:***@127.0.0.1" in result.output and "s3cret" not in result.output


def test_the_health_check_sends_the_uri_s_credentials_as_basic_auth(monkeypatch):
    import base64
    import http.server
    import threading

    from components.tracking import TrackingUnavailable, check_tracking_server

    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            ok = self.path == "/health" and self.headers.get("Authorization") == expected
            self.send_response(200 if ok else 401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        check_tracking_server(f"http://alice:s3cret@127.0.0.1:{port}")
        with pytest.raises(TrackingUnavailable, match=r"http://alice:\*\*\*@127.0.0.1:\d+ .*HTTP 401") as err:
            check_tracking_server(f"http://alice:wrong@127.0.0.1:{port}")
        assert "wrong" not in str(err.value)
    finally:
        server.shutdown()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ui_stopped_with_sigterm_stops_its_server(tmp_path):
    copy_project(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "components.cli", "ui", "--port", str(port)], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    import psutil

    from helpers import wait_until_healthy

    wait_until_healthy(f"http://127.0.0.1:{port}/health", proc, 120, "the MLflow UI")
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) != 0
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_validation_refuses_a_quarantine_share_too_high_or_rising_against_the_last_accepted_run(tmp_path):
    from components.ingest.stage import run_ingest
    from components.validate.stage import ValidationFailed, run_validate
    from helpers import sine, tiny_config, write_audio

    corpus = tmp_path / "corpus"
    for k in range(3):
        write_audio(corpus / f"good{k}.wav", sine(300 + 100 * k, 1.0, 16000), 16000)
    cfg = tiny_config(data={"sources": [str(corpus)], "labels": "none"})
    history = tmp_path / "state" / "quarantine_shares.json"
    run_ingest(cfg, tmp_path / "clips")
    assert run_validate(cfg, tmp_path / "clips", tmp_path / "validation", history=history)["success"]

    for k in range(2):  # 2 of 5 files now fail to read: a 40-point jump
        (corpus / f"bad{k}.wav").write_bytes(b"RIFF....broken")
    run_ingest(cfg, tmp_path / "clips")
    with pytest.raises(ValidationFailed, match=r"quarantine_increase.*1 of 1 rows"):
        run_validate(cfg, tmp_path / "clips", tmp_path / "validation", history=history)
    import json

    assert json.loads(history.read_text()) == {str(corpus): 0.0}  # a refused run never becomes the baseline

    (corpus / "bad2.wav").write_bytes(b"RIFF....broken")  # 3 of 6: above max_quarantine_fraction
    run_ingest(cfg, tmp_path / "clips")
    relaxed = tiny_config(data={"sources": [str(corpus)], "labels": "none"},
                          validate={"max_quarantine_increase": 1.0, "max_quarantine_fraction": 0.4})
    with pytest.raises(ValidationFailed, match=r"quarantine_share"):
        run_validate(relaxed, tmp_path / "clips", tmp_path / "validation", history=history)
