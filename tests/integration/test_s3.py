"""An S3 source and a DVC S3 remote against an S3-compatible server started on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from botocore.exceptions import ClientError

from components.ingest.sources import EntryError, SourceError, _s3_opener
from components.ingest.stage import run_ingest
from components.ingest.store import read_manifest
from support import dvc, run
from helpers import sine, tiny_config

pytestmark = pytest.mark.integration


def _wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV")
    return buf.getvalue()


@pytest.fixture
def bucket(s3_server) -> str:
    s3 = boto3.client("s3", endpoint_url=s3_server)
    name = f"audio-{np.random.default_rng().integers(1e9)}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="corpus/dog/a.wav", Body=_wav_bytes(sine(440, 1.0, 16000), 16000))
    s3.put_object(Bucket=name, Key="corpus/cat/b.wav", Body=_wav_bytes(sine(660, 1.0, 22050), 22050))
    s3.put_object(Bucket=name, Key="corpus/cat/broken.wav", Body=b"RIFF....not really")
    s3.put_object(Bucket=name, Key="elsewhere/c.wav", Body=_wav_bytes(sine(550, 1.0, 16000), 16000))
    return name


def test_s3_prefix_source_ingests_good_objects_and_quarantines_bad_ones(s3_server, bucket, tmp_path):
    cfg = tiny_config(data={"sources": [f"s3://{bucket}/corpus"], "s3_endpoint_url": s3_server})
    summary = run_ingest(cfg, tmp_path / "clips")
    manifest = read_manifest(tmp_path / "clips")
    assert sorted(manifest["source_uri"]) == [f"s3://{bucket}/corpus/cat/b.wav", f"s3://{bucket}/corpus/dog/a.wav"]
    assert sorted(manifest["label_label"]) == ["cat", "dog"]
    quarantine = pd.read_csv(tmp_path / "clips" / "quarantine.csv")
    assert quarantine["uri"].tolist() == [f"s3://{bucket}/corpus/cat/broken.wav"]
    assert summary["files_quarantined"] == 1


def test_s3_missing_key_is_quarantined_and_missing_bucket_fails(s3_server, bucket, tmp_path):
    client = boto3.client("s3", endpoint_url=s3_server)
    with pytest.raises(EntryError, match="missing"):
        with _s3_opener(client, "s3://b/corpus", bucket, "corpus/gone.wav")():
            pass
    cfg = tiny_config(data={"sources": ["s3://no-such-bucket/x"], "s3_endpoint_url": s3_server})
    with pytest.raises(SourceError, match="no-such-bucket"):
        run_ingest(cfg, tmp_path / "clips")


def test_s3_access_denied_becomes_a_quarantine_reason():
    class DeniedClient:
        def get_object(self, **_):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    with pytest.raises(EntryError, match="access denied"):
        with _s3_opener(DeniedClient(), "s3://b", "b", "k")():
            pass


def test_dvc_s3_remote_push_then_pull_into_a_fresh_clone_gives_identical_data(s3_server, project, tmp_path):
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket="dvc-store")
    dvc(project, "remote", "add", "s3store", "s3://dvc-store/melforge")
    dvc(project, "remote", "modify", "s3store", "endpointurl", s3_server)
    dvc(project, "repro")
    dvc(project, "push", "-r", "s3store")
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "ingested"], project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    dvc(clone, "pull", "-r", "s3store")

    def digest(folder: Path) -> dict[str, str]:
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    assert digest(clone / "data") == digest(project / "data")  # clips, validation, mels, metrics
    assert "up to date" in dvc(clone, "status").lower()  # the clone is complete: nothing to reproduce


def test_an_s3_outage_mid_ingest_fails_and_retries_the_stage_then_a_rerun_ingests_every_object(
        project, prefect_server, mlflow_store, monkeypatch):
    """The endpoint goes down after 3 of 12 objects: nothing is quarantined for it, the stage fails
    as transient and the flow retries it, then stops with a clear message; dvc status still says
    ingest must run, and once S3 is back a re-run ingests all 12."""
    from moto.server import ThreadedMotoServer

    from components.ingest import stage as ingest_stage
    from components.settings import project_paths
    from flows.dvc_runner import run_and_commit, stale_stages
    from flows.pipeline import melforge_pipeline
    from support import free_port

    for key, value in {"AWS_ACCESS_KEY_ID": "melforge-test", "AWS_SECRET_ACCESS_KEY": "melforge-test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket="outage")
    for k in range(12):
        s3.put_object(Bucket="outage", Key=f"corpus/n{k:02d}.wav", Body=_wav_bytes(sine(200 + 40 * k, 1.0, 16000), 16000))

    decoded, attempts = [], []
    real_decode, real_run = ingest_stage.decode_stream, ingest_stage.run_ingest

    def decode_then_fail(*args, **kwargs):
        decoded.append(1)
        if len(decoded) == 3:
            server.stop()  # the endpoint goes away mid-ingest
        return real_decode(*args, **kwargs)

    def counted_run(*args, **kwargs):
        attempts.append(1)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(ingest_stage, "decode_stream", decode_then_fail)
    monkeypatch.setattr(ingest_stage, "run_ingest", counted_run)
    overrides = ["data.sources=[s3://outage/corpus]", f"data.s3_endpoint_url={endpoint}", "data.s3_timeout_seconds=1",
                 "data.s3_attempts=2", "data.labels=none", "orchestration.retries=2", "orchestration.retry_backoff_seconds=1"]
    try:
        with pytest.raises(Exception, match=r"source .s3://outage/corpus.: S3 unreachable while"):
            melforge_pipeline(root=str(project), overrides=overrides, push=False)
        assert len(attempts) == 3  # the first try and 2 retries
        assert not (project / "data" / "clips").exists()  # nothing recorded, nothing quarantined
        paths = project_paths(project)
        assert "ingest" in stale_stages(paths)

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()  # S3 is back (moto keeps its objects in this process)
        run_and_commit(paths, "ingest")
        manifest = read_manifest(project / "data" / "clips")
        assert manifest["source_uri"].nunique() == 12
        assert pd.read_csv(project / "data" / "clips" / "quarantine.csv").empty
        assert "ingest" not in stale_stages(paths)
    finally:
        server.stop()
