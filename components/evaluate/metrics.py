"""Generative metrics on embeddings and class probabilities, as plain numpy functions.

- Fréchet distance between Gaussian fits (FAD when the embeddings are audio embeddings):
  ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).
- KID: the unbiased estimator of MMD^2, with the cubic polynomial kernel k = (x.y/d + 1)^3 or the
  inverse multi-quadratic kernel k = 1 / (1 + ||x - y||^2 / (2 gamma^2)), averaged over random
  subsets. gamma^2 is scaled to the embedding: by default 2 gamma^2 = the median squared distance
  between real embeddings (:func:`median_gamma2`), so k = 1/2 at the typical distance. A fixed
  gamma^2 (the reference paper's 8) sits near k = 0.03 on embeddings whose squared distances are
  in the hundreds, where the kernel barely tells sets apart.
- Inception Score: exp(E_x KL(p(y|x) || p(y))), mean and std over splits.
- Bootstrap 95% intervals (recentred on the full-sample value) with the sample counts used. A
  resample with replacement holds duplicates; the U-statistic of KID must not pair a row with its
  own duplicate (k(x, x) is the kernel's maximum), so its within-set sums skip same-origin pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

KERNELS = ("cubic", "imq")


@dataclass(frozen=True)
class MetricValue:
    """A metric with its bootstrap interval and how many samples it saw."""

    value: float
    low: float
    high: float
    n_a: int
    n_b: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def overlaps(self, other: "MetricValue") -> bool:
        return self.low <= other.high and other.low <= self.high


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance_gaussians(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Closed form between N(mu1, cov1) and N(mu2, cov2); Tr((S1 S2)^1/2) via the symmetric
    S1^1/2 S2 S1^1/2 (same eigenvalues, numerically stable)."""
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    trace_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum())
    diff = mu1 - mu2
    # >= 0 mathematically; round-off in the square root can dip just below for identical sets
    return max(0.0, float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two embedding sets (rows = samples).

    From the data, not the covariances: with centred A, B (S_a = A'A / (n-1), S_b = B'B / (m-1)),
    the eigenvalues of S_a S_b are the squared singular values of A B' / sqrt((n-1)(m-1)), so
    Tr((S_a S_b)^1/2) is their sum: one SVD of an n x m matrix, accurate when n < dim leaves both
    covariances singular (square roots of their round-off eigenvalues cost ~1e-5 relative). With
    more clips than dimensions the covariances have full rank and the dim x dim closed form is used."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Fréchet distance needs >= 2 samples per set, got {len(a)} and {len(b)}")
    if min(len(a), len(b)) > a.shape[1]:  # full-rank covariances: the dim x dim route is cheaper
        return frechet_distance_gaussians(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    ca, cb = a - a.mean(0), b - b.mean(0)
    scale = np.sqrt((len(a) - 1) * (len(b) - 1))
    trace_sqrt = float(np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / scale)
    diff = a.mean(0) - b.mean(0)
    total = diff @ diff + (ca * ca).sum() / (len(a) - 1) + (cb * cb).sum() / (len(b) - 1) - 2 * trace_sqrt
    return max(0.0, float(total))


def kernel_matrix(x: np.ndarray, y: np.ndarray, kernel: str, gamma2: float = 8.0) -> np.ndarray:
    if kernel == "cubic":
        return (x @ y.T / x.shape[1] + 1.0) ** 3
    if kernel == "imq":
        return 1.0 / (1.0 + kernel_sq_distances(x, y) / (2.0 * gamma2))
    raise ValueError(f"unknown kernel {kernel!r}; allowed: {', '.join(KERNELS)}")


def median_gamma2(x: np.ndarray) -> float:
    """gamma^2 of the IMQ kernel scaled to an embedding: 2 gamma^2 = median ||x_i - x_j||^2 (i < j)."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        raise ValueError(f"the median distance needs >= 2 embeddings, got {len(x)}")
    sq = kernel_sq_distances(x, x)[np.triu_indices(len(x), 1)]
    return max(float(np.median(sq)) / 2.0, 1e-12)


def kernel_sq_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.clip((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0, None)


def _within_mean(k: np.ndarray, origin: np.ndarray | None) -> float:
    """Mean of k over pairs of distinct rows; with ``origin``, over pairs of distinct origins."""
    if origin is None:
        m = len(k)
        return float((k.sum() - np.trace(k)) / (m * (m - 1)))
    distinct = origin[:, None] != origin[None, :]
    pairs = distinct.sum()
    if pairs == 0:  # every row a copy of one clip (tiny resamples): no estimate from this draw
        return float("nan")
    return float((k * distinct).sum() / pairs)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, kernel: str = "cubic", gamma2: float = 8.0, *,
                  x_origin: np.ndarray | None = None, y_origin: np.ndarray | None = None) -> float:
    """Unbiased MMD^2 = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean k(x_i, y_j).

    Within-set means skip the diagonal (so the expectation is 0 when x ~ y) and, given the rows'
    origins (indices into the set a bootstrap resampled from), every pair of copies of one row.
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"MMD needs >= 2 samples per set, got {m} and {n}")
    kxx, kyy, kxy = kernel_matrix(x, x, kernel, gamma2), kernel_matrix(y, y, kernel, gamma2), kernel_matrix(x, y, kernel, gamma2)
    return _within_mean(kxx, x_origin) + _within_mean(kyy, y_origin) - 2.0 * float(kxy.mean())


