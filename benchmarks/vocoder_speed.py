"""The learned vocoder against Griffin-Lim, side by side in one run on the same held-out real clips.

Run in a workspace after the vocoder stage (``melforge run`` or ``melforge stage vocoder``):

    python benchmarks/vocoder_speed.py                 # models/vocoder vs Griffin-Lim at 16 and 32 iterations
    python benchmarks/vocoder_speed.py --clips 32 --threads 2

Measures, per vocoder: spectral convergence (dB), re-analysed log-mel L1, MR-STFT distance, RTF, and
an independent pitch check (librosa's pYIN on the vocoded clip against the original: median error
in cents and the share of clips within 50 cents). Also Griffin-Lim from the old clamped
pseudo-inverse, to show what the NNLS inverse changed, and end-to-end generation RTF of the served
student (DDIM + vocoder) with each vocoder. Prints a table and writes
``benchmarks/results/vocoder_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch

from components.params_file import load_config
from components.features.mel import LogMel, MelSpec
from components.generation import MelGenerator
from components.ingest.store import open_clips, read_manifest
from components.features.store import MelStore
from components.models.io import MODEL_FILE, save_denoiser
from components.models.unet import UNet1d
from components.settings import project_paths
from components.features.griffinlim import griffin_lim
from components.train.teacher import unet_spec
from components.vocoder.interface import VOCODER_FILE, GriffinLim, load_vocoder, vocoder_dir
from components.vocoder.quality import comparison, score_vocoders
from components.vocoder.stage import split_clips


@dataclass
class PseudoInverseGriffinLim:
    """Griffin-Lim from the clamped pseudo-inverse of the mel filterbank (melforge before NNLS)."""

    spec: MelSpec
    n_iter: int
    kind: str = "griffinlim-pinv"

    def __call__(self, logmel: np.ndarray) -> np.ndarray:
        power = torch.exp(torch.as_tensor(logmel, dtype=torch.float32))
        linear = torch.clamp(torch.linalg.pinv(self.spec.filterbank()) @ power, min=0.0).sqrt()
        s = self.spec
        audio = griffin_lim(linear, n_fft=s.n_fft, hop_length=s.hop_length, win_length=s.window_length, n_iter=self.n_iter)
        return np.clip(audio.numpy(), -1, 1).astype(np.float32)


def pitch_cents(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Median pYIN f0 (in cents re A440) of each clip's voiced frames; NaN when unvoiced."""
    out = []
    for clip in audio:
        f0, voiced, _ = librosa.pyin(clip[: int(2.5 * sample_rate)], fmin=60.0, fmax=1200.0, sr=sample_rate,
                                     frame_length=2048)
        f0 = f0[voiced & np.isfinite(f0)]
        out.append(1200 * np.log2(np.median(f0) / 440.0) if len(f0) >= 5 else np.nan)
    return np.array(out)


