"""The registry's pure decisions: which model to serve, whether a challenger becomes champion."""

from __future__ import annotations

import pytest

from components.evaluate.metrics import MetricValue
from components.evaluate.serving import choose_served
from components.registry.promotion import promotion_decision


def _row(name: str, kind: str, steps: int, value: float, status: str = "ok", metric: str = "fad_classifier") -> dict:
    return {"name": name, "kind": kind, "steps": steps, "status": status,
            "metrics": {metric: {"value": value, "low": value - 1, "high": value + 1, "n_a": 8, "n_b": 8}}}


def test_serves_the_fewest_step_student_within_tolerance_of_the_best():
    rows = [_row("teacher@8", "teacher", 8, 10.0), _row("teacher@1", "teacher", 1, 50.0),
            _row("student-4", "student", 4, 10.5), _row("student-2", "student", 2, 11.9),
            _row("student-1", "student", 1, 30.0)]
    served = choose_served(rows, "fad_classifier", 0.2)
    assert served["model"] == "student-2" and served["steps"] == 2 and served["best_value"] == 10.0
    assert choose_served(rows, "fad_classifier", 0.1)["model"] == "student-4"
    assert choose_served(rows, "fad_classifier", 0.01)["model"] == "teacher"  # none close enough
    rows[3]["status"] = "failed"
    assert choose_served(rows, "fad_classifier", 0.2)["model"] == "student-4"  # failed evaluations never serve


def test_serving_a_higher_is_better_metric_and_without_any_successful_model():
    rows = [_row("teacher@4", "teacher", 4, 5.0, metric="is_pitch"), _row("student-1", "student", 1, 4.6, metric="is_pitch")]
    assert choose_served(rows, "is_pitch", 0.1)["model"] == "student-1"
    assert choose_served(rows, "is_pitch", 0.05)["model"] == "teacher"
    rows[0]["status"] = rows[1]["status"] = "failed"
    with pytest.raises(ValueError, match="no successful evaluation"):
        choose_served(rows, "is_pitch", 0.1)


def _gan(name: str, value: float, rtf: float) -> dict:
    return {**_row(name, "gan", 1, value), "model": name, "family": name, "network_evaluations": 1, "rtf": rtf}


def test_the_cheapest_model_within_tolerance_of_the_best_is_served_whatever_its_family():
    def timed(row, rtf):
        return {**row, "model": row["name"].split("@")[0], "rtf": rtf, "network_evaluations": row["steps"]}

    rows = [timed(_row("teacher@16", "teacher", 16, 10.0), 0.05), timed(_row("teacher@4", "teacher", 4, 9.0), 0.01),
            timed(_row("student-4", "student", 4, 10.5), 0.012), _gan("wavegan", 11.5, 0.004), _gan("specgan", 30.0, 0.002)]
    served = choose_served(rows, "fad_classifier", 0.2)  # the teacher at 4 steps is not a servable model
    assert served["best_model"] == "teacher@16" and served["model"] == "wavegan" and served["family"] == "wavegan"
    assert "1 network evaluations per clip, RTF 0.004" in served["reason"]
    assert choose_served(rows, "fad_classifier", 0.1)["model"] == "student-4"
    rows[3]["metrics"]["fad_classifier"]["value"] = 5.0  # a GAN that is the best outright
    best = choose_served(rows, "fad_classifier", 0.0)
    assert best["model"] == "wavegan" and "is the best" in best["reason"]
    del rows[2]["rtf"]  # an untimed candidate is ranked the same way: network evaluations first
    assert choose_served(rows, "fad_classifier", 1.0)["model"] == "wavegan"


def test_a_model_whose_clips_leave_the_real_level_range_is_not_served_while_a_close_one_stays_in_it():
    """The cpu profile's run of 2026-12-07: the 1-step student was within tolerance (1.54x the floor
    against the teacher's 1.32x) but only 78% of its clips had the real noise floor and peak, under
    issue 23's 80%; the 2-step student (1.44x, 96%) is the one to serve."""
    def levelled(row, share):
        row["metrics"]["level_in_range"] = {"value": share, "low": share - 0.05, "high": share + 0.05}
        return row

    rows = [levelled(_row("teacher@16", "teacher", 16, 11.0), 0.91), levelled(_row("student-4", "student", 4, 12.2), 0.90),
            levelled(_row("student-2", "student", 2, 12.0), 0.96), levelled(_row("student-1", "student", 1, 12.8), 0.78)]
    served = choose_served(rows, "fad_classifier", 0.25, 0.8)
    assert served["model"] == "student-2" and "(cheaper student-1: fewer)" in served["reason"]
    assert choose_served(rows, "fad_classifier", 0.25)["model"] == "student-1"  # no level requirement
    for row in rows:
        row["metrics"]["level_in_range"]["value"] = 0.5  # none at the real level: the cheapest close one
    served = choose_served(rows, "fad_classifier", 0.25, 0.8)
    assert served["model"] == "student-1" and "no model that close" in served["reason"]
    del rows[0]["metrics"]["level_in_range"]  # an unmeasured row is not held back by the statistic
    assert choose_served([rows[0], rows[3]], "fad_classifier", 0.25, 0.8)["model"] == "teacher"


