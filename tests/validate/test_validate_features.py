"""Validation (Great Expectations) and mel features on real ingested built-in clips."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.features.packing import unpack_snake
from components.features.stage import run_features
from components.level import LevelConvention
from components.features.store import MelStore
from components.ingest.stage import run_ingest
from components.validate.stage import ValidationFailed, run_validate
from helpers import sine, tiny_config, write_audio


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "clips"
    run_ingest(tiny_config(), out)
    return out


def test_suite_passes_on_good_clips_and_writes_results_and_data_docs(clips_dir, tmp_path):
    summary = run_validate(tiny_config(), clips_dir, tmp_path / "validation")
    assert summary["success"] and summary["critical_failures"] == 0
    results = json.loads((tmp_path / "validation" / "results.json").read_text())["results"]
    checks = {r["check"] for r in results}
    assert {"sample_rate", "duration", "finite", "peak", "rms", "unique_clip_ids", "labels:pitch",
            "labels:family", "min_clips_per_class"} <= checks
    assert json.loads((tmp_path / "validation" / "results.json").read_text())["summary"] == summary
    # the Data Docs index renders with no network: no script, no stylesheet or image from elsewhere
    docs = tmp_path / "validation" / "docs"
    index = (docs / "index.html").read_text()
    assert "<script" not in index and not re.search(r'(src|href)="https?://', index)
    assert "passed" in index and all(f"<td>{check}</td>" in index for check in checks)
    for suite in ("melforge_manifest", "melforge_quarantine", "melforge_class_counts"):
        assert f"<td>{suite}</td>" in index
    links = re.findall(r'href="([^"#]+)"', index)
    assert "gx-index.html" in links and len(links) >= 4 and all((docs / link).is_file() for link in links)


def test_critical_failure_names_the_expectation_and_the_rows(clips_dir, tmp_path):
    cfg = tiny_config(audio={"sample_rate": 22050})
    with pytest.raises(ValidationFailed) as err:
        run_validate(cfg, clips_dir, tmp_path / "validation")
    assert "sample_rate" in str(err.value) and "8 of 8 rows" in str(err.value)
    failures = pd.read_csv(tmp_path / "validation" / "failures.csv")
    assert set(failures["check"]) == {"sample_rate"} and len(failures) == 8  # the report is still written


def test_warnings_are_reported_not_fatal_and_gx_draws_no_progress_bars(clips_dir, tmp_path, capfd):
    cfg = tiny_config(validate={"min_clips_per_class": 50})
    summary = run_validate(cfg, clips_dir, tmp_path / "validation")
    assert summary["success"] and summary["warnings"] == 1
    assert summary["failed"][0].startswith("min_clips_per_class")
    assert "Calculating Metrics" not in capfd.readouterr().err


def test_peak_above_one_and_unknown_labels_fail(tmp_path):
    src = tmp_path / "src"
    write_audio(src / "loud/a.wav", sine(440, 1.0, 16000, amp=0.5) * 3, 16000, subtype="FLOAT")
    cfg = tiny_config(data={"sources": [str(src)]}, audio={"normalise": "none"},
                      validate={"allowed_labels": {"label": ["quiet"]}})
    run_ingest(cfg, tmp_path / "clips")
    with pytest.raises(ValidationFailed) as err:
        run_validate(cfg, tmp_path / "clips", tmp_path / "validation")
    assert "peak" in str(err.value) and "labels:label" in str(err.value)


def test_features_store_normalised_mels_with_stats_and_previews(clips_dir, tmp_path):
    cfg = tiny_config()
    summary = run_features(cfg, clips_dir, tmp_path / "mels")
    store = MelStore(tmp_path / "mels")
    assert len(store) == 8 and store.example_shape == (32, 64) and store[0].shape == (32, 64)
    assert np.abs(store.batch(np.arange(8))).max() <= 1.0
    # the evaluation split: one clip of each pitch x program cell held out, recorded in the manifest
    assert summary["split"] == {"cell_labels": ["pitch", "program", "family"], "cells": 4, "train_clips": 4,
                                "eval_clips": 4, "unsplit_cells": [], "unsplit_cell_count": 0}
    manifest = store.manifest()
    assert list(manifest["split"].value_counts().sort_index()) == [4, 4]
    assert manifest.groupby(["label_pitch", "label_program"])["split"].nunique().eq(2).all()
    assert store.stats.mean.shape == (32,)
    # the level the ingest stage gave the clips, stored for every model trained on them
    assert LevelConvention.from_index(store.index) == LevelConvention("peak", cfg.audio.peak_dbfs, cfg.audio.loudness_dbfs)
    assert summary["griffinlim_spectral_convergence_db"] < 0  # reconstruction error below the signal
    assert summary["frames_per_clip"] == 65 and summary["padding_frames"] == 0  # 1 s at hop 250, 64 kept
    assert (tmp_path / "mels" / "preview" / "mels.png").stat().st_size > 1000
    assert len(list((tmp_path / "mels" / "preview").glob("*.wav"))) == 2
    # random batches of training clips by row, reproducible from the seed, each row exactly once per epoch
    batches = list(store.batches(3, seed=1))
    again = list(store.batches(3, seed=1))
    assert [b.shape[0] for b in batches] == [3, 1]
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert isinstance(store.reader.shard(store.reader.files[0]), np.memmap)  # memory-mapped, not loaded


def test_snake_layout_packs_into_three_channels_and_unpacks_to_the_flat_mels(clips_dir, tmp_path):
    run_features(tiny_config(mel={"frames": 66}), clips_dir, tmp_path / "flat")
    run_features(tiny_config(mel={"layout": "snake", "frames": 66}, model={"base_channels": 96}), clips_dir,
                 tmp_path / "snake")
    flat, snake = MelStore(tmp_path / "flat"), MelStore(tmp_path / "snake")
    assert snake.example_shape == (3, 32, 22)
    np.testing.assert_array_equal(unpack_snake(snake[0]), flat[0])
