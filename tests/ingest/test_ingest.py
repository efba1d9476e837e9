"""Ingestion on a corpus the test builds: every bad case is quarantined with its reason and every
good clip lands; whole-source failures say which source and why; re-runs are incremental."""

import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.ingest.sources import SourceError
from components.ingest.stage import IngestError, run_ingest
from components.ingest.store import read_manifest
from helpers import sine, tiny_config, write_audio

GOOD = {
    "piano/a.wav": (sine(440, 1.5, 16000), 16000, {}),
    "piano/b stereo.flac": (np.stack([sine(330, 1.0, 44100), sine(660, 1.0, 44100)]), 44100, {}),
    "organ/c.ogg": (sine(550, 1.0, 22050), 22050, {}),
    "organ/d.mp3": (sine(220, 2.0, 22050), 22050, {}),
    "organ/ödd näme #1 (copy).wav": (sine(880, 1.0, 16000), 16000, {}),
}


def _wav_with_rate(path: Path, rate: int) -> None:
    """A valid PCM WAV whose header claims ``rate`` (libsndfile will not write absurd rates)."""
    write_audio(path, sine(440, 0.5, 16000), 16000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    raw[24:28] = struct.pack("<I", rate)
    raw[28:32] = struct.pack("<I", rate * 2)
    path.write_bytes(bytes(raw))


def build_corpus(root: Path) -> dict[str, str]:
    """Write good and bad files; return {bad file name: expected words in its reason}."""
    for name, (audio, rate, kw) in GOOD.items():
        write_audio(root / name, audio, rate, **kw)
    bad = root / "bad"
    bad.mkdir(parents=True)
    (bad / "empty.wav").write_bytes(b"")
    (bad / "notes.wav").write_text("this is not audio\n")
    good_bytes = (root / "piano/a.wav").read_bytes()
    (bad / "truncated.wav").write_bytes(good_bytes[: len(good_bytes) // 2])
    flac = (root / "piano/b stereo.flac").read_bytes()
    (bad / "truncated.flac").write_bytes(flac[:200])
    nan = sine(440, 1.0, 16000)
    nan[100] = np.nan
    write_audio(bad / "nan.wav", nan, 16000, subtype="FLOAT")
    inf = sine(440, 1.0, 16000)
    inf[5] = np.inf
    write_audio(bad / "inf.wav", inf, 16000, subtype="FLOAT")
    _wav_with_rate(bad / "absurd rate.wav", 3_000_000)
    write_audio(bad / "tiny rate.wav", sine(10, 1.0, 100), 100)
    write_audio(bad / "many channels.wav", np.tile(sine(440, 0.5, 16000), (24, 1)), 16000)
    write_audio(bad / "silent.wav", np.zeros(16000, np.float32), 16000)
    write_audio(bad / "blip.wav", sine(440, 0.2, 16000), 16000)
    os.symlink(bad / "does-not-exist.wav", bad / "dangling.wav")
    return {
        "empty.wav": "empty", "notes.wav": "not audio", "truncated.wav": "truncated",
        "truncated.flac": "truncated", "nan.wav": "non-finite", "inf.wav": "non-finite",
        "absurd rate.wav": "sample rate", "tiny rate.wav": "sample rate", "many channels.wav": "channels",
        "silent.wav": "silent", "dangling.wav": "broken symlink", "blip.wav": "too short",
    }


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "corpus"
    return root, build_corpus(root)


def _cfg(*sources: str, **audio):
    return tiny_config(data={"sources": list(sources)}, audio=audio)


def test_every_bad_file_is_quarantined_with_its_reason_and_every_good_clip_lands(corpus, tmp_path):
    root, expected = corpus
    summary = run_ingest(_cfg(str(root)), tmp_path / "clips")
    manifest = read_manifest(tmp_path / "clips")
    quarantine = pd.read_csv(tmp_path / "clips" / "quarantine.csv")
    by_name = {Path(u).name: r for u, r in zip(quarantine["uri"], quarantine["reason"])}
    assert set(by_name) == set(expected), by_name
    for name, words in expected.items():
        assert words.lower() in by_name[name].lower(), (name, by_name[name])
    landed = {Path(u).name for u in manifest["source_uri"]}
    assert landed == {Path(n).name for n in GOOD}
    # 1.5 s at 1 s clips -> 2 clips (padded tail), 2 s mp3 -> 2 clips, others 1 each
    assert summary["clips"] == len(manifest) == 7
    assert summary["files_quarantined"] == len(expected)
    assert set(manifest["label_label"]) == {"piano", "organ"}  # labels from folder names
    assert (manifest["peak"] <= 1.0).all() and (manifest["sample_rate"] == 16000).all()


def test_labels_from_a_sidecar_csv(tmp_path):
    root = tmp_path / "src"
    write_audio(root / "x.wav", sine(440, 1.0, 16000), 16000)
    write_audio(root / "sub/y.wav", sine(660, 1.0, 16000), 16000)
    (root / "labels.csv").write_text("path,digit,speaker\nx.wav,3,ann\nsub/y.wav,7,bob\n")
    run_ingest(_cfg(str(root)), tmp_path / "clips")
    manifest = read_manifest(tmp_path / "clips").sort_values("source_uri")
    assert dict(zip(manifest["source_uri"].map(lambda u: Path(u).name), manifest["label_digit"])) == {"x.wav": "3", "y.wav": "7"}
    assert dict(zip(manifest["source_uri"].map(lambda u: Path(u).name), manifest["label_speaker"])) == {"x.wav": "ann", "y.wav": "bob"}


def test_missing_source_fails_naming_it(tmp_path):
    with pytest.raises(SourceError, match="nowhere.*does not exist"):
        run_ingest(_cfg(str(tmp_path / "nowhere")), tmp_path / "clips")


def test_nothing_usable_fails_and_keeps_the_previous_output(tmp_path):
    good = tmp_path / "good"
    write_audio(good / "a.wav", sine(440, 1.0, 16000), 16000)
    run_ingest(_cfg(str(good)), tmp_path / "clips")
    before = (tmp_path / "clips" / "manifest.parquet").read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.wav").write_bytes(b"")
    with pytest.raises(IngestError, match="nothing usable"):
        run_ingest(_cfg(str(bad)), tmp_path / "clips")
    assert (tmp_path / "clips" / "manifest.parquet").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".clips")]  # no temp leftovers


def test_unchanged_files_are_not_decoded_again(tmp_path):
    src = tmp_path / "src"
    write_audio(src / "a.wav", sine(440, 2.0, 16000), 16000)
    write_audio(src / "b.wav", sine(660, 1.0, 16000), 16000)
    first = run_ingest(_cfg(str(src)), tmp_path / "clips")
    m1 = read_manifest(tmp_path / "clips")
    write_audio(src / "c.wav", sine(770, 1.0, 16000), 16000)
    second = run_ingest(_cfg(str(src)), tmp_path / "clips")
    m2 = read_manifest(tmp_path / "clips")
    assert first["files_decoded"] == 2 and second["files_decoded"] == 1 and second["files_reused"] == 2
    assert set(m1["clip_id"]) < set(m2["clip_id"])
    from components.ingest.store import open_clips

    r1 = open_clips(tmp_path / "clips")
    # the reused clips are byte-identical to a fresh decode
    fresh = run_ingest(_cfg(str(src)), tmp_path / "fresh")
    assert fresh["files_decoded"] == 3
    m3 = read_manifest(tmp_path / "fresh").set_index("clip_id")
    r3 = open_clips(tmp_path / "fresh")
    for rec in m2.to_dict("records"):
        other = m3.loc[rec["clip_id"]]
        np.testing.assert_array_equal(r1.row(rec["shard"], rec["row"]), r3.row(other["shard"], int(other["row"])))
    changed = tiny_config(data={"sources": [str(src)]}, audio={"normalise": "loudness"})
    assert run_ingest(changed, tmp_path / "clips")["files_decoded"] == 3  # audio params changed: re-decode


def test_builtin_source_is_reused_when_its_catalogue_is_unchanged(tmp_path):
    cfg = tiny_config()
    assert run_ingest(cfg, tmp_path / "clips")["files_decoded"] == 8
    again = run_ingest(cfg, tmp_path / "clips")
    assert again["files_decoded"] == 0 and again["clips"] == 8


def test_shards_hold_hundreds_of_clips_not_one_file_each(tmp_path):
    cfg = tiny_config(data={"shard_size": 5})
    summary = run_ingest(cfg, tmp_path / "clips")
    assert summary["shards"] == 2  # 8 clips, 5 per shard
    assert sorted(p.name for p in (tmp_path / "clips").glob("*.npy")) == ["clips-00000.npy", "clips-00001.npy"]


def test_hostile_files_are_quarantined_by_kind_and_never_stop_or_hang_ingest(tmp_path):
    """Real special files: a FIFO, symlinks to /dev/zero and to a FIFO, a socket, a non-UTF-8 name."""
    import socket

    root = tmp_path / "src"
    write_audio(root / "good.wav", sine(440, 1.0, 16000), 16000)
    os.mkfifo(root / "pipe.wav")
    os.symlink("/dev/zero", root / "zero.wav")
    os.symlink(root / "pipe.wav", root / "to-pipe.wav")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock.wav"))
    write_audio(root / "cafe.wav", sine(440, 1.0, 16000), 16000)
    os.rename(root / "cafe.wav", bytes(root) + b"/caf\xe9.wav")
    summary = run_ingest(_cfg(str(root)), tmp_path / "clips")
    server.close()
    quarantine = pd.read_csv(tmp_path / "clips" / "quarantine.csv")
    by_name = {Path(u).name: r for u, r in zip(quarantine["uri"], quarantine["reason"])}
    assert by_name == {
        "pipe.wav": "not a regular file: a FIFO (named pipe)",
        "to-pipe.wav": f"not a regular file: a FIFO (named pipe) (through the symlink to {root / 'pipe.wav'})",
        "zero.wav": "not a regular file: a character device (through the symlink to /dev/zero)",
        "sock.wav": "not a regular file: a socket",
        "caf\\xe9.wav": "file name is not valid UTF-8 (shown with \\x escapes); rename it to store it",
    }
    assert summary["clips"] == 1 and summary["files_quarantined"] == 5


@pytest.mark.parametrize("rows, expected", [
    ("../x.wav,3", r"line 2: '../x.wav' is outside the folder of the CSV"),
    ("/etc/x.wav,3", r"line 2: '/etc/x.wav' is outside the folder of the CSV"),
    ("x.wav,3\n./x.wav,4", r"line 3: './x.wav' is the file of line 2 with other labels"),
    (",3", r"line 2: empty 'path'"),
])
def test_a_labels_csv_row_that_escapes_or_contradicts_is_an_error_naming_its_line(tmp_path, rows, expected):
    root = tmp_path / "src"
    write_audio(root / "x.wav", sine(440, 1.0, 16000), 16000)
    (root / "labels.csv").write_text("path,digit\n" + rows + "\n")
    with pytest.raises(SourceError, match=f"labels.csv: {expected}"):
        run_ingest(_cfg(str(root)), tmp_path / "clips")


def test_labels_csv_paths_are_normalised_not_stripped(tmp_path):
    root = tmp_path / "src"
    write_audio(root / ".take.wav", sine(440, 1.0, 16000), 16000)
    write_audio(root / "take.wav", sine(660, 1.0, 16000), 16000)
    (root / "labels.csv").write_text("path,digit\n./.take.wav,1\nsub/../take.wav,2\n")
    run_ingest(_cfg(str(root)), tmp_path / "clips")
    manifest = read_manifest(tmp_path / "clips")
    assert dict(zip(manifest["source_uri"].map(lambda u: Path(u).name), manifest["label_digit"])) == {
        ".take.wav": "1", "take.wav": "2"}


def test_the_shard_writer_can_forget_the_rows_of_a_file_that_failed_half_way(tmp_path):
    from components.storage import ShardReader, ShardWriter

    writer = ShardWriter(tmp_path, prefix="clips", shard_size=3, row_shape=(2,))
    for k in range(8):  # shards 0 and 1 written, 2 rows in the buffer
        writer.append(np.full(2, k, dtype=np.float32))
    writer.truncate(4)  # the cut falls inside shard 1, already on disk
    assert writer.rows == 4 and len(writer.shards) == 1 and not (tmp_path / "clips-00001.npy").exists()
    for k in (40, 50, 60):
        writer.append(np.full(2, k, dtype=np.float32))
    reader = ShardReader(tmp_path, writer.close())
    assert [float(reader[i][0]) for i in range(len(reader))] == [0, 1, 2, 3, 40, 50, 60]
    with pytest.raises(ValueError):
        writer.truncate(99)


def test_a_file_that_goes_bad_half_way_through_gives_no_clips_and_others_are_kept(tmp_path):
    """Decoding is block by block, so the NaNs at 12 s are found after clips from the first seconds
    were already written (across shards of 2): they are all taken back."""
    root = tmp_path / "src"
    long = sine(330, 16.0, 16000)
    long[12 * 16000] = np.nan
    write_audio(root / "long.wav", long, 16000, subtype="FLOAT")
    write_audio(root / "ok.wav", sine(440, 1.0, 16000), 16000)
    cfg = tiny_config(data={"sources": [str(root)], "shard_size": 2})
    summary = run_ingest(cfg, tmp_path / "clips")
    quarantine = pd.read_csv(tmp_path / "clips" / "quarantine.csv")
    assert list(quarantine["uri"].map(lambda u: Path(u).name)) == ["long.wav"]
    assert "non-finite" in quarantine["reason"][0] and "at 12.0 s" in quarantine["reason"][0]
    manifest = read_manifest(tmp_path / "clips")
    assert set(manifest["source_uri"].map(lambda u: Path(u).name)) == {"ok.wav"} and summary["clips"] == len(manifest)


def test_streamed_clips_equal_the_whole_signal_s_at_another_rate(tmp_path):
    """A 44.1 kHz stereo file, decoded in blocks and resampled as a stream, gives the clips of the
    whole-signal path (to float rounding)."""
    from components.ingest.stage import audio_to_clips
    from components.ingest.store import open_clips

    rng = np.random.default_rng(0)
    stereo = (0.3 * rng.standard_normal((2, 44100 * 7))).astype(np.float32)
    root = tmp_path / "src"
    write_audio(root / "noise.wav", stereo, 44100, subtype="FLOAT")
    cfg = tiny_config(data={"sources": [str(root)]})
    run_ingest(cfg, tmp_path / "clips")
    manifest = read_manifest(tmp_path / "clips").sort_values("offset_seconds")
    reader = open_clips(tmp_path / "clips")
    whole, _ = audio_to_clips(stereo, 44100, cfg)
    assert len(whole) == len(manifest) >= 5
    for (offset, clip), (_, row) in zip(whole, manifest.iterrows()):
        assert row["offset_seconds"] == offset / cfg.audio.sample_rate
        np.testing.assert_allclose(reader.row(row["shard"], row["row"]), clip, atol=1e-5)
