"""The ruler: every metric of a set of n clips against the evaluation set, and the floor as the same
metrics of n training clips, averaged over K stratified random subsets.

A generated set and the floor are measured by one function (:meth:`Ruler.compare`) at one n, so a
model that replays its training clips lands at about 1x the floor on every distance, never below,
and only the memorisation check tells it apart.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.evaluate.metrics import (MetricValue, bootstrap, fad_infinity, frechet_distance, inception_score,
                                         kid, memorised, nearest_distances, prdc_indicators)
from components.evaluate.signal import LEVEL_JND_DB, in_range_share

Z95 = 1.959964


@dataclass(frozen=True)
class ScoreSettings:
    bootstrap: int = 200
    kid_subsets: int = 20
    kid_subset_size: int = 100
    imq_gamma2: float | None = None  # None: scaled to each embedding (median heuristic on the evaluation set)
    is_splits: int = 5
    crepe: bool = True
    crepe_model: str = "tiny"
    crepe_hop_seconds: float = 0.1
    griffinlim_iters: int = 16
    floor_subsets: int = 5
    nearest_k: int = 5
    memorised_percentile: float = 5.0
    seed: int = 0

    @classmethod
    def from_config(cls, cfg) -> "ScoreSettings":
        e = cfg.eval
        return cls(bootstrap=e.bootstrap, kid_subsets=e.kid_subsets, kid_subset_size=e.kid_subset_size,
                   imq_gamma2=e.imq_gamma2, is_splits=e.is_splits, crepe=e.crepe, crepe_model=e.crepe_model,
                   crepe_hop_seconds=e.crepe_hop_seconds, griffinlim_iters=e.griffinlim_iters,
                   floor_subsets=e.floor_subsets, nearest_k=e.nearest_k, seed=cfg.seed)


def random_subset(size: int, n: int, *, seed: int) -> np.ndarray:
    """n of ``size`` rows drawn uniformly without replacement, sorted: a set of clips with the class
    mix a sampler would give. Not the first n in storage order (clips are stored by label, which
    biases a floor up several-fold), and not stratified by cell either: an exactly balanced class mix
    is more even than any sampler's draw, which biases the floor down (about 2x on a store of 8
    tight classes at n = 24; tests/evaluate/test_reference.py)."""
    if n >= size:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, n, replace=False))


def share_interval(hits: np.ndarray) -> MetricValue:
    """A share of clips with its Wilson 95% interval."""
    hits = np.asarray(hits, np.float64)
    n = len(hits)
    p = float(hits.mean())
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return MetricValue(p, max(0.0, centre - half), min(1.0, centre + half), n)


def mean_interval(values: np.ndarray) -> MetricValue:
    """A mean over clips with a normal 95% interval (1.96 standard errors)."""
    values = np.asarray(values, np.float64)
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
    m = float(values.mean())
    return MetricValue(m, m - Z95 * se, m + Z95 * se, len(values))


def pool(values: list[MetricValue]) -> MetricValue:
    """One floor from K subsets: the mean value, and an interval whose half-widths add the spread
    between subsets (their standard deviation) to each subset's own sampling noise in quadrature, so
    it covers which n training clips were drawn as well as the bootstrap."""
    v = np.array([m.value for m in values])
    below = np.array([m.value - m.low for m in values]) / Z95
    above = np.array([m.high - m.value for m in values]) / Z95
    between = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    mean = float(v.mean())
    return MetricValue(mean, mean - Z95 * math.sqrt(float(np.mean(below ** 2)) + between ** 2),
                       mean + Z95 * math.sqrt(float(np.mean(above ** 2)) + between ** 2), values[0].n_a, values[0].n_b)


@dataclass
class Ruler:
    settings: ScoreSettings
    eval_embeddings: dict[str, np.ndarray]
    train_memory: np.ndarray
    eval_memory: np.ndarray
    eval_signal: dict[str, np.ndarray] = field(default_factory=dict)
    gamma2: dict[str, float] = field(default_factory=dict)
    duplicate_threshold: float | None = None  # see Reference.ruler_for

    @functools.cached_property
    def eval_nearest(self) -> np.ndarray:
        """Each evaluation clip's distance to its nearest training clip: what unseen real clips look like."""
        return nearest_distances(self.eval_memory, self.train_memory)

    def _distances(self, kind: str, a: np.ndarray, b: np.ndarray, seed: int, resamples: int) -> dict[str, MetricValue]:
        s = self.settings
        gamma2 = self.gamma2[kind]

        def kid_fn(kernel: str):
            return lambda x, y, origins=None: kid(x, y, kernel=kernel, gamma2=gamma2, subsets=s.kid_subsets,
                                                  subset_size=s.kid_subset_size, seed=seed, origins=origins)

        out = {f"fad_{kind}": bootstrap(frechet_distance, a, b, resamples=resamples, seed=seed),
               f"kid_cubic_{kind}": bootstrap(kid_fn("cubic"), a, b, resamples=resamples, seed=seed + 1,
                                              with_origins=True),
               f"kid_imq_{kind}": bootstrap(kid_fn("imq"), a, b, resamples=resamples, seed=seed + 2,
                                            with_origins=True)}
        if len(a) >= 8:  # a line in 1/n needs a range of n
            value, se = fad_infinity(a, b, seed=seed + 4)
            out[f"fadinf_{kind}"] = MetricValue(value, value - Z95 * se, value + Z95 * se, len(a), len(b))
        if kind == "classifier":
            ind = prdc_indicators(b, a, k=s.nearest_k)
            out.update({f"{name}_{kind}": share_interval(ind[name]) for name in ("precision", "recall", "coverage")})
            out[f"density_{kind}"] = mean_interval(ind["density"])
        return out

    def _inception(self, probs: dict[str, np.ndarray], seed: int, resamples: int) -> dict[str, MetricValue]:
        """IS over splits of a fixed random order: splits of sorted data (real clips are stored by
        label) would each hold one class and score ~1."""
        s = self.settings
        order = np.random.default_rng(seed).permutation(len(next(iter(probs.values()))))
        return {f"is_{name}": bootstrap(lambda q: inception_score(q, s.is_splits)[0], p[order], resamples=resamples,
                                        seed=seed + 3)
                for name, p in probs.items()}

    def compare(self, measured: dict[str, Any], n: int, *, resamples: int | None = None) -> dict[str, MetricValue]:
        """Every metric of the first n clips of ``measured`` (from :meth:`Reference.measure`) against the
        evaluation set: distances and precision/recall per embedding, IS, the duplicated and memorised
        shares, signal means. ``resamples``: bootstrap resamples (default ``settings.bootstrap``)."""
        seed = self.settings.seed
        resamples = resamples or self.settings.bootstrap
        metrics: dict[str, MetricValue] = {}
        for kind, real in self.eval_embeddings.items():
            if kind in measured["embeddings"]:
                metrics.update(self._distances(kind, measured["embeddings"][kind][:n], real, seed, resamples))
        metrics.update(self._inception({k: v[:n] for k, v in measured["probs"].items()}, seed, resamples))
        memory = measured.get("memory")
        if memory is not None and self.duplicate_threshold is not None:
            within = nearest_distances(memory[:n], memory[:n], exclude_self=True)
            metrics["duplicated"] = share_interval(within < self.duplicate_threshold)
        if memory is not None and measured.get("unseen", True):  # training clips are trivially "memorised"
            nearest = nearest_distances(memory[:n], self.train_memory)
            metrics["memorised"] = share_interval(memorised(nearest, self.eval_nearest,
                                                            self.settings.memorised_percentile))
        signal = {name: values[:n] for name, values in measured.get("signal", {}).items() if name in self.eval_signal}
        metrics.update({name: mean_interval(values) for name, values in signal.items()})
        for name, statistics, margin in (("level_in_range", ("noise_floor_db", "peak_db"), LEVEL_JND_DB),
                                          ("voiced_in_range", ("voiced",), 0.0)):
            inside = in_range_share(signal, self.eval_signal, statistics, margin)
            if inside is not None:
                metrics[name] = share_interval(inside)
        return metrics

    def floor(self, subsets: list[dict[str, Any]], n: int) -> dict[str, MetricValue]:
        """The floor: :meth:`compare` of each set of n training clips, pooled (:func:`pool`); signal
        statistics are the evaluation clips' own (what real unseen clips measure), and the level-in-range
        share is the training clips' against the evaluation clips' range (about 90% for real data)."""
        # each subset's own bootstrap needs fewer resamples: the spread between subsets dominates
        resamples = max(10, self.settings.bootstrap // len(subsets))
        scored = [self.compare(measured, n, resamples=resamples) for measured in subsets]
        floor = {name: pool([s[name] for s in scored]) for name in scored[0] if name not in self.eval_signal}
        floor.update({name: mean_interval(values) for name, values in self.eval_signal.items()})
        return floor

    def signal_range(self) -> dict[str, dict[str, float]]:
        """The evaluation clips' distribution of each signal statistic (5th, 50th, 95th percentiles)."""
        return {name: dict(zip(("p5", "p50", "p95"), map(float, np.percentile(v, [5, 50, 95]))))
                for name, v in self.eval_signal.items()}
