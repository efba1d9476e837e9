"""Label-cell conditioning and classifier-free guidance: the formula, the network's label input,
the cells' draw, and the choice itself (the demo's recipe, chosen on evidence, must not drift)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from components.params_file import profile_params
from components.distill.objective import student_objective
from components.models.conditioning import Cells, drop_labels, evaluations_per_step, label_v_function
from components.models.diffusion import guided_v
from components.models.unet import UNet1d, UNetSpec
from components.train.loop import Draws, LabelledBatch
from components.train.objectives import teacher_v_objective

SPEC = UNetSpec(example_shape=(8, 16), base_channels=8, channel_mults=(1, 2), attention_levels=(1,),
                attention_heads=2, groups=4, classes=3)


def _net(spec: UNetSpec = SPEC) -> UNet1d:
    torch.manual_seed(0)
    net = UNet1d(spec).eval()
    for p in net.parameters():  # every weight random: the zero-initialised layers would hide the labels
        nn.init.normal_(p, std=0.2)
    return net


def test_guidance_known_values():
    c, u = torch.tensor([3.0, -1.0]), torch.tensor([1.0, 1.0])
    assert torch.equal(guided_v(c, u, 1.0), c)
    assert torch.equal(guided_v(c, u, 0.0), u)
    assert torch.equal(guided_v(c, u, 2.0), torch.tensor([5.0, -3.0]))  # u + 2 (c - u)


def test_the_label_changes_the_prediction_and_none_is_the_no_label_index():
    net = _net()
    z, t = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(1)), torch.full((2,), 0.5)
    with torch.no_grad():
        a, b = net(z, t, torch.tensor([0, 0])), net(z, t, torch.tensor([1, 1]))
        none, no_label = net(z, t), net(z, t, torch.tensor([3, 3]))
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(none, no_label)


def test_a_fresh_conditional_network_starts_as_the_unconditional_one():
    torch.manual_seed(0)
    cond = UNet1d(SPEC)
    z, t = torch.randn(2, 8, 16), torch.full((2,), 0.3)
    with torch.no_grad():
        torch.testing.assert_close(cond(z, t, torch.tensor([0, 2])), cond(z, t))


def test_an_unconditional_network_refuses_labels():
    net = UNet1d(UNetSpec(example_shape=(8, 16), base_channels=8, channel_mults=(1, 2), attention_levels=(1,),
                          attention_heads=2, groups=4))
    with pytest.raises(ValueError, match="unconditional"):
        net(torch.zeros(1, 8, 16), torch.full((1,), 0.5), torch.tensor([0]))


def test_guided_sampling_function_is_the_formula_in_one_batch():
    net = _net()
    z, t = torch.randn(3, 8, 16, generator=torch.Generator().manual_seed(2)), torch.full((3,), 0.7)
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        got = label_v_function(net, labels, 2.5)(z, t)
        expected = guided_v(net(z, t, labels), net(z, t), 2.5)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(label_v_function(net, labels, 1.0)(z, t), net(z, t, labels))
    assert evaluations_per_step(None, 2.5) == 1
    assert evaluations_per_step(Cells(("a",), (1,)), 1.0) == 1
    assert evaluations_per_step(Cells(("a",), (1,)), 1.5) == 2


def test_cells_are_drawn_as_often_as_the_training_clips_hold_them():
    cells = Cells.from_keys(["b"] * 30 + ["a"] * 10)
    assert cells.names == ("a", "b") and cells.counts == (10, 30)
    draw = cells.draw(4000, seed=5)
    assert torch.equal(draw, cells.draw(4000, seed=5))
    assert not torch.equal(draw, cells.draw(4000, seed=6))
    assert float((draw == 1).float().mean()) == pytest.approx(0.75, abs=0.03)
    assert Cells.from_json(cells.to_json()) == cells


def test_an_unknown_cell_is_named():
    with pytest.raises(ValueError, match="pitch=99"):
        Cells.from_keys(["pitch=60"]).index(["pitch=60", "pitch=99"])


def test_label_dropout_replaces_the_share_asked_for_by_no_label():
    labels = torch.zeros(10000, dtype=torch.long)
    assert torch.equal(drop_labels(labels, 0.0, 7, lambda n: torch.rand(n, generator=torch.Generator().manual_seed(0))), labels)
    dropped = drop_labels(labels, 0.1, 7, lambda n: torch.rand(n, generator=torch.Generator().manual_seed(0)))
    assert set(dropped.unique().tolist()) == {0, 7}
    assert float((dropped == 7).float().mean()) == pytest.approx(0.1, abs=0.01)


def test_the_teacher_and_student_objectives_train_the_label_embedding():
    x = torch.randn(4, 8, 16, generator=torch.Generator().manual_seed(3))
    batch = LabelledBatch(x, torch.tensor([0, 1, 2, 1]))
    for objective in (teacher_v_objective("min_snr_5", classes=3, label_dropout=0.0),
                      student_objective(_net(), 2, "snr_trunc", guidance=1.5)):
        net = _net().train()
        objective(net, batch, Draws(torch.Generator().manual_seed(4))).backward()
        grad = net.label_embedding.weight.grad
        assert grad[[0, 1, 2]].abs().sum(dim=1).min() > 0  # every label in the batch is learned
        assert grad[3].abs().sum() == 0  # "no label" was never drawn


@pytest.mark.parametrize("profile", ["demo", "cpu", "digits"])
def test_the_cpu_profiles_are_conditioned_and_guided(profile):
    # chosen on evidence (docs/benchmarks.md, "Label conditioning"): the demo's teacher reached 2.1x
    # the floor conditioned on its cells where it stayed at 6.3x unconditioned at the same minutes
    model = profile_params(profile)["model"]
    assert (model["conditioning"], model["guidance"], model["label_dropout"]) == ("cells", 1.5, 0.1)


def test_the_gpu_profile_stays_unconditional_until_measured():
    assert profile_params("full")["model"]["conditioning"] == "none"


def test_cells_need_names():
    with pytest.raises(ValueError, match="names"):
        Cells((), ())
    assert np.array_equal(Cells.from_keys(["x", "y"]).index(["y", "x"]), [1, 0])
