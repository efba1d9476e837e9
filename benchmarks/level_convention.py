"""Generated clips' levels side by side: as the vocoder leaves them (the old rule: a clip past -1 dBFS
turned down to it) against the real clips' level convention (``components/level.py``), both measured
in one run on the same clips.

Real evaluation clips go through the same vocoder and the same rule as each model's clips, as in the
evaluate stage. For each rule and set: the peak distribution (5th/50th/95th percentile, dBFS), the
noise floor's median, the samples at full scale, and the share of clips whose noise floor and peak lie
inside the real clips' 5-95% range (+-1 dB, the evaluation's "level in range").

    cd WORKSPACE && python /path/to/melforge/benchmarks/level_convention.py --models teacher student-4

Prints a table and writes ``benchmarks/results/level_convention.json`` (under the current folder).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from components.config import load_config
from components.evaluate.signal import in_range_share, level_stats
from components.features.mel import MelSpec
from components.features.split import EVAL
from components.features.store import MelStore
from components.generation import load_generator
from components.level import LevelConvention
from components.models.io import MODEL_FILE
from components.settings import project_paths
from components.vocoder.interface import workspace_vocoder


def describe(audio: np.ndarray, real: dict[str, np.ndarray]) -> dict[str, float]:
    stats = level_stats(audio)
    peak = np.percentile(stats["peak_db"], [5, 50, 95])
    return {"clips": len(audio), "peak_p5": float(peak[0]), "peak_p50": float(peak[1]), "peak_p95": float(peak[2]),
            "noise_floor_p50": float(np.median(stats["noise_floor_db"])),
            "full_scale_samples": int((np.abs(audio) >= 1.0).sum()),
            "level_in_range": float(in_range_share(stats, real).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help="model folders under models/ (default: all)")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    cfg = load_config(Path("params.yaml"))
    store = MelStore(Path("data/mels"))
    spec = MelSpec.from_index(store.index)
    vocoder = workspace_vocoder(cfg, project_paths(), spec, griffinlim_iters=cfg.eval.griffinlim_iters)
    rules = {"old: -1 dBFS ceiling": LevelConvention(), "real clips' convention": LevelConvention.from_audio_config(cfg.audio)}
    # what the vocoder makes, before any rule (the old rule only ever turned clips down, so undoing it
    # is not needed: every rule is a gain per clip, and gains compose)
    real_audio = vocoder(store.stats.denormalise(store.batch(store.rows(EVAL))))
    sets = {"real (evaluation clips)": real_audio}
    for name in args.models or sorted(p.parent.name for p in Path("models").glob(f"*/{MODEL_FILE}")):
        gen = load_generator(Path("models") / name / MODEL_FILE, vocoder=vocoder)
        sets[name] = gen.generate(args.clips, args.seed)
    rows = []
    for rule_name, rule in rules.items():
        real = level_stats(rule.apply(real_audio))
        for set_name, audio in sets.items():
            rows.append({"rule": rule_name, "set": set_name, **describe(rule.apply(audio), real)})
    print(f"{'rule':24s} {'set':26s} {'peak p5/p50/p95 (dBFS)':>24s} {'noise floor':>11s} {'full scale':>10s} {'in range':>8s}")
    for r in rows:
        peaks = f"{r['peak_p5']:.2f} / {r['peak_p50']:.2f} / {r['peak_p95']:.2f}"
        print(f"{r['rule']:24s} {r['set']:26s} {peaks:>24s} {r['noise_floor_p50']:>11.1f} {r['full_scale_samples']:>10d} "
              f"{r['level_in_range']:>8.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "level_convention.json").write_text(json.dumps({
        "vocoder": vocoder.describe(), "rules": {k: v.to_json() for k, v in rules.items()}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
