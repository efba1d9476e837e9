"""The evaluation split: stratified by label cell, a pure function of clip ids, stable as clips are
added, clear errors when no evaluation set can be held out."""

import numpy as np
import pandas as pd
import pytest

from components.features.split import EVAL, TRAIN, assign_split, choose_cell_labels, eval_count


def _grid(pitches=5, programs=5, velocities=7):
    rows = [(p, g, v) for g in range(programs) for p in range(pitches) for v in range(velocities)]
    labels = pd.DataFrame(rows, columns=["pitch", "program", "velocity"]).astype(str)
    ids = [f"p{p}-g{g}-v{v}" for p, g, v in rows]
    return ids, labels


def test_every_cell_is_in_both_sides_and_the_size_follows_the_fraction():
    ids, labels = _grid()
    split, report = assign_split(ids, labels, fraction=0.3, min_per_cell=2)
    assert report.cell_labels == ["pitch", "program"]  # with velocity, one clip per cell
    assert (report.train, report.eval, report.cells) == (125, 50, 25)
    cells = labels["pitch"] + "|" + labels["program"]
    for cell in cells.unique():
        sides = set(split[(cells == cell).to_numpy()])
        assert sides == {TRAIN, EVAL}, cell


def test_the_split_is_a_pure_function_of_clip_ids_and_stable_when_clips_are_added():
    ids, labels = _grid(velocities=10)
    split, report = assign_split(ids, labels, fraction=0.3, min_per_cell=1)
    assert report.cell_labels == ["pitch", "program"]
    shuffled = np.random.default_rng(0).permutation(len(ids))
    again, _ = assign_split([ids[i] for i in shuffled], labels.iloc[shuffled], fraction=0.3, min_per_cell=1)
    assert np.array_equal(again, split[shuffled])  # storage order does not matter
    more_ids, more_labels = _grid(velocities=11)  # one more clip in every cell
    grown, _ = assign_split(more_ids, more_labels, fraction=0.3, min_per_cell=1)
    side = dict(zip(more_ids, grown))
    kept = sum(side[c] == s for c, s in zip(ids, split))
    assert kept >= 0.95 * len(ids)  # adding clips leaves almost every clip where it was


def test_single_clip_cells_train_only_and_no_evaluation_set_is_a_clear_error():
    labels = pd.DataFrame({"digit": ["0", "0", "0", "1"]})
    split, report = assign_split(["a", "b", "c", "d"], labels, fraction=0.3, min_per_cell=2)
    assert list(split[3:]) == [TRAIN] and report.unsplit_cells == ["digit=1"]
    assert (split[:3] == EVAL).sum() == 1  # min 2 would leave fewer training than evaluation clips
    one_each = pd.DataFrame({"digit": ["0", "1"]})
    with pytest.raises(ValueError, match=r"eval.fraction=0.3: no evaluation set can be held out of 2 clips"):
        assign_split(["a", "b"], one_each, fraction=0.3, min_per_cell=1, requested=["digit"])
    # automatic cells give up a label that leaves every clip alone, rather than hold out nothing
    split, report = assign_split(["a", "b"], one_each, fraction=0.3, min_per_cell=1)
    assert report.cell_labels == [] and sorted(split) == [EVAL, TRAIN]
    with pytest.raises(ValueError, match="eval.split_labels: colour not in the data; labels present: digit"):
        choose_cell_labels(labels, ["colour"])


def test_eval_count_rules():
    assert eval_count(1, 0.3, 2) == 0
    assert eval_count(2, 0.3, 2) == 1
    assert eval_count(3, 0.3, 2) == 1
    assert eval_count(6, 0.3, 2) == 2
    assert eval_count(100, 0.3, 2) == 30
    assert eval_count(4, 0.9, 1) == 3  # never the whole cell
