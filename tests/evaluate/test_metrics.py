"""Metric math against closed forms."""

import numpy as np
import pytest

from components.evaluate.metrics import (MetricValue, bootstrap, frechet_distance, frechet_distance_gaussians,
                                         inception_score, kernel_matrix, kid, median_gamma2, mmd2_unbiased)


def test_frechet_distance_of_two_known_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    # diagonal covariances: ||mu1-mu2||^2 + sum (sqrt(s1) - sqrt(s2))^2 = 5 + (1 + 1 + 4)
    assert frechet_distance_gaussians(mu1, s1, mu2, s2) == pytest.approx(11.0)
    assert frechet_distance_gaussians(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]  # invariant under rotating both
    assert frechet_distance_gaussians(rot @ mu1, rot @ s1 @ rot.T, rot @ mu2, rot @ s2 @ rot.T) == pytest.approx(11.0)


def test_frechet_distance_from_samples_approaches_the_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(20000, 2))
    b = rng.normal([3.0, 0.0], [2.0, 1.0], size=(20000, 2))
    assert frechet_distance(a, b) == pytest.approx(9.0 + 1.0, rel=0.03)


def test_kernels_have_their_formulas():
    x, y = np.array([[1.0, 2.0]]), np.array([[3.0, -1.0]])
    assert kernel_matrix(x, y, "cubic")[0, 0] == pytest.approx((1.0 / 2 + 1) ** 3)
    assert kernel_matrix(x, y, "imq")[0, 0] == pytest.approx(1 / (1 + 13 / 16))
    with pytest.raises(ValueError, match="allowed"):
        kernel_matrix(x, y, "rbf")


@pytest.mark.parametrize("kernel", ["cubic", "imq"])
def test_kid_is_unbiased_and_near_zero_for_one_distribution(kernel):
    rng = np.random.default_rng(2)
    estimates = [mmd2_unbiased(rng.normal(size=(30, 4)), rng.normal(size=(30, 4)), kernel) for _ in range(400)]
    assert abs(np.mean(estimates)) < 3 * np.std(estimates) / np.sqrt(len(estimates))  # mean 0 within error
    assert min(estimates) < 0  # unbiased: individual estimates go below zero
    same = rng.normal(size=(400, 4))
    far = kid(same, rng.normal(2.0, 1.0, size=(400, 4)), kernel=kernel)
    assert far > 0.1
    assert abs(kid(same, same, kernel=kernel, subset_size=200)) < far / 20  # ~0 next to a real difference


def test_inception_score_bounds():
    k = 5
    confident_uniform = np.eye(k)[np.arange(100) % k]
    assert inception_score(confident_uniform, splits=1)[0] == pytest.approx(k)
    assert inception_score(np.eye(k)[np.zeros(50, int)], splits=1)[0] == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(200, k))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    mean, std = inception_score(probs, splits=4)
    assert 1.0 <= mean <= k and std >= 0
    with pytest.raises(ValueError):
        inception_score(np.ones((3, 2)))


def test_bootstrap_interval_of_a_mean_matches_the_normal_theory_interval():
    rng = np.random.default_rng(4)
    x = rng.normal(1.0, 2.0, size=400)
    mean = bootstrap(lambda s: float(s.mean()), x, resamples=2000, seed=1)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # about 0.196
    assert mean.value == pytest.approx(x.mean())
    assert mean.low == pytest.approx(x.mean() - half, abs=0.2 * half)
    assert mean.high == pytest.approx(x.mean() + half, abs=0.2 * half)
    a, b = rng.normal(size=(200, 3)), rng.normal(0.5, 1.0, size=(150, 3))
    fd = bootstrap(frechet_distance, a, b, resamples=100)
    assert fd.value == pytest.approx(frechet_distance(a, b)) and (fd.n_a, fd.n_b) == (200, 150)
    assert 0 < fd.high - fd.low < fd.value
    assert MetricValue(1, 0.5, 1.5, 10).overlaps(MetricValue(2, 1.4, 2.5, 10))
    assert not MetricValue(1, 0.5, 1.5, 10).overlaps(MetricValue(2, 1.6, 2.5, 10))


def test_median_gamma2_puts_the_imq_kernel_at_one_half_for_the_median_distance():
    x = np.array([[0.0], [1.0], [3.0]])  # squared distances 1, 9, 4: median 4
    assert median_gamma2(x) == pytest.approx(2.0)
    assert kernel_matrix(x[:1], np.array([[2.0]]), "imq", median_gamma2(x))[0, 0] == pytest.approx(0.5)


