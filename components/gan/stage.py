"""The ``gan@<family>`` stages: WaveGAN on the ingested waveforms, SpecGAN on the pipeline's own
normalised log-mels, both with WGAN-GP through the shared training loop (checkpoints, exact resume,
EMA, progress bar, metrics.jsonl for MLflow).

Writes ``models/<family>`` (model.pt, samples/, metrics.jsonl) and ``models/metrics/<family>.json``.
With ``gan.<family>.steps: 0`` the family is off: the folder holds only ``status.json`` saying so,
and evaluation leaves it out.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import MelforgeConfig
from components.config_training import GANTrainingConfig
from components.features.griffinlim import GriffinLim
from components.features.mel import LogMel, MelSpec, fit_frames, log_floor_value
from components.features.plots import save_mel_grid
from components.features.store import MelStore
from components.gan.io import SPECGAN, WAVEGAN, latent, save_gan
from components.gan.specgan import SpecGANCritic, SpecGANNetwork
from components.gan.specs import specgan_spec, wavegan_spec
from components.gan.wavegan import WaveGANCritic, WaveGANNetwork
from components.gan.wgan_gp import WGANCritic
from components.ingest.store import open_clips, read_manifest
from components.models.io import MODEL_FILE, STATUS_FILE
from components.settings import ProjectPaths
from components.storage import ShardReader, atomic_write_json, staged_directory
from components.train.loop import BatchAt, Draws, LoopSettings, Objective, loop_settings, train_loop
from components.train.previews import write_previews
from components.train.runner import data_fingerprint, fingerprint, mel_source, resolve_device, work_dir

ARCHITECTURE_VERSION = 1


def waveform_source(clips: ShardReader, locations: list[tuple[str, int]], *, batch_size: int, samples: int,
                    seed: int):
    """batch_at(step): ``batch_size`` whole clips, zero-padded to WaveGAN's ``samples`` (the paper pads
    SC09's 16000 to 16384), a pure function of (seed, step)."""

    def batch_at(step: int) -> torch.Tensor:
        rng = np.random.default_rng([seed, step, 23])
        picks = rng.choice(len(locations), size=batch_size, replace=len(locations) < batch_size)
        out = np.zeros((batch_size, samples), np.float32)
        for k, row in enumerate(picks):
            clip = np.asarray(clips.row(*locations[int(row)]), dtype=np.float32)[:samples]
            out[k, : len(clip)] = clip
        return torch.from_numpy(out)

    return batch_at


def train_locations(clip_manifest, store: MelStore) -> list[tuple[str, int]]:
    """(shard, row) in ``data/clips`` of every training clip of the mel store's split."""
    train_ids = set(store.manifest()["clip_id"].to_numpy()[store.rows()])
    picked = clip_manifest[clip_manifest["clip_id"].isin(train_ids)]
    return [(s, int(r)) for s, r in zip(picked["shard"], picked["row"])]


def _loop_settings(g: GANTrainingConfig, seed: int, device: str, fp: str) -> LoopSettings:
    """The paper's optimiser: Adam (no weight decay), constant lr, no gradient clipping."""
    return loop_settings(g, steps=g.steps, log_every=g.log_every, checkpoint_every=g.checkpoint_every,
                         sample_every=g.sample_every, seed=seed, device=device, fingerprint=fp)


@dataclass
class GANSetup:
    """Everything one family's WGAN-GP training needs, for the stage and for benchmarks."""

    family: str
    model: torch.nn.Module
    critic: WGANCritic
    objective: Objective
    batch_at: BatchAt
    settings: LoopSettings
    fixed: torch.Tensor  # the preview latents
    meta: dict[str, Any]  # what the model file holds besides the weights
    work: Path


def prepare_gan(cfg: MelforgeConfig, paths: ProjectPaths, family: str, store: MelStore, device: str) -> GANSetup:
    """The generator, its critic, the objective L_G = -E[D(G(z))], the batch source and the loop settings."""
    g = cfg.gan.family(family)
    torch.manual_seed(cfg.seed)
    if family == WAVEGAN:
        net_spec = wavegan_spec(g)
        model, critic_net = WaveGANNetwork(net_spec), WaveGANCritic(net_spec)
        locations = train_locations(read_manifest(paths.clips), store)
        batch_at = waveform_source(open_clips(paths.clips), locations, batch_size=g.batch_size,
                                   samples=net_spec.samples, seed=cfg.seed)
        data_fp = [data_fingerprint(store), locations]
    else:
        net_spec = specgan_spec(g, cfg.mel.n_mels, cfg.mel.frames)
        model, critic_net = SpecGANNetwork(net_spec), SpecGANCritic(net_spec)
        batch_at = mel_source(store, batch_size=g.batch_size, seed=cfg.seed)
        data_fp = data_fingerprint(store)
    fp = fingerprint(family, ARCHITECTURE_VERSION, g.model_dump(exclude={"sample_count", "audio_previews", "device"}),
                     cfg.seed, data_fp)

    def sample_fake(net: torch.nn.Module, n: int, generator: torch.Generator) -> torch.Tensor:
        return net(latent(n, net_spec.latent_dim, generator).to(device))

    critic = WGANCritic(critic_net, sample_fake, lr=g.lr, betas=g.betas, n_critic=g.n_critic,
                        penalty_weight=g.penalty_weight)

    def objective(net: torch.nn.Module, batch: torch.Tensor, draws: Draws) -> torch.Tensor:
        """L_G = -E[D(G(z))]."""
        return -critic.score(sample_fake(net, batch.shape[0], draws.generator), draws.generator).mean()

    meta = {"sampling_steps": 1, "mel_stats": store.stats.to_json(), "mel_index": store.index, "layout": "flat",
            "clip_samples": cfg.audio.clip_samples, "frames": cfg.mel.frames, "fingerprint": fp,
            "critic_parameters": sum(p.numel() for p in critic_net.parameters())}
    return GANSetup(family=family, model=model, critic=critic, objective=objective, batch_at=batch_at,
                    settings=_loop_settings(g, cfg.seed, device, fp),
                    fixed=latent(g.sample_count, net_spec.latent_dim, torch.Generator().manual_seed(cfg.seed + 1)),
                    meta=meta, work=work_dir(paths, family, fp))