def test_cost_is_network_evaluations_not_a_jittery_wall_clock():
    """Regression: on a loaded machine the 8-step student was timed at 0.78 s and the 4-step one at
    0.05 s... and once the other way round; ranking by RTF served the 8-step student."""
    rows = [{**_row("student-8", "student", 8, 10.0), "model": "student-8", "network_evaluations": 8, "rtf": 0.01},
            {**_row("student-4", "student", 4, 10.5), "model": "student-4", "network_evaluations": 4, "rtf": 0.2}]
    assert choose_served(rows, "fad_classifier", 0.25)["model"] == "student-4"
    controls = [{**_row("control-memoriser", "control", 0, 1.0), "model": "memoriser", "network_evaluations": 0}]
    assert choose_served(rows + controls, "fad_classifier", 0.25)["model"] == "student-4"  # never a control


def test_promotion_rules():
    champion = MetricValue(10.0, 9.0, 11.0, 8, 8)
    gate = dict(metric="fad_classifier", min_improvement=0.05, require_disjoint=True)
    assert promotion_decision(MetricValue(12, 11, 13, 8), None, **gate).promote  # first model
    assert promotion_decision(MetricValue(5, 4, 6, 8), champion, **gate).promote  # clearly better
    assert not promotion_decision(MetricValue(12, 11.5, 12.5, 8), champion, **gate).promote  # worse
    overlapping = promotion_decision(MetricValue(9, 8, 10, 8), champion, **gate)
    assert not overlapping.promote and "overlap" in overlapping.reason
    assert promotion_decision(MetricValue(9, 8, 10, 8), champion, **{**gate, "require_disjoint": False}).promote
    assert not promotion_decision(MetricValue(9.8, 9.7, 9.9, 8), champion, **gate).promote  # < 5% better
    failed = promotion_decision(MetricValue(1, 0, 2, 8), champion, **gate, candidate_error="non-finite samples")
    assert not failed.promote and "evaluation failed" in failed.reason
    assert not promotion_decision(MetricValue(float("nan"), 0, 0, 8), None, **gate).promote
    # higher is better for the Inception Score
    is_gate = {**gate, "metric": "is_pitch"}
    assert promotion_decision(MetricValue(4.0, 3.8, 4.2, 8), MetricValue(3.0, 2.8, 3.2, 8), **is_gate).promote
    assert not promotion_decision(MetricValue(3.0, 2.8, 3.2, 8), MetricValue(4.0, 3.8, 4.2, 8), **is_gate).promote


def test_promotion_refuses_a_model_below_the_quality_floor():
    from components.evaluate.quality import GateSettings, gate as quality_gate

    floor = {"fad_classifier": {"value": 70.0, "low": 60.0, "high": 80.0}}
    settings = GateSettings(primary="fad_classifier", max_floor_ratio=3.0)
    rules = dict(metric="fad_classifier", min_improvement=0.05, require_disjoint=True)

    def decide(value, champion=None, **extra):
        metrics = {"fad_classifier": {"value": value, "low": value - 10, "high": value + 10}, **extra}
        return promotion_decision(MetricValue(value, value - 10, value + 10, 64), champion, **rules,
                                  quality=quality_gate(metrics, floor, settings))

    noise = decide(215.0)  # the old demo champion
    assert not noise.promote and noise.reason.startswith("below the quality floor (fad_classifier)")
    assert "3.07x the floor (limit 3x)" in noise.reason
    assert decide(200.0).promote  # 2.9x: first champion
    copied = decide(100.0, memorised={"value": 0.9, "low": 0.8, "high": 0.95})
    assert not copied.promote and "(memorised)" in copied.reason
    # the floor is checked before the comparison with the champion: beating a bad champion is not enough
    assert not decide(250.0, MetricValue(400.0, 390, 410, 64)).promote
    is_floor = {"is_pitch": {"value": 4.4, "low": 4.2, "high": 4.6}}
    low_is = quality_gate({"is_pitch": {"value": 1.37, "low": 1.3, "high": 1.4}}, is_floor,
                          GateSettings(primary="is_pitch", min_real_ratio=0.5))
    assert not low_is["passes"] and "31% of the floor's" in low_is["reasons"]["is_pitch"]


def test_quality_words_and_ratios():
    from components.evaluate.quality import describe, floor_ratio

    floor = {"value": 70.0, "low": 60.0, "high": 80.0}
    assert floor_ratio("fad_classifier", 217.0, floor) == pytest.approx(3.1)
    assert describe("fad_classifier", 217.0, floor) == "far from data (FAD 3.1x floor)"
    assert describe("fad_classifier", 77.0, floor) == "near the real floor (FAD 1.1x floor)"
    assert describe("is_pitch", 4.0, {"value": 4.4, "low": 4, "high": 5}) == "near the real floor (IS 91% of real)"
    assert describe("is_pitch", 1.37, {"value": 4.4, "low": 4, "high": 5}).startswith("far from data (IS 31%")
    # a KID floor sits near zero: compared with its upper bound, never divided by ~0
    assert floor_ratio("kid_imq_classifier", 0.01, {"value": -0.001, "low": -0.01, "high": 0.005}) == pytest.approx(2.0)
