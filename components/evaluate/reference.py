"""The real side of every comparison: the trained classifier, the real clips' embeddings and class
probabilities, and the scoring of a generated set against them.

Saved next to the report (``models/evaluation/reference``) so a model from another run (the
current champion) can be scored against exactly the same real data and classifier.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.evaluate.classifier import MelClassifier, TrainedClassifier, holdout_mask, train_classifier
from components.evaluate.embeddings import crepe_embeddings
from components.evaluate.metrics import MetricValue, bootstrap, frechet_distance, inception_score, kid
from components.features.mel import MelSpec
from components.features.packing import pack_snake
from components.features.stats import MelStats, to_logmel
from components.ingest.stage import LABEL_PREFIX
from components.storage import atomic_write_bytes, atomic_write_json


def lower_is_better(metric: str) -> bool:
    """FAD and KID are distances; the Inception Score (is_*) grows with quality."""
    return not metric.startswith("is_")


@dataclass(frozen=True)
class ScoreSettings:
    bootstrap: int = 200
    kid_subsets: int = 20
    kid_subset_size: int = 100
    imq_gamma2: float = 8.0
    is_splits: int = 5
    crepe: bool = True
    crepe_model: str = "tiny"
    crepe_hop_seconds: float = 0.1
    griffinlim_iters: int = 16
    seed: int = 0

    @classmethod
    def from_config(cls, cfg) -> "ScoreSettings":
        e = cfg.eval
        return cls(bootstrap=e.bootstrap, kid_subsets=e.kid_subsets, kid_subset_size=e.kid_subset_size,
                   imq_gamma2=e.imq_gamma2, is_splits=e.is_splits, crepe=e.crepe, crepe_model=e.crepe_model,
                   crepe_hop_seconds=e.crepe_hop_seconds, griffinlim_iters=e.griffinlim_iters, seed=cfg.seed)


def pick_labels(manifest, requested: list[str]) -> dict[str, list[str]]:
    """The label columns the classifier learns: the requested ones, or every label with 2..512 classes."""
    available = {c.removeprefix(LABEL_PREFIX): manifest[c] for c in manifest.columns if c.startswith(LABEL_PREFIX)}
    if requested:
        missing = [name for name in requested if name not in available]
        if missing:
            raise ValueError(f"eval.labels: {', '.join(missing)} not in the data; labels present: "
                             f"{', '.join(available) or 'none'}")
        chosen = {name: available[name] for name in requested}
    else:
        chosen = {name: col for name, col in available.items() if 2 <= col.nunique() <= 512}
    labels = {name: [str(v) for v in col] for name, col in chosen.items() if col.notna().all()}
    if not labels:
        raise ValueError("evaluation needs at least one label column with 2..512 classes and no missing values "
                         f"(labels present: {', '.join(available) or 'none'}); label the data (folders or labels.csv)")
    return labels


@dataclass
class Reference:
    classifier: TrainedClassifier
    stats: MelStats
    spec: MelSpec
    layout: str
    example_shape: tuple[int, ...]
    settings: ScoreSettings
    clip_ids: list[str]
    real_classifier: np.ndarray
    real_probs: dict[str, np.ndarray]
    real_crepe: np.ndarray | None

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def build(cls, store, cfg, *, real_audio_fn) -> "Reference":
        """Train the classifier on the real clips of ``store`` and embed them all.

        ``real_audio_fn(logmel)`` turns real mels into audio the same way generated mels are
        (Griffin-Lim), so the CREPE comparison measures the model, not the vocoder.
        """
        manifest = store.manifest()
        labels = pick_labels(manifest, cfg.eval.labels)
        examples = store.batch(np.arange(len(store)))
        clip_ids = [str(c) for c in manifest["clip_id"]]
        e = cfg.eval
        classifier = train_classifier(examples, labels, clip_ids, holdout_fraction=e.holdout_fraction,
                                      steps=e.classifier_steps, batch_size=e.classifier_batch_size, lr=e.classifier_lr,
                                      embedding_dim=e.embedding_dim, seed=cfg.seed)
        emb, probs = classifier.outputs(examples)
        settings = ScoreSettings.from_config(cfg)
        ref = cls(classifier=classifier, stats=store.stats, spec=MelSpec.from_index(store.index), layout=store.layout,
                  example_shape=store.example_shape, settings=settings, clip_ids=clip_ids, real_classifier=emb,
                  real_probs=probs, real_crepe=None)
        if settings.crepe:
            audio = real_audio_fn(ref.to_logmel(examples))
            ref.real_crepe = ref.crepe(audio)
        return ref

    def to_logmel(self, normalised: np.ndarray) -> np.ndarray:
        return to_logmel(normalised, self.stats, self.layout)

    def normalise(self, logmel: np.ndarray) -> np.ndarray:
        """Log mels from any model -> this reference's normalised layout (what the classifier reads)."""
        logmel = np.asarray(logmel)
        frames = self.example_shape[-1] * (self.example_shape[0] if self.layout == "snake" else 1)
        if logmel.shape[-2] != self.spec.n_mels or logmel.shape[-1] != frames:
            raise ValueError(f"mels of shape {logmel.shape[-2:]} cannot be scored against a reference of "
                             f"{self.spec.n_mels} mels x {frames} frames (different mel settings)")
        x = self.stats.normalise(logmel)
        return pack_snake(x, self.example_shape[0]) if self.layout == "snake" else x

    def crepe(self, audio: np.ndarray) -> np.ndarray:
        s = self.settings
        return crepe_embeddings(audio, self.spec.sample_rate, hop_seconds=s.crepe_hop_seconds, model=s.crepe_model)

    # -- scoring --------------------------------------------------------------------------------
    def _distances(self, prefix: str, a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, MetricValue]:
        s = self.settings

        def kid_fn(kernel: str):
            return lambda x, y: kid(x, y, kernel=kernel, gamma2=s.imq_gamma2, subsets=s.kid_subsets,
                                    subset_size=s.kid_subset_size, seed=seed)

        return {f"fad_{prefix}": bootstrap(frechet_distance, a, b, resamples=s.bootstrap, seed=seed),
                f"kid_cubic_{prefix}": bootstrap(kid_fn("cubic"), a, b, resamples=s.bootstrap, seed=seed + 1),
                f"kid_imq_{prefix}": bootstrap(kid_fn("imq"), a, b, resamples=s.bootstrap, seed=seed + 2)}

    def _inception(self, probs: dict[str, np.ndarray], seed: int) -> dict[str, MetricValue]:
        """IS over splits of a fixed random order: splits of sorted data (real clips are stored by
        label) would each hold one class and score ~1."""
        s = self.settings
        order = np.random.default_rng(seed).permutation(len(next(iter(probs.values()))))
        return {f"is_{name}": bootstrap(lambda q: inception_score(q, s.is_splits)[0], p[order], resamples=s.bootstrap,
                                        seed=seed + 3)
                for name, p in probs.items()}

    def score(self, normalised: np.ndarray, audio: np.ndarray | None) -> dict[str, MetricValue]:
        """Every metric of a generated set (normalised mels in this reference's layout, and its audio)."""
        seed = self.settings.seed
        emb, probs = self.classifier.outputs(normalised)
        metrics = {**self._distances("classifier", emb, self.real_classifier, seed), **self._inception(probs, seed)}
        if self.settings.crepe and self.real_crepe is not None:
            if audio is None:
                raise ValueError("the CREPE metrics need the generated audio")
            metrics.update(self._distances("crepe", self.crepe(audio), self.real_crepe, seed))
        return metrics

    def real_floor(self) -> dict[str, MetricValue]:
        """The same metrics between two disjoint halves of the real clips (split by clip id): the
        best a model can expect at this sample size. IS is that of all real clips."""
        if len(self.clip_ids) < 4:
            raise ValueError(f"evaluation needs at least 4 real clips for the real-vs-real floor, got {len(self.clip_ids)}")
        half = holdout_mask(self.clip_ids, 0.5)
        if min(half.sum(), (~half).sum()) < 2:  # tiny sets: alternate instead
            half = np.arange(len(self.clip_ids)) % 2 == 0
        seed = self.settings.seed
        metrics = {**self._distances("classifier", self.real_classifier[half], self.real_classifier[~half], seed),
                   **self._inception(self.real_probs, seed)}
        if self.real_crepe is not None:
            metrics.update(self._distances("crepe", self.real_crepe[half], self.real_crepe[~half], seed))
        return metrics

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        c = self.classifier
        import io

        buffer = io.BytesIO()
        torch.save({"state": c.model.state_dict(), "in_channels": c.model.in_channels,
                    "heads": {k: len(v) for k, v in c.vocabularies.items()},
                    "embedding_dim": c.model.project.out_features}, buffer)
        atomic_write_bytes(folder / "classifier.pt", buffer.getvalue())
        arrays = {"real_classifier": self.real_classifier, **{f"probs_{k}": v for k, v in self.real_probs.items()}}
        if self.real_crepe is not None:
            arrays["real_crepe"] = self.real_crepe
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(folder / "embeddings.npz", buffer.getvalue())
        atomic_write_json(folder / "reference.json", {
            "vocabularies": c.vocabularies, "holdout_accuracy": c.holdout_accuracy,
            "train_examples": c.train_examples, "holdout_examples": c.holdout_examples,
            "stats": self.stats.to_json(), "spec": asdict(self.spec), "layout": self.layout,
            "example_shape": list(self.example_shape), "settings": asdict(self.settings), "clip_ids": self.clip_ids})

    @classmethod
    def load(cls, folder: Path) -> "Reference":
        meta_path = folder / "reference.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: no evaluation reference; run the evaluate stage first")
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        payload = torch.load(folder / "classifier.pt", map_location="cpu", weights_only=True)
        model = MelClassifier(payload["in_channels"], payload["heads"], payload["embedding_dim"])
        model.load_state_dict(payload["state"])
        classifier = TrainedClassifier(model=model.eval(), vocabularies=meta["vocabularies"],
                                       holdout_accuracy=meta["holdout_accuracy"], train_examples=meta["train_examples"],
                                       holdout_examples=meta["holdout_examples"])
        with np.load(folder / "embeddings.npz") as arrays:
            real_probs = {k.removeprefix("probs_"): arrays[k] for k in arrays.files if k.startswith("probs_")}
            real_crepe = arrays["real_crepe"] if "real_crepe" in arrays.files else None
            real_classifier = arrays["real_classifier"]
        return cls(classifier=classifier, stats=MelStats.from_json(meta["stats"]), spec=MelSpec(**meta["spec"]),
                   layout=meta["layout"], example_shape=tuple(meta["example_shape"]),
                   settings=ScoreSettings(**meta["settings"]), clip_ids=meta["clip_ids"],
                   real_classifier=real_classifier, real_probs=real_probs, real_crepe=real_crepe)
