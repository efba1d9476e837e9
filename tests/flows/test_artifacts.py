"""What the Prefect UI shows: stage tables, the evaluation table with its floor, valid artifact keys."""

from __future__ import annotations

from pathlib import Path

from flows.artifacts import artifact_key, evaluation_markdown, stage_markdown


def test_artifact_keys_are_what_prefect_accepts():
    assert artifact_key("distill@student-8") == "melforge-distill-student-8"
    assert artifact_key("GAN@SpecGAN") == "melforge-gan-specgan"


def test_a_skipped_stage_says_its_figures_are_from_the_last_run():
    text = stage_markdown("ingest", {"clips": 7, "hours": 0.0123456, "report": "http://x/y"}, skipped=True)
    assert "skipped by DVC" in text and "| hours | 0.01235 |" in text and "[http://x/y](http://x/y)" in text


def test_the_evaluation_table_has_every_model_the_floor_and_the_served_one():
    m = {"value": 12.0, "low": 11.0, "high": 13.0}
    results = {"primary_metric": "fad_classifier", "samples": 8, "real_clips": 16,
               "matched_sizes": {"generated": 8, "real": 6},
               "floor": {"fad_classifier": {"value": 10.0, "low": 9.0, "high": 11.0}, "is_digit": m},
               "models": [{"name": "student-4", "steps": 4, "status": "ok", "metrics": {"fad_classifier": m}, "rtf": 0.05},
                          {"name": "wavegan", "steps": 1, "status": "failed", "metrics": {}}],
               "served": {"model": "student-4", "reason": "cheapest"}}
    text = evaluation_markdown(results, report_uri="", local_report=Path("models/evaluation/report.html"))
    assert "| student-4 ★ | 4 | ok | 12 [11, 13] | — | — | 0.05 |" in text  # is_digit, memorised
    assert "| wavegan | 1 | failed | — | — | — | — |" in text
    assert "| floor (training clips vs evaluation set) | | | 10 [9, 11] | 12 [11, 13] | — | |" in text
    assert "MLflow run artifacts" not in text and "6 clips of the evaluation set" in text
