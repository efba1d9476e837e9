"""The vocoder stage: train a Vocos-style mel -> waveform model on the ingested clips, then score it
against Griffin-Lim on held-out clips, side by side in one run.

Training segments are cut from ``data/clips`` and turned into log-mels with the features stage's
own transform, so the vocoder learns exactly the mels every model produces. The held-out clips are
the evaluation set (the features stage's split), never trained on. Writes
``models/vocoder`` (vocoder.pt, evaluation.json, metrics.jsonl, samples/) and
``models/metrics/vocoder.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from components.config import MelforgeConfig
from components.features.griffinlim import NNLS_ITERATIONS
from components.features.mel import LogMel, MelSpec, log_floor_value
from components.features.plots import save_mel_grid
from components.features.split import EVAL, TRAIN
from components.features.store import MelStore
from components.ingest.store import open_clips, read_manifest
from components.settings import ProjectPaths
from components.storage import ShardReader, atomic_write_json, staged_directory
from components.train.loop import Draws, loop_settings, train_loop
from components.train.runner import fingerprint, resolve_device, work_dir
from components.vocoder.adversarial import (AdversarialCritic, Discriminators, feature_matching,
                                            generator_hinge)
from components.vocoder import EVALUATION_FILE, VOCODER_FILE
from components.vocoder.interface import GriffinLim, LearnedVocoder, save_vocoder, vocoder_dir
from components.vocoder.losses import mel_losses, multi_resolution_stft
from components.vocoder.model import ARCHITECTURE_VERSION, Vocos, VocoderSpec
from components.vocoder.quality import comparison, flat_scores, score_vocoders

LEARNED = "learned"


def vocoder_spec(cfg: MelforgeConfig) -> VocoderSpec:
    v = cfg.vocoder
    return VocoderSpec(n_mels=cfg.mel.n_mels, n_fft=cfg.mel.n_fft, hop_length=cfg.mel.hop_length, dim=v.dim,
                       intermediate=v.intermediate, layers=v.layers, kernel=v.kernel)


def split_clips(clip_ids: list[str], store: MelStore) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, evaluation rows) of ``clip_ids`` (rows of ``data/clips``), by the features
    stage's evaluation split: the vocoder trains on the clips every generator trains on and is scored
    on the clips every generator is judged against. Clips the features stage did not keep are in neither."""
    mel_manifest = store.manifest()
    side = dict(zip(mel_manifest["clip_id"].astype(str), store.split))
    sides = np.array([side.get(str(c), "") for c in clip_ids])
    return np.flatnonzero(sides == TRAIN), np.flatnonzero(sides == EVAL)


def segment_source(clips: ShardReader, rows: np.ndarray, locations: list[tuple[str, int]], *, batch_size: int,
                   segment_samples: int, seed: int):
    """batch_at(step): ``batch_size`` random clip segments, a pure function of (seed, step)."""

    def batch_at(step: int) -> torch.Tensor:
        rng = np.random.default_rng([seed, step, 11])
        picks = rng.choice(rows, size=batch_size, replace=len(rows) < batch_size)
        out = np.empty((batch_size, segment_samples), np.float32)
        for k, row in enumerate(picks):
            clip = np.asarray(clips.row(*locations[int(row)]), dtype=np.float32)
            start = int(rng.integers(0, max(1, len(clip) - segment_samples + 1)))
            piece = clip[start:start + segment_samples]
            out[k] = np.pad(piece, (0, segment_samples - len(piece)))
        return torch.from_numpy(out)

    return batch_at


def reconstruction_objective(logmel: LogMel, resolutions: list[tuple[int, int]], mel_weight: float,
                             critic: AdversarialCritic | None = None, adversarial_weight: float = 1.0,
                             feature_weight: float = 2.0):
    """L = L_mrstft + w_mel (L_mel_l1 + L_mel_sc) (+ w_adv L_G + w_fm L_fm once the critic is active).
    ``logmel`` must be on the device the batches arrive on (``LogMel.to``)."""

    def objective(net: torch.nn.Module, audio: torch.Tensor, draws: Draws) -> torch.Tensor:
        estimate = net(logmel.log_power(audio))
        audio = audio[..., :estimate.shape[-1]]  # (frames - 1) * hop: whole hops only
        mel_l1, mel_sc = mel_losses(audio, estimate, logmel)
        loss = multi_resolution_stft(audio, estimate, resolutions).mean() + mel_weight * (mel_l1 + mel_sc).mean()
        if critic is not None and critic.active:
            real, fake = critic.module(audio), critic.module(estimate)
            loss = loss + adversarial_weight * generator_hinge(fake) + feature_weight * feature_matching(real, fake)
        return loss

    return objective


