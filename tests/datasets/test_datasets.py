import hashlib

import numpy as np

from components.config import DataConfig, DigitsConfig, NsynthMiniConfig
from components.datasets import builtin_catalogue, builtin_fingerprint, builtin_label_values, render_builtin
from components.datasets.nsynth_mini import GM_FAMILIES

NSYNTH = DataConfig(nsynth_mini=NsynthMiniConfig(programs=[0, 40], pitches=[60, 72], velocities=[100], seconds=1.0,
                                                 note_seconds=0.5))
DIGITS = DataConfig(digits=DigitsConfig(voices=["en"], variants=["m1", "f1"], pitches=[50], speeds=[175]))


def _digest(name: str, cfg: DataConfig) -> str:
    h = hashlib.sha256()
    for item, audio, rate in render_builtin(name, cfg):
        h.update(item.item_id.encode())
        h.update(audio.tobytes())
        h.update(str(rate).encode())
    return h.hexdigest()


def test_nsynth_mini_is_bit_for_bit_deterministic():
    assert _digest("nsynth-mini", NSYNTH) == _digest("nsynth-mini", NSYNTH)


def test_digits_are_bit_for_bit_deterministic_across_renders_in_one_process():
    assert _digest("digits", DIGITS) == _digest("digits", DIGITS)


def test_nsynth_items_have_the_requested_shape_and_labels():
    items = list(render_builtin("nsynth-mini", NSYNTH))
    assert len(items) == 4
    item, audio, rate = items[0]
    assert rate == 16000 and audio.dtype == np.float32 and audio.shape == (16000,)
    assert np.abs(audio).max() > 1e-3  # a note was actually rendered
    assert item.labels == {"pitch": "60", "program": "0", "family": GM_FAMILIES[0], "velocity": "100"}


def test_digits_are_one_second_and_labelled_with_digit_and_voice():
    items = list(render_builtin("digits", DIGITS))
    assert len(items) == 20
    assert {i.labels["digit"] for i, _, _ in items} == {str(d) for d in range(10)}
    assert all(a.shape == (16000,) and r == 16000 for _, a, r in items)
    assert builtin_label_values("digits", DIGITS)["voice"] == ["en+f1", "en+m1"]


def test_fingerprint_follows_the_catalogue():
    other = DataConfig(nsynth_mini=NsynthMiniConfig(programs=[0, 40], pitches=[60, 72], velocities=[90], seconds=1.0,
                                                    note_seconds=0.5))
    assert builtin_fingerprint("nsynth-mini", NSYNTH) == builtin_fingerprint("nsynth-mini", NSYNTH)
    assert builtin_fingerprint("nsynth-mini", NSYNTH) != builtin_fingerprint("nsynth-mini", other)
    assert len(builtin_catalogue("nsynth-mini", NSYNTH)) == 4
