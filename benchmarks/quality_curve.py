"""Quality against training minutes: a generator's EMA scored every few minutes, on one ruler.

Trains the teacher (or, with ``--family wavegan|specgan``, that GAN baseline exactly as its stage
does) of a profile on the workspace's data (run the data stages of that profile first) in
chunks of about ``--every-minutes`` of training each (``train_loop(stop_after=...)``, resuming
exactly), and after each chunk scores the EMA weights with the pipeline's own ruler: the
evaluation classifier's FAD, FAD∞, KID, Inception Score per label, precision/recall/density/coverage
and the memorised share, against the evaluation set at the floor's n, and (unless ``--no-audio``)
the signal statistics of the clips through the profile's vocoder: voiced share, harmonicity, pitch
hits, peak, loudness, noise floor, mel silence, clipping and the level-in-range share. Scoring
time is not counted as training time.

    python benchmarks/quality_curve.py --profile demo --minutes 4 --every-minutes 1
    python benchmarks/quality_curve.py --profile cpu --minutes 45 --every-minutes 6 --distill
    python benchmarks/quality_curve.py --profile digits --family specgan --minutes 60 --export exported
    python benchmarks/quality_curve.py --profile digits --family specgan --minutes 90 --resume   # extend it

``--distill`` then runs the profile's progressive distillation from the final EMA teacher (the same
objective and settings as the distill stages) and scores every student beside its own teacher:
student/teacher FAD per stage, and the last student against the teacher at its full step count.

Prints a table; writes ``benchmarks/results/quality_curve-<profile>[-<family>].json`` and a PNG of the curve,
and a spectrogram grid of each snapshot's samples next to them.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from components.distill.objective import student_objective
from components.evaluate.reference import Reference
from components.families import family
from components.features.mel import MelSpec, log_floor_value
from components.features.plots import save_mel_grid
from components.features.stats import to_logmel
from components.features.store import MelStore
from components.gan.io import save_gan
from components.gan.stage import prepare_gan
from components.models.conditioning import Cells, conditioning_meta
from components.models.io import MODEL_FILE, save_denoiser
from components.models.unet import UNet1d, parameter_count
from components.names import GAN_FAMILIES
from components.params_file import apply_overrides, profile_params, validate_params
from components.settings import project_paths
from components.train.loop import LoopSettings, loop_settings, train_loop
from components.train.objectives import teacher_v_objective
from components.train.previews import sample_normalised
from components.train.runner import batch_source, bf16_autocast
from components.train.teacher import teacher_batches, training_cells, unet_spec
from components.vocoder.interface import workspace_vocoder


# what the printed table shows (every metric goes into the JSON)
SHOWN = ("fad_classifier", "recall_classifier", "coverage_classifier", "memorised", "voiced", "harmonicity", "on_pitch",
         "noise_floor_db", "loudness_db", "mel_silence", "clipped", "level_in_range")


def shown(scores: dict[str, float]) -> str:
    return "  ".join(f"{k} {scores[k]:.4g}" for k in (*SHOWN, *sorted(k for k in scores if k.startswith("is_")))
                     if k in scores)


def plot_curve(rows: list[dict], floor: dict[str, float], metrics: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        ax.plot([r["minutes"] for r in rows], [r[name] for r in rows], marker="o")
        ax.axhline(floor[name], color="grey", ls="--", lw=1, label="floor")
        ax.set_xlabel("training minutes")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def score_mels(ref: Reference, normalised, vocoder) -> dict[str, float]:
    """Every metric of the ruler for normalised mels; the audio ones through ``vocoder`` (None: none)."""
    normalised = normalised.numpy() if isinstance(normalised, torch.Tensor) else normalised
    audio = vocoder(ref.to_logmel(normalised)) if vocoder is not None else None
    return {k: m.value for k, m in ref.score(normalised, audio).items()}


def sample_and_score(ref: Reference, store: MelStore, model: torch.nn.Module, *, samples: int, steps: int,
                     seed: int, vocoder=None, sampler: str = "ddim", cells: Cells | None = None,
                     guidance: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """A model's samples (fixed noise; fixed cells for a conditional one) and every metric of the evaluation ruler."""
    normalised = sample_normalised(model, store.example_shape, count=samples, steps=steps, seed=seed, sampler=sampler,
                                   cells=cells, guidance=guidance)
    return normalised, score_mels(ref, normalised, vocoder)


def score_model(ref: Reference, store: MelStore, model: torch.nn.Module, *, samples: int, steps: int,
                seed: int, vocoder=None, sampler: str = "ddim", cells: Cells | None = None,
                guidance: float = 1.0) -> dict[str, float]:
    return sample_and_score(ref, store, model, samples=samples, steps=steps, seed=seed, vocoder=vocoder,
                            sampler=sampler, cells=cells, guidance=guidance)[1]


