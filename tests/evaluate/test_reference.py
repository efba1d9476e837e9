"""The evaluation reference and its ruler: the evaluation set, the floor from training clips at the
same n over stratified random subsets, scoring, saving."""

from __future__ import annotations

import numpy as np
import pytest

from components.evaluate.embeddings import crepe_embeddings
from components.evaluate.metrics import frechet_distance
from components.evaluate.reference import Reference, memory_features, pick_labels
from components.evaluate.ruler import pool, random_subset
from components.evaluate.metrics import MetricValue
from components.features.split import EVAL, TRAIN
from helpers import FakeStore, tiny_config


def test_pick_labels_auto_and_requested():
    manifest = FakeStore().manifest()
    assert list(pick_labels(manifest, [])) == ["kind"]  # one-class labels are useless to a classifier
    with pytest.raises(ValueError, match="eval.labels: colour not in the data; labels present: kind, same"):
        pick_labels(manifest, ["colour"])


def test_reference_scores_training_clips_near_the_floor_and_noise_far_from_it(tmp_path):
    cfg = tiny_config(eval={"crepe": False, "classifier_steps": 60, "bootstrap": 20, "samples": 48})
    store = FakeStore(n=200)
    ref = Reference.build(store, cfg, real_audio_fn=lambda lm: None)
    assert ref.classifier.holdout_accuracy["kind"] == 1.0
    assert ref.classifier.holdout_examples == len(store.rows(EVAL))  # accuracy on the evaluation set
    floor = ref.real_floor(48)
    train = store.rows(TRAIN)
    replay = ref.score(store.examples[train[random_subset(len(train), 48, seed=99)]], None)
    noise = ref.score(np.random.default_rng(1).uniform(-1, 1, (48, 16, 32)).astype(np.float32), None)
    assert noise["fad_classifier"].value > 10 * floor["fad_classifier"].value
    fad = floor["fad_classifier"]
    assert fad.low <= replay["fad_classifier"].value <= fad.high  # a draw of training clips is a floor draw
    assert replay["memorised"].value == 1.0 and noise["memorised"].value == 0.0  # copies are caught
    assert floor["fad_classifier"].n_a == 48 and floor["fad_classifier"].n_b == len(store.rows(EVAL))
    ref.save(tmp_path / "reference")
    again = Reference.load(tmp_path / "reference")
    same = again.score(store.examples[train[:16]], None)
    assert same["fad_classifier"].value == pytest.approx(ref.score(store.examples[train[:16]], None)["fad_classifier"].value)
    assert again.gamma2 == ref.gamma2 and ref.gamma2["classifier"] > 0
    assert list(again.split) == list(ref.split)
    with pytest.raises(ValueError, match="different mel settings"):
        again.normalise(np.zeros((2, 8, 32)))


def test_the_floor_has_no_storage_order_bias():
    """Regression: clips are stored by label. The old floor took the first n clips of a half in
    storage order, which covers only some classes when the embedding depends on the label; it came
    out several times larger than the same computation over random subsets. The floor now draws
    random subsets of the training clips, so it matches random draws; a stratified (exactly
    balanced) draw would sit far below them, more even than any sampler's class mix."""
    cfg = tiny_config(eval={"crepe": False, "classifier_steps": 80, "bootstrap": 10, "samples": 24, "floor_subsets": 20})
    store = FakeStore(n=160, classes=8)
    ref = Reference.build(store, cfg, real_audio_fn=lambda lm: None)
    train, evaluation = store.rows(TRAIN), store.rows(EVAL)
    emb = ref.real_classifier
    first_n = frechet_distance(emb[train[:24]], emb[evaluation])  # the old way: storage order
    rng = np.random.default_rng(5)
    random_draws = [frechet_distance(emb[rng.choice(train, 24, replace=False)], emb[evaluation]) for _ in range(20)]
    floor = ref.real_floor(24)["fad_classifier"]
    assert first_n > 3 * np.mean(random_draws)  # the storage-order floor is biased on this store
    assert 0.7 < floor.value / np.mean(random_draws) < 1.3  # the new one is not
    assert floor.low < np.min(random_draws) and floor.high > np.max(random_draws)  # it covers the draws
    per_class = np.concatenate([rng.choice(train[store.labels[train] == c], 3, replace=False) for c in range(8)])
    assert frechet_distance(emb[per_class], emb[evaluation]) < 0.8 * np.mean(random_draws)  # exactly balanced: too low


def test_random_subsets_are_seeded_and_capped():
    rows = random_subset(100, 20, seed=0)
    assert len(rows) == 20 and len(set(rows)) == 20 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, random_subset(100, 20, seed=0))
    assert not np.array_equal(rows, random_subset(100, 20, seed=1))
    assert np.array_equal(random_subset(100, 500, seed=0), np.arange(100))


