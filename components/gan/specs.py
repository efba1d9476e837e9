"""The GAN baselines' network sizes and their arithmetic, torch-free so the config checks them
before any work: which lengths WaveGAN can produce, which mel shapes SpecGAN's strides can reach."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


def halving_width(dim: int, layers: int, level: int) -> int:
    """Channels entering generator layer ``level``: dim x 2^(layers - 1 - level), halving per layer;
    1 (the waveform or spectrogram) after the last. The critics run the same widths backwards."""
    return 1 if level >= layers else dim * 2 ** (layers - 1 - level)


@dataclass(frozen=True)
class WaveGANSpec:
    latent_dim: int = 100
    dim: int = 64  # the paper's model size d: 16 d channels after the dense layer with 5 layers
    layers: int = 5
    kernel: int = 25
    stride: int = 4
    base_frames: int = 16
    phase_shuffle: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def samples(self) -> int:
        """Output length: base_frames x stride^layers (16 x 4^5 = 16384)."""
        return self.base_frames * self.stride ** self.layers

    def width(self, level: int) -> int:
        return halving_width(self.dim, self.layers, level)

    @property
    def padding(self) -> int:
        """'same'-style padding: (kernel - stride + 1) // 2, so each layer scales length by exactly stride."""
        return (self.kernel - self.stride + 1) // 2


def producible_samples_problem(spec: WaveGANSpec, clip_samples: int, prefix: str = "gan.wavegan.") -> str | None:
    """Why WaveGAN cannot make clips of ``clip_samples`` (None when it can). Like the paper (16384
    samples for SC09's 16000), the output may exceed a clip by less than one base frame: clips are
    zero-padded for training and generated audio is cut back to the clip length."""
    if (spec.kernel - spec.stride) % 2 == 0:
        return (f"{prefix}kernel ({spec.kernel}) - {prefix}stride ({spec.stride}) must be odd for exact 'same' padding "
                f"(the paper: 25 - 4)")
    slack = spec.stride ** spec.layers
    if not clip_samples <= spec.samples < clip_samples + slack:
        needed = -(-clip_samples // slack)
        return (f"{prefix}base_frames x {prefix}stride^{prefix}layers = {spec.base_frames} x {spec.stride}^{spec.layers} "
                f"= {spec.samples} samples, but a clip (audio.clip_seconds x audio.sample_rate) is {clip_samples}: the "
                f"output must cover a clip with less than one base frame ({slack} samples) to spare; "
                f"set {prefix}base_frames={needed} or change audio.clip_seconds")
    return None


@dataclass(frozen=True)
class SpecGANSpec:
    n_mels: int
    frames: int
    latent_dim: int = 100
    dim: int = 64
    layers: int = 4
    kernel: int = 5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def width(self, level: int) -> int:
        return halving_width(self.dim, self.layers, level)

    @property
    def base(self) -> tuple[int, int]:
        return self.n_mels // 2 ** self.layers, self.frames // 2 ** self.layers


def reachable_shape_problem(spec: SpecGANSpec, prefix: str = "gan.specgan.") -> str | None:
    """Why ``layers`` stride-2 layers cannot produce (n_mels, frames) exactly (None when they can)."""
    step = 2 ** spec.layers
    bad = [f"{name} ({value})" for name, value in (("mel.n_mels", spec.n_mels), ("mel.frames", spec.frames))
           if value % step or value < step]
    if bad:
        return (f"{' and '.join(bad)} must be positive multiples of 2^{prefix}layers = {step} for {spec.layers} "
                f"stride-2 layers; change them or {prefix}layers")
    if spec.kernel % 2 == 0:
        return f"{prefix}kernel ({spec.kernel}) must be odd so each layer exactly doubles the size"
    return None


def wavegan_spec(w) -> WaveGANSpec:
    """From the ``gan.wavegan`` config section."""
    return WaveGANSpec(latent_dim=w.latent_dim, dim=w.dim, layers=w.layers, kernel=w.kernel, stride=w.stride,
                       base_frames=w.base_frames, phase_shuffle=w.phase_shuffle)


def specgan_spec(s, n_mels: int, frames: int) -> SpecGANSpec:
    """From the ``gan.specgan`` config section and the mel shape it must generate."""
    return SpecGANSpec(n_mels=n_mels, frames=frames, latent_dim=s.latent_dim, dim=s.dim, layers=s.layers, kernel=s.kernel)


def config_problems(cfg: Any) -> list[str]:
    """What the enabled GAN families cannot produce with these clip and mel settings (``cfg``: the
    whole MelforgeConfig)."""
    problems = []
    if cfg.gan.wavegan.steps:
        problems.append(producible_samples_problem(wavegan_spec(cfg.gan.wavegan), cfg.audio.clip_samples))
    if cfg.gan.specgan.steps:
        problems.append(reachable_shape_problem(specgan_spec(cfg.gan.specgan, cfg.mel.n_mels, cfg.mel.frames)))
    return [p for p in problems if p]
