"""The real side of every comparison: the evaluation set (clips nothing trained on), the training
clips the floor and the memorisation check draw from, the classifier trained on training clips only,
and every real embedding and signal statistic.

Saved next to the report (``models/evaluation/reference``) so a model from another run (the
current champion) can be scored against exactly the same real data and classifier, and so
``benchmarks/recompute_metrics.py`` can check the stage's numbers with numpy alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from components.evaluate.classifier import MelClassifier, TrainedClassifier, train_classifier
from components.evaluate.embeddings import crepe_embeddings
from components.evaluate.metrics import MetricValue, median_gamma2, nearest_distances
from components.evaluate.ruler import Ruler, ScoreSettings, random_subset
from components.evaluate.signal import midi_pitches, signal_stats
from components.features.mel import MelSpec
from components.features.packing import pack_snake, unpack_snake
from components.features.split import EVAL, TRAIN, cell_keys, choose_cell_labels
from components.features.stats import MelStats, to_logmel
from components.ingest.store import LABEL_PREFIX
from components.storage import atomic_save_torch, atomic_write, atomic_write_json, load_torch

MEMORY_SIZE = 32  # the memorisation check compares mels pooled to at most 32 x 32


def pick_labels(manifest, requested: list[str]) -> dict[str, list[str]]:
    """The label columns the classifier learns: the requested ones, or every label with 2..512 classes."""
    available = {c.removeprefix(LABEL_PREFIX): manifest[c] for c in manifest.columns if c.startswith(LABEL_PREFIX)}
    chosen = _requested(available, requested) if requested else \
        {name: col for name, col in available.items() if 2 <= col.nunique() <= 512}
    labels = {name: [str(v) for v in col] for name, col in chosen.items() if col.notna().all()}
    if not labels:
        raise ValueError("evaluation needs at least one label column with 2..512 classes and no missing values "
                         f"(labels present: {', '.join(available) or 'none'}); label the data (folders or labels.csv)")
    return labels


def _requested(available: dict[str, Any], requested: list[str]) -> dict[str, Any]:
    missing = [name for name in requested if name not in available]
    if missing:
        raise ValueError(f"eval.labels: {', '.join(missing)} not in the data; labels present: "
                         f"{', '.join(available) or 'none'}")
    return {name: available[name] for name in requested}


def memory_features(normalised: np.ndarray, layout: str) -> np.ndarray:
    """Normalised mels average-pooled to at most 32 x 32, flattened: the space of the memorisation
    check (a copy of a training clip is a copy here, whatever the classifier learned to ignore)."""
    x = np.asarray(normalised, np.float32)
    if layout == "snake":
        x = unpack_snake(x)
    n, bins, frames = x.shape
    fb, ff = max(1, bins // MEMORY_SIZE), max(1, frames // MEMORY_SIZE)
    x = x[:, : bins - bins % fb, : frames - frames % ff]
    return x.reshape(n, x.shape[1] // fb, fb, x.shape[2] // ff, ff).mean((2, 4)).reshape(n, -1)


@dataclass
class Reference:
    classifier: TrainedClassifier
    stats: MelStats
    spec: MelSpec
    layout: str
    example_shape: tuple[int, ...]
    settings: ScoreSettings
    clip_ids: list[str]
    split: np.ndarray  # "train" / "eval" per clip
    cells: list[str]  # the label cell of every clip (the blur control's cell means)
    real_classifier: np.ndarray
    real_probs: dict[str, np.ndarray]
    real_crepe: np.ndarray | None
    real_memory: np.ndarray
    real_signal: dict[str, np.ndarray] = field(default_factory=dict)
    pitches: list[float] | None = None  # MIDI pitches of the training clips, when the data has a pitch label
    gamma2: dict[str, float] = field(default_factory=dict)  # IMQ gamma^2 per embedding, fixed at build
    real_audio: np.ndarray | None = field(default=None, repr=False)  # the clips through the vocoder (not saved)
    _rulers: dict[int, Ruler] = field(default_factory=dict, repr=False)

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def build(cls, store, cfg, *, real_audio_fn) -> "Reference":
        """Train the classifier on the training clips of ``store`` (accuracy on the evaluation set)
        and embed every clip. ``real_audio_fn(logmel)`` turns real mels into audio the way generated
        mels are, so CREPE and the signal statistics measure the model, not the vocoder (None: the
        mel-based metrics only)."""
        manifest = store.manifest()
        labels = pick_labels(manifest, cfg.eval.labels)
        split = np.asarray(store.split).astype(str)
        train_rows, eval_rows = np.flatnonzero(split == TRAIN), np.flatnonzero(split == EVAL)
        examples = store.batch(np.arange(len(store)))
        clip_ids = [str(c) for c in manifest["clip_id"]]
        e = cfg.eval
        classifier = train_classifier(examples, labels, train_rows, eval_rows, steps=e.classifier_steps,
                                      batch_size=e.classifier_batch_size, lr=e.classifier_lr,
                                      embedding_dim=e.embedding_dim, seed=cfg.seed)
        emb, probs = classifier.outputs(examples)
        label_frame = manifest[[c for c in manifest.columns if c.startswith(LABEL_PREFIX)]]
        label_frame = label_frame.rename(columns=lambda c: c.removeprefix(LABEL_PREFIX))
        cells = cell_keys(label_frame[choose_cell_labels(label_frame, e.split_labels)])
        pitches = midi_pitches(list(label_frame["pitch"].to_numpy()[train_rows])) if "pitch" in label_frame else None
        ref = cls(classifier=classifier, stats=store.stats, spec=MelSpec.from_index(store.index), layout=store.layout,
                  example_shape=store.example_shape, settings=ScoreSettings.from_config(cfg), clip_ids=clip_ids,
                  split=split, cells=cells, real_classifier=emb, real_probs=probs, real_crepe=None,
                  real_memory=memory_features(examples, store.layout), pitches=pitches)
        logmel = ref.to_logmel(examples)
        audio = ref.real_audio = real_audio_fn(logmel) if real_audio_fn is not None else None
        if audio is not None:
            ref.real_signal = signal_stats(audio, ref.spec.sample_rate, pitches, logmel, ref.spec.log_floor)
            if ref.settings.crepe:
                ref.real_crepe = ref.crepe(audio)
        ref.gamma2 = {kind: ref.imq_gamma2(kind) for kind in ref.real_embeddings()}  # fixed from here on
        return ref

    def real_embeddings(self) -> dict[str, np.ndarray]:
        return {"classifier": self.real_classifier, **({"crepe": self.real_crepe} if self.real_crepe is not None else {})}

    def rows(self, side: str) -> np.ndarray:
        return np.flatnonzero(self.split == side)

    def ruler_for(self, n: int) -> Ruler:
        """Everything a set of n clips is measured against (the evaluation set) and drawn against
        (the training clips: the floor, the memorisation check, and the duplication threshold: the
        5th percentile of each training clip's distance to its nearest other clip in the floor's
        sets of n, so a set as varied as real data has about 5% duplicated clips)."""
        if n not in self._rulers:
            ev, tr = self.rows(EVAL), self.rows(TRAIN)
            within = [nearest_distances(self.real_memory[rows], self.real_memory[rows], exclude_self=True)
                      for rows in self.floor_subsets(n)]
            self._rulers[n] = Ruler(settings=self.settings,
                                    eval_embeddings={k: v[ev] for k, v in self.real_embeddings().items()},
                                    train_memory=self.real_memory[tr], eval_memory=self.real_memory[ev],
                                    eval_signal={k: v[ev] for k, v in self.real_signal.items()},
                                    gamma2={kind: self.imq_gamma2(kind) for kind in self.real_embeddings()},
                                    duplicate_threshold=float(np.percentile(np.concatenate(within),
                                                                            self.settings.memorised_percentile)))
        return self._rulers[n]

    def imq_gamma2(self, kind: str) -> float:
        """The IMQ kernel's gamma^2: as built (saved with the reference), else ``eval.imq_gamma2``,
        else the median heuristic on the evaluation set's embeddings."""
        configured = self.gamma2.get(kind) or self.settings.imq_gamma2
        return configured or median_gamma2(self.real_embeddings()[kind][self.rows(EVAL)])

    def sample_size(self, generated: int) -> int:
        """n for every comparison: the generated clips, at most as many as there are training clips
        (the floor is n training clips, so both sides of a ratio sit at the same n)."""
        return min(generated, len(self.rows(TRAIN)))

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
    def measure(self, normalised: np.ndarray, audio: np.ndarray | None) -> dict[str, Any]:
        """What the ruler compares for a generated set: embeddings, class probabilities, memorisation
        features and (given audio) signal statistics, per clip."""
        emb, probs = self.classifier.outputs(normalised)
        measured: dict[str, Any] = {"embeddings": {"classifier": emb}, "probs": probs,
                                    "memory": memory_features(normalised, self.layout), "signal": {}}
        if audio is not None:  # without audio: the mel-based metrics only
            measured["signal"] = (signal_stats(audio, self.spec.sample_rate, self.pitches, self.to_logmel(normalised),
                                               self.spec.log_floor)
                                  if self.real_signal else {})
            if self.settings.crepe and self.real_crepe is not None:
                measured["embeddings"]["crepe"] = self.crepe(audio)
        return measured

    def score(self, normalised: np.ndarray, audio: np.ndarray | None) -> dict[str, MetricValue]:
        """Every metric of a generated set (normalised mels in this reference's layout, and its audio):
        its first n clips (:meth:`sample_size`) against the evaluation set."""
        measured = self.measure(normalised, audio)
        n = self.sample_size(len(normalised))
        return self.ruler_for(n).compare(measured, n)

    def stored_measured(self, rows: np.ndarray, *, unseen: bool = True) -> dict[str, Any]:
        """Real clips as if generated (the floor's sets, the memoriser control): their stored
        embeddings and statistics, nothing recomputed. ``unseen=False`` for the floor's training
        clips, which are not checked for memorisation (they are the training clips)."""
        return {"embeddings": {k: v[rows] for k, v in self.real_embeddings().items()},
                "probs": {k: v[rows] for k, v in self.real_probs.items()}, "memory": self.real_memory[rows],
                "signal": {k: v[rows] for k, v in self.real_signal.items()}, "unseen": unseen}

    def floor_subsets(self, n: int) -> list[np.ndarray]:
        """K random sets of n training clips (:func:`components.evaluate.ruler.random_subset`)."""
        train = self.rows(TRAIN)
        return [train[random_subset(len(train), n, seed=self.settings.seed + 101 + k)]
                for k in range(self.settings.floor_subsets)]

    def real_floor(self, generated: int) -> dict[str, MetricValue]:
        """The best a model can expect at this n: n training clips against the evaluation set, every
        metric averaged over K random subsets, its interval widened by the spread between
        subsets (see :func:`components.evaluate.ruler.pool`)."""
        n = self.sample_size(generated)
        return self.ruler_for(n).floor([self.stored_measured(rows, unseen=False) for rows in self.floor_subsets(n)], n)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        c = self.classifier
        atomic_save_torch({"state": c.model.state_dict(), "in_channels": c.model.in_channels,
                           "heads": {k: len(v) for k, v in c.vocabularies.items()},
                           "embedding_dim": c.model.project.out_features}, folder / "classifier.pt")
        arrays = {"real_classifier": self.real_classifier, "real_memory": self.real_memory, "split": self.split,
                  **{f"probs_{k}": v for k, v in self.real_probs.items()},
                  **{f"signal_{k}": v for k, v in self.real_signal.items()}}
        if self.real_crepe is not None:
            arrays["real_crepe"] = self.real_crepe
        atomic_write(folder / "embeddings.npz", lambda fh: np.savez(fh, **arrays))
        atomic_write_json(folder / "reference.json", {
            "vocabularies": c.vocabularies, "holdout_accuracy": c.holdout_accuracy,
            "train_examples": c.train_examples, "holdout_examples": c.holdout_examples,
            "stats": self.stats.to_json(), "spec": asdict(self.spec), "layout": self.layout,
            "example_shape": list(self.example_shape), "settings": asdict(self.settings), "clip_ids": self.clip_ids,
            "cells": self.cells, "pitches": self.pitches, "imq_gamma2": self.gamma2})

    @classmethod
    def load(cls, folder: Path) -> "Reference":
        meta_path = folder / "reference.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: no evaluation reference; run the evaluate stage first")
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if "cells" not in meta:
            raise ValueError(f"{meta_path}: written by an older melforge (no evaluation split); re-run the evaluate stage")
        payload = load_torch(folder / "classifier.pt")
        model = MelClassifier(payload["in_channels"], payload["heads"], payload["embedding_dim"])
        model.load_state_dict(payload["state"])
        classifier = TrainedClassifier(model=model.eval(), vocabularies=meta["vocabularies"],
                                       holdout_accuracy=meta["holdout_accuracy"], train_examples=meta["train_examples"],
                                       holdout_examples=meta["holdout_examples"])
        with np.load(folder / "embeddings.npz") as arrays:
            real_probs = {k.removeprefix("probs_"): arrays[k] for k in arrays.files if k.startswith("probs_")}
            real_signal = {k.removeprefix("signal_"): arrays[k] for k in arrays.files if k.startswith("signal_")}
            real_crepe = arrays["real_crepe"] if "real_crepe" in arrays.files else None
            real_classifier, real_memory, split = arrays["real_classifier"], arrays["real_memory"], arrays["split"]
        return cls(classifier=classifier, stats=MelStats.from_json(meta["stats"]), spec=MelSpec(**meta["spec"]),
                   layout=meta["layout"], example_shape=tuple(meta["example_shape"]),
                   settings=ScoreSettings(**meta["settings"]), clip_ids=meta["clip_ids"], split=split.astype(str),
                   cells=meta["cells"], real_classifier=real_classifier, real_probs=real_probs, real_crepe=real_crepe,
                   real_memory=real_memory, real_signal=real_signal, pitches=meta.get("pitches"),
                   gamma2=meta.get("imq_gamma2", {}))