def run_vocoder(cfg: MelforgeConfig, paths: ProjectPaths, *, resume: bool = True) -> dict[str, Any]:
    """Train (or resume) the vocoder, compare it with Griffin-Lim, write models/vocoder. With
    ``vocoder.steps: 0`` only Griffin-Lim is scored (and served)."""
    v = cfg.vocoder
    manifest = read_manifest(paths.clips)
    clips = open_clips(paths.clips)
    locations = [(s, int(r)) for s, r in zip(manifest["shard"], manifest["row"])]
    train_rows, held_rows = split_clips(list(manifest["clip_id"]), MelStore(paths.mels))
    spec = MelSpec.from_config(cfg)
    held_audio = np.stack([np.asarray(clips.row(*locations[int(r)]), np.float32) for r in held_rows[:v.eval_clips]])
    preview_mels = LogMel(spec)(held_audio[:8]).numpy()
    vocoders: dict[str, Any] = {f"griffinlim@{n}": GriffinLim(spec, n_iter=n)
                                for n in sorted({cfg.eval.griffinlim_iters, cfg.mel.griffinlim_iters})}
    trained: dict[str, Any] = {"curve": [], "summary": {}}
    if v.steps:
        trained = train_vocoder(cfg, paths, clips, locations, train_rows, held_audio, preview_mels, resume=resume)
        vocoders = {LEARNED: LearnedVocoder(trained["ema"], spec, {"steps": v.steps}, "cpu"), **vocoders}
    with torch.inference_mode():
        scores = score_vocoders(vocoders, held_audio, spec, repeats=v.rtf_repeats)
    versus = {name: comparison(scores, LEARNED, name) for name in vocoders if name != LEARNED} if v.steps else {}
    evaluation = {"held_out_clips": len(held_audio), "train_clips": int(len(train_rows)), "steps": v.steps,
                  "kind": v.kind, "scores": scores, "learned_vs": versus, "curve": trained["curve"],
                  "nnls_iterations": NNLS_ITERATIONS}
    with staged_directory(vocoder_dir(paths.models)) as tmp:
        if v.steps:
            save_vocoder(tmp / VOCODER_FILE, trained["ema"], spec, steps=v.steps, fingerprint=trained["fingerprint"],
                         config=cfg.to_params(), train_clips=int(len(train_rows)), evaluation=flat_scores(scores, versus))
            work = trained["work"]
            if (work / "samples").is_dir():
                shutil.copytree(work / "samples", tmp / "samples")
            if (work / "metrics.jsonl").is_file():
                shutil.copy(work / "metrics.jsonl", tmp / "metrics.jsonl")
        atomic_write_json(tmp / EVALUATION_FILE, evaluation)
        write_comparison(tmp / "samples", vocoders, preview_mels, spec, v.audio_previews)
        plot_curve(trained["curve"], scores, tmp / "quality_vs_minutes.png")
    summary = {**trained["summary"], **flat_scores(scores, versus), "kind": v.kind, "held_out_clips": len(held_audio)}
    return summary


