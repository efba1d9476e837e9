"""Every evaluation metric declared once: its direction, whether it is per embedding, and what it is
compared with. The evaluation, the report, the gate, the serving choice and the Prefect artifacts
read these rows; nothing else parses a metric's name. Import-free, so the config schema can use it.

Comparisons (``compare``):
- ``ratio``: value / the floor's value (distances: 1.0 = as close as training clips are to the
  evaluation set; lower is better).
- ``kid``: value / the floor's upper 95% bound (KID is unbiased, its floor sits near 0).
- ``fraction``: value / the floor's value, higher is better (IS, precision, recall, density, coverage).
- ``share``: an absolute share, no ratio (the memorised share is judged against its own threshold).
- ``real_range``: a signal statistic shown beside the evaluation clips' own distribution.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    prefix: str
    higher_is_better: bool
    per_embedding: bool  # name = <prefix>_<embedding>
    compare: str
    label: str
    description: str


METRICS: tuple[Metric, ...] = (
    Metric("fadinf", False, True, "ratio", "FAD∞",
           "Fréchet distance extrapolated to infinitely many clips (linear fit in 1/n, Gui et al. 2024)"),
    Metric("fad", False, True, "ratio", "FAD", "Fréchet distance at n generated clips vs the evaluation set"),
    Metric("kid_cubic", False, True, "kid", "KID (cubic)", "unbiased MMD², cubic polynomial kernel"),
    Metric("kid_imq", False, True, "kid", "KID (IMQ)", "unbiased MMD², inverse multi-quadratic kernel"),
    Metric("is", True, False, "fraction", "IS", "Inception Score of the classifier's head for one label"),
    Metric("precision", True, True, "fraction", "precision", "share of generated clips inside the real manifold (k-NN, k = 5)"),
    Metric("recall", True, True, "fraction", "recall", "share of real clips inside the generated manifold (k-NN, k = 5)"),
    Metric("density", True, True, "fraction", "density", "how many real k-NN balls hold a generated clip, on average / k"),
    Metric("coverage", True, True, "fraction", "coverage", "share of real clips whose k-NN ball holds a generated clip"),
    Metric("duplicated", False, False, "share", "duplicated",
           "share of clips with a near-copy among the set's own clips (nearer than 95% of training clips' nearest "
           "neighbours in a set of the same n): collapse onto a few outputs, e.g. a blur of class means"),
    Metric("memorised", False, False, "share", "memorised",
           "share of generated clips nearer a training clip than 95% of evaluation clips are"),
    Metric("voiced", True, False, "real_range", "voiced", "share of frames with a periodic signal (audio)"),
    Metric("harmonicity", True, False, "real_range", "harmonicity", "mean normalised autocorrelation peak in voiced frames"),
    Metric("on_pitch", True, False, "real_range", "on pitch",
           "share of clips whose median f0 lies within half a semitone of a training pitch"),
    # levels (dBFS): for these the direction says which side the usual failure lies on (too loud, hiss)
    Metric("peak_db", False, False, "real_range", "peak (dBFS)", "20 log10 of a clip's largest |sample|"),
    Metric("loudness_db", False, False, "real_range", "loudness (dBFS)", "RMS level of a clip's audible frames"),
    Metric("noise_floor_db", False, False, "real_range", "noise floor (dBFS)",
           "10th percentile of a clip's frame levels: silence in a clean clip, hiss in a noisy one"),
    Metric("mel_silence", True, False, "real_range", "mel silence",
           "share of a clip's mel cells at the mel floor: the black of its spectrogram grid"),
    Metric("clipped", False, False, "real_range", "clipped", "share of clips with a sample at full scale"),
    Metric("level_in_range", True, False, "share", "level in range",
           "share of clips whose noise floor and peak both lie in the evaluation clips' 5th-95th percentile range, "
           "give or take 1 dB (about the smallest level change a listener notices)"),
    Metric("voiced_in_range", True, False, "share", "voicing in range",
           "share of clips whose voiced share lies in the evaluation clips' 5th-95th percentile range"),
)

EMBEDDINGS = ("classifier", "crepe")
# the measures that can refuse a candidate at the gate besides the primary metric
DIVERSITY_METRICS = ("recall", "coverage")


def metric_info(name: str) -> Metric:
    """The row of a metric name, e.g. ``fad_classifier`` -> fad, ``is_pitch`` -> is; longest prefix wins."""
    for metric in sorted(METRICS, key=lambda m: -len(m.prefix)):
        if name == metric.prefix or name.startswith(metric.prefix + "_"):
            if metric.per_embedding and name.removeprefix(metric.prefix + "_") not in EMBEDDINGS:
                continue
            return metric
    raise KeyError(f"unknown metric {name!r}; known: {', '.join(m.prefix for m in METRICS)} "
                   f"(per embedding: _{'/_'.join(EMBEDDINGS)})")


def lower_is_better(name: str) -> bool:
    return not metric_info(name).higher_is_better


def is_distance(name: str) -> bool:
    """FAD, FAD∞ and KID: compared as a multiple of the floor."""
    return metric_info(name).compare in ("ratio", "kid")


def primary_pattern() -> str:
    """The names a primary metric may take (a regular expression for the config schema)."""
    distances = "|".join(m.prefix for m in METRICS if m.compare in ("ratio", "kid"))
    return rf"^({distances})_({'|'.join(EMBEDDINGS)})$|^is_[A-Za-z0-9_]+$"
