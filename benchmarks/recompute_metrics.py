"""Recompute one model's FAD, its floor, and its precision/recall/density/coverage from the files the
evaluate stage saved, with numpy and scipy alone (no melforge import), and check they agree with
``models/evaluation/metrics.json`` to 1e-6 (relative; absolute for values below 1).

A second path to the same numbers: Tr((Sa Sb)^1/2) by another LAPACK SVD routine (scipy's gesvd;
the stage: numpy's gesdd), covariances by ``numpy.cov``, distances by
``scipy.spatial.distance.cdist``, the k-NN radii by sorting. It reads:
- ``reference/embeddings.npz``: every real clip's classifier embedding and its split (train/eval);
- ``reference/floor_subsets.npz``: the rows of the K training subsets the floor averaged over;
- ``embeddings/<model>.npy``: the n generated clips' embeddings the model was scored on.

    python benchmarks/recompute_metrics.py [--model student-4] [--evaluation models/evaluation]

Prints a table and writes ``benchmarks/results/recompute_metrics.json``; exits 1 on disagreement.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import linalg
from scipy.spatial.distance import cdist

TOLERANCE = 1e-6


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(Sa) + Tr(Sb) - 2 Tr((Sa Sb)^1/2), clipped at 0 like the stage.

    Tr((Sa Sb)^1/2) = the sum of the singular values of G = A B' / sqrt((n-1)(m-1)) (A, B centred),
    by LAPACK's one-sided ``gesvd`` through scipy, where the stage uses numpy's divide-and-conquer
    ``gesdd`` (and, above n = dim, the covariances' eigendecompositions); covariances by
    ``numpy.cov``. (Squaring G first, e.g. eigenvalues of G G', loses the small singular values to
    round-off: ~2e-6 relative on the demo floor.)"""
    ca, cb = a - a.mean(0), b - b.mean(0)
    g = (ca @ cb.T) / np.sqrt((len(a) - 1) * (len(b) - 1))
    trace_sqrt = float(linalg.svd(g, compute_uv=False, lapack_driver="gesvd").sum())
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = a.mean(0) - b.mean(0)
    return max(0.0, float(diff @ diff + np.trace(sa) + np.trace(sb) - 2 * trace_sqrt))


def prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Kynkäänniemi et al. 2019 (precision, recall), Naeem et al. 2020 (density, coverage)."""
    def radii(x: np.ndarray) -> np.ndarray:
        d = cdist(x, x)
        return np.sort(d, axis=1)[:, min(k, len(x) - 1)]  # column 0 is the point itself

    real_r, fake_r = radii(real), radii(fake)
    d = cdist(real, fake)
    return {"precision": float((d <= real_r[:, None]).any(0).mean()),
            "recall": float((d <= fake_r[None, :]).any(1).mean()),
            "density": float((d <= real_r[:, None]).sum(0).mean() / min(k, len(real) - 1)),
            "coverage": float((d.min(1) <= real_r).mean())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evaluation", type=Path, default=Path("models/evaluation"))
    parser.add_argument("--model", default=None, help="a leaderboard name (default: the served model's row)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    results = json.loads((args.evaluation / "metrics.json").read_text())
    served = results["served"]
    rows = {r["name"]: r for r in results["models"]}
    name = args.model or next(r["name"] for r in results["models"]
                              if (r["model"], r["steps"]) == (served["model"], served["steps"]))
    if name not in rows:
        print(f"--model {name}: not in {args.evaluation / 'metrics.json'}; rows: {', '.join(rows)}", file=sys.stderr)
        return 2
    with np.load(args.evaluation / "reference" / "embeddings.npz") as arrays:
        real, split = arrays["real_classifier"].astype(np.float64), arrays["split"].astype(str)
    with np.load(args.evaluation / "reference" / "floor_subsets.npz") as subsets:
        floor_rows = [subsets[key] for key in subsets.files]
    generated = np.load(args.evaluation / "embeddings" / f"{name}.npy").astype(np.float64)
    evaluation = real[split == "eval"]
    k = 5
    ours = {"fad_classifier": frechet(generated, evaluation),
            "floor.fad_classifier": float(np.mean([frechet(real[rows], evaluation) for rows in floor_rows])),
            **{f"{m}_classifier": v for m, v in prdc(evaluation, generated, k).items()}}
    floor_prdc = [prdc(evaluation, real[rows], k) for rows in floor_rows]
    ours.update({f"floor.{m}_classifier": float(np.mean([p[m] for p in floor_prdc])) for m in floor_prdc[0]})
    stage = {key: (results["floor"] if key.startswith("floor.") else rows[name]["metrics"])[key.removeprefix("floor.")]["value"]
             for key in ours}
    table = []
    worst = 0.0
    for key in ours:
        rel = abs(ours[key] - stage[key]) / max(abs(stage[key]), 1.0)  # relative, absolute below 1
        worst = max(worst, rel)
        table.append({"metric": key, "stage": stage[key], "recomputed": ours[key], "relative_difference": rel})
    print(f"{name}: n = {len(generated)} generated, {len(evaluation)} evaluation clips, {len(floor_rows)} floor subsets")
    print(f"{'metric':28s} {'stage':>14s} {'numpy/scipy':>14s} {'difference':>10s}")
    for row in table:
        print(f"{row['metric']:28s} {row['stage']:14.8g} {row['recomputed']:14.8g} {row['relative_difference']:10.2e}")
    ok = worst <= TOLERANCE
    print(f"largest relative difference {worst:.2e}: {'agrees' if ok else 'DISAGREES'} (tolerance {TOLERANCE:g})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recompute_metrics.json").write_text(json.dumps(
        {"model": name, "tolerance": TOLERANCE, "agrees": ok, "largest_relative_difference": worst, "rows": table},
        indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
