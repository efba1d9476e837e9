"""Ingest scaling: real-time factor and peak RSS on 10 and 60 minutes of audio, side by side.

The corpus is one-minute 44.1 kHz stereo WAV files (so every clip is mixed down, resampled,
sliced and normalised), or with ``--one-file`` a single file of that length (the case of a long
recording: decoding is block by block, so its peak RSS should not grow with its length). Each size
is ingested in a fresh subprocess so its peak RSS is its own. Prints a table and writes
benchmarks/results/ingest_scaling.json (``ingest_scaling-one-file.json``).

    python benchmarks/ingest_scaling.py                          # 10 and 60 one-minute files
    python benchmarks/ingest_scaling.py --one-file --minutes 30 240
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_corpus(folder: Path, minutes: int, rate: int = 44100) -> None:
    import soundfile as sf

    rng = np.random.default_rng(minutes)
    t = np.arange(60 * rate) / rate
    for i in range(minutes):
        freq = 110.0 * 2 ** (i % 36 / 12)
        tone = 0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
        noise = 0.02 * rng.standard_normal((2, t.size))
        sf.write(folder / f"take-{i:03d}.wav", (tone + noise).T.astype(np.float32), rate, subtype="PCM_16")


def make_one_file(folder: Path, minutes: int, rate: int = 44100) -> None:
    """One ``minutes``-long 44.1 kHz stereo 16-bit WAV, written a minute at a time."""
    import soundfile as sf

    rng = np.random.default_rng(minutes)
    t = np.arange(60 * rate) / rate
    with sf.SoundFile(folder / "recording.wav", "w", samplerate=rate, channels=2, subtype="PCM_16") as out:
        for i in range(minutes):
            freq = 110.0 * 2 ** (i % 36 / 12)
            tone = 0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
            out.write((tone + 0.02 * rng.standard_normal((2, t.size))).T.astype(np.float32))


def _child(corpus: str, out: str) -> None:
    """Run one ingest and print its summary plus this process's peak RSS."""
    from components.params_file import apply_overrides, profile_params, validate_params
    from components.ingest.stage import run_ingest

    cfg = validate_params(apply_overrides(profile_params("demo"), [f"data.sources=[{corpus}]"]))
    started = time.perf_counter()
    summary = run_ingest(cfg, Path(out))
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"summary": summary, "wall_seconds": wall, "peak_rss_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, nargs="+", default=[10, 60])
    parser.add_argument("--one-file", action="store_true", help="one long file instead of one-minute files")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    name = "ingest_scaling-one-file.json" if args.one_file else "ingest_scaling.json"
    args.out = args.out or Path(__file__).parent / "results" / name
    rows = []
    with tempfile.TemporaryDirectory(prefix="melforge-bench-") as tmp:
        for minutes in args.minutes:
            corpus = Path(tmp) / f"corpus-{minutes}"
            corpus.mkdir()
            (make_one_file if args.one_file else make_corpus)(corpus, minutes)
            proc = subprocess.run([sys.executable, __file__, "--child", str(corpus), str(Path(tmp) / f"clips-{minutes}")],
                                  capture_output=True, text=True, env={**__import__("os").environ, "MELFORGE_PROGRESS": "0"})
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            child = json.loads(proc.stdout.strip().splitlines()[-1])
            audio_seconds = minutes * 60.0
            rows.append({"minutes": minutes, "clips": child["summary"]["clips"], "wall_seconds": child["wall_seconds"],
                         "realtime_factor": audio_seconds / child["wall_seconds"], "peak_rss_mb": child["peak_rss_mb"]})
    print("one file" if args.one_file else "one-minute files")
    print(f"{'audio':>8}{'clips':>8}{'wall s':>10}{'RTF':>10}{'peak RSS MB':>14}")
    for r in rows:
        print(f"{r['minutes']:>6} m{r['clips']:>8}{r['wall_seconds']:>10.1f}{r['realtime_factor']:>9.0f}x{r['peak_rss_mb']:>14.0f}")
    result = {"rows": rows}
    if len(rows) >= 2:
        result["rss_ratio_longest_to_shortest"] = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
        result["corpus_ratio"] = rows[-1]["minutes"] / rows[0]["minutes"]
        print(f"peak RSS x{result['rss_ratio_longest_to_shortest']:.2f} for x{result['corpus_ratio']:.0f} the audio")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        main()