def served_model(cfg, paths, tmp: Path) -> tuple[Path, str, int]:
    """(model file, label, steps): the evaluation's served model, or else the profile's final student
    architecture with untrained weights (sampling time depends on the network, not its weights)."""
    evaluation = paths.evaluation / "metrics.json"
    if evaluation.is_file():
        served = json.loads(evaluation.read_text())["served"]
        return paths.models / served["model"] / MODEL_FILE, served["model"], int(served["steps"])
    store = MelStore(paths.mels)
    spec = unet_spec(cfg, store.example_shape)
    save_denoiser(tmp / MODEL_FILE, UNet1d(spec), spec, kind="student", sampling_steps=cfg.distill.final_steps,
                  mel_stats=store.stats.to_json(), mel_index=store.index, config={}, parameters=0)
    return tmp / MODEL_FILE, f"{cfg.profile} {cfg.distill.final_student} architecture (untrained, timing only)", cfg.distill.final_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=32, help="held-out clips to score (at most all of them)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="best-of repeats for each timing")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = project_paths()
    cfg = load_config(paths.params)
    spec = MelSpec.from_config(cfg)
    manifest = read_manifest(paths.clips)
    clips = open_clips(paths.clips)
    _, held = split_clips(list(manifest["clip_id"]), MelStore(paths.mels))
    held = held[: args.clips]
    audio = np.stack([np.asarray(clips.row(s, int(r)), np.float32) for s, r in zip(manifest["shard"].iloc[held],
                                                                                   manifest["row"].iloc[held])])
    iters = sorted({cfg.eval.griffinlim_iters, cfg.mel.griffinlim_iters})
    vocoders = {**{f"griffinlim@{n}": GriffinLim(spec, n_iter=n) for n in iters},
                **{f"griffinlim-pinv@{n}": PseudoInverseGriffinLim(spec, n_iter=n) for n in iters}}
    learned_file = vocoder_dir(paths.models) / VOCODER_FILE
    learned = None
    if learned_file.is_file():
        learned = load_vocoder(learned_file)
        learned.check_matches(spec, origin="params.yaml")
        vocoders = {"learned": learned, **vocoders}
    else:
        print(f"{learned_file}: no learned vocoder in this workspace (vocoder.steps is 0 here, e.g. the demo profile); "
              "scoring Griffin-Lim only. Train one with `melforge run --profile cpu` or `-S vocoder.steps=6000`.")
    started = time.perf_counter()
    with torch.inference_mode():
        scores = score_vocoders(vocoders, audio, spec, repeats=args.repeats)
        logmel = LogMel(spec)(audio).numpy()
        reference_pitch = pitch_cents(audio, spec.sample_rate)
        for name, vocoder in vocoders.items():
            error = np.abs(pitch_cents(vocoder(logmel), spec.sample_rate) - reference_pitch)
            known = np.isfinite(error)
            scores[name]["pitch"] = {"median_cents_error": float(np.median(error[known])) if known.any() else None,
                                     "within_50_cents": float((error[known] <= 50).mean()) if known.any() else None,
                                     "voiced_clips": int(known.sum())}
    versus = {name: comparison(scores, "learned", name) for name in vocoders
              if learned is not None and name.startswith("griffinlim@")}
    end_to_end = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_file, label, steps = served_model(cfg, paths, Path(tmp))
        for name in ([] if learned is None else ["learned"]) + [f"griffinlim@{cfg.mel.griffinlim_iters}"]:
            gen = MelGenerator.load(model_file, vocoder=vocoders[name])
            rtf = gen.real_time_factor(clips=cfg.eval.rtf_clips, steps=steps, repeats=args.repeats)
            end_to_end[name] = {**rtf, "times_real_time": 1.0 / rtf["rtf"], "model": label, "steps": steps}
    result = {"profile": cfg.profile, "clips": len(audio), "threads": args.threads, "scores": scores,
              "learned_vs": versus, "end_to_end": end_to_end, "seconds": round(time.perf_counter() - started, 1),
              "vocoder_steps": learned.meta.get("steps") if learned else 0, "torch": torch.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vocoder_speed.json").write_text(json.dumps(result, indent=2))
    print(f"{len(audio)} held-out clips, profile {cfg.profile}, {args.threads} threads (lower is better except pitch)")
    print(f"{'vocoder':22} {'SC dB':>8} {'logmel L1':>10} {'MR-STFT':>8} {'RTF':>8} {'pitch err c':>11} {'<=50c':>6}")
    for name, s in scores.items():
        p = s["pitch"]
        print(f"{name:22} {s['sc_db']['value']:8.2f} {s['logmel_l1']['value']:10.3f} {s['mrstft']['value']:8.3f} "
              f"{s['rtf']:8.5f} {p['median_cents_error'] if p['median_cents_error'] is not None else float('nan'):11.1f} "
              f"{p['within_50_cents'] if p['within_50_cents'] is not None else float('nan'):6.2f}")
    for name, r in versus.items():
        print(f"learned vs {name}: SC {r['sc_db_gain']:+.2f} dB, log-mel L1 {r['logmel_l1_reduction']:+.1%} lower, "
              f"MR-STFT {r['mrstft_reduction']:+.1%} lower, {r['speedup']:.1f}x faster")
    for name, r in end_to_end.items():
        print(f"end to end ({r['model']}, {r['steps']} steps, {name}): RTF {r['rtf']:.5f} = {r['times_real_time']:.0f}x real time "
              f"(mel sampling alone {r['rtf_mel']:.5f})")


if __name__ == "__main__":
    main()
