"""The evaluation classifier: a stable held-out split, it learns separable classes, usable outputs."""

import numpy as np

from components.evaluate.classifier import holdout_mask, train_classifier


def _toy(n=120, seed=0):
    """Two label columns encoded in different mel bins (like pitch and instrument)."""
    rng = np.random.default_rng(seed)
    pitch = rng.integers(0, 3, n)
    family = rng.integers(0, 2, n)
    x = rng.normal(0, 0.1, size=(n, 8, 16)).astype(np.float32)
    x[np.arange(n), pitch] += 1.0
    x[np.arange(n), 5 + family] += 1.0
    ids = [f"clip-{i}" for i in range(n)]
    return x, {"pitch": [str(p) for p in pitch], "family": ["brass" if f else "reed" for f in family]}, ids


def test_holdout_split_is_a_stable_function_of_clip_ids():
    ids = [f"c{i}" for i in range(1000)]
    mask = holdout_mask(ids, 0.2)
    assert 0.15 < mask.mean() < 0.25
    assert np.array_equal(mask[:500], holdout_mask(ids[:500], 0.2))  # adding clips never moves old ones


def test_classifier_learns_separable_labels_and_gives_embeddings_and_probabilities():
    x, labels, ids = _toy()
    clf = train_classifier(x, labels, ids, holdout_fraction=0.25, steps=150, batch_size=32, lr=3e-3,
                           embedding_dim=16)
    assert clf.holdout_accuracy["pitch"] > 0.9 and clf.holdout_accuracy["family"] > 0.9
    assert clf.train_examples + clf.holdout_examples == len(ids)
    emb, probs = clf.outputs(x[:10])
    assert emb.shape == (10, 16)
    assert probs["pitch"].shape == (10, 3) and np.allclose(probs["family"].sum(1), 1.0, atol=1e-5)
    assert clf.vocabularies["family"] == ["brass", "reed"]
