"""Test-wide setup: every tool offline, telemetry off, state in a throwaway folder."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from components.settings import ProjectPaths, runtime_defaults  # noqa: E402  (no tool imported yet)

_STATE = Path(tempfile.mkdtemp(prefix="melforge-tests-"))
atexit.register(shutil.rmtree, _STATE, ignore_errors=True)
ProjectPaths(root=_STATE).state.mkdir(parents=True)
# The same offline, telemetry-free defaults the CLI applies, with state in a throwaway folder.
# Tests that need a tracking store set MLFLOW_TRACKING_URI themselves.
os.environ.update({k: v for k, v in runtime_defaults(ProjectPaths(root=_STATE)).items() if k != "MLFLOW_TRACKING_URI"})
os.environ.setdefault("MELFORGE_PROGRESS", "0")
os.environ["MELFORGE_CACHE_DIR"] = str(_STATE / "cache")  # database templates: built by the first test that needs one

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _no_tracking_store_leaks_between_tests():
    """mlflow.set_tracking_uri (called by every stage) outranks MLFLOW_TRACKING_URI for the rest of the
    process: clear it after each test and put the variable back, so no test reads another's store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(None)  # also unsets the variable
    if before is not None:
        os.environ["MLFLOW_TRACKING_URI"] = before