def earlier_curve(path: Path) -> list[dict]:
    """The snapshots of the curve being extended (``--resume``); its checkpoints carry the weights."""
    if not path.is_file():
        raise SystemExit(f"--resume: no earlier curve at {path}; run once without --resume first")
    earlier = json.loads(path.read_text())
    if not earlier.get("curve"):
        raise SystemExit(f"--resume: {path} holds no snapshots to extend")
    return earlier["curve"]


def export_model(folder: Path, model: torch.nn.Module, cfg, store: MelStore, *, family: str, steps: int,
                 kind: str = "teacher", gan_meta: dict | None = None, cells: Cells | None = None,
                 guidance: float = 1.0, **meta) -> None:
    """The curve's model as the matching stage would write it (``<folder>/model.pt``), so that
    ``melforge generate --model`` and ``benchmarks/pitch_check.py --models-dir`` can use it."""
    path = folder / MODEL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    common = {"config": cfg.to_params(), "parameters": parameter_count(model), "exported_from": "quality_curve",
              **conditioning_meta(cells, guidance), **meta}
    if family == "teacher":
        save_denoiser(path, model, model.spec, kind=kind, sampling_steps=steps, mel_stats=store.stats.to_json(),
                      mel_index=store.index, **common)
    else:
        save_gan(path, family, model, **(gan_meta or {}), **common)
    print(f"exported {path}")


def distill_and_score(cfg, store: MelStore, ref: Reference, teacher: torch.nn.Module, samples: int,
                      work: Path, export: Path | None = None, vocoder=None, cells: Cells | None = None,
                      cell_index=None) -> list[dict]:
    """Progressive distillation as the distill stages do it; each student scored beside its teacher."""
    d, seed = cfg.distill, cfg.seed + 2
    w = cfg.model.guidance if cells is not None else 1.0
    guidance = {"teacher": w}  # what each model samples with: the students carry the teacher's in their weights
    models = {"teacher": teacher.eval().requires_grad_(False)}
    teacher_score = score_model(ref, store, teacher, samples=samples, steps=d.teacher_steps, seed=seed, vocoder=vocoder,
                                sampler=d.teacher_sampler, cells=cells, guidance=w)
    scores = {"teacher": teacher_score}
    rows = []
    for name, stage in d.stages.items():
        steps, parent = int(stage["steps"]), stage["teacher"]
        student = copy.deepcopy(models[parent]).train().requires_grad_(True)
        settings = loop_settings(d, steps=d.updates_per_stage, log_every=cfg.train.log_every, seed=cfg.seed + steps)
        start = time.perf_counter()
        result = train_loop(student, student_objective(models[parent], steps, d.loss_weighting, guidance[parent]),
                            batch_source(store, d.batch_size, cfg.seed + steps, cell_index=cell_index), settings,
                            work / name, resume=False,
                            label=f"distill {2 * steps}->{steps}")
        final = (result["ema"] if d.ema_decay > 0 else result["model"]).eval().requires_grad_(False)
        models[name], guidance[name] = final, 1.0
        if export:
            export_model(export / name, final, cfg, store, family="teacher", steps=steps, kind="student", teacher=parent,
                         cells=cells)
        scores[name] = score_model(ref, store, final, samples=samples, steps=steps, seed=seed, vocoder=vocoder,
                                   cells=cells)
        row = {"student": name, "steps": steps, "teacher": parent, "minutes": round((time.perf_counter() - start) / 60, 2),
               "fad_classifier": scores[name]["fad_classifier"],
               "fad_vs_own_teacher": scores[name]["fad_classifier"] / scores[parent]["fad_classifier"],
               "fad_vs_full_teacher": scores[name]["fad_classifier"] / teacher_score["fad_classifier"],
               **{k: v for k, v in scores[name].items() if k in SHOWN or k.startswith("is_")}}
        rows.append(row)
        print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    print(f"teacher at {d.teacher_steps} steps: " + shown(teacher_score))
    return [{"student": "teacher", "steps": d.teacher_steps, **teacher_score}, *rows]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("-S", dest="overrides", action="append", default=[], help="section.key=value")
    parser.add_argument("--minutes", type=float, default=4.0, help="training minutes in all")
    parser.add_argument("--every-minutes", type=float, default=1.0)
    parser.add_argument("--samples", type=int, default=None, help="clips per snapshot (default eval.samples)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default distill.teacher_steps)")
    parser.add_argument("--root", type=Path, default=Path("."), help="the workspace (its data/mels and data/clips)")
    parser.add_argument("--family", choices=["teacher", *GAN_FAMILIES], default="teacher")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--distill", action="store_true", help="then distill and score every stage")
    parser.add_argument("--export", type=Path, default=None,
                        help="write the final model (and with --distill every student) as model files under "
                             "this folder: <export>/<teacher|student-N|wavegan|specgan>/model.pt")
    parser.add_argument("--no-audio", action="store_true",
                        help="mel-based metrics only (no vocoding, no voicing or level statistics): faster snapshots")
    parser.add_argument("--resume", action="store_true",
                        help="extend the curve already under --out (its JSON and last checkpoint) instead of "
                             "starting from step 0; --minutes stays the total")
    return parser.parse_args()


