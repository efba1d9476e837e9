"""The champion's history: every gate decision and rollback appended, never overwritten, a no-op run
that moves nothing, and `melforge champion` / `melforge rollback` on a real SQLite MLflow store."""

from __future__ import annotations

import json
import os

import mlflow
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from components.cli import app
from components.params_file import load_config
from components.registry.champion import RollbackRefused, rollback
from components.registry.history import read_history
from components.registry.publish import apply_promotion
from components.registry.tags import metric_from_tags, metric_tags
from helpers import copy_project

METRIC = "fad_classifier"
runner = CliRunner()


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A project whose registry holds v1 (10.0), v2 (5.0, better), v3 (failed evaluation)."""
    copy_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    name = load_config(tmp_path / "params.yaml").registry.model_name
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("e"))
    client.create_registered_model(name)
    for value, model, evaluation in ((10.0, "teacher", "ok"), (5.0, "student-2", "ok"), (1.0, "student-1", "failed")):
        row = {"metrics": {METRIC: {"value": value, "low": value - 0.5, "high": value + 0.5, "n_a": 8, "n_b": 8}}}
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id,
                                    tags={**metric_tags(row), "melforge.model": model, "melforge.evaluation": evaluation,
                                          "melforge.sampling_steps": "2"})
    return client, name


def _gate(client, name, version):
    candidate = client.get_model_version(name, version)
    return apply_promotion(client, name, candidate, metric_from_tags(candidate.tags, METRIC),
                           champion_metric=lambda champ: (metric_from_tags(champ.tags, METRIC), "recorded"),
                           metric=METRIC, min_improvement=0.05, require_disjoint=True, candidate_error=None)


def test_a_no_op_run_records_no_change_and_keeps_the_original_promotion_reason(store):
    client, name = store
    first = _gate(client, name, "1")
    assert first["promoted"] and first["action"] == "promoted"
    again = _gate(client, name, "1")  # the same model file on the next run
    assert not again["promoted"] and again["action"] == "no change" and again["champion"] == f"{name}/1"
    tags = client.get_model_version(name, "1").tags
    assert "no champion yet" in tags["melforge.promotion_reason"] and tags["melforge.previous_champion"] == "none"
    history = read_history(client, name)
    assert [e["action"] for e in history] == ["promoted", "no change"] and [e["seq"] for e in history] == [1, 2]
    assert history[0]["before"] is None and history[0]["after"] == "1" and history[1]["after"] == "1"
    assert history[0]["candidate_value"] == [10.0, 9.5, 10.5] and history[0]["metric"] == METRIC


def test_rollback_moves_the_champion_back_and_is_recorded_like_any_decision(store):
    client, name = store
    _gate(client, name, "1")
    assert _gate(client, name, "2")["promoted"]
    assert _gate(client, name, "1")["action"] == "rejected"  # the old champion is no better now
    done = rollback(client, name, None, reason="v2 hisses on the new data")
    assert (done["before"], done["after"]) == ("2", "1")
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert "v2 hisses" in client.get_model_version(name, "1").tags["melforge.promotion_reason"]
    assert "rolled back to v1" in client.get_model_version(name, "2").tags["melforge.demoted"]
    history = read_history(client, name)
    assert [e["action"] for e in history] == ["promoted", "promoted", "rejected", "rolled back"]
    assert (history[-1]["before"], history[-1]["after"]) == ("2", "1")
    for version, words in (("7", "no version '7'; versions: v1 (teacher), v2 (student-2), v3 (student-1)"),
                           ("3", "evaluation failed"), ("1", "already the champion")):
        with pytest.raises(RollbackRefused, match=words.replace("(", r"\(").replace(")", r"\)")):
            rollback(client, name, version, reason="x")
    with pytest.raises(RollbackRefused, match="needs a reason"):
        rollback(client, name, "2", reason=" ")
    assert len(read_history(client, name)) == 4  # refusals record nothing


def test_champion_and_rollback_commands(store, tmp_path, monkeypatch):
    client, name = store
    # an earlier call in this process selected another store (set_tracking_uri outranks the environment,
    # and sets it): the commands must still read the one MLFLOW_TRACKING_URI names when they run
    ours = os.environ["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'another.db'}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", ours)
    empty = runner.invoke(app, ["rollback", "--reason", "x"])
    assert empty.exit_code == 2 and "no earlier champion" in empty.output
    _gate(client, name, "1")
    _gate(client, name, "2")
    shown = runner.invoke(app, ["champion", "--json"])
    assert shown.exit_code == 0, shown.output
    state = json.loads(shown.stdout)
    assert state["champion"] == "2" and [e["action"] for e in state["history"]] == ["promoted", "promoted"]
    moved = runner.invoke(app, ["rollback", "--reason", "listening test"])
    assert moved.exit_code == 0, moved.output
    assert "champion v2 -> v1" in moved.output
    table = runner.invoke(app, ["champion"])
    assert table.exit_code == 0 and "rolled back" in table.stdout and "champion: " in table.stdout
    missing = runner.invoke(app, ["rollback", "9", "--reason", "x"])
    assert missing.exit_code == 2 and "no version '9'" in missing.output
    unknown = runner.invoke(app, ["champion", "--model", "nope"])
    assert unknown.exit_code == 2 and "no registered model 'nope'" in unknown.output
