"""Training stages in a child process: failures come back with the child's traceback."""

from __future__ import annotations

import pytest

from components.config import validate_params, write_params_file
from components.stage_process import StageProcessFailed, run_in_child
from helpers import tiny_params


def test_a_failing_child_reports_the_stage_and_its_error_and_leaves_no_pid_file(tmp_path):
    write_params_file(tmp_path / "params.yaml", validate_params(tiny_params()))
    state = tmp_path / ".melforge" / "stages"
    with pytest.raises(StageProcessFailed, match=r"stage distill exited with status 1:(.|\n)*needs --student NAME"):
        run_in_child("distill", tmp_path, {}, state_dir=state)
    assert "ValueError" in (state / "distill.error").read_text()
    assert not (state / "distill.pid").exists()
