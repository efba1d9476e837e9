"""The features stage: ``data/clips`` -> ``data/mels`` (normalised log-mels, stats, previews).

Pass 1 computes log-mels in batches and accumulates per-bin statistics; pass 2 normalises (and
packs, for the snake layout) shard by shard. Then Griffin-Lim reconstructs a few real clips to
measure the mel round trip and to give people something to listen to and look at.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.config import MelforgeConfig
from components.features.griffinlim import mel_to_audio, spectral_convergence_db
from components.features.mel import LogMel, MelSpec, fit_frames, log_floor_value
from components.features.packing import pack_snake
from components.features.plots import save_mel_grid
from components.features.split import SPLIT_COLUMN, TRAIN, assign_split
from components.features.stats import RunningBinStats
from components.features.store import INDEX, MANIFEST, STATS
from components.ingest.store import LABEL_PREFIX, open_clips, read_manifest
from components.level import INDEX_KEY as LEVEL_KEY, LevelConvention
from components.progress import progress_bar
from components.storage import ShardWriter, atomic_save_npy, atomic_write_json, staged_directory


def run_features(cfg: MelforgeConfig, clips_dir: Path, out_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    manifest = read_manifest(clips_dir)
    clips = open_clips(clips_dir)
    spec = MelSpec.from_config(cfg)
    logmel = LogMel(spec)
    m = cfg.mel
    floor = log_floor_value(spec)
    n = len(manifest)
    label_cols = [c for c in manifest.columns if c.startswith(LABEL_PREFIX)]
    labels = manifest[label_cols].rename(columns=lambda c: c.removeprefix(LABEL_PREFIX))
    # the evaluation split first: bad settings fail before any mel is computed
    split, split_report = assign_split(list(manifest["clip_id"].astype(str)), labels, fraction=cfg.eval.fraction,
                                       min_per_cell=cfg.eval.min_clips_per_cell, requested=cfg.eval.split_labels)
    is_train = split == TRAIN
    with staged_directory(out_dir) as tmp:
        raw_dir = tmp / "raw"
        raw = ShardWriter(raw_dir, prefix="raw", shard_size=cfg.data.shard_size, row_shape=(m.n_mels, m.frames))
        running = RunningBinStats(m.n_mels)
        with progress_bar() as progress:
            task = progress.add_task("log-mel", total=n, info="")
            for start in range(0, n, m.batch_size):
                rows = manifest.iloc[start:start + m.batch_size]
                audio = np.stack([np.asarray(clips.row(s, int(r))) for s, r in zip(rows["shard"], rows["row"])])
                mels = fit_frames(logmel(audio).numpy(), m.frames, floor)
                running.update(mels[is_train[start:start + m.batch_size]])  # stats from training clips only
                for mel in mels:
                    raw.append(mel)
                progress.update(task, advance=len(rows), info="")
            raw_shards = raw.close()
            stats = running.finish(m.clip_sigma)
            example_shape = (m.pack_channels, m.n_mels, m.frames // m.pack_channels) if m.layout == "snake" else (m.n_mels, m.frames)
            final = ShardWriter(tmp, prefix="mels", shard_size=cfg.data.shard_size, row_shape=example_shape)
            task = progress.add_task("normalise", total=len(raw_shards), info="")
            clipped = 0
            for shard in raw_shards:
                values = np.load(raw_dir / shard["file"])
                normalised = stats.normalise(values)
                clipped += int((np.abs(normalised) >= 1.0).sum())  # clipped values sit exactly at +-1
                if m.layout == "snake":
                    normalised = pack_snake(normalised, m.pack_channels)
                for example in normalised:
                    final.append(example)
                progress.update(task, advance=1, info="")
            shards = final.close()
        preview = _previews(cfg, raw_dir, raw_shards, spec, tmp / "preview", manifest)
        for shard in raw_shards:
            (raw_dir / shard["file"]).unlink()
        raw_dir.rmdir()
        mel_manifest = manifest[["clip_id", "source_uri", *label_cols]].copy()
        mel_manifest.insert(1, "row", np.arange(n))
        mel_manifest.insert(2, SPLIT_COLUMN, split)
        mel_manifest.to_parquet(tmp / MANIFEST, index=False)
        atomic_write_json(tmp / STATS, stats.to_json())
        atomic_write_json(tmp / INDEX, {
            "shards": shards, "layout": m.layout, "example_shape": list(example_shape), "count": n,
            "mel": m.model_dump(mode="json"), "sample_rate": cfg.audio.sample_rate,
            "clip_samples": cfg.audio.clip_samples,
            LEVEL_KEY: LevelConvention.from_audio_config(cfg.audio).to_json(),  # generated clips are delivered at it
        })
    elapsed = time.perf_counter() - started
    audio_seconds = n * cfg.audio.clip_seconds
    summary = {
        "examples": n, "layout": m.layout, "example_shape": list(example_shape), "n_mels": m.n_mels,
        "frames": m.frames, "frames_per_clip": spec.frames_for(cfg.audio.clip_samples),
        "padding_frames": max(0, m.frames - spec.frames_for(cfg.audio.clip_samples)),
        "clipped_fraction": clipped / max(1, n * m.n_mels * m.frames),
        "griffinlim_spectral_convergence_db": preview["sc_db_mean"],
        "griffinlim_clips": preview["clips"], "seconds": elapsed,
        "split": split_report.to_json(),
        "realtime_factor": audio_seconds / elapsed if elapsed > 0 else 0.0,
    }
    return summary


def _previews(cfg: MelforgeConfig, raw_dir: Path, raw_shards: list[dict], spec: MelSpec, out: Path,
              manifest: pd.DataFrame) -> dict[str, Any]:
    """Griffin-Lim a spread of real clips: spectral convergence, WAVs and a mel grid PNG."""
    import soundfile as sf

    from components.storage import ShardReader

    reader = ShardReader(raw_dir, raw_shards)
    count = min(cfg.mel.griffinlim_eval_clips, len(reader))
    picks = np.unique(np.linspace(0, len(reader) - 1, count).round().astype(int))
    mels = reader.take(picks)
    audio = mel_to_audio(mels, spec, n_iter=cfg.mel.griffinlim_iters)
    sc_db = spectral_convergence_db(mels, audio, spec)
    out.mkdir(parents=True, exist_ok=True)
    for k, (i, clip) in enumerate(zip(picks, audio)):
        sf.write(out / f"griffinlim-{k:02d}-{manifest['clip_id'].iloc[i]}.wav", np.clip(clip, -1, 1), cfg.audio.sample_rate)
    titles = [f"{manifest['clip_id'].iloc[i][:8]}  SC {db:.1f} dB" for i, db in zip(picks, sc_db)]
    save_mel_grid(mels, out / "mels.png", floor=log_floor_value(spec), titles=titles,
                  title="real log-mels; SC = spectral convergence of the Griffin-Lim round trip")
    atomic_save_npy(out / "spectral_convergence_db.npy", sc_db.astype(np.float32))
    return {"sc_db_mean": float(np.mean(sc_db)), "clips": int(len(picks))}
