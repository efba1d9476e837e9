"""A finished workspace copied to another folder, the original deleted: `melforge run`, generate from
@champion and reproduce all work in the copy, and nothing points back at the old folder."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
MELFORGE = str(Path(sys.executable).parent / "melforge")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_", "AWS_"))}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", "MELFORGE_PROGRESS": "0",
                "COLUMNS": "250"})
    return env


def _melforge(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([MELFORGE, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=1200)


def test_a_copied_workspace_runs_generates_and_reproduces_with_the_original_gone(project, tmp_path):
    first = _melforge(["run"], project)
    assert first.returncode == 0, first.stderr[-4000:]
    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(project, moved, symlinks=True)
    shutil.rmtree(project)

    again = _melforge(["run"], moved)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "this workspace was moved from" in again.stderr
    generated = _melforge(["generate", "--model", "champion", "-n", "1", "--seconds", "0.5", "--out", "gen"], moved)
    assert generated.returncode == 0, generated.stderr[-4000:]
    champion = _melforge(["champion", "--json"], moved)
    assert champion.returncode == 0 and '"no change"' in champion.stdout
    version = json.loads(champion.stdout)["champion"]
    rebuilt = _melforge(["reproduce", f"melforge-mel-diffusion/{version}"], moved)
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-3000:]
    assert not project.exists(), "something wrote into the deleted workspace"
    with sqlite3.connect(moved / ".melforge" / "mlflow.db") as db:
        text = "\n".join(str(v) for (v,) in db.execute(
            "SELECT artifact_uri FROM runs UNION ALL SELECT artifact_location FROM experiments "
            "UNION ALL SELECT storage_location FROM model_versions"))
    assert str(project) + "/" not in text and str(moved) in text
