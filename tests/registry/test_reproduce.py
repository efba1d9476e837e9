"""Reproduction's plumbing that needs no MLflow: which DVC remotes a rebuild shares."""

from __future__ import annotations

from components.registry.reproduce import _remote_urls


def test_remote_urls_come_from_dvc_s_config_with_local_paths_made_absolute(tmp_path):
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / ".dvc" / "config").write_text(
        "[core]\n    no_scm = true\n    remote = local\n['remote \"local\"']\n    url = ../store\n"
        "['remote \"s3\"']\n    url = s3://bucket/path\n")
    (tmp_path / ".dvc" / "config.local").write_text("['remote \"mine\"']\n    url = /abs/elsewhere\n")
    assert _remote_urls(tmp_path) == {"local": str((tmp_path / "store").resolve()), "s3": "s3://bucket/path",
                                      "mine": "/abs/elsewhere"}
