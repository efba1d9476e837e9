"""builtin:digits — spoken digits zero..nine synthesised by espeak-ng (an SC09-like set).

espeakng-loader ships the library and its data; we drive the C API through ctypes. espeak-ng keeps
process-wide state that no API call resets (besides its random generators, which we seed, the
output drifts with everything synthesised before in the same process). So a whole set is always
rendered by a *fresh* worker process (``python -m components.datasets.digits``) in catalogue order: the same config gives the same
bytes, run after run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from components.datasets.item import BuiltinItem

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
RENDER_VERSION = 1
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_DONT_EXIT = 0x8000
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH = 1, 2, 3
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """The espeak-ng engine (one per process)."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        data_dir = Path(espeakng_loader.get_data_path())
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_dir.parent).encode(), _INIT_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialise with data at {data_dir}")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]

    def _collect(self, wav, num_samples, _events) -> int:
        if num_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def say(self, text: str, *, voice: str, pitch: int, speed: int) -> np.ndarray:
        """Synthesise ``text``; int16 samples at ``self.sample_rate``."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r} (data.digits.voices / variants)")
        self.lib.espeak_SetParameter(_ESPEAK_RATE, speed, 0)
        self.lib.espeak_SetParameter(_ESPEAK_PITCH, pitch, 0)
        self.lib.espeak_SetParameter(_ESPEAK_VOLUME, 100, 0)
        # voicing noise draws on espeak's generator and on libc rand(): seed both
        self.lib.espeak_ng_SetRandSeed(0)
        self.libc.srand(0)
        self._chunks = []
        payload = text.encode()
        self.lib.espeak_Synth(payload, len(payload) + 1, 0, 0, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


_FRAME = struct.Struct("<II")  # (sample count, sample rate) before each int16 payload


def _serve(stdin, stdout) -> None:
    """Worker loop: read a JSON list of jobs, write one framed int16 clip per job, in order."""
    engine = Espeak()
    for text, voice, pitch, speed in json.load(stdin):
        pcm = engine.say(text, voice=voice, pitch=pitch, speed=speed).astype("<i2")
        stdout.write(_FRAME.pack(len(pcm), engine.sample_rate))
        stdout.write(pcm.tobytes())
        stdout.flush()


def _read_exact(stream, n: int) -> bytes:
    buf = stream.read(n)
    if len(buf) != n:
        raise RuntimeError("espeak-ng worker stopped early")
    return buf


def fit_length(audio: np.ndarray, samples: int) -> np.ndarray:
    """Centre-crop or zero-pad (centred) to exactly ``samples``."""
    if len(audio) >= samples:
        start = (len(audio) - samples) // 2
        return audio[start:start + samples]
    pad = samples - len(audio)
    return np.pad(audio, (pad // 2, pad - pad // 2))


def catalogue(cfg) -> Iterator[BuiltinItem]:
    """Every voice x variant x pitch x speed x digit, in a fixed order."""
    for voice in cfg.voices:
        for variant in cfg.variants:
            for pitch in cfg.pitches:
                for speed in cfg.speeds:
                    for digit, word in enumerate(DIGIT_WORDS):
                        yield BuiltinItem(
                            item_id=f"{word}_{voice}_{variant}_p{pitch:02d}_s{speed:03d}",
                            spec={"dataset": "digits", "version": RENDER_VERSION, "word": word, "voice": voice,
                                  "variant": variant, "pitch": pitch, "speed": speed, "seconds": cfg.seconds,
                                  "sample_rate": cfg.sample_rate},
                            labels={"digit": str(digit), "voice": f"{voice}+{variant}"},
                        )


def render_all(cfg) -> Iterator[tuple[BuiltinItem, np.ndarray, int]]:
    """Render the catalogue in order in a fresh worker process; resample and fit to ``seconds``."""
    from components.torchaudio_ops import resample

    items = list(catalogue(cfg))
    jobs = [(i.spec["word"], f"{i.spec['voice']}+{i.spec['variant']}", i.spec["pitch"], i.spec["speed"]) for i in items]
    target = int(round(cfg.seconds * cfg.sample_rate))
    proc = subprocess.Popen([sys.executable, "-m", "components.datasets.digits"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(json.dumps(jobs).encode())
        proc.stdin.close()
        for item in items:
            try:
                count, rate = _FRAME.unpack(_read_exact(proc.stdout, _FRAME.size))
            except RuntimeError:
                proc.wait(timeout=30)
                raise RuntimeError(f"espeak-ng worker failed on {item.item_id}: {proc.stderr.read().decode()[-2000:]}") from None
            pcm = np.frombuffer(_read_exact(proc.stdout, 2 * count), dtype="<i2")
            audio = pcm.astype(np.float32) / 32768.0
            if rate != cfg.sample_rate:
                audio = resample(audio[None, :], rate, cfg.sample_rate)[0]
            yield item, fit_length(audio, target).astype(np.float32), cfg.sample_rate
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


if __name__ == "__main__":
    _serve(sys.stdin, sys.stdout.buffer)
