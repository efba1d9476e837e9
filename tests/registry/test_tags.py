"""A version's metrics as two tags (a JSON record and a line in words), and the older per-metric
tags still read."""

from __future__ import annotations

from components.evaluate.metrics import MetricValue
from components.registry.tags import metric_from_tags, metric_tags, recorded_metrics


def test_the_record_round_trips_and_the_summary_leads_with_the_primary_metric():
    row = {"metrics": {"fad_classifier": {"value": 12.02, "low": 2.6, "high": 28.3, "n_a": 128, "n_b": 130},
                       "recall_classifier": {"value": 0.969, "low": 0.9, "high": 1.0, "n_a": 128, "n_b": 130},
                       "level_in_range": {"value": 0.96, "low": 0.91, "high": 0.98, "n_a": 128, "n_b": 128}},
           "floor_ratios": {"fad_classifier": 1.4437}, "rtf": 0.0146, "verdict": "no verdict"}
    tags = metric_tags(row, "fad_classifier")
    assert set(tags) == {"melforge.metrics", "melforge.summary", "melforge.quality"}
    assert tags["melforge.summary"] == ("fad_classifier 12.02 [2.6, 28.3] (1.44x the floor); recall_classifier 0.969 "
                                        "[0.9, 1]; level_in_range 0.96 [0.91, 0.98]; RTF 0.0146")
    assert metric_from_tags(tags, "fad_classifier") == MetricValue(12.02, 2.6, 28.3, 128, 130)
    assert set(recorded_metrics(tags)) == {"fad_classifier", "recall_classifier", "level_in_range"}  # no RTF
    assert metric_from_tags(tags, "kid_imq_classifier") is None


def test_versions_registered_with_one_tag_per_metric_are_still_read():
    legacy = {"metric.fad_classifier": "10.0", "metric.fad_classifier.ci95": "9.0,11.0",
              "metric.fad_classifier.n": "8,8", "metric.rtf": "0.01", "melforge.model": "teacher"}
    assert recorded_metrics(legacy) == {"fad_classifier": MetricValue(10.0, 9.0, 11.0, 8, 8)}
