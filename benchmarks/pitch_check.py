"""An independent check of generated audio with a pitch tracker: notes for nsynth-mini, voicing for speech.

Not the pipeline's own ruler (no classifier, no CREPE embedding): librosa's pYIN tracks f0.
- Notes (``builtin:nsynth-mini``): on each clip's sustained part; a clip counts as a *note* when most
  of its voiced frames agree on one pitch within ``--cents`` of a MIDI pitch the data set was
  rendered at (``data.nsynth_mini.pitches``).
- Speech (``--check voicing``, the default for ``builtin:digits``): the share of voiced frames per
  clip and the median f0 of the voiced ones; a clip counts as *speech-like* when its voiced share
  lies within the real clips' 5th-95th percentile range (noise has none; a hum has too much).
Real clips (through the same vocoder, ``vocoder.kind``) and each model's clips (any family) are
checked side by side.

    python benchmarks/pitch_check.py                      # every model folder under models/
    python benchmarks/pitch_check.py --models student-4 wavegan --clips 32
    python benchmarks/pitch_check.py --models-dir benchmarks/results/exported   # quality_curve.py --export

Prints a table and writes ``benchmarks/results/pitch_check.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import librosa
import numpy as np

from components.params_file import load_config
from components.features.mel import MelSpec
from components.features.split import EVAL
from components.features.store import MelStore
from components.families import load_generator
from components.models.io import MODEL_FILE
from components.settings import project_paths
from components.vocoder.interface import workspace_vocoder


def clip_pitch(audio: np.ndarray, sample_rate: int) -> float | None:
    """Median MIDI pitch of the voiced frames in the first 2.5 s (the sustain), or None when unvoiced."""
    head = audio[: int(2.5 * sample_rate)]
    f0, voiced, _ = librosa.pyin(head, fmin=60.0, fmax=1200.0, sr=sample_rate, frame_length=2048)
    f0 = f0[voiced & np.isfinite(f0)]
    if len(f0) < 5:
        return None
    midi = librosa.hz_to_midi(f0)
    median = float(np.median(midi))
    agree = np.abs(midi - median) < 0.5
    return median if agree.mean() >= 0.6 else None


def note_rate(audio: np.ndarray, sample_rate: int, pitches: list[int], cents: float) -> dict[str, float]:
    found = [clip_pitch(a, sample_rate) for a in audio]
    hits = [p is not None and min(abs(p - q) for q in pitches) * 100 <= cents for p in found]
    return {"clips": len(audio), "voiced": sum(p is not None for p in found), "training_pitch": int(sum(hits)),
            "rate": float(np.mean(hits)), "pitches_heard": sorted({int(round(p)) for p, h in zip(found, hits) if h})}


def voicing(audio: np.ndarray, sample_rate: int) -> tuple[float, float | None]:
    """(share of voiced frames, median f0 in Hz of the voiced ones or None)."""
    f0, voiced, _ = librosa.pyin(audio, fmin=60.0, fmax=500.0, sr=sample_rate, frame_length=1024)
    voiced = voiced & np.isfinite(f0)
    return float(voiced.mean()), float(np.median(f0[voiced])) if voiced.any() else None


def voicing_rate(audio: np.ndarray, sample_rate: int, band: tuple[float, float] | None) -> dict[str, float]:
    """Voiced share and median f0 over clips; ``band``: the real clips' 5th-95th percentile voiced share."""
    found = [voicing(a, sample_rate) for a in audio]
    shares = np.array([v for v, _ in found])
    band = band or (float(np.percentile(shares, 5)), float(np.percentile(shares, 95)))
    f0 = [f for _, f in found if f is not None]
    hits = (shares >= band[0]) & (shares <= band[1])
    return {"clips": len(audio), "voiced_share": float(shares.mean()), "median_f0_hz": float(np.median(f0)) if f0 else None,
            "speech_like": int(hits.sum()), "rate": float(hits.mean()), "band": list(band)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help="model folders under models/ (default: all)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"),
                        help="where the model folders are (e.g. quality_curve.py --export's folder)")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--cents", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--check", choices=["notes", "voicing"], default=None,
                        help="default: voicing when the sources are builtin:digits, else notes")
    args = parser.parse_args()
    cfg = load_config(Path("params.yaml"))
    pitches = cfg.data.nsynth_mini.pitches
    check = args.check or ("voicing" if cfg.data.sources == ["builtin:digits"] else "notes")
    store = MelStore(Path("data/mels"))
    spec = MelSpec.from_index(store.index)
    vocoder = workspace_vocoder(cfg, project_paths(), spec, griffinlim_iters=cfg.eval.griffinlim_iters)
    rng = np.random.default_rng(args.seed)
    rows = {}
    held_out = store.rows(EVAL)  # the evaluation set: clips no model trained on
    real_rows = rng.choice(held_out, size=min(args.clips, len(held_out)), replace=False)
    real_logmel = store.stats.denormalise(store.batch(np.sort(real_rows)))
    real_audio = vocoder(real_logmel)
    band = None
    if check == "voicing":
        rows[f"real ({vocoder.kind})"] = real = voicing_rate(real_audio, spec.sample_rate, None)
        band = tuple(real["band"])
    else:
        rows[f"real ({vocoder.kind})"] = note_rate(real_audio, spec.sample_rate, pitches, args.cents)
    names = args.models or sorted(p.parent.name for p in args.models_dir.glob(f"*/{MODEL_FILE}"))
    for name in names:
        gen = load_generator(args.models_dir / name / MODEL_FILE, vocoder=vocoder)
        audio = gen.generate(args.clips, args.seed)
        label = f"{name} ({gen.network_evaluations()} network evaluations)"
        rows[label] = voicing_rate(audio, gen.sample_rate, band) if check == "voicing" else \
            note_rate(audio, gen.sample_rate, pitches, args.cents)
    if check == "voicing":
        print(f"{'clips':40s} {'voiced share':>12s} {'median f0':>10s}  speech-like (real 5-95% voiced share)")
        for name, r in rows.items():
            f0 = f"{r['median_f0_hz']:.0f} Hz" if r["median_f0_hz"] else "—"
            print(f"{name:40s} {r['voiced_share']:>12.2f} {f0:>10s}  {r['speech_like']}/{r['clips']} ({r['rate']:.0%})")
    else:
        print(f"{'clips':40s} {'voiced':>7s} {'training pitch':>15s}  pitches heard")
        for name, r in rows.items():
            print(f"{name:40s} {r['voiced']:>4d}/{r['clips']:<3d} {r['training_pitch']:>6d} ({r['rate']:.0%})   {r['pitches_heard']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pitch_check.json").write_text(json.dumps({"check": check, "cents": args.cents, "pitches": pitches,
                                                           "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
