"""builtin:nsynth-mini — single notes from the General MIDI SoundFont that ships with pretty_midi.

A fresh synthesiser per note keeps each render independent of the previous one (a reused synth
carries a release tail), which is what makes the output identical run after run.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from components.datasets.item import BuiltinItem

GM_FAMILIES = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive", "sound_effects",
)
RENDER_VERSION = 1


def soundfont_path() -> Path:
    """The TimGM6mb SoundFont inside the installed pretty_midi package (GPL-2; never copied)."""
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the General MIDI SoundFont that pretty_midi ships is missing; reinstall pretty_midi")
    return path


@functools.lru_cache(maxsize=1)
def _soundfont_bytes() -> bytes:
    return soundfont_path().read_bytes()


def render_note(program: int, pitch: int, velocity: int, *, note_seconds: float, seconds: float,
                sample_rate: int) -> np.ndarray:
    """Render one note as mono float32: key held ``note_seconds``, then released until ``seconds``."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(_soundfont_bytes())
    synth.program_select(0, sfid, 0, program)
    held = int(round(note_seconds * sample_rate))
    total = int(round(seconds * sample_rate))
    synth.noteon(0, pitch, velocity)
    first = np.frombuffer(synth.generate(held), dtype=np.float32).copy()
    synth.noteoff(0, pitch)
    rest = np.frombuffer(synth.generate(total - held), dtype=np.float32).copy() if total > held else np.zeros(0, np.float32)
    stereo = np.concatenate([first, rest]).reshape(-1, 2)
    return stereo.mean(axis=1).astype(np.float32)


def catalogue(cfg) -> Iterator[BuiltinItem]:
    """Every (program, pitch, velocity) of the configured grid, in a fixed order."""
    for program in cfg.programs:
        for pitch in cfg.pitches:
            for velocity in cfg.velocities:
                yield BuiltinItem(
                    item_id=f"p{program:03d}_n{pitch:03d}_v{velocity:03d}",
                    spec={"dataset": "nsynth-mini", "version": RENDER_VERSION, "program": program, "pitch": pitch,
                          "velocity": velocity, "note_seconds": cfg.note_seconds, "seconds": cfg.seconds,
                          "sample_rate": cfg.sample_rate},
                    labels={"pitch": str(pitch), "program": str(program),
                            "family": GM_FAMILIES[program // 8], "velocity": str(velocity)},
                )


def render_all(cfg) -> Iterator[tuple[BuiltinItem, np.ndarray, int]]:
    """Render the catalogue in order (each note from a fresh synthesiser)."""
    for item in catalogue(cfg):
        spec = item.spec
        audio = render_note(spec["program"], spec["pitch"], spec["velocity"], note_seconds=cfg.note_seconds,
                            seconds=cfg.seconds, sample_rate=cfg.sample_rate)
        yield item, audio, cfg.sample_rate