def train_vocoder(cfg: MelforgeConfig, paths: ProjectPaths, clips: ShardReader, locations: list[tuple[str, int]],
                  train_rows: np.ndarray, held_audio: np.ndarray, preview_mels: np.ndarray, *,
                  resume: bool) -> dict[str, Any]:
    """The training loop on random clip segments; {ema (on CPU), summary, curve, work, fingerprint}."""
    v = cfg.vocoder
    device = resolve_device(v.device)
    torch.manual_seed(cfg.seed)
    spec = MelSpec.from_config(cfg)
    lm = LogMel(spec).to(device)  # the batches' device, once
    model = Vocos(vocoder_spec(cfg))
    critic = None
    if v.adversarial:
        def make_pair(net, audio, generator):
            fake = net(lm.log_power(audio))
            return audio[..., :fake.shape[-1]], fake

        critic = AdversarialCritic(Discriminators(v.periods, v.stft_resolutions[1:], v.discriminator_width),
                                   lr=v.discriminator_lr, make_pair=make_pair, start=v.adversarial_start)
    fp = fingerprint("vocoder", ARCHITECTURE_VERSION, v.model_dump(exclude={"kind", "eval_clips", "audio_previews", "rtf_repeats"}),
                     spec.__dict__, cfg.seed, [locations[int(r)] for r in train_rows])
    work = work_dir(paths, "vocoder", fp)
    settings = loop_settings(v, steps=v.steps, log_every=v.log_every, checkpoint_every=v.checkpoint_every,
                             sample_every=v.sample_every, seed=cfg.seed, device=device, fingerprint=fp)
    curve_path = work / "quality.jsonl"
    curve = _kept_curve(curve_path, resume)

    def on_sample(step: int, ema: torch.nn.Module) -> None:
        """Previews, and a point of the quality-vs-training-time curve on the held-out clips."""
        current = LearnedVocoder(ema.eval(), spec, {"steps": step}, device)
        write_previews(work / "samples", f"step-{step:08d}", current, preview_mels, spec, audio_count=v.audio_previews,
                       title=f"vocoder step {step}: re-analysed held-out clips")
        with torch.inference_mode():
            point = score_vocoders({LEARNED: current}, held_audio, spec, repeats=1)[LEARNED]
        record = {"step": step, "train_seconds": _train_seconds(work), "sc_db": point["sc_db"]["value"],
                  "logmel_l1": point["logmel_l1"]["value"], "mrstft": point["mrstft"]["value"]}
        curve.append(record)
        with open(curve_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    started = time.perf_counter()
    result = train_loop(model, reconstruction_objective(lm, list(v.stft_resolutions), v.mel_weight, critic,
                                                        v.adversarial_weight, v.feature_matching_weight),
                        segment_source(clips, train_rows, locations, batch_size=v.batch_size,
                                       segment_samples=v.segment_frames * spec.hop_length, seed=cfg.seed),
                        settings, work, on_sample=on_sample, resume=resume, label="vocoder", critic=critic)
    curve = sorted({r["step"]: r for r in curve}.values(), key=lambda r: r["step"])  # a resumed run redoes later points
    summary = {**result["summary"], "device": device, "train_seconds": round(time.perf_counter() - started, 1),
               "parameters": sum(p.numel() for p in model.parameters()), "work_dir": str(work)}
    return {"ema": result["ema"].to("cpu").eval(), "summary": summary, "curve": curve, "work": work, "fingerprint": fp}


def plot_curve(curve: list[dict[str, Any]], scores: dict[str, dict[str, Any]], path: Path) -> None:
    """Held-out spectral convergence and log-mel L1 against training minutes, Griffin-Lim as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in zip(axes, ("sc_db", "logmel_l1"), ("spectral convergence (dB)", "re-analysed log-mel L1")):
        if curve:
            ax.plot([r["train_seconds"] / 60 for r in curve], [r[key] for r in curve], "o-", label="learned (EMA)")
        for name, s in scores.items():
            if name != LEARNED:
                ax.axhline(s[key]["value"], linestyle="--", color="grey" if name.endswith("16") else "black", label=name)
        ax.set_xlabel("training minutes")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("vocoder on held-out clips (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _train_seconds(work: Path) -> float:
    """Seconds of training so far, from the loop's metrics (windows between logged steps)."""
    path = work / "metrics.jsonl"
    if not path.is_file():
        return 0.0
    times = [json.loads(line)["time"] for line in path.read_text().splitlines() if line.strip()]
    gaps = np.diff(times) if len(times) > 1 else np.zeros(0)
    typical = float(np.median(gaps)) if len(gaps) else 0.0
    return float(sum(g for g in gaps if g <= 20 * max(typical, 1e-3)))  # a pause between runs is not training


def _kept_curve(path: Path, resume: bool) -> list[dict[str, Any]]:
    if not resume or not path.is_file():
        path.unlink(missing_ok=True)
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_previews(folder: Path, tag: str, vocoder, logmel: np.ndarray, spec: MelSpec, *, audio_count: int,
                   title: str) -> None:
    """``<tag>.png``: the vocoded clips' re-analysed mels; ``<tag>-NN.wav``: the audio."""
    folder.mkdir(parents=True, exist_ok=True)
    audio = vocoder(logmel)
    save_mel_grid(LogMel(spec)(audio).numpy(), folder / f"{tag}.png", floor=log_floor_value(spec),
                  top=float(logmel.max()), title=title)
    for k in range(min(audio_count, len(audio))):
        sf.write(folder / f"{tag}-{k:02d}.wav", audio[k], spec.sample_rate)


def write_comparison(folder: Path, vocoders: dict[str, Any], logmel: np.ndarray, spec: MelSpec, audio_count: int) -> None:
    """The same held-out clips through every vocoder, plus the originals' mels, for listening side by side."""
    folder.mkdir(parents=True, exist_ok=True)
    save_mel_grid(logmel, folder / "held-out-real.png", floor=log_floor_value(spec), title="held-out real clips (log-mel)")
    for name, vocoder in vocoders.items():
        write_previews(folder, f"final-{name.replace('@', '-')}", vocoder, logmel, spec, audio_count=audio_count,
                       title=f"{vocoder.describe()}: re-analysed held-out clips")
