"""The vae stage: RAVE's two stages on the training clips' normalised log-mels -> ``models/vae``.

Stage 1: encoder and decoder, loss = |decode(z) - x| + beta(t) KL(q(z|x) || N(0, I)), z drawn from
q(z|x) (the reparameterisation), beta rising linearly from 0 over ``vae.beta_warmup_steps``.
Stage 2 (``vae.adversarial_steps`` > 0), as RAVE's: the encoder frozen, the decoder fine-tuned on its
reconstructions with the same L1 loss plus a hinge adversarial loss and the discriminator's feature
matching, against a mel discriminator updated once per step through the training loop's critic hook
(the vocoder's hinge critic). A WGAN-GP critic on prior samples, tried first, made the digits VAE
worse at both weights measured (docs/benchmarks.md).
"""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from components.config import MelforgeConfig
from components.features.griffinlim import GriffinLim
from components.features.store import MelStore
from components.gan.io import save_gan
from components.models.io import MODEL_FILE, STATUS_FILE
from components.settings import ProjectPaths
from components.storage import atomic_write_json, staged_directory
from components.train.loop import Draws, Objective, loop_settings, train_loop
from components.train.previews import write_previews
from components.train.runner import data_fingerprint, fingerprint, mel_source, resolve_device, work_dir
from components.vae import VAE
from components.vae.model import MelDiscriminator, MelVAE, VAESpec, kl_divergence, prior
from components.vae.settings import VAEConfig
from components.vocoder.adversarial import AdversarialCritic, feature_matching, generator_hinge

ARCHITECTURE_VERSION = 1
# what only stage 2 reads: changing it re-runs stage 2 alone (stage 1's checkpoints are keyed without it)
STAGE2_KEYS = {"adversarial_steps", "adversarial_weight", "feature_matching_weight", "critic_dim", "critic_layers",
               "critic_lr"}
NOT_TRAINING = {"sample_count", "audio_previews", "device"}


def vae_spec(cfg: MelforgeConfig) -> VAESpec:
    v = cfg.vae
    return VAESpec(n_mels=cfg.mel.n_mels, frames=cfg.mel.frames, hidden=v.hidden, latent=v.latent, levels=v.levels)


def shape_problem(cfg: MelforgeConfig) -> str | None:
    """Why the VAE (or its stage 2 critic) cannot work on these mels; None when it can."""
    if cfg.mel.layout != "flat":
        return f"the VAE models the flat mel layout; mel.layout is {cfg.mel.layout!r}"
    if cfg.mel.frames % 2 ** cfg.vae.levels:
        return f"mel.frames ({cfg.mel.frames}) must be divisible by 2^vae.levels = {2 ** cfg.vae.levels}"
    return None


def beta_at(update: int, v: VAEConfig) -> float:
    """beta(t) = beta x min(1, t / warm-up): the KL weight, 0 at the first update."""
    return v.beta * min(1.0, update / v.beta_warmup_steps) if v.beta_warmup_steps else v.beta


def reconstruction_objective(v: VAEConfig, elements: int) -> Objective:
    """Stage 1: |decode(z) - x|_1 + beta(t) KL, z = mean + sigma eps (eps from the step's draws)."""

    def objective(net: torch.nn.Module, batch: torch.Tensor, draws: Draws) -> torch.Tensor:
        vae = getattr(net, "module", net)
        mean, logvar = vae.encode(batch)
        eps = draws.randn(mean.shape).to(mean.device)
        recon = vae.decode(mean + (0.5 * logvar).exp() * eps)
        beta = beta_at(int(vae.updates), v)
        vae.updates += 1
        return (recon - batch).abs().mean() + beta * kl_divergence(mean, logvar, elements)

    return objective


