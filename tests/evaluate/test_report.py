"""The HTML report: one self-contained file from a template, every value escaped."""

from __future__ import annotations

import math

from PIL import Image

from components.evaluate.report import write_html


def _metric(v: float) -> dict[str, float]:
    return {"value": v, "low": v - 1, "high": v + 1, "n_a": 8, "n_b": 8}


def test_the_report_lists_every_model_the_floor_and_escapes_what_it_shows(tmp_path):
    samples = tmp_path / "samples"
    samples.mkdir()
    for name in ("plot", "real", "student-4"):
        Image.new("RGB", (4, 4)).save((samples if name != "plot" else tmp_path) / f"{name}.png")
    (samples / "student-4-0.wav").write_bytes(b"RIFF")
    rows = [{"name": "student-4", "model": "student-4", "kind": "student", "steps": 4, "status": "ok",
             "metrics": {"fad_classifier": _metric(12.5), "voiced": _metric(0.4)}, "rtf": 0.05, "verdict": "1.2x floor",
             "family": "diffusion"},
            {"name": "control-blur", "model": "blur", "kind": "control", "steps": 0, "status": "ok",
             "metrics": {"fad_classifier": _metric(99.0)}, "verdict": "refused: coverage", "family": "control"},
            {"name": "<wavegan>", "model": "wavegan", "kind": "gan", "steps": 1, "status": "failed",
             "metrics": {}, "error": "boom & bust", "family": "wavegan", "network_evaluations": 1}]
    results = {"models": rows, "floor": {"fad_classifier": _metric(10.0), "voiced": _metric(0.5)},
               "primary_metric": "fad_classifier", "matched_sizes": {"generated": 8, "real": 6}, "floor_subsets": 5,
               "split": {"train_clips": 10, "eval_clips": 6, "fraction": 0.3, "cells": 3},
               "signal_range": {"voiced": {"p5": 0.1, "p50": 0.5, "p95": 0.9}},
               "gate": {"max_floor_ratio": 3.0, "diversity_metric": "coverage", "min_diversity_ratio": 0.5,
                        "memorised_flag": 0.25},
               "served": {"model": "student-4", "tolerance": 0.1, "reason": "cheapest"}, "samples": 8, "real_clips": 16,
               "classifier": {"holdout_accuracy": {"digit": 0.9}}, "bootstrap": 100, "device": "cpu",
               "vocoder": {"description": "Griffin-Lim, 16 iterations"}}
    html = write_html(tmp_path / "report.html", results=results, plot=tmp_path / "plot.png", sample_dir=samples).read_text()
    assert "student-4 ★" in html and "12.5 [11.5, 13.5]" in html and "10 [9, 11]" in html
    assert '<tr class="floor"><td>control-blur' in html and "refused: coverage" in html  # controls are marked
    assert "6 clips (3 cells" in html.replace("\n", " ") and "0.10 / 0.50 / 0.90" in html  # the split, the signal
    assert "&lt;wavegan&gt;" in html and "<wavegan>" not in html and "boom &amp; bust" in html
    assert html.count("<img ") == 3 and html.count("<audio ") == 1 and "data:image/jpeg;base64," in html
    assert "Vocoder" not in html and f"<td>{math.nan:.3g}</td>" in html  # no vocoder scores; the GAN row was not timed
    # the answer comes first, the method after the samples; every player says what it plays
    assert html.index("Served: student-4") < html.index("Leaderboard") < html.index("How this was measured")
    assert "Its verdict: 1.2x floor." in html and html.index("The ruler.") > html.index("<h2>Samples</h2>")
    assert '<figcaption>student-4, clip 1</figcaption><audio controls preload="none" aria-label="student-4, clip 1"' in html
