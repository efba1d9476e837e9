"""Every generator family through one pipeline run: the GAN stages train through DVC and the shared
loop, the evaluation scores them on the same ruler as the diffusion models, the registry serves and
gates across families, and a registered GAN generates audio as a plain pyfunc model."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest

from components.params_file import validate_params, write_params_file
from components.evaluate.serving import choose_served
from helpers import TINY_VAE, tiny_params
from support import run

pytestmark = pytest.mark.integration

TINY_GANS = {
    # 250 x 4^3 = 16000 samples, exactly the 1 s clips; kernel - stride odd
    "wavegan": {"steps": 4, "dim": 4, "latent_dim": 8, "layers": 3, "kernel": 9, "base_frames": 250, "batch_size": 4,
                "n_critic": 2, "log_every": 2, "checkpoint_every": 2, "sample_every": 2, "sample_count": 2,
                "audio_previews": 1},
    "specgan": {"steps": 4, "dim": 4, "latent_dim": 8, "layers": 2, "batch_size": 4, "n_critic": 2, "log_every": 2,
                "checkpoint_every": 2, "sample_every": 0, "sample_count": 2, "audio_previews": 1},
}


def test_gans_and_the_vae_are_trained_scored_served_and_registered_beside_the_diffusion_models(project, prefect_server,
                                                                                             mlflow_store):
    from flows.pipeline import melforge_pipeline

    write_params_file(project / "params.yaml", validate_params(tiny_params(gan=TINY_GANS, vae=TINY_VAE, vocoder={
        "kind": "griffinlim", "steps": 0})))
    run(["git", "commit", "-qam", "GANs and the VAE on"], project)
    summary = melforge_pipeline(root=str(project))
    assert {"gan@wavegan", "gan@specgan", "vae"} <= set(summary["stages_run"])
    assert any(m.startswith("wavegan (1 steps") for m in summary["models"])

    results = json.loads((project / "models" / "evaluation" / "metrics.json").read_text())
    rows = {r["name"]: r for r in results["models"]}
    student, wavegan, specgan, vae = rows["student-1"], rows["wavegan"], rows["specgan"], rows["vae"]
    for gan in (wavegan, specgan, vae):  # the same ruler: every metric the diffusion models get, same sample count
        assert gan["status"] == "ok" and gan["kind"] in ("gan", "vae") and gan["network_evaluations"] == 1
        assert set(gan["metrics"]) == set(student["metrics"])
        assert gan["metrics"]["fad_classifier"]["n_a"] == student["metrics"]["fad_classifier"]["n_a"]
        assert gan["rtf"] > 0 and set(gan["floor_ratios"]) == set(student["floor_ratios"])
    # the guided conditional teacher evaluates its network twice per step; a student once
    assert rows["teacher@4"]["network_evaluations"] == 2 * 4 and student["network_evaluations"] == 1
    # the served model is the cheapest within tolerance of the best at the real level, whatever its family
    served = results["served"]
    expected = choose_served(results["models"], results["primary_metric"], served["tolerance"], served["min_level_in_range"])
    assert (results["served"]["model"], results["served"]["family"]) == (expected["model"], expected["family"])
    table = pd.read_csv(project / "models" / "evaluation" / "steps_vs_quality.csv")
    assert {"diffusion", "wavegan", "specgan", "vae"} <= set(table["family"].dropna())
    assert "fad_classifier_vs_real" in table.columns
    assert "Leaderboard" in (project / "models" / "evaluation" / "report.html").read_text()

    client = mlflow.MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("melforge")
    children = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])
                if r.data.tags.get("mlflow.parentRunId") == summary["mlflow_run_id"]}
    gan_run = children["gan@wavegan"]
    assert gan_run.data.params["gan.wavegan.n_critic"] == "2"
    assert [m.step for m in client.get_metric_history(gan_run.info.run_id, "critic_loss")] == [2, 4]
    assert "gan@wavegan/samples/final.png" in {a.path for a in client.list_artifacts(gan_run.info.run_id, "gan@wavegan/samples")}
    evaluate = children["evaluate"]
    assert "wavegan.fad_classifier" in evaluate.data.metrics and "specgan.rtf" in evaluate.data.metrics
    assert "evaluate/quality_vs_compute.png" in {a.path for a in client.list_artifacts(evaluate.info.run_id, "evaluate")}

    name = "melforge-mel-diffusion"
    versions = {v.tags["melforge.model"]: v for v in client.search_model_versions(f"name = '{name}'")}
    assert {"teacher", "student-2", "student-1", "wavegan", "specgan", "vae"} <= set(versions)
    assert versions["vae"].tags["melforge.family"] == "vae" and versions["vae"].tags["melforge.sampling_steps"] == "1"
    assert versions["wavegan"].tags["melforge.family"] == "wavegan" and versions["teacher"].tags["melforge.family"] == "diffusion"
    assert versions["specgan"].tags["melforge.sampling_steps"] == "1"
    champion = client.get_model_version_by_alias(name, "champion")  # first run, floor relaxed: the served one
    assert champion.tags["melforge.model"] == results["served"]["model"]
    assert champion.tags["melforge.family"] == results["served"]["family"]

    mel_samples = (64 - 1) * 250  # the tiny mels' length in audio (WaveGAN: the whole 16000-sample clip)
    for family in ("wavegan", "specgan", "vae"):  # any registered generator is served by the same pyfunc model
        model = mlflow.pyfunc.load_model(f"models:/{name}/{versions[family].version}")
        audio = model.predict({"n": 2, "seed": 3})
        assert audio.shape[0] == 2 and audio.shape[1] >= mel_samples and abs(audio).max() <= 1
