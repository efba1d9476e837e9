"""Log-mel speed: the batched torch implementation vs a per-clip librosa loop, same clips, one run.

Prints a table and writes benchmarks/results/logmel_speed.json. Real-time factor = seconds of
audio processed per second of compute (higher is better).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--n-mels", type=int, default=128)
    parser.add_argument("--n-fft", type=int, default=1024)
    parser.add_argument("--hop", type=int, default=160)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "logmel_speed.json")
    args = parser.parse_args()

    import librosa

    from components.features.mel import LogMel, MelSpec

    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((args.clips, int(args.seconds * args.sample_rate)))).astype(np.float32)
    spec = MelSpec(sample_rate=args.sample_rate, n_fft=args.n_fft, hop_length=args.hop, n_mels=args.n_mels)
    batched = LogMel(spec)
    filters = spec.filterbank().numpy()

    def run_batched() -> None:
        for start in range(0, len(audio), args.batch):
            batched(audio[start:start + args.batch])

    def run_librosa() -> None:
        for clip in audio:
            mel = librosa.feature.melspectrogram(y=clip, sr=args.sample_rate, n_fft=args.n_fft, hop_length=args.hop,
                                                 n_mels=args.n_mels, power=2.0, center=True, pad_mode="constant")
            np.log(np.maximum(mel, spec.log_floor))

    # warm-up (numba / allocator) and a correctness check on the same clips
    ref = librosa.feature.melspectrogram(y=audio[0], sr=args.sample_rate, n_fft=args.n_fft, hop_length=args.hop,
                                         n_mels=args.n_mels, power=2.0, center=True, pad_mode="constant")
    max_err = float(np.abs(batched(audio[:1]).numpy()[0] - np.log(np.maximum(ref, spec.log_floor))).max())
    assert np.allclose(filters, librosa.filters.mel(sr=args.sample_rate, n_fft=args.n_fft, n_mels=args.n_mels))
    run_batched()

    audio_seconds = args.clips * args.seconds
    t_batched = _best_of(run_batched, args.repeats)
    t_librosa = _best_of(run_librosa, args.repeats)
    result = {
        "clips": args.clips, "clip_seconds": args.seconds, "audio_seconds": audio_seconds,
        "batched_seconds": t_batched, "librosa_loop_seconds": t_librosa,
        "batched_rtf": audio_seconds / t_batched, "librosa_loop_rtf": audio_seconds / t_librosa,
        "speedup": t_librosa / t_batched, "max_abs_log_error": max_err,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "torch": torch.__version__, "librosa": librosa.__version__, "settings": vars(args) | {"out": str(args.out)},
    }
    print(f"{'implementation':<22}{'seconds':>10}{'RTF':>12}")
    print(f"{'batched torch':<22}{t_batched:>10.3f}{result['batched_rtf']:>12.0f}x")
    print(f"{'per-clip librosa':<22}{t_librosa:>10.3f}{result['librosa_loop_rtf']:>12.0f}x")
    print(f"speed-up: {result['speedup']:.1f}x (same {args.clips} clips of {args.seconds:g} s; max |log diff| {max_err:.1e})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
