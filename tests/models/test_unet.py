"""The denoiser sees all of its input: no input direction may vanish before the output."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from components.config_base import ConfigError
from components.models.unet import UNet1d, UNetSpec
from helpers import tiny_config


def _random_network(spec: UNetSpec) -> UNet1d:
    """A network with every weight random (the zero-initialised layers would hide the input)."""
    torch.manual_seed(0)
    net = UNet1d(spec).double().eval()
    for p in net.parameters():
        nn.init.normal_(p, std=0.2)
    return net


def _jacobian(net: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    z = torch.randn((1, *shape), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.full((1,), 0.5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda x: net(x, t), z)
    return jac.reshape(z.numel(), z.numel())


def _relative_singular_values(jac: torch.Tensor) -> torch.Tensor:
    s = torch.linalg.svdvals(jac)
    return s / s.max()


@pytest.mark.parametrize("shape", [(8, 16), (2, 4, 16)], ids=["flat", "snake"])
def test_every_input_direction_moves_the_output(shape):
    spec = UNetSpec(example_shape=shape, base_channels=8, channel_mults=(1, 2), attention_levels=(1,),
                    attention_heads=2, groups=4)
    net = _random_network(spec)
    jac = _jacobian(net, shape)
    assert _relative_singular_values(jac).min() > 1e-6  # full rank: no null space
    # and concretely: random directions all change the output
    z = torch.randn((1, *shape), dtype=torch.float64)
    t = torch.full((1,), 0.5, dtype=torch.float64)
    base = net(z, t)
    for k in range(16):
        d = torch.randn((1, *shape), generator=torch.Generator().manual_seed(10 + k), dtype=torch.float64)
        moved = (net(z + 1e-4 * d / d.norm(), t) - base).norm() / 1e-4
        assert moved > 1e-3


def test_the_input_check_catches_a_stem_bottleneck():
    """The bug the check exists for (the network before the fix): a stem narrower than its input
    and no path from z to the output leave a null space."""
    spec = UNetSpec(example_shape=(8, 16), base_channels=8, channel_mults=(1, 2), attention_levels=(1,),
                    attention_heads=2, groups=4)
    net = _random_network(spec)
    net.stem = nn.Sequential(nn.Conv1d(8, 4, 1), nn.Conv1d(4, 8, 3, padding=1)).double()  # 8 -> 4 -> 8 channels
    with torch.no_grad():
        net.out.weight[:, spec.base_channels * spec.channel_mults[0]:] = 0  # cut the z path to the output
    relative = _relative_singular_values(_jacobian(net, (8, 16)))
    assert (relative < 1e-10).sum() >= 4 * 16  # 4 lost channels x 16 frames: invisible to the network


def test_a_stem_narrower_than_its_input_is_refused():
    with pytest.raises(ValueError, match=r"base_channels \(4\) is narrower than the input's 8 channels"):
        UNet1d(UNetSpec(example_shape=(8, 16), base_channels=4, channel_mults=(1, 2)))
    with pytest.raises(ValueError, match=r"narrower than the input's 24 channels"):
        UNet1d(UNetSpec(example_shape=(3, 8, 16), base_channels=16, channel_mults=(1, 2)))


def test_the_config_names_the_fields_of_a_blind_model():
    with pytest.raises(ConfigError, match=r"model.base_channels \(16\) is narrower than the U-Net's input, "
                                          r"mel.n_mels \(32\) = 32 channels.*set model.base_channels >= 32"):
        tiny_config(["model.base_channels=16"])
    with pytest.raises(ConfigError, match=r"mel.n_mels \(32\) x mel.pack_channels \(3\) for mel.layout 'snake' = 96"):
        tiny_config(["mel.layout=snake", "mel.frames=96", "model.base_channels=64"])
    assert tiny_config(["model.base_channels=32"]).model.base_channels == 32


def test_the_skip_layout_pairs_every_encoder_output_with_one_decoder_block():
    spec = UNetSpec(example_shape=(8, 32), base_channels=8, channel_mults=(1, 2, 2), blocks_per_level=2,
                    attention_levels=(2,), attention_heads=2, groups=4)
    net = UNet1d(spec)
    pushed = 1 + sum(len(level) for level in net.encoder) + (len(spec.channel_mults) - 1)
    assert pushed == sum(len(level) for level in net.decoder)
    z = torch.randn(2, 8, 32)
    assert net(z, torch.rand(2)).shape == z.shape
