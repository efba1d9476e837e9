"""The mel grids share one colour scale: a panel's silence looks like its neighbours' silence."""

import numpy as np
import pytest

from components.features.plots import save_mel_grid

FLOOR = float(np.log(1e-5))


def _panel_backgrounds(path, panels: int) -> list[np.ndarray]:
    """The colour of the top-left silent corner of each panel of a one-row grid."""
    import matplotlib.image as mpimg

    image = mpimg.imread(path)[..., :3]
    ink = np.abs(image - 1.0).sum(axis=-1) > 1e-3  # non-white pixels: the panels
    cols = np.where(ink.any(axis=0))[0]
    rows = np.where(ink.any(axis=1))[0]
    width = (cols[-1] - cols[0]) / panels
    return [image[rows[0] + 12, int(cols[0] + k * width + 12)] for k in range(panels)]


def _silent_with_a_word(below_floor: bool) -> np.ndarray:
    mel = np.full((16, 32), FLOOR, np.float32)
    mel[4:12, 12:20] = 2.0  # a loud block in the middle
    if below_floor:
        mel[0, 30] = FLOOR - 20.0  # one cell under the floor, as a sampler may write
    return mel


def test_a_panel_with_a_value_below_the_floor_keeps_a_black_background(tmp_path):
    mels = np.stack([_silent_with_a_word(False), _silent_with_a_word(True)])
    path = save_mel_grid(mels, tmp_path / "grid.png", floor=FLOOR, columns=2)
    real, generated = _panel_backgrounds(path, 2)
    np.testing.assert_allclose(generated, real, atol=0.02)
    assert real.max() < 0.1  # the floor is black


def test_grids_given_one_top_share_the_scale(tmp_path):
    quiet = _silent_with_a_word(False)
    quiet[4:12, 12:20] = -3.0
    loud = _silent_with_a_word(False)
    a = save_mel_grid(quiet[None], tmp_path / "a.png", floor=FLOOR, top=2.0, columns=1)
    b = save_mel_grid(loud[None], tmp_path / "b.png", floor=FLOOR, top=2.0, columns=1)
    import matplotlib.image as mpimg

    def centre(path) -> np.ndarray:
        image = mpimg.imread(path)[..., :3]
        return image[image.shape[0] // 2, image.shape[1] // 2]

    # the quieter block is darker on the shared scale (autoscaling would paint both at the top colour)
    assert centre(a).sum() < centre(b).sum() - 0.3


def test_the_floor_is_a_required_argument(tmp_path):
    with pytest.raises(TypeError):
        save_mel_grid(np.zeros((1, 4, 4)), tmp_path / "x.png")  # type: ignore[call-arg]
