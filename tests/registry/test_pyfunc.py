"""The registered model's class: defining it prints nothing (MLflow warns about a predict without
type hints once per model and process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_defining_the_pyfunc_model_raises_no_type_hint_warning():
    proc = subprocess.run([sys.executable, "-W", "always", "-c", "import components.registry.pyfunc"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "type hints" not in proc.stderr, proc.stderr[-2000:]
