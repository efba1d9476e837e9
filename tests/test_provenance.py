"""Where a result came from: the git state and the hashes recorded on runs and model versions."""

from __future__ import annotations

import subprocess

from components.provenance import dvc_lock_hash, file_sha256, git_state, params_hash


def test_git_state_names_the_commit_and_only_tracked_changes_make_it_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    assert git_state(tmp_path) == {"git.commit": "unknown", "git.dirty": "false"}  # not a repository
    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'")
    git("add", "a.txt", "dvc.lock")
    git("commit", "-qm", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (tmp_path / "untracked.txt").write_text("x")
    assert git_state(tmp_path) == {"git.commit": head, "git.dirty": "false"}
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}")  # what a run rewrites is not the code
    assert git_state(tmp_path)["git.dirty"] == "false"
    (tmp_path / "a.txt").write_text("2")
    assert git_state(tmp_path)["git.dirty"] == "true"
    git("add", "a.txt")  # staged counts too
    assert git_state(tmp_path)["git.dirty"] == "true"


def test_hashes_are_stable_and_order_free(tmp_path):
    assert params_hash({"a": 1, "b": {"c": 2}}) == params_hash({"b": {"c": 2}, "a": 1}) != params_hash({"a": 2})
    (tmp_path / "f").write_bytes(b"abc")
    assert file_sha256(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert dvc_lock_hash(tmp_path) == "none"
