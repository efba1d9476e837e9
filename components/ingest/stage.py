"""The ingest stage: every configured source -> ``data/clips`` (shards, manifest, quarantine).

Streaming: a source file is read and decoded block by block (memory holds a block, a clip and one
shard, whatever the file's length) and clips go straight into shards; a file that fails half-way
gives nothing.
Incremental: a file (or built-in set) whose content hash is unchanged, under unchanged audio
parameters, is copied from the previous output instead of being decoded again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.config import MelforgeConfig
from components.datasets import builtin_catalogue, catalogue_fingerprint, render_builtin
from components.ingest.clips import ClipSlicer, normalise, peak, rms_dbfs, to_mono
from components.ingest.decode import BadAudio, decode_stream
from components.ingest.sources import EntryError, SourceError, local_entries, s3_entries, source_kind
from components.progress import progress_bar
from components.provenance import stream_sha256
from components.ingest.store import INDEX, LABEL_PREFIX, MANIFEST, QUARANTINE
from components.storage import ShardReader, ShardWriter, atomic_write_json, staged_directory



class IngestError(RuntimeError):
    """The stage cannot produce any usable output; the message says which source and why."""


@dataclass
class _Run:
    cfg: MelforgeConfig
    writer: ShardWriter
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, str]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    builtin_fingerprints: dict[str, str] = field(default_factory=dict)

    def quarantine_entry(self, source: str, uri: str, reason: str) -> None:
        self.quarantine.append({"source": source, "uri": uri, "reason": reason})
        self.counts["files_quarantined"] += 1


def audio_fingerprint(cfg: MelforgeConfig) -> str:
    """Hash of everything that shapes a clip: a change means every source is decoded again."""
    return hashlib.sha256(json.dumps(cfg.audio.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def clip_id(uri: str, offset: int) -> str:
    return hashlib.sha1(f"{uri}|{offset}".encode()).hexdigest()[:16]


class ClipMaker:
    """Source samples in, finished clips out, block by block: mono, resample, slice, drop near-silent
    windows, normalise. Memory holds a block and a clip, whatever the source's length."""

    def __init__(self, rate: int, cfg: MelforgeConfig) -> None:
        from components.torchaudio_ops import StreamResampler

        a = cfg.audio
        self.audio, self.rate = a, rate
        self.resampler = StreamResampler(rate, a.sample_rate)
        self.slicer = ClipSlicer(clip_samples=a.clip_samples, hop_samples=a.hop_samples,
                                 min_last_fraction=a.min_last_clip_fraction)
        self.silent = 0

    def _keep(self, windows: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
        a, kept = self.audio, []
        for offset, clip in windows:
            if rms_dbfs(clip) < a.silence_floor_db:
                self.silent += 1
                continue
            kept.append((offset, normalise(clip, mode=a.normalise, peak_dbfs=a.peak_dbfs, loudness_dbfs=a.loudness_dbfs)))
        return kept

    def feed(self, block: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``block``: (channels, samples) or (samples,) at the source's rate."""
        return self._keep(self.slicer.feed(self.resampler.feed(to_mono(block))))

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """The last clips; :class:`BadAudio` when the whole source was too short for a single one."""
        last = self._keep(self.slicer.feed(self.resampler.finish()) + self.slicer.finish())
        if not self.slicer.windows:
            a = self.audio
            raise BadAudio(f"too short: {self.seconds:.3g} s < audio.clip_seconds x "
                           f"audio.min_last_clip_fraction ({a.clip_seconds * a.min_last_clip_fraction:.3g} s)")
        return last

    @property
    def seconds(self) -> float:
        return self.resampler.seen / self.rate


def audio_to_clips(audio: np.ndarray, rate: int, cfg: MelforgeConfig) -> tuple[list[tuple[int, np.ndarray]], int]:
    """A whole (channels, samples) signal -> ([(offset, clip)], silent windows dropped), or
    :class:`BadAudio` when it is too short to give a single clip."""
    maker = ClipMaker(rate, cfg)
    clips = maker.feed(audio)
    clips += maker.finish()
    return clips, maker.silent


def _add_clips(run: _Run, clips: list[tuple[int, np.ndarray]], *, source: str, uri: str, source_hash: str,
               labels: dict[str, str]) -> None:
    rate = run.cfg.audio.sample_rate
    for offset, clip in clips:
        shard, row = run.writer.append(clip)
        run.rows.append({
            "clip_id": clip_id(uri, offset), "source": source, "source_uri": uri, "source_hash": source_hash,
            "offset_seconds": offset / rate, "duration_seconds": len(clip) / rate, "sample_rate": rate,
            "shard": shard, "row": row, "peak": peak(clip), "rms_db": rms_dbfs(clip),
            "nonfinite": int((~np.isfinite(clip)).sum()),
            **{LABEL_PREFIX + k: v for k, v in labels.items()},
        })


def _copy_previous(run: _Run, previous: pd.DataFrame, reader: ShardReader, *, source: str, uri: str | None,
                   labels: dict[str, str] | None) -> None:
    """Re-use clips of an unchanged source from the previous output (no decoding).

    ``uri``/``labels`` None keep each row's own; else they replace them (same bytes, new place).
    """
    for rec in previous.to_dict("records"):
        shard, row = run.writer.append(np.asarray(reader.row(rec["shard"], int(rec["row"]))))
        new = {k: v for k, v in rec.items() if not (labels is not None and k.startswith(LABEL_PREFIX))}
        new_uri = uri or rec["source_uri"]
        offset = round(rec["offset_seconds"] * rec["sample_rate"])
        new.update(source=source, source_uri=new_uri, shard=shard, row=row, clip_id=clip_id(new_uri, offset))
        if labels is not None:
            new.update({LABEL_PREFIX + k: v for k, v in labels.items()})
        run.rows.append(new)


def _load_previous(out_dir: Path, fingerprint: str) -> tuple[pd.DataFrame | None, dict[str, Any], ShardReader | None]:
    index_path, manifest_path = out_dir / INDEX, out_dir / MANIFEST
    if not (index_path.is_file() and manifest_path.is_file()):
        return None, {}, None
    try:
        index = json.loads(index_path.read_text())
        if index.get("audio_fingerprint") != fingerprint:
            return None, {}, None
        return pd.read_parquet(manifest_path), index, ShardReader(out_dir, index["shards"])
    except Exception:  # a damaged previous output only costs a re-decode
        return None, {}, None


def _ingest_builtin(run: _Run, source: str, previous, index, reader, progress) -> None:
    name = source.removeprefix("builtin:")
    catalogue = builtin_catalogue(name, run.cfg.data)
    fingerprint = catalogue_fingerprint(catalogue)
    run.builtin_fingerprints[source] = fingerprint
    if previous is not None and index.get("builtin", {}).get(source) == fingerprint:
        rows = previous[previous["source"] == source]
        if len(rows):
            _copy_previous(run, rows, reader, source=source, uri=None, labels=None)
            run.counts["files_reused"] += rows["source_uri"].nunique()
            return
    task = progress.add_task(f"render {source}", total=len(catalogue), info="")
    for item, audio, rate in render_builtin(name, run.cfg.data):
        uri = f"{source}/{item.item_id}"
        item_hash = hashlib.sha256(json.dumps(item.spec, sort_keys=True).encode()).hexdigest()
        run.counts["files_seen"] += 1
        try:
            clips, silent = audio_to_clips(audio[None, :], rate, run.cfg)
        except BadAudio as exc:
            run.quarantine_entry(source, uri, str(exc))
            continue
        run.counts["silent_clips_dropped"] += silent
        if not clips:
            run.quarantine_entry(source, uri, f"silent: no clip above audio.silence_floor_db ({run.cfg.audio.silence_floor_db} dB)")
        else:
            run.counts["files_decoded"] += 1
            _add_clips(run, clips, source=source, uri=uri, source_hash=item_hash, labels=item.labels)
        progress.update(task, advance=1, info=f"{len(run.rows)} clips")


def _ingest_files(run: _Run, source: str, previous, reader, progress) -> None:
    d = run.cfg.data
    a = run.cfg.audio
    task = progress.add_task(f"ingest {source}", total=None, info="")
    if source_kind(source) == "s3":
        entries = s3_entries(source, include=d.include, label_mode=d.labels, labels_csv=d.labels_csv,
                             endpoint_url=d.s3_endpoint_url, timeout_s=d.s3_timeout_seconds, attempts=d.s3_attempts,
                             on_page=lambda n: progress.update(task, info=f"listed {n} objects"))
    else:
        entries = local_entries(source, include=d.include, label_mode=d.labels, labels_csv=d.labels_csv)
    by_hash = previous.groupby("source_hash") if previous is not None else None
    known = set(previous["source_hash"]) if previous is not None else set()
    seen = 0
    for entry in entries:
        seen += 1
        run.counts["files_seen"] += 1
        progress.update(task, advance=1, info=f"{len(run.rows)} clips")
        mark = (run.writer.rows, len(run.rows))
        try:
            with entry.open() as fh:
                content_hash = _sha256(fh)
                if content_hash in known:
                    _copy_previous(run, by_hash.get_group(content_hash).drop_duplicates("offset_seconds"), reader,
                                   source=source, uri=entry.uri, labels=entry.labels)
                    run.counts["files_reused"] += 1
                    continue
                stream = decode_stream(fh, min_rate=a.min_source_sample_rate, max_rate=a.max_source_sample_rate,
                                       max_channels=a.max_channels, max_seconds=a.max_source_seconds)
                maker = ClipMaker(stream.rate, run.cfg)
                for block in stream.blocks:
                    _add_clips(run, maker.feed(block.T), source=source, uri=entry.uri, source_hash=content_hash,
                               labels=entry.labels)
                _add_clips(run, maker.finish(), source=source, uri=entry.uri, source_hash=content_hash,
                           labels=entry.labels)
        except (EntryError, BadAudio, OSError) as exc:
            run.writer.truncate(mark[0])  # nothing of a file that failed half-way is kept
            del run.rows[mark[1]:]
            reason = str(exc) if not isinstance(exc, OSError) else f"unreadable: {exc.strerror or type(exc).__name__}"
            run.quarantine_entry(source, entry.uri, reason)
            continue
        run.counts["silent_clips_dropped"] += maker.silent
        if len(run.rows) == mark[1]:
            run.quarantine_entry(source, entry.uri, f"silent: no clip above audio.silence_floor_db ({a.silence_floor_db} dB)")
            continue
        run.counts["files_decoded"] += 1
        run.counts["audio_seconds_decoded"] += maker.seconds
    if seen == 0:
        raise SourceError(f"source {source!r}: no files match data.include {d.include}")


def _sha256(fh) -> str:
    """The file's content hash (the same as of its bytes), leaving it at its start for decoding."""
    fh.seek(0)
    digest = stream_sha256(fh)
    fh.seek(0)
    return digest


def run_ingest(cfg: MelforgeConfig, out_dir: Path) -> dict[str, Any]:
    """Run the stage; return its summary (the stage runner writes it as the stage's metrics)."""
    started = time.perf_counter()
    fingerprint = audio_fingerprint(cfg)
    previous, index, reader = _load_previous(out_dir, fingerprint)
    with staged_directory(out_dir) as tmp:
        run = _Run(cfg=cfg, writer=ShardWriter(tmp, prefix="clips", shard_size=cfg.data.shard_size,
                                               row_shape=(cfg.audio.clip_samples,)))
        with progress_bar() as progress:
            for source in cfg.data.sources:
                if source_kind(source) == "builtin":
                    _ingest_builtin(run, source, previous, index, reader, progress)
                else:
                    _ingest_files(run, source, previous, reader, progress)
        shards = run.writer.close()
        quarantine = pd.DataFrame(run.quarantine, columns=["source", "uri", "reason"])
        if not run.rows:
            reasons = Counter(r["reason"].split(":")[0] for r in run.quarantine).most_common(3)
            raise IngestError(f"sources {cfg.data.sources}: nothing usable left — {len(run.quarantine)} files "
                              f"quarantined (most common: {reasons}), {run.counts['silent_clips_dropped']} silent clips dropped")
        manifest = pd.DataFrame(run.rows)
        label_cols = sorted(c for c in manifest.columns if c.startswith(LABEL_PREFIX))
        manifest[label_cols] = manifest[label_cols].fillna("").astype(str)
        manifest.to_parquet(tmp / MANIFEST, index=False)
        quarantine.to_csv(tmp / QUARANTINE, index=False)
        atomic_write_json(tmp / INDEX, {"audio_fingerprint": fingerprint, "builtin": run.builtin_fingerprints,
                                        "shards": shards, "clip_samples": cfg.audio.clip_samples,
                                        "sample_rate": cfg.audio.sample_rate})
    elapsed = time.perf_counter() - started
    audio_seconds = float(manifest["duration_seconds"].sum())
    summary = {
        "clips": int(len(manifest)), "hours": audio_seconds / 3600.0, "sources": len(cfg.data.sources),
        "files_seen": run.counts["files_seen"], "files_decoded": run.counts["files_decoded"],
        "files_reused": run.counts["files_reused"], "files_quarantined": run.counts["files_quarantined"],
        "silent_clips_dropped": run.counts["silent_clips_dropped"], "shards": len(shards),
        "label_columns": [c.removeprefix(LABEL_PREFIX) for c in label_cols],
        "seconds": elapsed, "realtime_factor": audio_seconds / elapsed if elapsed > 0 else 0.0,
    }
    return summary
