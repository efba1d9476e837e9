"""Nothing trains on the evaluation set: every stage's batch source draws training clips only (the
teacher and distillation, SpecGAN, WaveGAN, the vocoder; the classifier has its own test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.features.split import EVAL, TRAIN
from components.features.stage import run_features
from components.features.store import MelStore
from components.gan.stage import train_locations, waveform_source
from components.train.runner import mel_source
from components.ingest.stage import run_ingest
from components.ingest.store import open_clips, read_manifest
from components.train.runner import data_fingerprint
from components.train.teacher import teacher_batches
from components.vocoder.stage import segment_source, split_clips
from helpers import tiny_config


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("split")
    cfg = tiny_config()
    run_ingest(cfg, root / "clips")
    run_features(cfg, root / "clips", root / "mels")
    return root


def _ids(store: MelStore, side: str) -> set[str]:
    return set(store.manifest()["clip_id"].to_numpy()[store.rows(side)])


def _drawn_rows(batches, candidates: np.ndarray) -> set[int]:
    """Which rows of ``candidates`` the drawn examples are (exact copies)."""
    found = set()
    for example in np.concatenate(batches):
        hits = [i for i, c in enumerate(candidates) if np.array_equal(c[..., :example.shape[-1]], example)]
        assert hits, "a drawn example is no stored clip"
        found.update(hits)
    return found


def test_diffusion_and_specgan_batches_hold_training_clips_only(workspace):
    store = MelStore(workspace / "mels")
    every = store.batch(np.arange(len(store)))
    train = set(store.rows(TRAIN).tolist())
    teacher = [teacher_batches(tiny_config(train={"batch_size": 16}), store)(step).numpy() for step in range(20)]
    specgan = [mel_source(store, batch_size=16, seed=0)(step).numpy() for step in range(20)]
    assert _drawn_rows(teacher, every) == train  # every training clip, and nothing else
    assert _drawn_rows(specgan, every) == train


def test_waveform_and_vocoder_sources_hold_training_clips_only(workspace):
    store = MelStore(workspace / "mels")
    clips, manifest = open_clips(workspace / "clips"), read_manifest(workspace / "clips")
    ids = manifest["clip_id"].to_numpy()
    audio = np.stack([np.asarray(clips.row(s, int(r))) for s, r in zip(manifest["shard"], manifest["row"])])
    locations = train_locations(manifest, store)
    by_location = {(s, int(r)): c for s, r, c in zip(manifest["shard"], manifest["row"], ids)}
    assert {by_location[loc] for loc in locations} == _ids(store, TRAIN)
    wave = [waveform_source(clips, locations, batch_size=8, samples=audio.shape[1], seed=0)(s).numpy() for s in range(10)]
    assert {ids[r] for r in _drawn_rows(wave, audio)} == _ids(store, TRAIN)
    train_rows, eval_rows = split_clips(list(ids), store)
    assert set(ids[train_rows]) == _ids(store, TRAIN) and set(ids[eval_rows]) == _ids(store, EVAL)
    all_locations = list(zip(manifest["shard"], manifest["row"].astype(int)))
    segments = segment_source(clips, train_rows, all_locations, batch_size=4, segment_samples=audio.shape[1], seed=0)
    assert {ids[r] for r in _drawn_rows([segments(s).numpy() for s in range(10)], audio)} <= _ids(store, TRAIN)


def test_a_different_split_is_different_training_data(workspace, tmp_path):
    """The training fingerprint covers the split, so a run never resumes across a change of eval.fraction."""
    run_features(tiny_config(eval={"fraction": 0.2, "min_clips_per_cell": 1, "split_labels": ["program"]}), workspace / "clips", tmp_path / "mels")
    assert data_fingerprint(MelStore(tmp_path / "mels")) != data_fingerprint(MelStore(workspace / "mels"))