def run_gan(cfg: MelforgeConfig, paths: ProjectPaths, family: str, *, resume: bool = True) -> dict[str, Any]:
    """Train (or resume) one GAN family, or record that it is off; write models/<family>."""
    g = cfg.gan.family(family)
    out = paths.models / family
    if not g.steps:
        with staged_directory(out) as tmp:
            atomic_write_json(tmp / STATUS_FILE, {"family": family, "trained": False,
                                                  "reason": f"gan.{family}.steps is 0 (this family is off)"})
        return {"family": family, "trained": False}
    device = resolve_device(g.device)
    store = MelStore(paths.mels)
    setup = prepare_gan(cfg, paths, family, store, device)
    work = setup.work

    def on_sample(step: int, ema: torch.nn.Module) -> None:
        write_gan_previews(work / "samples", f"step-{step:08d}", family, ema, setup.fixed, store, cfg, g.audio_previews,
                           title=f"{family} step {step}: EMA generator, fixed z")

    started = time.perf_counter()
    result = train_loop(setup.model, setup.objective, setup.batch_at, setup.settings, work, on_sample=on_sample,
                        resume=resume, label=family, critic=setup.critic)
    train_seconds = time.perf_counter() - started
    ema = result["ema"].eval()
    parameters = sum(p.numel() for p in ema.parameters())
    with staged_directory(out) as tmp:
        if (work / "samples").is_dir():
            shutil.copytree(work / "samples", tmp / "samples")
        write_gan_previews(tmp / "samples", "final", family, ema, setup.fixed, store, cfg, g.audio_previews,
                           title=f"{family} (EMA): {g.steps} generator steps, fixed z")
        save_gan(tmp / MODEL_FILE, family, ema, **setup.meta, config=cfg.to_params(), parameters=parameters)
        if (work / "metrics.jsonl").is_file():
            shutil.copy(work / "metrics.jsonl", tmp / "metrics.jsonl")
        seconds = _sampling_seconds(ema, setup.fixed[:4], device)
    summary = {**result["summary"], "family": family, "trained": True, "sampling_steps": 1, "network_evaluations": 1,
               "parameters": parameters, "critic_parameters": setup.meta["critic_parameters"],
               "sampling_seconds_4": seconds, "device": device, "train_seconds_this_run": round(train_seconds, 1),
               "work_dir": str(work)}
    return summary


def write_gan_previews(folder: Path, tag: str, family: str, generator: torch.nn.Module, z: torch.Tensor,
                       store: MelStore, cfg: MelforgeConfig, audio_count: int, *, title: str) -> None:
    """The PNG grid and WAVs of a fixed batch: SpecGAN's mels through Griffin-Lim like the diffusion
    previews, WaveGAN's own audio with its log-mel analysed for the grid."""
    import soundfile as sf

    device = next(generator.parameters()).device
    with torch.no_grad():
        out = generator(z.to(device)).float().cpu()
    if family == SPECGAN:
        write_previews(folder, tag, out, stats=store.stats, layout="flat", mel_index=store.index,
                       vocoder=GriffinLim.for_index(store.index), audio_count=audio_count, title=title)
        return
    audio = out[:, : cfg.audio.clip_samples].numpy()
    spec = MelSpec.from_index(store.index)
    folder.mkdir(parents=True, exist_ok=True)
    floor = log_floor_value(spec)
    save_mel_grid(fit_frames(LogMel(spec)(audio).numpy(), cfg.mel.frames, floor), folder / f"{tag}.png",
                  floor=floor, title=title)
    for k in range(min(audio_count, len(audio))):
        sf.write(folder / f"{tag}-{k:02d}.wav", audio[k], spec.sample_rate)


def _sampling_seconds(generator: torch.nn.Module, z: torch.Tensor, device: str, repeats: int = 2) -> float:
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            generator(z.to(device))
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return best
