"""The registry against a real MLflow server on 127.0.0.1: promotion gate, `melforge generate`;
and `melforge reproduce` of a tiny pipeline run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import soundfile as sf

from components.evaluate.metrics import MetricValue
from components.evaluate.quality import GateSettings
from components.evaluate.quality import gate as quality_gate
from components.registry.publish import apply_promotion, register_model
from components.registry.tags import metric_from_tags, metric_tags
from components.settings import project_paths
from helpers import write_tiny_model, write_tiny_vocoder

pytestmark = pytest.mark.integration
MELFORGE = str(Path(sys.executable).parent / "melforge")
METRIC = "fad_classifier"


def _melforge(args: list[str], cwd: Path, uri: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MELFORGE_PROGRESS": "0", "COLUMNS": "250"}
    return subprocess.run([MELFORGE, *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_promotion_gate_and_generate_against_a_real_mlflow_server(mlflow_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    client = mlflow.MlflowClient(mlflow_server)
    mlflow.set_experiment("registry-test")
    paths = project_paths(tmp_path)
    name = "tiny-gate"

    def candidate(seed: int, value: float, low: float, high: float):
        folder = tmp_path / f"seed-{seed}"
        write_tiny_model(folder / "model.pt", seed)
        row = {"metrics": {METRIC: {"value": value, "low": low, "high": high, "n_a": 8, "n_b": 8}}}
        tags = {**metric_tags(row), "melforge.sample_rate": "8000", "melforge.sampling_steps": "2",
                "melforge.model": "student-2"}
        with mlflow.start_run():
            version, new = register_model(client, folder, name=name, tags=tags, paths=paths)
        assert new
        return version, MetricValue(value, low, high, 8, 8)

    def gate(version, metric, error=None):
        return apply_promotion(client, name, version, metric,
                               champion_metric=lambda champ: (metric_from_tags(champ.tags, METRIC), "recorded"),
                               metric=METRIC, min_improvement=0.05, require_disjoint=True, candidate_error=error)

    def aliases():
        return {a: str(client.get_model_version_by_alias(name, a).version) for a in ("champion", "challenger")}

    v1, m1 = candidate(1, 10.0, 9.0, 11.0)
    first = gate(v1, m1)
    assert first["promoted"] and "no champion yet" in first["reason"]
    assert aliases() == {"champion": str(v1.version), "challenger": str(v1.version)}

    v2, m2 = candidate(2, 12.0, 11.5, 12.5)  # worse
    assert not gate(v2, m2)["promoted"]
    assert aliases() == {"champion": str(v1.version), "challenger": str(v2.version)}
    assert client.get_model_version(name, v2.version).tags["melforge.promotion"] == "rejected"

    v3, m3 = candidate(3, 9.0, 8.5, 10.5)  # 10% better but the intervals overlap
    overlapping = gate(v3, m3)
    assert not overlapping["promoted"] and "overlap" in overlapping["reason"]

    v4, m4 = candidate(4, 9.8, 9.7, 9.9)  # better by less than the 5% margin
    assert not gate(v4, m4)["promoted"]

    v5, m5 = candidate(5, 1.0, 0.5, 1.5)  # would win, but its evaluation failed
    failed = gate(v5, m5, error="non-finite samples")
    assert not failed["promoted"] and "evaluation failed" in failed["reason"]
    assert aliases()["champion"] == str(v1.version)

    v6, m6 = candidate(6, 5.0, 4.5, 5.5)  # really better
    better = gate(v6, m6)
    assert better["promoted"] and "disjoint" in better["reason"]
    assert aliases()["champion"] == str(v6.version)
    tags = client.get_model_version(name, v6.version).tags
    assert tags["melforge.previous_champion"] == str(v1.version) and tags["melforge.promotion"] == "champion"

    # the same model file again is the same version, not a new one
    with mlflow.start_run():
        again, new = register_model(client, tmp_path / "seed-6", name=name, tags={"melforge.sample_rate": "8000",
                                    "melforge.sampling_steps": "2"}, paths=paths)
    assert not new and again.version == v6.version

    # generate from the registry in another process: WAVs at the model's rate, same seed -> same audio
    out = tmp_path / "generated"
    for folder in ("a", "b"):
        proc = _melforge(["generate", "--model", f"models:/{name}@champion", "-n", "2", "--seed", "3",
                          "--seconds", "0.5", "--out", str(out / folder)], tmp_path, mlflow_server)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    wavs = sorted((out / "a").glob("*.wav"))
    assert len(wavs) == 2
    info = sf.info(wavs[0])
    assert info.samplerate == 8000 and info.frames == 4000
    assert [p.read_bytes() for p in wavs] == [p.read_bytes() for p in sorted((out / "b").glob("*.wav"))]
    by_version = _melforge(["generate", "--model", f"{name}/{v2.version}", "-n", "1", "--out", str(out / "v2")],
                           tmp_path, mlflow_server)
    assert by_version.returncode == 0, by_version.stderr

    # rollback: champion back to v1 (the champion before v6), and @champion then serves v1's audio
    rolled = _melforge(["rollback", "--model", name, "--reason", "v6 hisses"], tmp_path, mlflow_server)
    assert rolled.returncode == 0, rolled.stderr
    assert f"champion v{v6.version} -> v{v1.version}" in rolled.stderr and aliases()["champion"] == str(v1.version)
    for spec, folder in ((f"models:/{name}@champion", "rolled"), (f"{name}/{v1.version}", "v1")):
        proc = _melforge(["generate", "--model", spec, "-n", "1", "--seed", "3", "--seconds", "0.5",
                          "--out", str(out / folder)], tmp_path, mlflow_server)
        assert proc.returncode == 0, proc.stderr
    assert [p.read_bytes() for p in sorted((out / "rolled").glob("*.wav"))] == [p.read_bytes() for p in sorted((out / "v1").glob("*.wav"))]
    record = json.loads((out / "rolled" / "melforge-seed3.json").read_text())  # names what made the clips
    assert (record["registered"], record["version"], record["alias"]) == (name, str(v1.version), "champion")
    assert record["model"] == "seed-1" and record["steps"] == 2 and record["vocoder"]
    refused = _melforge(["rollback", "99", "--model", name, "--reason", "x"], tmp_path, mlflow_server)
    assert refused.returncode == 2 and "no version '99'" in refused.stderr and f"v{v6.version} (student-2)" in refused.stderr
    history = _melforge(["champion", "--model", name, "--json"], tmp_path, mlflow_server)
    assert [e["action"] for e in json.loads(history.stdout)["history"]][-2:] == ["promoted", "rolled back"]

    missing = _melforge(["generate", "--model", f"models:/{name}@best"], tmp_path, mlflow_server)
    assert missing.returncode == 2 and "no alias 'best'" in missing.stderr and "@champion" in missing.stderr
    unknown = _melforge(["generate", "--model", "models:/nope/1"], tmp_path, mlflow_server)
    assert unknown.returncode == 2 and name in unknown.stderr

    # a model far from the data is registered, never champion; generate names the best version instead
    noisy = "tiny-noisy"
    floor = {"value": 2.0, "low": 1.5, "high": 2.5}
    for seed, value in ((7, 30.0), (8, 12.0)):
        folder = tmp_path / f"noisy-{seed}"
        write_tiny_model(folder / "model.pt", seed)
        row = {"metrics": {METRIC: {"value": value, "low": value - 1, "high": value + 1, "n_a": 8, "n_b": 8}}}
        with mlflow.start_run():
            version, _ = register_model(client, folder, name=noisy, paths=paths, tags={
                **metric_tags(row), "melforge.sample_rate": "8000", "melforge.sampling_steps": "2",
                "melforge.model": f"student-{seed}", "melforge.primary_metric": METRIC})
        quality = quality_gate(row["metrics"], {METRIC: floor}, GateSettings(primary=METRIC, max_floor_ratio=3.0))
        outcome = apply_promotion(client, noisy, version, MetricValue(value, value - 1, value + 1, 8, 8),
                                  champion_metric=lambda champ: (None, ""), metric=METRIC, min_improvement=0.05,
                                  require_disjoint=True, candidate_error=None, quality=quality)
        assert not outcome["promoted"] and "below the quality floor" in outcome["reason"]
        assert client.get_model_version(noisy, version.version).tags["melforge.promotion"] == "rejected"
    no_champion = _melforge(["generate", "--model", f"models:/{noisy}@champion"], tmp_path, mlflow_server)
    assert no_champion.returncode == 2
    assert "has no champion yet" in no_champion.stderr
    assert f"best registered version is {noisy}/{version.version} (student-8" in no_champion.stderr
    assert not (tmp_path / ".melforge").exists()  # generating from a registry creates no workspace here


def _local_registry(tmp_path: Path, monkeypatch, experiment: str):
    """A SQLite tracking store in ``tmp_path`` with artifacts under ``tmp_path/store``: (uri, client)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    mlflow.set_experiment(experiment_id=client.create_experiment(experiment, artifact_location=(tmp_path / "store").as_uri()))
    return uri, client


