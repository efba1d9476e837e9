"""Decode audio bytes (wav, flac, ogg, mp3) and check them; every rejection says why."""

from __future__ import annotations

import io
import re
import struct

import numpy as np
import soundfile as sf


class BadAudio(ValueError):
    """The file cannot become clips; the message is the quarantine reason."""


def _libsndfile_words(exc: Exception) -> str:
    """libsndfile's own explanation, without the in-memory object's address."""
    text = re.sub(r"Error opening <[^>]*>:\s*", "", str(exc)).strip()
    return text or type(exc).__name__


def _riff_truncation(payload: bytes) -> str | None:
    """For RIFF/WAVE: compare the data chunk's declared size with the bytes present."""
    if len(payload) < 12 or payload[:4] not in (b"RIFF", b"RF64") or payload[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(payload):
        chunk_id, size = payload[pos:pos + 4], struct.unpack("<I", payload[pos + 4:pos + 8])[0]
        if chunk_id == b"data":
            present = len(payload) - (pos + 8)
            if size != 0xFFFFFFFF and present < size:
                return f"truncated: WAV header declares {size} bytes of audio, file holds {present}"
            return None
        pos += 8 + size + (size & 1)
    return "truncated: WAV file has no complete 'data' chunk"


def decode_audio(payload: bytes, *, min_rate: int, max_rate: int, max_channels: int,
                 max_seconds: float) -> tuple[np.ndarray, int]:
    """Bytes -> ((channels, samples) float32, sample rate), or :class:`BadAudio` with the reason."""
    if not payload:
        raise BadAudio("empty file (0 bytes)")
    truncation = _riff_truncation(payload)
    if truncation:
        raise BadAudio(truncation)
    try:
        info = sf.info(io.BytesIO(payload))
    except Exception as exc:  # libsndfile names the problem; we keep its words
        raise BadAudio(f"not audio or unsupported format: {_libsndfile_words(exc)}") from None
    if not min_rate <= info.samplerate <= max_rate:
        raise BadAudio(f"sample rate {info.samplerate} Hz outside the allowed [{min_rate}, {max_rate}] Hz")
    if info.channels > max_channels:
        raise BadAudio(f"{info.channels} channels > audio.max_channels ({max_channels})")
    if info.frames > 0 and info.frames / info.samplerate > max_seconds:
        raise BadAudio(f"{info.frames / info.samplerate:.0f} s long > audio.max_source_seconds ({max_seconds:.0f})")
    try:
        audio, rate = sf.read(io.BytesIO(payload), dtype="float32", always_2d=True)
    except Exception as exc:
        raise BadAudio(f"truncated or corrupt {info.format} stream: {_libsndfile_words(exc)}") from None
    if audio.shape[0] == 0:
        raise BadAudio("no audio frames")
    if info.frames > 0 and audio.shape[0] < info.frames:
        raise BadAudio(f"truncated: header declares {info.frames} frames, decoded {audio.shape[0]}")
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise BadAudio(f"{bad} non-finite samples (NaN/inf)")
    return np.ascontiguousarray(audio.T), int(rate)