@pytest.mark.parametrize("kernel", ["cubic", "imq"])
def test_kid_bootstrap_never_pairs_a_row_with_its_own_copy(kernel):
    """Resampling with replacement duplicates rows; k(x, x) in the within-set sums would bias MMD^2 up."""
    rng = np.random.default_rng(5)
    gamma2 = 8.0
    with_copies, without_copies = [], []
    for trial in range(60):
        a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
        ia, ib = rng.integers(0, 40, 40), rng.integers(0, 40, 40)
        without_copies.append(kid(a[ia], b[ib], kernel=kernel, gamma2=gamma2, subsets=1, subset_size=40,
                                  origins=(ia, ib)))
        with_copies.append(kid(a[ia], b[ib], kernel=kernel, gamma2=gamma2, subsets=1, subset_size=40))
    spread = np.std(without_copies) / np.sqrt(len(without_copies))
    assert abs(np.mean(without_copies)) < 3 * spread  # unbiased for one distribution
    assert np.mean(with_copies) > np.mean(without_copies) + 5 * spread  # the bug it guards against


def test_kid_interval_for_one_distribution_straddles_zero():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(60, 8)), rng.normal(size=(60, 8))
    metric = lambda x, y, origins=None: kid(x, y, kernel="imq", gamma2=median_gamma2(b), subsets=2,  # noqa: E731
                                            subset_size=60, origins=origins)
    value = bootstrap(metric, a, b, resamples=60, with_origins=True)
    assert value.low < 0 < value.high


def test_prdc_known_values_and_a_collapsed_set_has_no_recall():
    from components.evaluate.metrics import prdc

    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    # k = 1: every real ball has radius 1; the fake clip at 0.5 is in the balls of 0 and 1; the two fake
    # clips are 9.5 apart, so each fake ball (radius 9.5) holds every real clip: recall's known outlier blind spot
    assert prdc(real, np.array([[0.5], [10.0]]), k=1) == {"precision": 0.5, "recall": 1.0, "density": 1.0,
                                                           "coverage": 0.5}
    rng = np.random.default_rng(0)
    data = rng.normal(size=(200, 4))
    same = prdc(data[:100], data[100:], k=5)
    assert all(0.8 < same[m] for m in ("precision", "recall", "coverage"))
    collapsed = np.repeat(data[100:110], 10, axis=0)  # ten points, ten copies each: radius 0
    blur = prdc(data[:100], collapsed, k=5)
    assert blur["recall"] < 0.15 and blur["coverage"] < 0.5


def test_fad_infinity_recovers_the_intercept_of_a_known_bias():
    """FD between two sets from one Gaussian is ~ c/n: FD-infinity is near 0 where FD at n is not."""
    from components.evaluate.metrics import fad_infinity

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(4000, 8))
    fd_n = frechet_distance(a[:50], b)
    value, se = fad_infinity(a, b, min_size=50, sizes=8, draws=3, seed=0)
    assert fd_n > 0.1 and abs(value) < 0.3 * fd_n and se > 0
    shifted, _ = fad_infinity(a + 1.0, b, min_size=50, seed=0)  # mean shift of 1 in 8 dims: FD = 8
    assert shifted == pytest.approx(8.0, rel=0.1)
    with pytest.raises(ValueError, match="range of set sizes"):
        fad_infinity(a[:3], b)


def test_memorised_share_counts_clips_closer_than_unseen_real_clips():
    from components.evaluate.metrics import memorised_share, nearest_distances

    rng = np.random.default_rng(2)
    train, unseen = rng.normal(size=(100, 6)), rng.normal(size=(100, 6))
    eval_nn = nearest_distances(unseen, train)
    assert memorised_share(eval_nn, eval_nn) == pytest.approx(0.05, abs=0.011)  # by definition
    assert memorised_share(nearest_distances(train[:20], train), eval_nn) == 1.0  # replayed clips
    assert memorised_share(nearest_distances(rng.normal(size=(50, 6)), train), eval_nn) < 0.2


def test_share_interval_is_wilson():
    from components.evaluate.ruler import share_interval

    m = share_interval(np.array([1] * 5 + [0] * 5))
    assert m.value == 0.5 and m.low == pytest.approx(0.2366, abs=1e-3) and m.high == pytest.approx(0.7634, abs=1e-3)
    assert share_interval(np.zeros(20)).low == 0.0 and share_interval(np.ones(20)).high == 1.0