def test_a_registered_model_carries_its_learned_vocoder_into_a_fresh_process(tmp_path, monkeypatch):
    uri, client = _local_registry(tmp_path, monkeypatch, "vocoder")
    folder = tmp_path / "model"
    write_tiny_model(folder / "model.pt", 0)
    vocoder = write_tiny_vocoder(tmp_path / "vocoder" / "vocoder.pt")
    tags = {"melforge.sample_rate": "8000", "melforge.sampling_steps": "2"}
    with mlflow.start_run():
        plain, _ = register_model(client, folder, name="tiny-vocoder", paths=project_paths(tmp_path), tags=tags)
        learned, new = register_model(client, folder, name="tiny-vocoder", paths=project_paths(tmp_path), tags=tags,
                                      vocoder_file=vocoder)
        again, again_new = register_model(client, folder, name="tiny-vocoder", paths=project_paths(tmp_path), tags=tags,
                                          vocoder_file=vocoder)
    assert new and not again_new and again.version == learned.version != plain.version  # the pair is the identity
    assert client.get_model_version("tiny-vocoder", learned.version).tags["melforge.vocoder_sha256"] != "none"
    # a plain python process, outside any project: the vocoder comes with the model
    code = ("import sys, mlflow, numpy as np\n"
            "a = mlflow.pyfunc.load_model('models:/tiny-vocoder/{v}').predict({{'n': 1, 'seed': 0, 'seconds': 0.5}})\n"
            "print('clip', a.shape, float(np.abs(a).sum()))\n"
            "print('code', sys.modules['components.vocoder.interface'].__file__)")
    out = {}
    for version in (plain.version, learned.version):
        proc = subprocess.run([sys.executable, "-c", code.format(v=version)], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "MLFLOW_TRACKING_URI": uri})
        assert "clip (1, 4000)" in proc.stdout, proc.stdout + proc.stderr
        # the code that ran is the copy stored with the model, not this checkout's
        assert "/artifacts/code/components/vocoder/interface.py" in proc.stdout, proc.stdout
        out[version] = proc.stdout.splitlines()[0]
    assert out[plain.version] != out[learned.version]  # Griffin-Lim vs the learned vocoder


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_tampered_registered_model_is_refused_before_anything_in_it_runs(tmp_path, monkeypatch):
    import torch

    uri, client = _local_registry(tmp_path, monkeypatch, "tamper")
    folder = tmp_path / "model"
    write_tiny_model(folder / "model.pt", 0)
    with mlflow.start_run():
        version, _ = register_model(client, folder, name="tiny-tamper", paths=project_paths(tmp_path),
                                    tags={"melforge.sample_rate": "8000", "melforge.sampling_steps": "2"})
    ok = _melforge(["generate", "--model", "tiny-tamper/1", "-n", "1", "--out", str(tmp_path / "ok")], tmp_path, uri)
    assert ok.returncode == 0, ok.stderr

    stored = [p for p in (tmp_path / "store").rglob("model.pt")]
    assert len(stored) == 1
    payload = torch.load(stored[0], weights_only=True)
    payload["spec"]["payload"] = _Payload()  # what an attacker with write access to the store would plant
    torch.save(payload, stored[0])
    refused = _melforge(["generate", "--model", "tiny-tamper/1", "-n", "1", "--out", str(tmp_path / "bad")], tmp_path, uri)
    assert refused.returncode == 2 and "was modified after registration" in refused.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "bad").exists()
    # loading it as a plain pyfunc model (no hash check there) still never unpickles the payload
    code = ("import mlflow\ntry:\n    mlflow.pyfunc.load_model('models:/tiny-tamper/1')\nexcept Exception as exc:\n"
            "    print('refused', type(exc).__name__, exc)")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert "refused" in loaded.stdout and "refusing to load" in loaded.stdout, loaded.stdout + loaded.stderr
    assert not (tmp_path / "pwned").exists()


def test_reproduce_rebuilds_a_registered_model_from_its_commit_and_data(project, prefect_server, mlflow_store):
    from flows.pipeline import melforge_pipeline

    summary = melforge_pipeline(root=str(project))
    registered = summary["registered"]
    proc = _melforge(["reproduce", registered], project, mlflow_store)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "reproduced" in output and "NOT" not in output and summary["data_digest"] in output
    assert "fad_classifier" in output and "identical" in output  # same machine: bit-identical weights
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=project, capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1  # the temporary worktree is gone
