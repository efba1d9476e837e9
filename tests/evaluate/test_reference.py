"""The evaluation reference: labels, scoring a generated set, the real-vs-real floor, saving."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from components.evaluate.embeddings import crepe_embeddings
from components.evaluate.reference import Reference, pick_labels
from components.features.stats import MelStats
from helpers import tiny_config


@dataclass
class FakeStore:
    """Two well separated classes of 16x32 'mels' (what MelStore offers the reference)."""

    n: int = 24
    examples: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(0)
        label = np.arange(self.n) % 2
        self.labels = label
        self.examples = (rng.normal(0, 0.1, (self.n, 16, 32)) + np.where(label, 0.5, -0.5)[:, None, None]).astype(np.float32)
        self.stats = MelStats(mean=np.full(16, -4.0), std=np.full(16, 2.0), clip_sigma=3.0)
        self.index = {"sample_rate": 8000, "layout": "flat", "example_shape": [16, 32],
                      "mel": {"n_fft": 256, "hop_length": 128, "n_mels": 16, "fmin": 0.0, "fmax": None,
                              "win_length": None, "log_floor": 1e-5, "griffinlim_iters": 2}}
        self.layout, self.example_shape = "flat", (16, 32)

    def __len__(self) -> int:
        return self.n

    def batch(self, rows: np.ndarray) -> np.ndarray:
        return self.examples[rows]

    def manifest(self) -> pd.DataFrame:
        return pd.DataFrame({"clip_id": [f"clip-{i:03d}" for i in range(self.n)],
                             "label_kind": np.where(self.labels, "up", "down"), "label_same": "x"})


def test_pick_labels_auto_and_requested():
    manifest = FakeStore().manifest()
    assert list(pick_labels(manifest, [])) == ["kind"]  # one-class labels are useless to a classifier
    with pytest.raises(ValueError, match="eval.labels: colour not in the data; labels present: kind, same"):
        pick_labels(manifest, ["colour"])


def test_reference_scores_near_zero_for_real_and_large_for_noise(tmp_path):
    cfg = tiny_config(eval={"crepe": False, "classifier_steps": 60, "bootstrap": 20, "samples": 8})
    store = FakeStore(n=64)
    ref = Reference.build(store, cfg, real_audio_fn=lambda lm: None)
    assert ref.classifier.holdout_accuracy["kind"] == 1.0
    real = ref.score(store.examples, None)
    noise = ref.score(np.random.default_rng(1).uniform(-1, 1, (64, 16, 32)).astype(np.float32), None)
    floor = ref.real_floor(64)
    assert noise["fad_classifier"].value > 10 * max(floor["fad_classifier"].value, 1e-3)
    assert noise["fad_classifier"].value > real["fad_classifier"].high
    assert 1.0 <= real["is_kind"].value <= 2.0 + 1e-9
    # half A scored as if generated is exactly the floor: same clips, same sizes
    half_a = store.examples[ref.floor_split]
    assert ref.score(half_a, None)["fad_classifier"].value == pytest.approx(floor["fad_classifier"].value)
    ref.save(tmp_path / "reference")
    again = Reference.load(tmp_path / "reference")
    assert again.score(half_a, None)["fad_classifier"].value == pytest.approx(floor["fad_classifier"].value)
    assert again.gamma2 == ref.gamma2 and ref.gamma2["classifier"] > 0
    with pytest.raises(ValueError, match="different mel settings"):
        again.normalise(np.zeros((2, 8, 32)))


def test_crepe_embeddings_shape_and_determinism():
    t = np.arange(8000) / 16000
    audio = np.stack([0.5 * np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 880 * t)]).astype(np.float32)
    a = crepe_embeddings(audio, 16000, hop_seconds=0.1)
    assert a.shape == (2, 256) and np.isfinite(a).all()
    assert np.array_equal(a, crepe_embeddings(audio, 16000, hop_seconds=0.1))
    assert not np.allclose(a[0], a[1])  # different pitches embed differently
    with pytest.raises(ValueError, match="clips, samples"):
        crepe_embeddings(np.zeros(100), 16000)


def test_model_and_floor_are_scored_at_the_same_sample_sizes():
    cfg = tiny_config(eval={"crepe": False, "classifier_steps": 20, "bootstrap": 10, "samples": 8})
    store = FakeStore(n=40)
    ref = Reference.build(store, cfg, real_audio_fn=lambda lm: None)
    n_a, n_b = ref.matched_sizes(8)
    assert n_a == 8 and n_b == int((~ref.floor_split).sum())
    model = ref.score(store.examples[:8], None)["fad_classifier"]
    floor = ref.real_floor(8)["fad_classifier"]
    assert (model.n_a, model.n_b) == (floor.n_a, floor.n_b) == (n_a, n_b)
    many = ref.matched_sizes(1000)  # never more generated clips than half A holds
    assert many == (int(ref.floor_split.sum()), n_b)