def test_pooled_floor_interval_covers_the_spread_between_subsets():
    subsets = [MetricValue(v, v - 1, v + 1, 10, 10) for v in (10.0, 14.0, 18.0)]
    pooled = pool(subsets)
    assert pooled.value == pytest.approx(14.0)
    assert pooled.high - pooled.value > 1.96 * 4.0  # wider than the subsets' own intervals: the choice counts
    assert pooled.low < 10.0 and pooled.high > 18.0


def test_memory_features_pool_mels_and_unpack_snake():
    x = np.random.default_rng(0).normal(size=(3, 64, 128)).astype(np.float32)
    f = memory_features(x, "flat")
    assert f.shape == (3, 32 * 32)
    assert f[0, 0] == pytest.approx(x[0, :2, :4].mean(), abs=1e-6)


def test_crepe_embeddings_shape_and_determinism():
    t = np.arange(8000) / 16000
    audio = np.stack([0.5 * np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 880 * t)]).astype(np.float32)
    a = crepe_embeddings(audio, 16000, hop_seconds=0.1)
    assert a.shape == (2, 256) and np.isfinite(a).all()
    assert np.array_equal(a, crepe_embeddings(audio, 16000, hop_seconds=0.1))
    assert not np.allclose(a[0], a[1])  # different pitches embed differently
    with pytest.raises(ValueError, match="clips, samples"):
        crepe_embeddings(np.zeros(100), 16000)


def test_crepe_embed_as_1d_convolutions_equals_torchcrepes_own_embedding():
    import torch
    import torchcrepe

    from components.evaluate.embeddings import crepe_embed, load_crepe

    frames = torch.randn(6, 1024, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = torchcrepe.infer(frames, "tiny", "cpu", embed=True)
        ours = crepe_embed(load_crepe("tiny"), frames)
    assert theirs.shape == (6, 32, 8, 1)
    torch.testing.assert_close(ours, theirs[..., 0], rtol=1e-5, atol=1e-5)


def test_model_and_floor_are_scored_at_the_same_n():
    cfg = tiny_config(eval={"crepe": False, "classifier_steps": 20, "bootstrap": 10, "samples": 8})
    store = FakeStore(n=40)
    ref = Reference.build(store, cfg, real_audio_fn=lambda lm: None)
    model = ref.score(store.examples[:8], None)["fad_classifier"]
    floor = ref.real_floor(8)["fad_classifier"]
    assert (model.n_a, model.n_b) == (floor.n_a, floor.n_b) == (8, len(store.rows(EVAL)))
    assert ref.sample_size(1000) == len(store.rows(TRAIN))  # never more clips than the floor can draw


def _notes(count: int, noise: float, seed: int) -> np.ndarray:
    """``count`` 0.5 s tones at -6 dBFS peak with Gaussian noise of standard deviation ``noise`` under them."""
    rng = np.random.default_rng(seed)
    t = np.arange(8192) / 16000
    tones = 0.5 * np.sin(2 * np.pi * rng.uniform(200, 400, (count, 1)) * t) * (t < 0.25)
    return (tones + rng.normal(0, noise, tones.shape) * rng.uniform(0.5, 2, (count, 1))).astype(np.float32)


def test_hiss_is_seen_by_the_noise_floor_and_the_level_range_not_by_the_floor():
    cfg = tiny_config(eval={"crepe": False, "classifier_steps": 20, "bootstrap": 10, "samples": 8})
    store = FakeStore(n=40)
    ref = Reference.build(store, cfg, real_audio_fn=lambda lm: _notes(len(lm), 1e-4, seed=0))
    floor = ref.real_floor(8)
    assert {"noise_floor_db", "peak_db", "mel_silence", "clipped"} <= set(floor)
    assert floor["level_in_range"].value >= 0.3  # real clips: ~0.9^2 x a small set's narrower percentiles
    hissing = ref.score(store.examples[:8], _notes(8, 3e-2, seed=1))
    assert hissing["noise_floor_db"].value > floor["noise_floor_db"].high + 20
    assert hissing["level_in_range"].value == 0.0


def test_unvoiced_clips_fall_outside_the_real_voicing_range():
    cfg = tiny_config(eval={"crepe": False, "classifier_steps": 20, "bootstrap": 10, "samples": 8})
    store = FakeStore(n=40)
    ref = Reference.build(store, cfg, real_audio_fn=lambda lm: _notes(len(lm), 1e-4, seed=0))
    assert ref.real_floor(8)["voiced_in_range"].value >= 0.5
    noise = np.random.default_rng(2).normal(0, 0.1, (8, _notes(1, 1e-4, seed=0).shape[1])).astype(np.float32)
    assert ref.score(store.examples[:8], noise)["voiced_in_range"].value == 0.0
