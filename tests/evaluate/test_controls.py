"""The controls and the gate: the ruler must rank a memoriser, a blur of cell means and noise as it
must, and none of them may ever become champion."""

from __future__ import annotations

import pytest

from components.evaluate.controls import BLUR, CONTROLS, MEMORISER, NOISE, control_failures, control_mels
from components.evaluate.metrics import MetricValue
from components.evaluate.quality import GateSettings, gate, verdict
from components.evaluate.reference import Reference
from components.features.split import TRAIN
from components.registry.promotion import promotion_decision
from helpers import FakeStore, tiny_config

SETTINGS = GateSettings(primary="fad_classifier", max_floor_ratio=3.0, diversity_metric="coverage",
                        min_diversity_ratio=0.5, memorised_flag=0.25)


@pytest.fixture(scope="module")
def scored():
    """Every control scored on a store of 8 classes, stored by label, with the floor beside them."""
    cfg = tiny_config(eval={"crepe": False, "classifier_steps": 80, "bootstrap": 20, "samples": 64})
    store = FakeStore(n=400, classes=8)
    ref = Reference.build(store, cfg, real_audio_fn=lambda lm: None)
    floor = {k: m.to_dict() for k, m in ref.real_floor(64).items()}
    rows = []
    for name in CONTROLS:
        mels, real_rows = control_mels(name, store, ref.cells, 64, seed=0)
        if name == MEMORISER:
            assert set(real_rows) <= set(store.rows(TRAIN))  # replayed *training* clips
        metrics = {k: m.to_dict() for k, m in ref.score(mels, None).items()}
        rows.append({"name": f"control-{name}", "kind": "control", "status": "ok", "metrics": metrics})
    return {r["name"].removeprefix("control-"): r for r in rows}, floor


def test_the_ruler_ranks_every_control(scored):
    controls, floor = scored
    ratio = {n: controls[n]["metrics"]["fad_classifier"]["value"] / floor["fad_classifier"]["value"] for n in CONTROLS}
    assert 0.67 <= ratio[MEMORISER] <= 1.5  # a draw of training clips is a floor draw
    assert ratio[NOISE] >= 10
    assert controls[MEMORISER]["metrics"]["memorised"]["value"] > 0.9
    assert control_failures(list(controls.values()), floor, SETTINGS) == []


def test_no_control_can_become_champion(scored):
    controls, floor = scored
    caught = {}
    for name, row in controls.items():
        outcome = gate(row["metrics"], floor, SETTINGS)
        m = row["metrics"]["fad_classifier"]
        decision = promotion_decision(MetricValue(m["value"], m["low"], m["high"], m["n_a"], m["n_b"]), None,
                                      metric="fad_classifier", min_improvement=0.05, require_disjoint=True,
                                      quality=outcome)
        assert not decision.promote and "below the quality floor" in decision.reason, name
        caught[name] = outcome["failed"]
        assert verdict(row["metrics"], floor, SETTINGS)["verdict"].startswith("refused"), name
    assert "memorised" in caught[MEMORISER]
    assert "duplicated" in caught[BLUR]  # copies of a few cell means: collapse
    assert "fad_classifier" in caught[NOISE]


def test_a_ruler_that_cannot_rank_its_controls_says_which_one(scored):
    controls, floor = scored
    lenient = GateSettings(primary="fad_classifier", max_floor_ratio=1e9, min_diversity_ratio=0.0, memorised_flag=1.0,
                           duplicated_flag=1.0)
    failures = control_failures(list(controls.values()), floor, lenient)
    assert any(f.startswith("control memoriser: replayed training clips were not caught") for f in failures)
    assert any(f.startswith("control blur: the gate would accept it") for f in failures)
    assert any(f.startswith("control noise: the gate would accept it") for f in failures)
    biased = {**floor, "fad_classifier": {**floor["fad_classifier"], "value": floor["fad_classifier"]["value"] * 3}}
    assert any("the floor is biased" in f for f in control_failures(list(controls.values()), biased, SETTINGS))


def test_gate_measures_and_verdict_words():
    floor = {"fad_classifier": {"value": 10.0, "low": 9.0, "high": 11.0, "n_a": 64},
             "coverage_classifier": {"value": 0.8, "low": 0.7, "high": 0.9}}
    good = {"fad_classifier": {"value": 12.0, "low": 11, "high": 13}, "coverage_classifier": {"value": 0.7, "low": 0.6, "high": 0.8},
            "memorised": {"value": 0.05, "low": 0.01, "high": 0.1}}
    assert gate(good, floor, SETTINGS)["passes"]
    assert verdict(good, floor, SETTINGS)["verdict"] == "near the real floor (FAD 1.2x floor)"
    narrow = {**good, "coverage_classifier": {"value": 0.2, "low": 0.1, "high": 0.3}}
    out = gate(narrow, floor, SETTINGS)
    assert out["failed"] == ["coverage_classifier"] and "25% of the floor's (needs >= 50%)" in out["reasons"]["coverage_classifier"]
    copied = {**good, "memorised": {"value": 0.9, "low": 0.8, "high": 0.95}}
    assert gate(copied, floor, SETTINGS)["failed"] == ["memorised"]
    wide = {**floor, "fad_classifier": {"value": 10.0, "low": 1.0, "high": 30.0, "n_a": 8}}  # +-145%
    assert verdict(good, wide, SETTINGS)["verdict"].startswith("no verdict: the floor's fad_classifier interval is ±145%")


def test_no_ratio_is_reported_to_a_floor_at_or_below_zero():
    """FAD∞ of a small floor is often extrapolated below 0: a ratio to it (once logged as -1.9e7) says nothing."""
    floor = {"fad_classifier": {"value": 10.0, "low": 9.0, "high": 11.0, "n_a": 64},
             "fadinf_classifier": {"value": -18.5, "low": -30.0, "high": -5.0},
             "coverage_classifier": {"value": 0.8, "low": 0.7, "high": 0.9}}
    model = {"fad_classifier": {"value": 12.0, "low": 11, "high": 13}, "fadinf_classifier": {"value": 9.0, "low": 5, "high": 12},
             "coverage_classifier": {"value": 0.7, "low": 0.6, "high": 0.8}}
    ratios = verdict(model, floor, SETTINGS)["floor_ratios"]
    assert set(ratios) == {"fad_classifier", "coverage_classifier"} and ratios["fad_classifier"] == pytest.approx(1.2)
