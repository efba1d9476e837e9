"""Two runs that share one tracking store promote at the same time: the champion does not depend on
which finishes first (real processes, a real SQLite MLflow store)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient

from components.registry.tags import metric_tags

REPO = Path(__file__).resolve().parents[2]
METRIC = "fad_classifier"
RACER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mlflow import MlflowClient
    from components.registry.publish import apply_promotion
    from components.registry.tags import metric_from_tags

    uri, version, delay, barrier = sys.argv[1], sys.argv[2], float(sys.argv[3]), Path(sys.argv[4])
    client = MlflowClient(tracking_uri=uri)
    candidate = client.get_model_version("m", version)
    scored = []

    def champion_metric(champion):  # re-scoring the champion takes a while
        if not scored:  # both runs have read the same champion before either may move it
            (barrier / version).touch()
            while len(list(barrier.iterdir())) < 2:
                time.sleep(0.05)
        scored.append(champion.version)
        time.sleep(delay)
        return metric_from_tags(client.get_model_version("m", champion.version).tags, "fad_classifier"), "recorded"

    out = apply_promotion(client, "m", candidate, metric_from_tags(candidate.tags, "fad_classifier"),
                          champion_metric=champion_metric, metric="fad_classifier", min_improvement=0.01,
                          require_disjoint=False, candidate_error=None)
    print(out["promoted"], "|", out["reason"], "| scored against", scored, flush=True)
""")


def _store(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("e"))
    client.create_registered_model("m")
    for value in (132.2, 135.2, 150.0):  # v1, v2, and v3 the champion both beat
        row = {"metrics": {METRIC: {"value": value, "low": value - 1, "high": value + 1, "n_a": 8, "n_b": 8}}}
        client.create_model_version("m", f"runs:/{run.info.run_id}/model", run.info.run_id, tags=metric_tags(row))
    client.set_registered_model_alias("m", "champion", "3")
    return uri


@pytest.mark.parametrize("delays", [(0.5, 3.0), (3.0, 0.5)], ids=["v1-first", "v2-first"])
def test_two_concurrent_promotions_end_with_the_same_champion_in_either_order(tmp_path, delays):
    uri = _store(tmp_path)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    racers = [subprocess.Popen([sys.executable, "-c", RACER, uri, version, str(delay), str(barrier)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for version, delay in zip(("1", "2"), delays)]
    outputs = [r.communicate(timeout=300) for r in racers]
    assert all(r.returncode == 0 for r in racers), [o[1][-2000:] for o in outputs]
    client = MlflowClient(tracking_uri=uri)
    assert str(client.get_model_version_by_alias("m", "champion").version) == "1"  # the best of the three
    v2 = client.get_model_version("m", "2").tags
    if delays[0] < delays[1]:  # v1 moved the alias first: v2 noticed and was scored against v1
        assert outputs[1][0].startswith("False") and "the champion moved from v3 to v1" in outputs[1][0]
        assert v2["melforge.promotion"] == "rejected" and v2["melforge.previous_champion"] == "1"
    else:  # v2 was champion for a moment; v1 noticed, was scored against it and won
        assert outputs[0][0].startswith("True") and "the champion moved from v3 to v2" in outputs[0][0]
