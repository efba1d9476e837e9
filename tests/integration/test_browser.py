"""What an operator sees, in a real browser (headless Chromium from Debian's packages; .ci/run
installs it): MLflow opens the experiment on its runs table, the champion's version page shows the
model, its headline metric and why it is champion, the Data Docs index lists the results with no
network, and the report's players are labelled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from support import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.integration, pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (.ci/run installs it)")]
MELFORGE = str(Path(sys.executable).parent / "melforge")
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_", "AWS_"))}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", "MELFORGE_PROGRESS": "0",
                "COLUMNS": "250"})
    return env


def _dom(url: str, wait_ms: int = 20000) -> str:
    """The page's DOM after its scripts ran, with every host but 127.0.0.1 unreachable."""
    proc = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           OFFLINE, f"--virtual-time-budget={wait_ms}", "--window-size=1400,1000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _printed(proc: subprocess.Popen) -> list[str]:
    """The lines `melforge ui` printed before the server's own log (its links)."""
    lines: list[str] = []
    for line in proc.stderr:  # the server keeps writing, so this never waits for long
        if "INFO" in line or "Security middleware" in line:
            break
        lines.append(line)
    return lines


def test_an_operator_sees_runs_the_champion_data_docs_and_labelled_players(project):
    ran = subprocess.run([MELFORGE, "run", "--no-push"], cwd=project, env=_env(), capture_output=True, text=True,
                         timeout=1200)
    assert ran.returncode == 0, ran.stderr[-4000:]
    champion = json.loads(subprocess.run([MELFORGE, "champion", "--json"], cwd=project, env=_env(),
                                         capture_output=True, text=True).stdout)

    docs = _dom((project / "data" / "validation" / "docs" / "index.html").as_uri(), 2000)
    assert "melforge_manifest" in docs and "expect_table_row_count_to_be_between" in docs
    report = _dom((project / "models" / "evaluation" / "report.html").as_uri(), 2000)
    assert "<figcaption>" in report and 'aria-label="student-' in report

    port = free_port()
    ui = subprocess.Popen([MELFORGE, "ui", "--port", str(port)], cwd=project, env=_env(), start_new_session=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        mlflow.set_tracking_uri(f"sqlite:///{project / '.melforge' / 'mlflow.db'}")
        links = dict(line.strip().split(": ", 1) for line in _printed(ui) if line.strip().startswith(("runs:", "champion")))
        runs = _dom(links["runs"])
        assert "pipeline-" in runs and "Model registry" in runs, runs[-3000:]  # the runs table, not GenAI's traces
        page = _dom(next(url for label, url in links.items() if label.startswith("champion")))
        version = mlflow.MlflowClient().get_model_version("melforge-mel-diffusion", champion["champion"])
        assert version.description.split(".")[0] in page  # which model: the description's first sentence
        assert "x the real-data floor" in page and "no champion yet" in page  # headline metric and the reason
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(30)
        mlflow.set_tracking_uri(None)
