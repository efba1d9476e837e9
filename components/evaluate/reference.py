"""The real side of every comparison: the trained classifier, the real clips' embeddings and class
probabilities, and the scoring of a generated set against them.

Saved next to the report (``models/evaluation/reference``) so a model from another run (the
current champion) can be scored against exactly the same real data and classifier.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from components.evaluate.classifier import MelClassifier, TrainedClassifier, holdout_mask, train_classifier
from components.evaluate.embeddings import crepe_embeddings
from components.evaluate.metrics import MetricValue, bootstrap, frechet_distance, inception_score, kid, median_gamma2
from components.features.mel import MelSpec
from components.features.packing import pack_snake
from components.features.stats import MelStats, to_logmel
from components.ingest.stage import LABEL_PREFIX
from components.storage import atomic_save_torch, atomic_write, atomic_write_json, load_torch


@dataclass(frozen=True)
class ScoreSettings:
    bootstrap: int = 200
    kid_subsets: int = 20
    kid_subset_size: int = 100
    imq_gamma2: float | None = None  # None: scaled to each embedding (median heuristic)
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
    gamma2: dict[str, float] = field(default_factory=dict)  # IMQ gamma^2 per embedding, fixed at build

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
        ref.gamma2 = {kind: ref.imq_gamma2(kind) for kind in ref.real_embeddings()}
        return ref

    def imq_gamma2(self, kind: str) -> float:
        """The IMQ kernel's gamma^2 for an embedding: as built (saved with the reference), else the
        configured one, else the median heuristic on all real embeddings of that kind."""
        return self.gamma2.get(kind) or self.settings.imq_gamma2 or median_gamma2(self.real_embeddings()[kind])

    def real_embeddings(self) -> dict[str, np.ndarray]:
        return {"classifier": self.real_classifier, **({"crepe": self.real_crepe} if self.real_crepe is not None else {})}

    @functools.cached_property
    def floor_split(self) -> np.ndarray:
        """True for the real clips of half A, False for half B (a pure function of the clip ids).

        Every distance is measured against half B: a generated set with as many clips as half A
        (the real-vs-real floor: half A itself), so both sit at the same sample sizes. Fréchet
        distance is biased upwards by small n, so a floor at other sizes is not a floor.
        """
        if len(self.clip_ids) < 4:
            raise ValueError(f"evaluation needs at least 4 real clips for the real-vs-real floor, got {len(self.clip_ids)}")
        half = holdout_mask(self.clip_ids, 0.5)
        if min(half.sum(), (~half).sum()) < 2:  # tiny sets: alternate instead
            half = np.arange(len(self.clip_ids)) % 2 == 0
        return half

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
    def _distances(self, kind: str, a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, MetricValue]:
        s = self.settings
        gamma2 = self.imq_gamma2(kind)

        def kid_fn(kernel: str):
            return lambda x, y, origins=None: kid(x, y, kernel=kernel, gamma2=gamma2, subsets=s.kid_subsets,
                                                  subset_size=s.kid_subset_size, seed=seed, origins=origins)

        return {f"fad_{kind}": bootstrap(frechet_distance, a, b, resamples=s.bootstrap, seed=seed),
                f"kid_cubic_{kind}": bootstrap(kid_fn("cubic"), a, b, resamples=s.bootstrap, seed=seed + 1,
                                               with_origins=True),
                f"kid_imq_{kind}": bootstrap(kid_fn("imq"), a, b, resamples=s.bootstrap, seed=seed + 2,
                                             with_origins=True)}

    def _inception(self, probs: dict[str, np.ndarray], seed: int) -> dict[str, MetricValue]:
        """IS over splits of a fixed random order: splits of sorted data (real clips are stored by
        label) would each hold one class and score ~1."""
        s = self.settings
        order = np.random.default_rng(seed).permutation(len(next(iter(probs.values()))))
        return {f"is_{name}": bootstrap(lambda q: inception_score(q, s.is_splits)[0], p[order], resamples=s.bootstrap,
                                        seed=seed + 3)
                for name, p in probs.items()}

    def matched_sizes(self, generated: int) -> tuple[int, int]:
        """(clips on the generated side, real clips of half B) for every distance: the generated
        side never has more clips than half A, so the floor can be measured at the same sizes."""
        half = self.floor_split
        return min(generated, int(half.sum())), int((~half).sum())

    def _compare(self, generated: dict[str, np.ndarray], probs: dict[str, np.ndarray]) -> dict[str, MetricValue]:
        seed = self.settings.seed
        half_b = ~self.floor_split
        n_a, _ = self.matched_sizes(len(next(iter(probs.values()))))
        metrics: dict[str, MetricValue] = {}
        for kind, real in self.real_embeddings().items():
            if kind in generated:
                metrics.update(self._distances(kind, generated[kind][:n_a], real[half_b], seed))
        metrics.update(self._inception(probs, seed))
        return metrics

    def score(self, normalised: np.ndarray, audio: np.ndarray | None) -> dict[str, MetricValue]:
        """Every metric of a generated set (normalised mels in this reference's layout, and its audio):
        distances at :meth:`matched_sizes` against half B, the Inception Score over all of it."""
        emb, probs = self.classifier.outputs(normalised)
        generated = {"classifier": emb}
        if self.settings.crepe and self.real_crepe is not None:
            if audio is None:
                raise ValueError("the CREPE metrics need the generated audio")
            generated["crepe"] = self.crepe(audio)
        return self._compare(generated, probs)

    def real_floor(self, generated: int | None = None) -> dict[str, MetricValue]:
        """The same metrics for real clips scored as if generated: half A (its first ``generated``
        clips) against half B, and the Inception Score of ``generated`` real clips in a fixed random
        order. The best a model can expect at these sample sizes."""
        half_a = np.flatnonzero(self.floor_split)
        n = len(self.clip_ids) if generated is None else generated
        order = np.random.default_rng(self.settings.seed).permutation(len(self.clip_ids))
        is_rows = order[:min(n, len(order))]
        a_rows = half_a[:self.matched_sizes(n)[0]]
        generated_like = {kind: real[a_rows] for kind, real in self.real_embeddings().items()}
        probs = {k: v[is_rows] for k, v in self.real_probs.items()}
        return self._compare(generated_like, probs)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        c = self.classifier
        atomic_save_torch({"state": c.model.state_dict(), "in_channels": c.model.in_channels,
                           "heads": {k: len(v) for k, v in c.vocabularies.items()},
                           "embedding_dim": c.model.project.out_features}, folder / "classifier.pt")
        arrays = {"real_classifier": self.real_classifier, **{f"probs_{k}": v for k, v in self.real_probs.items()}}
        if self.real_crepe is not None:
            arrays["real_crepe"] = self.real_crepe
        atomic_write(folder / "embeddings.npz", lambda fh: np.savez(fh, **arrays))
        atomic_write_json(folder / "reference.json", {
            "vocabularies": c.vocabularies, "holdout_accuracy": c.holdout_accuracy,
            "train_examples": c.train_examples, "holdout_examples": c.holdout_examples,
            "stats": self.stats.to_json(), "spec": asdict(self.spec), "layout": self.layout,
            "example_shape": list(self.example_shape), "settings": asdict(self.settings), "clip_ids": self.clip_ids,
            "imq_gamma2": self.gamma2})

    @classmethod
    def load(cls, folder: Path) -> "Reference":
        meta_path = folder / "reference.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: no evaluation reference; run the evaluate stage first")
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        payload = load_torch(folder / "classifier.pt")
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
                   real_classifier=real_classifier, real_probs=real_probs, real_crepe=real_crepe,
                   gamma2=meta.get("imq_gamma2", {}))
