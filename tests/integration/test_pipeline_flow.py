"""The data flow end to end with real DVC, MLflow (SQLite) and Prefect's test harness."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from components.params_file import read_params_file, validate_params, write_params_file
from support import dvc, read_yaml, run

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_flow_runs_stages_through_dvc_and_logs_nested_mlflow_runs(project, prefect_server, monkeypatch):
    from flows.pipeline import melforge_pipeline

    mlflow_store = f"sqlite:///{project / '.melforge' / 'mlflow.db'}"  # the workspace's own store, as deployments use it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    summary = melforge_pipeline(root=str(project))
    # a run from a deployment or schedule (not `melforge run`) backs the store up itself
    assert [p.name.split("-")[0] for p in (project / ".melforge" / "backups").iterdir()] == ["mlflow"]
    assert summary["stages_run"] == ["scan", "ingest", "validate", "features", "vocoder", "train", "distill@student-2",
                                     "distill@student-1", "gan@wavegan", "gan@specgan", "vae", "evaluate"]
    assert summary["clips"] == 8 and summary["validation"] == "passed"

    lock = read_yaml(project / "dvc.lock")
    assert set(lock["stages"]) == {"scan", "ingest", "validate", "features", "vocoder", "train", "distill@student-2",
                                   "distill@student-1", "gan@wavegan", "gan@specgan", "vae", "evaluate"}
    mels_md5 = next(o["md5"] for o in lock["stages"]["features"]["outs"] if o["path"] == "data/mels")

    client = mlflow.MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("melforge")
    runs = client.search_runs([experiment.experiment_id])
    parent = client.get_run(summary["mlflow_run_id"])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["distill@student-1", "distill@student-2", "evaluate",
                                                         "features", "gan@specgan", "gan@wavegan", "ingest", "registry",
                                                         "train", "vae", "validate", "vocoder"]
    vocoder = next(r for r in children if r.info.run_name == "vocoder")
    assert vocoder.data.params["vocoder.kind"] == "learned" and "final_learned.sc_db" in vocoder.data.metrics
    assert "final_learned_vs_griffinlim-2.speedup" in vocoder.data.metrics
    assert [m.step for m in client.get_metric_history(vocoder.info.run_id, "loss")] == [2, 4, 6]
    assert {"vocoder/evaluation.json", "vocoder/quality_vs_minutes.png"} <= {
        a.path for a in client.list_artifacts(vocoder.info.run_id, "vocoder")}
    train = next(r for r in children if r.info.run_name == "train")
    assert train.data.params["model.base_channels"] == "32" and train.data.metrics["final_parameters"] > 0
    loss_curve = client.get_metric_history(train.info.run_id, "loss")
    assert [m.step for m in loss_curve] == [2, 4, 6, 8, 10, 12]  # the whole curve, per step
    # the stage's run spans the stage: it started before its first logged step and ended after the last
    assert train.info.start_time <= loss_curve[0].timestamp <= loss_curve[-1].timestamp <= train.info.end_time
    assert all(r.info.status == "FINISHED" and r.info.start_time >= parent.info.start_time for r in children)
    assert {"train/samples/final.png"} <= {a.path for a in client.list_artifacts(train.info.run_id, "train/samples")}
    student = next(r for r in children if r.info.run_name == "distill@student-1")
    assert student.data.metrics["final_sampling_steps"] == 1 and "student_vs_teacher_rmse" in " ".join(student.data.metrics)
    evaluate = next(r for r in children if r.info.run_name == "evaluate")
    assert {"evaluate/report.html", "evaluate/steps_vs_quality.png"} <= {
        a.path for a in client.list_artifacts(evaluate.info.run_id, "evaluate")}
    assert "student-1.fad_classifier" in evaluate.data.metrics and "floor.fad_crepe" in evaluate.data.metrics
    assert "vocoder.learned.logmel_l1" in evaluate.data.metrics and "vocoder.griffinlim-2.rtf" in evaluate.data.metrics
    assert "Vocoder" in (project / "models" / "evaluation" / "report.html").read_text()
    results = json.loads((project / "models" / "evaluation" / "metrics.json").read_text())
    assert {r["name"] for r in results["models"] if r["kind"] == "control"} == {
        "control-memoriser", "control-blur", "control-noise"}  # scored, never registered
    # an independent numpy/scipy recomputation agrees with the stage (FAD, floor, precision/recall)
    recompute = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recompute_metrics.py"), "--evaluation",
                                str(project / "models" / "evaluation"), "--out", str(project / "recompute")],
                               capture_output=True, text=True)
    assert recompute.returncode == 0, recompute.stdout + recompute.stderr
    assert summary["promoted"] is True and summary["champion"] == summary["registered"]
    champion = client.get_model_version_by_alias("melforge-mel-diffusion", "champion")
    assert champion.tags["git.commit"] == parent.data.tags["git.commit"] and champion.tags["dvc.data_digest"] == mels_md5
    assert champion.tags["melforge.promotion"] == "champion" and "fad_classifier" in json.loads(champion.tags["melforge.metrics"])
    # a lean record: one machine record of the metrics and one line in words, not a tag per metric
    assert not [k for k in champion.tags if k.startswith("metric.")] and len(champion.tags) < 30
    assert champion.tags["melforge.summary"].startswith("fad_classifier ") and "x the floor" in champion.tags["melforge.summary"]
    evaluation_run = client.get_run(champion.tags["melforge.evaluation_run"])
    assert evaluation_run.info.run_name == "evaluate" and "student-1.fad_classifier" in evaluation_run.data.metrics
    # its source run is the stage run that trained it, not the registry's
    source = client.get_run(champion.run_id)
    model_stage = {"teacher": "train", "wavegan": "gan@wavegan", "specgan": "gan@specgan"}.get(
        champion.tags["melforge.model"], f"distill@{champion.tags['melforge.model']}")
    assert source.info.run_name == model_stage and source.data.tags["mlflow.parentRunId"] == summary["mlflow_run_id"]
    assert champion.tags["melforge.vocoder"] == "learned" and champion.tags["melforge.vocoder_sha256"] != "none"
    ingest = next(r for r in children if r.info.run_name == "ingest")
    assert ingest.data.metrics["clips"] == 8 and ingest.data.params["audio.sample_rate"] == "16000"
    features = next(r for r in children if r.info.run_name == "features")
    assert "griffinlim_spectral_convergence_db" in features.data.metrics
    artifacts = {a.path for a in client.list_artifacts(features.info.run_id, "features")}
    assert "features/preview" in artifacts
    inputs = parent.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest == mels_md5.removesuffix(".dir")[: len(inputs[0].dataset.digest)]
    assert parent.data.tags["dvc.data_digest"] == mels_md5 and parent.data.tags["git.commit"] != "unknown"
    assert parent.data.params["mel.n_mels"] == "32"
    assert any((project.parent / "dvc-remote").rglob("*")), "data was not pushed to the DVC remote"

    # the same flow again: DVC skips every data stage, dvc.lock is unchanged
    lock_before = (project / "dvc.lock").read_text()
    again = melforge_pipeline(root=str(project))
    assert again["stages_skipped"] == ["ingest", "validate", "features", "vocoder", "train", "distill@student-2",
                                       "distill@student-1", "gan@wavegan", "gan@specgan", "vae", "evaluate"]
    assert (project / "dvc.lock").read_text() == lock_before
    second_children = [r for r in client.search_runs([experiment.experiment_id])
                       if r.data.tags.get("mlflow.parentRunId") == again["mlflow_run_id"]]
    assert {r.data.tags.get("melforge.skipped") for r in second_children if r.info.run_name != "registry"} == {"true"}
    # nothing new to register: the same model files map to the same versions, champion unchanged
    assert again["registered"] == summary["registered"] and again["champion"] == summary["champion"]
    # ... and recorded as "no change": the champion keeps the reason it was promoted for, the history grows
    assert again["promoted"] is False and again["promotion"] == "no change"
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    first_run, second_run = runs[summary["mlflow_run_id"]], runs[again["mlflow_run_id"]]
    assert first_run.data.tags["melforge.changed"] == "true" and second_run.data.tags["melforge.changed"] == "false"
    assert first_run.info.run_name != second_run.info.run_name and first_run.info.run_name.startswith("pipeline-")
    kept = client.get_model_version_by_alias("melforge-mel-diffusion", "champion")
    assert kept.tags["melforge.promotion_reason"] == champion.tags["melforge.promotion_reason"]
    assert "x the real-data floor" in kept.description and kept.description.startswith(kept.tags["melforge.model"])
    from components.registry.history import read_history

    assert [e["action"] for e in read_history(client, "melforge-mel-diffusion")] == ["promoted", "no change"]

    # scheduled retraining with unchanged sources: stops after the scan and says so
    from flows.retrain import melforge_retrain

    retrain = melforge_retrain(root=str(project))
    assert retrain["retrained"] is False and "data unchanged" in retrain["reason"]
    assert retrain["data_digest"] == mels_md5
    check = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "retrain-check"]
    assert check and check[0].data.tags["dvc.data_digest"] == mels_md5

    # Prefect artifacts: one per stage plus the pipeline summary
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        keys = {a.key for a in prefect.read_artifacts()}
    assert {"melforge-ingest", "melforge-validate", "melforge-features", "melforge-train",
            "melforge-distill-student-1", "melforge-pipeline", "melforge-evaluation", "melforge-registry",
            "melforge-promotion-history", "melforge-retrain"} <= keys


def test_plain_dvc_repro_twice_does_nothing_and_exp_run_overrides_params(project):
    dvc(project, "repro")
    lock = (project / "dvc.lock").read_text()
    out = dvc(project, "repro")
    assert "didn't change, skipping" in out and "Running stage" not in out
    assert (project / "dvc.lock").read_text() == lock
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "data"], project)
    dvc(project, "exp", "run", "-S", "mel.n_mels=16")
    assert read_params_file(project / "params.yaml")["mel"]["n_mels"] == 16
    assert json.loads((project / "data/metrics/features.json").read_text())["n_mels"] == 16
    assert "ingest" not in dvc(project, "status")  # upstream stages stayed cached


def test_a_critical_validation_failure_stops_the_flow_and_marks_the_run_failed(project, prefect_server, mlflow_store):
    from flows.pipeline import melforge_pipeline

    with pytest.raises(Exception, match="validate"):
        melforge_pipeline(root=str(project), overrides=["validate.max_duration_seconds=0.5"])
    client = mlflow.MlflowClient(mlflow_store)
    runs = client.search_runs([client.get_experiment_by_name("melforge").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FAILED" and "duration" in parent.data.tags["melforge.error"]
    assert not (project / "data" / "mels").exists()  # features never ran


def test_stages_run_in_process_leave_the_lock_plain_dvc_repro_leaves(project, tmp_path):
    """The flow runs stages itself and records them with DVC's commit API: the lock must be the
    one `dvc repro` writes, so plain DVC then finds nothing to do."""
    from components.settings import project_paths
    from components.stages import DATA_STAGES
    from flows.dvc_runner import run_and_commit

    twin = tmp_path / "twin"
    shutil.copytree(project, twin, symlinks=True)
    dvc(project, "repro", "features")
    for stage in DATA_STAGES:
        run_and_commit(project_paths(twin), stage)

    by_repro, by_flow = read_yaml(project / "dvc.lock")["stages"], read_yaml(twin / "dvc.lock")["stages"]
    assert set(by_repro) == set(by_flow) == set(DATA_STAGES)
    def deps(entry: dict) -> dict:  # GX results carry run times, so data/validation differs by content
        return {d["path"]: None if d["path"] == "data/validation" else d.get("md5") for d in entry.get("deps", [])}

    for stage in DATA_STAGES:
        for key in ("cmd", "params"):
            assert by_flow[stage].get(key) == by_repro[stage].get(key), (stage, key)
        assert deps(by_flow[stage]) == deps(by_repro[stage]), stage
        assert [o["path"] for o in by_flow[stage]["outs"]] == [o["path"] for o in by_repro[stage]["outs"]]
    for stage, out in (("ingest", "data/clips"), ("features", "data/mels")):
        md5 = {name: next(o["md5"] for o in lock[stage]["outs"] if o["path"] == out)
               for name, lock in (("repro", by_repro), ("flow", by_flow))}
        assert md5["repro"] == md5["flow"], out  # same bytes, same DVC hash
    assert "Running stage" not in dvc(twin, "repro", "features")  # plain DVC: nothing to do


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_after_a_full_disk_cut_a_dvc_commit_short_the_next_run_commits_what_was_computed(project, monkeypatch):
    """A real full disk: DVC's cache on a 4 KB tmpfs while the features stage commits its mels."""
    import components.stages
    from components.errors import describe
    from components.settings import project_paths
    from flows.dvc_runner import StageFailed, run_and_commit, stale_stages

    paths = project_paths(project)
    for stage in ("scan", "ingest", "validate"):
        run_and_commit(paths, stage)
    cache = project / ".dvc" / "cache"
    moved = project / ".dvc" / "cache-aside"
    cache.rename(moved)
    if not _mount_tmpfs(cache, "4k"):
        moved.rename(cache)
        pytest.skip("mounting a tmpfs needs root")
    try:
        with pytest.raises(StageFailed) as caught:
            run_and_commit(paths, "features")
        line = describe(caught.value)
        assert line.startswith("stage features: no space left on the device writing ") and "(the DVC cache)" in line
    finally:
        subprocess.run(["umount", str(cache)], check=True)
        cache.rmdir()
        moved.rename(cache)
    assert (project / "data" / "mels" / "index.json").is_file() and "features" in stale_stages(paths)

    def recompute(*args, **kwargs):
        raise AssertionError("the features stage ran again")

    monkeypatch.setattr(components.stages, "run_stage", recompute)
    run_and_commit(paths, "features")  # space is back: commit only
    assert "features" not in stale_stages(paths)
    assert not (paths.state / "stages" / "features.computed").exists()
    assert dvc(project, "status", "features").strip().endswith("up to date.")


def test_a_changed_input_after_a_cut_short_commit_runs_the_stage_again(project, monkeypatch):
    import components.stages
    from components.settings import project_paths
    from flows import dvc_runner

    paths = project_paths(project)
    for stage in ("scan", "ingest", "validate"):
        dvc_runner.run_and_commit(paths, stage)
    from dvc.repo import Repo

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device", str(project / ".dvc" / "cache" / "files"))

    with monkeypatch.context() as patch:
        patch.setattr(Repo, "commit", full_disk)
        with pytest.raises(dvc_runner.StageFailed):
            dvc_runner.run_and_commit(paths, "features")
    assert (paths.state / "stages" / "features.computed").is_file()
    params = read_params_file(project / "params.yaml")
    params["mel"]["griffinlim_iters"] = 5  # a parameter the features stage declares
    write_params_file(project / "params.yaml", validate_params(params))
    calls = []
    real_run_stage = components.stages.run_stage
    monkeypatch.setattr(components.stages, "run_stage", lambda *a, **k: calls.append(a[0]) or real_run_stage(*a, **k))
    dvc_runner.run_and_commit(paths, "features")
    assert calls == ["features"] and "features" not in dvc_runner.stale_stages(paths)