def reconstruct(net: torch.nn.Module, batch: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, decode(mean(x))): a real batch and its reconstruction through the frozen encoder."""
    vae = getattr(net, "module", net)
    with torch.no_grad():
        mean, _ = vae.encode(batch)
    return batch, vae.decode(mean)


def adversarial_objective(v: VAEConfig, critic: AdversarialCritic) -> Objective:
    """Stage 2: |x^ - x|_1 + w_adv hinge(D(x^)) + w_fm FM(D(x), D(x^)), x^ = decode(mean(x))."""

    def objective(net: torch.nn.Module, batch: torch.Tensor, draws: Draws) -> torch.Tensor:
        real, fake = reconstruct(net, batch)
        loss = (fake - real).abs().mean()
        if critic.active:
            fake_out, real_out = critic.module(fake), critic.module(real)
            loss = loss + v.adversarial_weight * generator_hinge(fake_out) \
                + v.feature_matching_weight * feature_matching(real_out, fake_out)
        return loss

    return objective


def _write_off(out: Path) -> dict[str, Any]:
    with staged_directory(out) as tmp:
        atomic_write_json(tmp / STATUS_FILE, {"family": VAE, "trained": False, "reason": "vae.steps is 0 (this family is off)"})
    return {"family": VAE, "trained": False}


def _previews(folder: Path, tag: str, model: MelVAE, z: torch.Tensor, store: MelStore, audio_count: int, title: str) -> None:
    with torch.no_grad():
        mels = model(z.to(next(model.parameters()).device)).float().cpu()
    write_previews(folder, tag, mels, stats=store.stats, layout="flat", mel_index=store.index,
                   vocoder=GriffinLim.for_index(store.index), audio_count=audio_count, title=title)


def run_vae(cfg: MelforgeConfig, paths: ProjectPaths, *, resume: bool = True) -> dict[str, Any]:
    """Train (or resume) both stages, or record that the family is off; write models/vae."""
    v = cfg.vae
    out = paths.models / VAE
    if not v.steps:
        return _write_off(out)
    problem = shape_problem(cfg)
    if problem:
        raise ValueError(problem)
    device = resolve_device(v.device)
    store = MelStore(paths.mels)
    torch.manual_seed(cfg.seed)
    spec = vae_spec(cfg)
    model = MelVAE(spec)
    fp = fingerprint(VAE, ARCHITECTURE_VERSION, v.model_dump(exclude=STAGE2_KEYS | NOT_TRAINING), cfg.seed,
                     data_fingerprint(store))
    fp2 = fingerprint(fp, v.model_dump(include=STAGE2_KEYS))
    work = work_dir(paths, VAE, fp)
    batch_at = mel_source(store, batch_size=v.batch_size, seed=cfg.seed)
    run = {"log_every": v.log_every, "checkpoint_every": v.checkpoint_every, "seed": cfg.seed, "device": device}
    started = time.perf_counter()
    result = train_loop(model, reconstruction_objective(v, spec.n_mels * spec.frames), batch_at,
                        loop_settings(v, steps=v.steps, fingerprint=fp, **run), work / "stage1",
                        resume=resume, label="vae stage 1")
    stage1 = result["summary"]
    if v.adversarial_steps:
        decoder = copy.deepcopy(result["ema"]).train().requires_grad_(True)
        decoder.encoder.requires_grad_(False)
        critic = AdversarialCritic(MelDiscriminator(v.critic_dim, v.critic_layers), lr=v.critic_lr, make_pair=reconstruct)
        result = train_loop(decoder, adversarial_objective(v, critic), batch_at,
                            loop_settings(v, steps=v.adversarial_steps, fingerprint=fp2, **run),
                            work / f"stage2-{fp2[:12]}", resume=resume, label="vae stage 2", critic=critic)
    train_seconds = time.perf_counter() - started
    final = result["ema"].eval()
    fixed = prior(v.sample_count, spec, torch.Generator().manual_seed(cfg.seed + 1))
    parameters = sum(p.numel() for p in final.parameters())
    with staged_directory(out) as tmp:
        _previews(tmp / "samples", "final", final, fixed, store, v.audio_previews,
                  f"vae (EMA): {v.steps} + {v.adversarial_steps} updates, z ~ N(0, I)")
        save_gan(tmp / MODEL_FILE, VAE, final, sampling_steps=1, mel_stats=store.stats.to_json(), mel_index=store.index,
                 layout="flat", frames=cfg.mel.frames, fingerprint=fp2, config=cfg.to_params(), parameters=parameters)
        for stage, name in (("stage1", "metrics.jsonl"), (f"stage2-{fp2[:12]}", "metrics-stage2.jsonl")):  # the flow logs the first
            if (work / stage / "metrics.jsonl").is_file():
                shutil.copy(work / stage / "metrics.jsonl", tmp / name)
    return {**result["summary"], "family": VAE, "trained": True, "sampling_steps": 1, "network_evaluations": 1,
            "parameters": parameters, "stage1_final_loss": stage1["final_loss"], "adversarial_steps": v.adversarial_steps,
            "device": device, "train_seconds_this_run": round(train_seconds, 1), "work_dir": str(work)}