@dataclasses.dataclass
class Curve:
    """What one curve trains and how a snapshot of it is scored."""

    args: argparse.Namespace
    cfg: Any
    store: MelStore
    ref: Reference
    vocoder: Any
    samples: int
    steps: int
    label: str
    work: Path
    model: torch.nn.Module
    objective: Any
    batches: Any
    settings: LoopSettings
    critic: Any = None
    cells: Cells | None = None
    cell_index: Any = None
    gan_meta: dict | None = None
    generator: Any = None  # the GAN family's generator class

    def describe(self) -> str:
        return (f"scoring {self.samples} samples at {self.steps} DDIM steps" if self.generator is None
                else f"scoring {self.samples} samples, one network evaluation each")

    def snapshot(self, ema: torch.nn.Module, step: int, seconds: float) -> dict:
        """Score the EMA now; save its spectrogram grid."""
        cfg, ref = self.cfg, self.ref
        if self.generator is None:
            normalised, scores = sample_and_score(ref, self.store, ema, samples=self.samples, steps=self.steps,
                                                  seed=cfg.seed + 2, vocoder=self.vocoder,
                                                  sampler=cfg.distill.teacher_sampler, cells=self.cells,
                                                  guidance=cfg.model.guidance)
            logmel = to_logmel(normalised[:8].numpy(), self.store.stats, self.store.layout)
            spread = float(normalised.std())
        else:
            gen = self.generator(model=ema.eval(), meta=self.gan_meta, vocoder=self.vocoder)
            logmel, audio = gen.output_to_clips(gen.sample_output(self.samples, cfg.seed + 2))
            scores = {k: m.value for k, m in ref.score(ref.normalise(logmel), None if self.args.no_audio else audio).items()}
            spread, logmel = float(ref.normalise(logmel).std()), logmel[:8]
        row = {"minutes": round(seconds / 60, 2), "step": step, "sample_std": spread, **scores}
        save_mel_grid(logmel, self.work / f"samples-{step:06d}.png", floor=log_floor_value(ref.spec),
                      title=f"{self.label}: EMA after {row['minutes']:.1f} min ({step} steps)")
        print(f"minutes {row['minutes']}  step {step}  " + shown(scores), flush=True)
        return row


def build_curve(args: argparse.Namespace) -> Curve:
    """The config, the ruler and the model (the teacher, or a GAN exactly as its stage builds it)."""
    cfg = validate_params(apply_overrides(profile_params(args.profile), args.overrides), f"profile {args.profile!r}")
    paths = project_paths(args.root)
    store = MelStore(paths.mels)
    vocoder = None if args.no_audio else workspace_vocoder(cfg, paths, MelSpec.from_index(store.index),
                                                           griffinlim_iters=cfg.eval.griffinlim_iters)
    ref = Reference.build(store, cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"crepe": False})}),
                          real_audio_fn=vocoder)
    label = args.profile if args.family == "teacher" else f"{args.profile}-{args.family}"
    common = {"args": args, "cfg": cfg, "store": store, "ref": ref, "vocoder": vocoder,
              "samples": args.samples or cfg.eval.samples, "steps": args.steps or cfg.distill.teacher_steps,
              "label": label, "work": args.out / f"quality_curve-{label}"}
    if args.family != "teacher":
        setup = prepare_gan(cfg, paths, args.family, store, "cpu")
        settings = dataclasses.replace(setup.settings, fingerprint=f"quality-curve-{label}", checkpoint_every=0,
                                       sample_every=0)
        return Curve(**common, model=setup.model, objective=setup.objective, batches=setup.batch_at, settings=settings,
                     critic=setup.critic, gan_meta=setup.meta,
                     generator=family(args.family).generator)
    torch.manual_seed(cfg.seed)
    cells, cell_index = training_cells(store, cfg.eval.split_labels) if cfg.model.conditioning != "none" else (None, None)
    model = UNet1d(unet_spec(cfg, store.example_shape, classes=0 if cells is None else len(cells.names)))
    t = cfg.train
    settings = loop_settings(t, steps=t.steps, log_every=t.log_every, seed=cfg.seed, fingerprint=f"quality-curve-{label}",
                             bf16=bf16_autocast("cpu", gpu=t.bf16, cpu=t.cpu_bf16))
    objective = teacher_v_objective(t.loss_weighting, classes=model.spec.classes, label_dropout=cfg.model.label_dropout)
    return Curve(**common, model=model, objective=objective, batches=teacher_batches(cfg, store, cell_index=cell_index),
                 settings=settings, cells=cells, cell_index=cell_index)


