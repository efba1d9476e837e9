"""Reproduction's plumbing that needs no MLflow: which DVC remotes a rebuild shares."""

from __future__ import annotations

from components.reproduce import _remote_urls


def test_remote_urls_come_from_dvc_s_config_with_local_paths_made_absolute(tmp_path):
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / ".dvc" / "config").write_text(
        "[core]\n    no_scm = true\n    remote = local\n['remote \"local\"']\n    url = ../store\n"
        "['remote \"s3\"']\n    url = s3://bucket/path\n")
    (tmp_path / ".dvc" / "config.local").write_text("['remote \"mine\"']\n    url = /abs/elsewhere\n")
    assert _remote_urls(tmp_path) == {"local": str((tmp_path / "store").resolve()), "s3": "s3://bucket/path",
                                      "mine": "/abs/elsewhere"}


def test_data_missing_from_the_remote_is_one_line_naming_the_outputs_and_the_remote(tmp_path):
    """A real `dvc pull` whose data was never pushed (and is gone from the cache)."""
    import os
    import shutil
    import subprocess
    import sys

    import pytest
    import yaml

    from components.reproduce import ReproduceError, _pull_data
    from components.stages import DATA_STAGES

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "-q"], cwd=tmp_path, env=env, check=True)
    subprocess.run([*dvc, "remote", "add", "-d", "local", str(tmp_path / "remote")], cwd=tmp_path, env=env, check=True)
    stages = {name: {"cmd": "true", "outs": [f"data/{name}"]} for name in DATA_STAGES}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    for name in DATA_STAGES:
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "part.txt").write_text(name)
    subprocess.run([*dvc, "commit", "-f", "-q", *DATA_STAGES], cwd=tmp_path, env=env, check=True)
    shutil.rmtree(tmp_path / ".dvc" / "cache")
    shutil.rmtree(tmp_path / "data")

    with pytest.raises(ReproduceError) as caught:
        _pull_data(tmp_path, tmp_path, env, "melforge-generator/3")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the data version melforge-generator/3 was trained on is in neither the DVC cache "
                              f"nor the remote (local = {tmp_path / 'remote'})")
    assert all(f"data/{name}" in message for name in DATA_STAGES) and "`dvc push`" in message
