"""The melforge CLI: config errors before any work, stages from params.yaml, data summary."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.cli import app
from helpers import copy_project

runner = CliRunner()


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    copy_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def test_run_rejects_a_bad_override_before_doing_anything(workspace):
    before = (workspace / "params.yaml").read_text()
    result = runner.invoke(app, ["run", "-S", "mel.n_mel=3"])
    assert result.exit_code == 2
    assert "mel.n_mel" in result.output and "n_mels" in result.output
    assert (workspace / "params.yaml").read_text() == before and not (workspace / "data").exists()


def test_stage_commands_run_components_from_params_yaml_and_data_summary_reports(workspace):
    for stage in ("scan", "ingest", "validate", "features"):
        result = runner.invoke(app, ["stage", stage])
        assert result.exit_code == 0, result.output
    assert (workspace / "data" / "mels" / "index.json").is_file()
    assert json.loads((workspace / "data" / "metrics" / "ingest.json").read_text())["clips"] == 8
    result = runner.invoke(app, ["data", "summary", "--json"])
    summary = json.loads(result.stdout)
    assert summary["clips"] == 8 and summary["quarantined"] == 0 and summary["validation"]["success"]
    assert set(summary["labels"]) == {"family", "pitch", "program", "velocity"}
    for label in ("pitch", "velocity"):  # numbers in numeric order, not as text (100 after 64)
        values = [float(v) for v in summary["labels"][label]]
        assert values == sorted(values)
    table = runner.invoke(app, ["data", "summary"])
    assert table.exit_code == 0 and " s" in table.stdout and "hours" not in table.stdout


def test_durations_read_as_people_say_them():
    from components.cli import human_duration

    assert [human_duration(s) for s in (42.5, 300, 5400, 3599.6)] == ["42.5 s", "5 min 0 s", "1 h 30 min", "1 h 0 min"]


def test_unknown_stage_and_broken_params_are_clear_errors(workspace):
    result = runner.invoke(app, ["stage", "train-everything"])
    assert result.exit_code == 2 and "allowed: scan, ingest, validate, features" in result.output
    (workspace / "params.yaml").write_text("mel: {n_mels: lots}\n")
    result = runner.invoke(app, ["stage", "features"])
    assert result.exit_code == 2 and "mel.n_mels" in result.output


def test_data_summary_without_data_says_what_to_run(workspace):
    result = runner.invoke(app, ["data", "summary"])
    assert result.exit_code == 2 and "melforge stage ingest" in result.output


def test_schedule_builds_cron_deployments_and_rejects_bad_cron(tmp_path):
    from flows.schedule import ScheduleError, build_deployments

    deployments = build_deployments(retrain_cron="0 2 * * *", pipeline_cron="0 3 * * 1", timezone="Europe/Berlin",
                                    root=str(tmp_path))
    assert [d.name for d in deployments] == ["retrain", "pipeline"]
    assert deployments[0].schedules[0].schedule.cron == "0 2 * * *"
    assert deployments[0].schedules[0].schedule.timezone == "Europe/Berlin"
    assert deployments[1].parameters == {"root": str(tmp_path)}
    with pytest.raises(ScheduleError, match="--cron 'every night'.*five cron fields"):
        build_deployments(retrain_cron="every night", pipeline_cron=None, timezone="UTC", root=str(tmp_path))
    with pytest.raises(ScheduleError, match="--pipeline-cron"):
        build_deployments(retrain_cron="0 2 * * *", pipeline_cron="61 * * * *", timezone="UTC", root=str(tmp_path))


@pytest.mark.parametrize("option, value, bound", [("--seed", str(2**63), "2147483647"), ("--seed", "-1", "0"),
                                                  ("--steps", "100000", "4096")])
def test_generate_refuses_out_of_range_seeds_and_steps_before_loading_anything(workspace, option, value, bound):
    result = runner.invoke(app, ["generate", "--model", "champion", option, value, "--out", str(workspace / "out")])
    assert result.exit_code == 2 and option in result.output and bound in result.output
    assert not (workspace / "out").exists()


@pytest.mark.parametrize("error, words", [(MemoryError(), "ran out of memory"), (RuntimeError(), "RuntimeError (no message)")])
def test_a_stage_error_without_a_message_still_says_what_happened(workspace, monkeypatch, error, words):
    import components.stages

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(components.stages, "run_stage", fail)
    result = runner.invoke(app, ["stage", "ingest"])
    assert result.exit_code == 1 and f"error: stage ingest: {words}" in result.output


def test_ui_prefect_names_what_is_missing_before_starting_anything(workspace, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = runner.invoke(app, ["ui", "--prefect"])
    assert result.exit_code == 2 and "prefect.db does not exist yet" in result.output and "melforge run" in result.output
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4999/api")
    result = runner.invoke(app, ["ui", "--prefect"])
    assert result.exit_code == 2 and "PREFECT_API_URL is set (http://127.0.0.1:4999/api)" in result.output
