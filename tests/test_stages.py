"""The stage list and what each stage depends on, read from the one place that declares them."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from components.distill.stage import STUDENT_TRAINING_PARAMS
from components.params_file import load_config
from components.stages import declared_params, model_stages, pipeline_order, select_params

ROOT = Path(__file__).resolve().parents[1]


def test_a_stage_logs_the_params_dvc_yaml_says_it_depends_on():
    params = load_config(ROOT / "params.yaml").to_params()
    train = select_params(params, declared_params(ROOT, "train"))
    assert train["seed"] == params["seed"] and train["distill"] == {key: params["distill"][key] for key in ("teacher_steps", "teacher_sampler")}
    assert train["model"] == params["model"] and set(train) == {"seed", "model", "train", "distill", "eval"}
    assert train["eval"] == {"split_labels": params["eval"]["split_labels"]}  # a conditional teacher's cells
    gan = select_params(params, declared_params(ROOT, "gan@specgan"))
    assert gan["gan"] == {"specgan": params["gan"]["specgan"]} and "wavegan" not in gan["gan"]
    student = next(name for name in params["distill"]["stages"])
    assert set(declared_params(ROOT, f"distill@{student}")) == {"seed", "train.sample_count", *STUDENT_TRAINING_PARAMS}


def test_every_stage_the_pipeline_runs_is_in_dvc_yaml():
    cfg = load_config(ROOT / "params.yaml")
    for stage in pipeline_order(cfg):
        assert declared_params(ROOT, stage), stage
    with pytest.raises(KeyError, match="dvc.yaml has no stage 'nope'"):
        declared_params(ROOT, "nope")


def test_the_model_stages_are_the_training_part_of_the_pipeline_order():
    cfg = load_config(ROOT / "params.yaml")
    order = pipeline_order(cfg)
    models = model_stages(cfg)
    assert models == [s for s in order if s in models] and models[0] == "train"
    assert all(s.startswith("distill@") for s in models[1:]) == (not cfg.gan.enabled)


def test_the_stage_names_are_dvc_yaml_s_and_the_stage_table_s():
    import yaml

    from components.stages import STAGE_NAMES, TABLE

    assert tuple(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]) == STAGE_NAMES
    assert STAGE_NAMES == tuple(row.name for row in TABLE)


def test_a_family_s_own_stage_joins_the_table_and_its_entry_resolves():
    from components.families import family
    from components.stages import stage_row

    row = family("vae").stage
    assert stage_row("vae") is row and isinstance(row.entry, str)  # declared in the family row, by path
    from components.vae.stage import run_vae

    assert row.entry_point() is run_vae


def test_warn_only_accepts_exactly_the_suite_s_checks():
    from components.names import CHECK_NAMES
    from components.validate.suite import build_checks

    cfg = load_config(ROOT / "params.yaml")
    built = {c.name.split(":")[0] for c in build_checks(cfg, ["label_digit"], {"digit": ["0", "1"]})}
    assert built == set(CHECK_NAMES)


def test_a_dvc_stage_name_maps_to_its_entry_point_and_options():
    from components.stages import stage_options, stage_row

    assert stage_options("train") == ("train", {})
    assert stage_options("distill@student-8") == ("distill", {"student": "student-8"})
    assert stage_options("gan@wavegan") == ("gan", {"family": "wavegan"})
    cfg = load_config(ROOT / "params.yaml")
    for stage in pipeline_order(cfg):  # every option is one its entry point takes
        name, options = stage_options(stage)
        assert set(options) <= set(inspect.signature(stage_row(name).entry_point()).parameters), stage


def test_the_stage_table_s_outputs_metrics_and_kinds_are_dvc_yaml_s():
    import yaml

    from components.stages import TABLE

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for row in TABLE:
        spec = stages[row.name].get("do", stages[row.name])
        item = "${key}" if row.name == "distill" else "${item}"
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in spec["outs"]]
        assert outs == [row.output.replace("{item}", item)], row.name
        assert spec["metrics"] == [row.metrics.replace("{item}", item)], row.name
        assert ("foreach" in stages[row.name]) == (row.item is not None), row.name
    assert [r.name for r in TABLE if r.kind == "data"] == ["scan", "ingest", "validate", "features"]
    assert [r.name for r in TABLE if r.kind == "training"] == ["vocoder", "train", "distill", "gan", "vae"]


def test_the_runner_writes_every_stage_s_metrics_the_same_way(tmp_path, monkeypatch):
    from components import stages
    from components.settings import ProjectPaths

    summaries = {"one": {"clips": 3}, "two": None}
    rows = (stages.Stage("one", lambda cfg, paths: summaries["one"], "data", "data/one", "data/metrics/one.json"),
            stages.Stage("two", lambda cfg, paths, student: summaries["two"], "training", "models/{item}",
                         "models/metrics/{item}.json", item="student"))
    monkeypatch.setattr(stages, "TABLE", rows)
    paths = ProjectPaths(root=tmp_path)
    assert stages.run_stage("one", None, paths) == {"clips": 3}
    assert json.loads((tmp_path / "data" / "metrics" / "one.json").read_text()) == {"clips": 3}
    assert stages.run_stage("two", None, paths, student="student-2") is None  # a rank other than 0: nothing written
    assert not (tmp_path / "models").exists()
    summaries["two"] = {"loss": 0.5}
    stages.run_stage("two", None, paths, student="student-2")
    assert json.loads((tmp_path / "models" / "metrics" / "student-2.json").read_text()) == {"loss": 0.5}
    with pytest.raises(KeyError, match="unknown stage 'three'; allowed: one, two"):
        stages.run_stage("three", None, paths)


def test_melforge_stage_takes_the_table_s_stages_and_their_options():
    from typer.testing import CliRunner

    from components.cli import app
    from components.stages import STAGE_NAMES

    help_text = "".join(CliRunner().invoke(app, ["stage", "--help"]).output.replace("│", "").split())
    assert "|".join(STAGE_NAMES) in help_text  # the names as the table and dvc.yaml have them, in order
    assert "--student" in help_text and "--family" in help_text