def train_curve(curve: Curve, rows: list[dict]) -> tuple[dict, int]:
    """Train in chunks of ``--every-minutes`` (the first 20 steps measure the speed), a snapshot after
    each, until ``--minutes`` or the last step; (the last train_loop result, its step)."""
    args, settings = curve.args, curve.settings
    trained, done, rate, result = 0.0, 0, None, None
    if rows:
        trained, done = rows[-1]["minutes"] * 60, rows[-1]["step"]
        rate = done / trained
        print(f"resuming the curve at step {done}, {rows[-1]['minutes']} training minutes")
    while done < settings.steps and trained < args.minutes * 60:
        chunk = 20 if rate is None else max(1, round(rate * args.every_minutes * 60))
        if rate is not None and not rows:
            chunk = max(1, chunk - done)  # the first snapshot after --every-minutes, counting the probe
        start = time.perf_counter()
        result = train_loop(curve.model, curve.objective, curve.batches, settings, curve.work, resume=True,
                            stop_after=done + chunk, critic=curve.critic,
                            label=f"{args.family} (to step {min(settings.steps, done + chunk)})")
        trained += time.perf_counter() - start
        done = result["summary"]["steps"]
        rate = done / trained
        if not rows and done == 20 and done < settings.steps and trained < args.minutes * 60:
            continue  # the speed probe
        rows.append(curve.snapshot(result["ema"], done, trained))
        curve.model = result["model"]
    if result is None:  # --resume of a finished curve: restore its last checkpoint (for --export / --distill)
        result = train_loop(curve.model, curve.objective, curve.batches, settings, curve.work, resume=True,
                            stop_after=done, label=args.family, critic=curve.critic)
    if not rows or rows[-1]["step"] != done:
        rows.append(curve.snapshot(result["ema"], done, trained))
    return result, done


def write_curve(curve: Curve, rows: list[dict], earlier: list[dict], stages: list[dict], floor: dict[str, float]) -> None:
    args = curve.args
    print("floor (training clips vs the evaluation set, same n): " + shown(floor))
    result = {"profile": args.profile, "family": args.family, "overrides": args.overrides,
              "parameters": parameter_count(curve.model), "samples": curve.samples, "ddim_steps": curve.steps,
              "real_clips": len(curve.store), "floor": floor, "curve": rows,
              "resumed_from_step": earlier[-1]["step"] if earlier else None, "distillation": stages}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"quality_curve-{curve.label}.json").write_text(json.dumps(result, indent=2))
    metrics = [m for m in ("fad_classifier", "recall_classifier", "voiced", "harmonicity", "level_in_range") if m in floor]
    metrics.insert(1, next(k for k in floor if k.startswith("is_")))
    if rows:
        plot_curve(rows, floor, metrics, args.out / f"quality_curve-{curve.label}.png")


def main() -> None:
    args = parse_args()
    curve = build_curve(args)
    floor = {k: m.value for k, m in curve.ref.real_floor(curve.samples).items()}
    earlier = earlier_curve(args.out / f"quality_curve-{curve.label}.json") if args.resume else []
    if not args.resume:
        shutil.rmtree(curve.work, ignore_errors=True)  # a curve starts from step 0, never from an older run
    print(f"profile {args.profile}, {args.family}: {parameter_count(curve.model):,} parameters, {len(curve.store)} "
          f"clips, up to {curve.settings.steps} steps; {curve.describe()}")
    rows: list[dict] = list(earlier)
    result, done = train_curve(curve, rows)
    if args.export:
        export_model(args.export / ("teacher" if args.family == "teacher" else args.family), result["ema"], curve.cfg,
                     curve.store, family=args.family, steps=curve.steps, gan_meta=curve.gan_meta, step=done,
                     cells=curve.cells, guidance=curve.cfg.model.guidance)
    stages = distill_and_score(curve.cfg, curve.store, curve.ref, result["ema"], curve.samples, curve.work, args.export,
                               curve.vocoder, curve.cells, curve.cell_index) \
        if args.distill and args.family == "teacher" else []
    write_curve(curve, rows, earlier, stages, floor)


if __name__ == "__main__":
    main()
