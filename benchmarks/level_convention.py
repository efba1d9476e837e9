"""Generated clips' levels side by side, three rules measured in one run on the same clips:

- the old rule: the vocoder's clip, turned down to -1 dBFS where it passes it;
- the real clips' level convention (``components/level.py``) applied to the vocoder's audio (issue 24);
- the convention in the data's order (:meth:`LevelConvention.deliver`, what ships): each clip's gain
  applied to its mels, the mel floor after it, then the vocoder, as the real clips got their level at
  ingest before their mels were floored.

Real evaluation clips go through the same vocoder and the same rule as each model's clips, as in the
evaluate stage. For each rule and set: the peak distribution (5th/50th/95th percentile, dBFS), the
noise floor's median, the shares of clips whose noise floor lies more than 1 dB below / above the real
5-95% range, the samples at full scale, and the share of clips whose noise floor and peak lie inside
the real range (+-1 dB, the evaluation's "level in range"). Mel models only (a waveform model has no
mel floor to order).

    cd WORKSPACE && python /path/to/melforge/benchmarks/level_convention.py --models teacher student-4

Prints a table and writes ``benchmarks/results/level_convention.json`` (under the current folder).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from components.params_file import load_config
from components.evaluate.signal import LEVEL_JND_DB, in_range_share, level_stats
from components.features.mel import MelSpec
from components.features.split import EVAL
from components.features.store import MelStore
from components.families import load_generator
from components.generation import MelGenerator, SpecGANGenerator
from components.level import LevelConvention
from components.models.io import MODEL_FILE
from components.settings import project_paths
from components.vocoder.interface import workspace_vocoder


def describe(audio: np.ndarray, real: dict[str, np.ndarray]) -> dict[str, float]:
    stats = level_stats(audio)
    peak = np.percentile(stats["peak_db"], [5, 50, 95])
    low, high = np.percentile(real["noise_floor_db"], [5, 95])
    return {"clips": len(audio), "peak_p5": float(peak[0]), "peak_p50": float(peak[1]), "peak_p95": float(peak[2]),
            "noise_floor_p50": float(np.median(stats["noise_floor_db"])),
            "floor_too_clean": float((stats["noise_floor_db"] < low - LEVEL_JND_DB).mean()),
            "floor_too_noisy": float((stats["noise_floor_db"] > high + LEVEL_JND_DB).mean()),
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
    convention = LevelConvention.from_audio_config(cfg.audio)
    rules = {"old: -1 dBFS ceiling": lambda lm: LevelConvention().apply(vocoder(lm)),
             "convention after synthesis": lambda lm: convention.apply(vocoder(lm)),
             "convention, data's order": lambda lm: convention.deliver(lm, vocoder.synthesise, spec.log_floor)}
    sets = {"real (evaluation clips)": store.stats.denormalise(store.batch(store.rows(EVAL)))}
    for name in args.models or sorted(p.parent.name for p in Path("models").glob(f"*/{MODEL_FILE}")):
        gen = load_generator(Path("models") / name / MODEL_FILE, vocoder=vocoder)
        if isinstance(gen, (MelGenerator, SpecGANGenerator)):
            sets[name] = gen.to_logmel(gen.sample_output(args.clips, args.seed))
    rows = []
    for rule_name, rule in rules.items():
        delivered = {set_name: rule(logmel) for set_name, logmel in sets.items()}
        real = level_stats(delivered["real (evaluation clips)"])  # the first set: the range every set is read in
        rows += [{"rule": rule_name, "set": set_name, **describe(audio, real)} for set_name, audio in delivered.items()]
    print(f"{'rule':28s} {'set':24s} {'peak p5/p50/p95 (dBFS)':>24s} {'noise floor':>11s} {'clean/noisy':>11s} "
          f"{'full scale':>10s} {'in range':>8s}")
    for r in rows:
        peaks = f"{r['peak_p5']:.2f} / {r['peak_p50']:.2f} / {r['peak_p95']:.2f}"
        print(f"{r['rule']:28s} {r['set']:24s} {peaks:>24s} {r['noise_floor_p50']:>11.1f} "
              f"{r['floor_too_clean']:>5.2f}/{r['floor_too_noisy']:<5.2f} {r['full_scale_samples']:>10d} "
              f"{r['level_in_range']:>8.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "level_convention.json").write_text(json.dumps({
        "vocoder": vocoder.describe(), "convention": convention.to_json(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