def kid(a: np.ndarray, b: np.ndarray, *, kernel: str = "cubic", gamma2: float = 8.0, subsets: int = 20,
        subset_size: int = 100, seed: int = 0, origins: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Kernel Inception Distance: unbiased MMD^2 averaged over random subsets of both sets (one
    estimate on all rows when ``subset_size`` covers both sets). ``origins``: per row, the index of
    the row it copies (from :func:`bootstrap`)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    oa, ob = origins if origins is not None else (np.arange(len(a)), np.arange(len(b)))
    if subset_size >= max(len(a), len(b)):  # subsets would be the whole sets: one estimate on all rows
        return mmd2_unbiased(a, b, kernel, gamma2, x_origin=oa, y_origin=ob)
    size = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        ia, ib = rng.choice(len(a), size, replace=False), rng.choice(len(b), size, replace=False)
        values.append(mmd2_unbiased(a[ia], b[ib], kernel, gamma2, x_origin=oa[ia], y_origin=ob[ib]))
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) per split; returns (mean, std) over splits."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise ValueError("probs must be (samples, classes) rows that sum to 1")
    splits = max(1, min(splits, len(p)))
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(0, keepdims=True)
        kl = (part * (np.log(np.clip(part, 1e-12, None)) - np.log(np.clip(marginal, 1e-12, None)))).sum(1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


def bootstrap(metric: Callable[..., float], *sets: np.ndarray, resamples: int = 200, seed: int = 0,
              level: float = 0.95, with_origins: bool = False) -> MetricValue:
    """``metric(*sets)`` with a bootstrap interval (each set resampled with replacement).

    The interval is the bootstrap percentile interval shifted by the bootstrap's median bias:
    resampling with replacement duplicates clips, which moves FD and IS systematically (FD up, IS
    down), so the spread comes from the bootstrap and the location from the full-sample value. It
    covers the sampling noise of this evaluation (which generated clips and which real clips were
    drawn), not the variation between training runs. ``with_origins`` passes
    ``origins=(indices per set)`` to the metric, so a U-statistic can skip pairs of copies.
    """
    value = float(metric(*sets))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        rows = [rng.integers(0, len(s), len(s)) for s in sets]
        resampled = [s[r] for s, r in zip(sets, rows)]
        draws.append(float(metric(*resampled, origins=tuple(rows)) if with_origins else metric(*resampled)))
    tail = (1 - level) / 2 * 100
    draws = [d for d in draws if np.isfinite(d)] or [value]  # a draw of copies of one clip has no KID
    low, median, high = np.percentile(draws, [tail, 50, 100 - tail])
    shift = median - value
    return MetricValue(value=value, low=float(low - shift), high=float(high - shift), n_a=len(sets[0]),
                       n_b=len(sets[1]) if len(sets) > 1 else 0)


def fad_infinity(a: np.ndarray, b: np.ndarray, *, sizes: int = 8, min_size: int | None = None, draws: int = 2,
                 seed: int = 0) -> tuple[float, float]:
    """FD∞ (Gui et al. 2024): FD between ``n`` rows of ``a`` and all of ``b`` is close to linear in 1/n,
    FD(n) = FD∞ + c / n; fit that line over ``sizes`` values of n from ``min_size`` to len(a) (each
    the mean of ``draws`` random subsets) and return (intercept, its standard error). The intercept
    is the distance freed of the small-sample bias that FD at one n carries."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    top = len(a)
    low = max(2, min_size if min_size is not None else top // 2)
    if top - low < 2:
        raise ValueError(f"FD∞ needs a range of set sizes; got {top} rows (min {low})")
    ns = np.unique(np.linspace(low, top, sizes).round().astype(int))
    rng = np.random.default_rng(seed)
    y = np.array([np.mean([frechet_distance(a[rng.choice(top, n, replace=False)], b) for _ in range(draws if n < top else 1)])
                  for n in ns])
    x = 1.0 / ns
    design = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    dof = max(1, len(ns) - 2)
    cov = (residual @ residual / dof) * np.linalg.inv(design.T @ design)
    return float(coef[0]), float(np.sqrt(max(cov[0, 0], 0.0)))


def _kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row."""
    d = np.sqrt(kernel_sq_distances(x, x))
    np.fill_diagonal(d, np.inf)
    k = min(k, len(x) - 1)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def prdc_indicators(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, np.ndarray]:
    """Per clip, what precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et
    al. 2020) average, with k-nearest-neighbour balls: a clip is inside a set's manifold when it lies
    within the k-NN radius of one of that set's clips.

    precision: per fake clip, inside the real manifold; recall: per real clip, inside the fake
    manifold; density: per fake clip, the number of real balls holding it / k; coverage: per real
    clip, whether its ball holds a fake clip. Copies of one clip have radius 0, so a blur of class
    means, repeated, has little recall."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"precision/recall need >= 2 clips per set, got {len(real)} and {len(fake)}")
    real_r, fake_r = _kth_neighbour_radius(real, k), _kth_neighbour_radius(fake, k)
    d = np.sqrt(kernel_sq_distances(real, fake))  # (real, fake)
    inside_real = d <= real_r[:, None]
    return {"precision": inside_real.any(0), "recall": (d <= fake_r[None, :]).any(1),
            "density": inside_real.sum(0) / min(k, len(real) - 1), "coverage": d.min(1) <= real_r}


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage: the means of :func:`prdc_indicators`."""
    return {name: float(np.mean(v)) for name, v in prdc_indicators(real, fake, k).items()}


def nearest_distances(x: np.ndarray, pool: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
    """Euclidean distance from each row of ``x`` to its nearest row of ``pool``."""
    d = kernel_sq_distances(np.asarray(x, np.float64), np.asarray(pool, np.float64))
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return np.sqrt(d.min(1))


def memorised(generated_nn: np.ndarray, eval_nn: np.ndarray, percentile: float = 5.0) -> np.ndarray:
    """Per generated clip: is it nearer to a training clip than ``percentile``% of evaluation clips
    are (distances from :func:`nearest_distances`)?"""
    threshold = np.percentile(np.asarray(eval_nn, np.float64), percentile)
    return np.asarray(generated_nn) < threshold


def memorised_share(generated_nn: np.ndarray, eval_nn: np.ndarray, percentile: float = 5.0) -> float:
    """Share of :func:`memorised` clips: about percentile/100 for a model that generalises as real
    unseen clips do; near 1 for one that replays its training clips."""
    return float(memorised(generated_nn, eval_nn, percentile).mean())
