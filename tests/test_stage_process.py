"""Training stages in a child process: failures come back with the child's traceback."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from components.params_file import validate_params, write_params_file
from components.stage_process import StageProcessFailed, run_in_child
from components.settings import project_paths
from components.stages import run_stage
from helpers import copy_project, tiny_params


def test_a_failing_child_reports_the_stage_and_its_error_and_leaves_no_pid_file(tmp_path):
    write_params_file(tmp_path / "params.yaml", validate_params(tiny_params()))
    state = tmp_path / ".melforge" / "stages"
    with pytest.raises(StageProcessFailed, match=r"^stage distill: .*needs --student NAME") as caught:
        run_in_child("distill", tmp_path, {}, state_dir=state)
    assert "\n" not in caught.value.line  # one line for the command line; the traceback is in the file
    assert caught.value.error_file == state / "distill.error"
    assert "Traceback" in (state / "distill.error").read_text()
    assert "ValueError" in (state / "distill.error").read_text()
    assert not (state / "distill.pid").exists()


def test_a_child_killed_by_sigkill_is_reported_as_a_likely_out_of_memory_kill_with_its_peak_memory(tmp_path):
    copy_project(tmp_path)
    params = tiny_params()
    params["train"]["steps"] = 100_000  # still training when it is killed
    cfg = validate_params(params)
    write_params_file(tmp_path / "params.yaml", cfg)
    paths = project_paths(tmp_path)
    for stage in ("scan", "ingest", "validate", "features"):
        run_stage(stage, cfg, paths)
    state = tmp_path / ".melforge" / "stages"
    pid_file = state / "train.pid"

    def kill_when_started() -> None:
        deadline = time.monotonic() + 120
        while not pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # let it allocate something
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    with pytest.raises(StageProcessFailed) as caught:
        run_in_child("train", tmp_path, {}, state_dir=state)
    killer.join()
    line = caught.value.line
    assert line.startswith("stage train was killed by SIGKILL after reaching ")
    assert "out-of-memory killer" in line and "train.batch_size" in line and "\n" not in line
