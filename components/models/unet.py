"""A 1D U-Net over mel frames: mel bins are channels, time is the convolution axis.

Residual blocks (GroupNorm, SiLU, Conv1d) each receive the sinusoidal time embedding; multi-head
self-attention runs at the configured (lowest-resolution) levels; skip connections join encoder
and decoder. The snake layout (K, F, W) is folded to K*F channels on the way in and back out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


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


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000, as for discrete timesteps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, *, time_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, channels_in), channels_in)
        self.conv1 = nn.Conv1d(channels_in, channels_out, 3, padding=1)
        self.time = nn.Linear(time_dim, 2 * channels_out)  # scale and shift
        self.norm2 = nn.GroupNorm(min(groups, channels_out), channels_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(channels_out, channels_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
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


class UNet1d(nn.Module):
    """v-prediction network: ``forward(z, t)`` with z shaped like a batch of examples."""

    def __init__(self, spec: UNetSpec) -> None:
        super().__init__()
        self.spec = spec
        levels = len(spec.channel_mults)
        if spec.frames % (2 ** (levels - 1)):
            raise ValueError(f"frames per example ({spec.frames}) must be divisible by 2^(levels-1) = {2 ** (levels - 1)}")
        time_dim = 4 * spec.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(spec.base_channels, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv1d(spec.in_channels, spec.base_channels, 3, padding=1)
        block = dict(time_dim=time_dim, groups=spec.groups, dropout=spec.dropout)
        widths = [spec.base_channels * m for m in spec.channel_mults]
        self.down = nn.ModuleList()
        skips = [spec.base_channels]
        ch = spec.base_channels
        for level, width in enumerate(widths):
            stage = nn.ModuleList()
            for _ in range(spec.blocks_per_level):
                stage.append(ResBlock(ch, width, **block))
                ch = width
                if level in spec.attention_levels:
                    stage.append(SelfAttention(ch, spec.attention_heads, spec.groups))
                skips.append(ch)
            if level < levels - 1:
                stage.append(nn.Conv1d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
            self.down.append(stage)
        self.mid = nn.ModuleList([ResBlock(ch, ch, **block), SelfAttention(ch, spec.attention_heads, spec.groups),
                                  ResBlock(ch, ch, **block)])
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            width = widths[level]
            stage = nn.ModuleList()
            for _ in range(spec.blocks_per_level + 1):
                stage.append(ResBlock(ch + skips.pop(), width, **block))
                ch = width
                if level in spec.attention_levels:
                    stage.append(SelfAttention(ch, spec.attention_heads, spec.groups))
            if level > 0:
                stage.append(nn.Upsample(scale_factor=2, mode="nearest"))
                stage.append(nn.Conv1d(ch, ch, 3, padding=1))
            self.up.append(stage)
        self.out = nn.Sequential(nn.GroupNorm(min(spec.groups, ch), ch), nn.SiLU(), nn.Conv1d(ch, spec.in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shape = z.shape
        x = z.reshape(shape[0], self.spec.in_channels, shape[-1])  # any width the down-sampling divides
        temb = self.time_mlp(timestep_embedding(t, self.spec.base_channels).to(self.stem.weight.dtype))
        h = self.stem(x)
        hs = [h]
        for stage in self.down:
            for layer in stage:
                h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
                if not isinstance(layer, SelfAttention):
                    hs.append(h)
                else:
                    hs[-1] = h
        for layer in self.mid:
            h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
        for stage in self.up:
            for layer in stage:
                if isinstance(layer, ResBlock):
                    h = layer(torch.cat([h, hs.pop()], dim=1), temb)
                else:
                    h = layer(h)
        return self.out(h).reshape(shape)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
