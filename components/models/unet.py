"""A 1D U-Net over mel frames: mel bins are channels, time is the convolution axis.

Residual blocks (GroupNorm, SiLU, Conv1d) each receive the sinusoidal time embedding; multi-head
self-attention runs at the configured (lowest-resolution) levels. The snake layout (K, F, W) is
folded to K*F channels on the way in and back out.

Every input direction reaches the output. The stem is never narrower than its input: a stem
that maps C input channels to fewer has a null space, and with v-prediction (x_hat = alpha z -
sigma v_hat) the part of z in that null space passes into x_hat untouched, so every sample keeps
that much pure noise. And the output layer reads z beside the decoder's features, since the final
GroupNorm cannot see a per-group shift of them.

Skip layout (explicit, one skip per encoder block): the stem and every encoder block push their
output; each decoder block pops one and concatenates it. Level l of the decoder therefore has
``blocks_per_level`` blocks for the encoder blocks of level l plus one for the stem (level 0) or
the down-sampled output of level l-1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


# Bumped whenever the layer layout changes, so checkpoints of an older layout are never resumed
# (the training fingerprint includes it). 2: z beside the features at the output, explicit skips.
ARCHITECTURE_VERSION = 2


@dataclass(frozen=True)
class UNetSpec:
    """Everything needed to rebuild the network (saved inside every checkpoint)."""

    example_shape: tuple[int, ...]  # (F, W) flat or (K, F, W) snake
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2)
    blocks_per_level: int = 1
    attention_levels: tuple[int, ...] = (2,)
    attention_heads: int = 4
    dropout: float = 0.0
    groups: int = 8
    classes: int = 0  # label cells it is conditioned on (0: unconditional); index ``classes`` = no label

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict) -> "UNetSpec":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in obj.items()})

    @property
    def in_channels(self) -> int:
        return int(math.prod(self.example_shape[:-1]))

    @property
    def frames(self) -> int:
        return int(self.example_shape[-1])

    @property
    def widths(self) -> list[int]:
        return [self.base_channels * m for m in self.channel_mults]

    def blind_spot(self) -> str | None:
        """Why this network could not see all of its input, or None when it can."""
        if self.base_channels < self.in_channels:
            return (f"base_channels ({self.base_channels}) is narrower than the input's {self.in_channels} channels: "
                    f"the stem would have a null space of at least {self.in_channels - self.base_channels} dimensions "
                    "per frame, whose noise passes untouched into every sample")
        return None


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000, as for discrete timesteps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice, the time embedding as scale and shift in between; starts as the identity."""

    def __init__(self, channels_in: int, channels_out: int, *, time_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, channels_in), channels_in)
        self.conv1 = nn.Conv1d(channels_in, channels_out, 3, padding=1)
        self.time = nn.Linear(time_dim, 2 * channels_out)  # scale and shift
        self.norm2 = nn.GroupNorm(min(groups, channels_out), channels_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(channels_out, channels_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.time(F.silu(temb))[:, :, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x).transpose(1, 2)  # (B, T, C)
        out, _ = self.attn(h, h, h, need_weights=False)
        return x + out.transpose(1, 2)


class Block(nn.Module):
    """A residual block, followed by self-attention at the levels that have it."""

    def __init__(self, channels_in: int, channels_out: int, *, attention: bool, heads: int, **block) -> None:
        super().__init__()
        self.res = ResBlock(channels_in, channels_out, **block)
        self.attn = SelfAttention(channels_out, heads, block["groups"]) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, temb))


class UNet1d(nn.Module):
    """v-prediction network: ``forward(z, t[, labels])`` with z shaped like a batch of examples."""

    def __init__(self, spec: UNetSpec) -> None:
        super().__init__()
        self.spec = spec
        levels = len(spec.channel_mults)
        if spec.frames % (2 ** (levels - 1)):
            raise ValueError(f"frames per example ({spec.frames}) must be divisible by 2^(levels-1) = {2 ** (levels - 1)}")
        problem = spec.blind_spot()
        if problem:
            raise ValueError(problem)
        time_dim = 4 * spec.base_channels
        block = dict(time_dim=time_dim, groups=spec.groups, dropout=spec.dropout, heads=spec.attention_heads)
        self.time_mlp = nn.Sequential(nn.Linear(spec.base_channels, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        if spec.classes:
            # one learned vector per cell, plus one for "no label", added to the time embedding; zero at
            # the start, so a conditional network begins as the unconditional one
            self.label_embedding = nn.Embedding(spec.classes + 1, time_dim)
            nn.init.zeros_(self.label_embedding.weight)
        self.stem = nn.Conv1d(spec.in_channels, spec.base_channels, 3, padding=1)

        # encoder: per level, blocks_per_level blocks, then a stride-2 conv (all but the last level)
        skip_widths = [spec.base_channels]  # what each pushed skip holds, in push order
        self.encoder = nn.ModuleList()
        self.downsample = nn.ModuleList()
        ch = spec.base_channels
        for level, width in enumerate(spec.widths):
            blocks = nn.ModuleList()
            for _ in range(spec.blocks_per_level):
                blocks.append(Block(ch, width, attention=level in spec.attention_levels, **block))
                ch = width
                skip_widths.append(ch)
            self.encoder.append(blocks)
            last = level == levels - 1
            self.downsample.append(nn.Identity() if last else nn.Conv1d(ch, ch, 3, stride=2, padding=1))
            if not last:
                skip_widths.append(ch)

        self.middle = nn.ModuleList([Block(ch, ch, attention=True, **block), Block(ch, ch, attention=False, **block)])

        # decoder: per level (deepest first), blocks_per_level + 1 blocks each taking one skip, then up-sampling
        self.decoder = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(levels)):
            width = spec.widths[level]
            blocks = nn.ModuleList()
            for _ in range(spec.blocks_per_level + 1):
                blocks.append(Block(ch + skip_widths.pop(), width, attention=level in spec.attention_levels, **block))
                ch = width
            self.decoder.append(blocks)
            self.upsample.append(nn.Identity() if level == 0 else
                                 nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(ch, ch, 3, padding=1)))
        assert not skip_widths, "every encoder skip is consumed by exactly one decoder block"

        # the output conv reads the decoder's features and z itself: GroupNorm makes the features blind
        # to a shift of each group, so without z some input directions would still not reach v_hat
        self.out_norm = nn.GroupNorm(min(spec.groups, ch), ch)
        self.out = nn.Conv1d(ch + spec.in_channels, spec.in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """v_hat for z_t at t; ``labels`` (batch,) cell indices of a conditional network (None or the
        index ``spec.classes``: no label, the unconditional prediction)."""
        shape = z.shape
        x = z.reshape(shape[0], self.spec.in_channels, shape[-1])  # any width the down-sampling divides
        temb = self.time_mlp(timestep_embedding(t, self.spec.base_channels).to(self.time_mlp[0].weight.dtype))
        if self.spec.classes:
            if labels is None:
                labels = torch.full((shape[0],), self.spec.classes, dtype=torch.long, device=z.device)
            temb = temb + self.label_embedding(labels)
        elif labels is not None:
            raise ValueError("labels given to an unconditional network (spec.classes = 0)")

        h = self.stem(x)
        skips = [h]
        for blocks, down in zip(self.encoder, self.downsample):
            for block in blocks:
                h = block(h, temb)
                skips.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                skips.append(h)

        for block in self.middle:
            h = block(h, temb)

        for blocks, up in zip(self.decoder, self.upsample):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
            h = up(h)

        return self.out(torch.cat([F.silu(self.out_norm(h)), x], dim=1)).reshape(shape)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
