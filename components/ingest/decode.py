"""Decode audio files (wav, flac, ogg, mp3) block by block and check them; every rejection says why."""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile as sf


class BadAudio(ValueError):
    """The file cannot become clips; the message is the quarantine reason."""


def _libsndfile_words(exc: Exception) -> str:
    """libsndfile's own explanation, without the in-memory object's address."""
    text = re.sub(r"Error opening <[^>]*>:\s*", "", str(exc)).strip()
    return text or type(exc).__name__


def riff_truncation(fh: BinaryIO, size: int) -> str | None:
    """For RIFF/WAVE: compare the data chunk's declared size with the bytes present (reads only
    the chunk headers)."""
    fh.seek(0)
    head = fh.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= size:
        fh.seek(pos)
        header = fh.read(8)
        chunk_id, chunk_size = header[:4], struct.unpack("<I", header[4:8])[0]
        if chunk_id == b"data":
            present = size - (pos + 8)
            if chunk_size != 0xFFFFFFFF and present < chunk_size:
                return f"truncated: WAV header declares {chunk_size} bytes of audio, file holds {present}"
            return None
        pos += 8 + chunk_size + (chunk_size & 1)
    return "truncated: WAV file has no complete 'data' chunk"


@dataclass
class AudioStream:
    """An opened, checked source: its rate and channels, and its samples block by block."""

    rate: int
    channels: int
    blocks: Iterator[np.ndarray]  # (frames, channels) float32, each checked as it is decoded


def decode_stream(fh: BinaryIO, *, min_rate: int, max_rate: int, max_channels: int, max_seconds: float,
               block_frames: int = 1 << 18) -> AudioStream:
    """A seekable file -> :class:`AudioStream`, or :class:`BadAudio` with the reason. Decoding is
    lazy, one block at a time, so memory does not grow with the file's length; a problem found
    in the middle (a corrupt frame, NaN samples, fewer frames than the header declares) is raised
    by the block iterator, and the caller drops what that file gave so far."""
    fh.seek(0, io.SEEK_END)
    size = fh.tell()
    if size == 0:
        raise BadAudio("empty file (0 bytes)")
    truncation = riff_truncation(fh, size)
    if truncation:
        raise BadAudio(truncation)
    fh.seek(0)
    try:
        sound = sf.SoundFile(fh)
    except Exception as exc:  # libsndfile names the problem; we keep its words
        raise BadAudio(f"not audio or unsupported format: {_libsndfile_words(exc)}") from None
    if not min_rate <= sound.samplerate <= max_rate:
        raise BadAudio(f"sample rate {sound.samplerate} Hz outside the allowed [{min_rate}, {max_rate}] Hz")
    if sound.channels > max_channels:
        raise BadAudio(f"{sound.channels} channels > audio.max_channels ({max_channels})")
    if sound.frames > 0 and sound.frames / sound.samplerate > max_seconds:
        raise BadAudio(f"{sound.frames / sound.samplerate:.0f} s long > audio.max_source_seconds ({max_seconds:.0f})")

    def blocks() -> Iterator[np.ndarray]:
        decoded = 0
        with sound:
            while True:
                try:
                    block = sound.read(block_frames, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise BadAudio(f"truncated or corrupt {sound.format} stream: {_libsndfile_words(exc)}") from None
                if not len(block):
                    break
                finite = np.isfinite(block)
                if not finite.all():
                    first = decoded + int(np.argmin(finite.all(axis=1)))
                    raise BadAudio(f"{int((~finite).sum())} non-finite samples (NaN/inf), the first at "
                                   f"{first / sound.samplerate:.1f} s")
                decoded += len(block)
                if decoded / sound.samplerate > max_seconds:
                    raise BadAudio(f"longer than audio.max_source_seconds ({max_seconds:.0f} s)")
                yield block
        if decoded == 0:
            raise BadAudio("no audio frames")
        if sound.frames > 0 and decoded < sound.frames:
            raise BadAudio(f"truncated: header declares {sound.frames} frames, decoded {decoded}")

    return AudioStream(rate=int(sound.samplerate), channels=int(sound.channels), blocks=blocks())
