"""The evaluation classifier: trained on the training rows only, it learns separable classes, usable outputs."""

import numpy as np
import pytest

from components.evaluate.classifier import train_classifier


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


def test_classifier_learns_separable_labels_and_gives_embeddings_and_probabilities():
    x, labels, ids = _toy()
    train, test = np.arange(90), np.arange(90, 120)
    clf = train_classifier(x, labels, train, test, steps=150, batch_size=32, lr=3e-3, embedding_dim=16)
    assert clf.holdout_accuracy["pitch"] > 0.9 and clf.holdout_accuracy["family"] > 0.9
    assert (clf.train_examples, clf.holdout_examples) == (90, 30)
    emb, probs = clf.outputs(x[:10])
    assert emb.shape == (10, 16)
    assert probs["pitch"].shape == (10, 3) and np.allclose(probs["family"].sum(1), 1.0, atol=1e-5)
    assert clf.vocabularies["family"] == ["brass", "reed"]


def test_classifier_never_sees_the_evaluation_rows():
    """Poisoned evaluation rows (NaN) would make the loss NaN if any training batch drew one."""
    x, labels, ids = _toy()
    x[90:] = np.nan
    clf = train_classifier(x, labels, np.arange(90), np.arange(90, 120), steps=40, batch_size=32, lr=3e-3,
                           embedding_dim=16)
    emb, _ = clf.outputs(x[:90])
    assert np.isfinite(emb).all()
    with pytest.raises(ValueError, match="eval.fraction"):
        train_classifier(x, labels, np.arange(90), np.arange(0), steps=1, batch_size=4, lr=1e-3, embedding_dim=8)
