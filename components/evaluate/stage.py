"""The evaluate stage: every model of every family (the diffusion teacher at several step counts,
every distilled student, each GAN baseline that was trained) against the same real clips, with the
same sample counts, seeds, metrics and intervals, plus real-time factors and the report.

Writes ``models/evaluation`` (metrics.json, steps_vs_quality.csv/png, quality_vs_compute.png,
report.html, sample grids and audio, the reference for re-scoring other models) and
``models/metrics/evaluate.json``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.config import MelforgeConfig
from components.evaluate.controls import CONTROL, CONTROLS, control_failures, control_mels
from components.evaluate.quality import GateSettings, verdict
from components.evaluate.reference import Reference
from components.evaluate.report import plot_quality_vs_compute, plot_steps_vs_quality, write_html
from components.features.mel import MelSpec, log_floor_value
from components.features.plots import save_mel_grid
from components.features.split import EVAL, TRAIN
from components.features.store import MelStore
from components.gan import DIFFUSION
from components.families import evaluation_plan, family, load_generator
from components.generation import Generator
from components.level import LevelConvention
from components.models.io import MODEL_FILE
from components.progress import progress_bar
from components.evaluate.serving import choose_served
from components.settings import ProjectPaths
from components.storage import atomic_write, atomic_write_json, staged_directory
from components.train.runner import resolve_device
from components.vocoder import EVALUATION_FILE
from components.vocoder.interface import vocoder_dir, workspace_vocoder
from components.vocoder.quality import flat_scores

GRID_CLIPS = 8


def _write_samples(folder: Path, name: str, logmel: np.ndarray, audio: np.ndarray, sample_rate: int,
                   count: int, title: str, scale: tuple[float, float]) -> None:
    """``<name>.png`` (on the report's one colour ``scale``: mel floor, real clips' loudest cell) and WAVs."""
    import soundfile as sf

    save_mel_grid(logmel[:GRID_CLIPS], folder / f"{name}.png", title=title, floor=scale[0], top=scale[1])
    for k in range(min(count, len(audio))):
        sf.write(folder / f"{name}-{k:02d}.wav", audio[k], sample_rate)


def score_generator(ref: Reference, gen: Generator, *, samples: int, steps: int,
                    seed: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Sample (mel models: then vocode with the generator's vocoder) and score one model at one step
    count; (row, log mels, audio)."""
    logmel, audio = gen.sample(samples, seed, steps=steps)
    if not np.isfinite(logmel).all() or not np.isfinite(audio).all():
        return {"status": "failed", "error": "non-finite samples", "metrics": {}}, np.empty(0), np.empty(0)
    return score_set(ref, ref.normalise(logmel), audio), logmel, audio


def score_set(ref: Reference, normalised: np.ndarray, audio: np.ndarray | None) -> dict[str, Any]:
    """A row for any set of clips (a model's samples or a control): status, every metric, and the
    classifier embeddings of the n clips scored (under ``embedding``, saved beside the report)."""
    return score_measured(ref, ref.measure(normalised, audio), len(normalised))


def score_measured(ref: Reference, measured: dict[str, Any], count: int) -> dict[str, Any]:
    n = ref.sample_size(count)
    metrics = ref.ruler_for(n).compare(measured, n)
    bad = [k for k, m in metrics.items() if not math.isfinite(m.value)]
    row = {"status": "failed" if bad else "ok", "metrics": {k: m.to_dict() for k, m in metrics.items()},
           "embedding": measured["embeddings"]["classifier"][:n]}
    if bad:
        row["error"] = f"non-finite {', '.join(bad)}"
    return row


def save_embedding(folder: Path, row: dict[str, Any]) -> None:
    """The classifier embeddings a row was scored on, for benchmarks/recompute_metrics.py."""
    embedding = row.pop("embedding", None)
    if embedding is not None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"{row['name']}.npy", lambda fh: np.save(fh, embedding))


def score_controls(ref: Reference, store: MelStore, n: int, seed: int) -> list[tuple[dict[str, Any], np.ndarray]]:
    """(row, log mels) of every control: replayed training clips (with every measurement the real
    clips already have, audio ones included), per-cell mean mels and noise (the mel-based metrics
    only: what the gate reads; vocoding and CREPE for them would double the stage's time)."""
    out = []
    for name in CONTROLS:
        mels, rows = control_mels(name, store, ref.cells, n, seed)
        measured = ref.stored_measured(rows) if rows is not None else ref.measure(mels, None)
        row = {"name": f"control-{name}", "model": name, "kind": CONTROL, "family": CONTROL, "steps": 0,
               "network_evaluations": 0, **score_measured(ref, measured, len(mels))}
        out.append((row, ref.to_logmel(mels)))
    return out


def run_evaluate(cfg: MelforgeConfig, paths: ProjectPaths) -> dict[str, Any]:
    store = MelStore(paths.mels)
    device = resolve_device(cfg.train.device)
    e = cfg.eval
    out = paths.evaluation
    plan = evaluation_plan(cfg)
    for entry in plan:
        if not (paths.models / entry["folder"] / MODEL_FILE).is_file():
            raise FileNotFoundError(f"models/{entry['folder']}/{MODEL_FILE}: missing; run the "
                                    f"{family(entry['family']).trained_by} stages first")
    started = time.perf_counter()
    gate_settings = GateSettings.from_config(cfg)
    # real and generated mels go through the same vocoder and are delivered at the same level (the
    # convention stored in the index and every model), so CREPE and the level statistics compare models
    spec = MelSpec.from_index(store.index)
    vocoder = workspace_vocoder(cfg, paths, spec, griffinlim_iters=e.griffinlim_iters)
    level = LevelConvention.from_index(store.index)
    with staged_directory(out) as tmp, progress_bar() as bar:
        task = bar.add_task("evaluate", total=len(plan) + 2, info="classifier + real clips")
        ref = Reference.build(store, cfg, real_audio_fn=lambda logmel: level.deliver(logmel, vocoder.synthesise,
                                                                                     spec.log_floor))
        ref.save(tmp / "reference")
        n = ref.sample_size(e.samples)
        floor = {k: m.to_dict() for k, m in ref.real_floor(e.samples).items()}
        atomic_write(tmp / "reference" / "floor_subsets.npz",
                     lambda fh: np.savez(fh, *ref.floor_subsets(n)))
        samples_dir = tmp / "samples"
        samples_dir.mkdir()
        eval_rows = ref.rows(EVAL)
        shown = eval_rows[np.linspace(0, len(eval_rows) - 1, min(GRID_CLIPS, len(eval_rows))).astype(int)]
        real_logmel = ref.to_logmel(store.batch(shown))
        # the very audio the real clips were measured on (vocoded once, in Reference.build)
        real_audio = ref.real_audio[shown[: e.report_audio]] if e.report_audio else np.empty((0, 0))
        # one colour scale for every grid of the report, so backgrounds and levels compare
        scale = (log_floor_value(ref.spec), float(real_logmel.max()))
        _write_samples(samples_dir, "real", real_logmel, real_audio, ref.spec.sample_rate, e.report_audio,
                       f"evaluation clips (audio: {vocoder.describe()})", scale)
        bar.advance(task)
        rows = []
        controls_check: dict[str, Any] = {"mode": e.controls, "failures": []}
        if e.controls != "off":
            bar.update(task, info="controls")
            for row, logmel in score_controls(ref, store, n, cfg.seed):
                save_embedding(tmp / "embeddings", row)
                if row["status"] == "ok":
                    row.update(verdict(row["metrics"], floor, gate_settings))
                save_mel_grid(logmel[:GRID_CLIPS], samples_dir / f"{row['name']}.png",
                              title=f"{row['name']} (a control: no model)", floor=scale[0], top=scale[1])
                rows.append(row)
            failures = controls_check["failures"] = control_failures(rows, floor, gate_settings)
            if failures and e.controls == "enforce":
                atomic_write_json(paths.state / "evaluation-controls.json", {"floor": floor, "controls": rows})
                raise RuntimeError("the evaluation ruler failed its controls, so none of its verdicts can be trusted: "
                                   + " | ".join(failures) + f" (measured: {paths.state / 'evaluation-controls.json'})")
        bar.advance(task)
        generators: dict[str, Generator] = {}
        for entry in plan:
            bar.update(task, info=f"{entry['name']} ({entry['steps']} steps)")
            folder = entry["folder"]
            if folder not in generators:
                generators[folder] = load_generator(paths.models / folder / MODEL_FILE, device, vocoder=vocoder)
            gen = generators[folder]
            # the same seed for every model: differences are the models', not the draw's
            row, logmel, audio = score_generator(ref, gen, samples=e.samples, steps=entry["steps"], seed=cfg.seed + 2)
            row = {"name": entry["name"], "model": folder, "kind": entry["kind"], "family": entry["family"],
                   "steps": entry["steps"], "network_evaluations": gen.network_evaluations(entry["steps"]), **row}
            save_embedding(tmp / "embeddings", row)
            if row["status"] == "ok":
                row.update(verdict(row["metrics"], floor, gate_settings))
                row.update(gen.real_time_factor(clips=e.rtf_clips, steps=entry["steps"], repeats=1))
                how = family(entry["family"]).sampling(entry["steps"])
                _write_samples(samples_dir, entry["name"], logmel, audio, gen.sample_rate, e.report_audio,
                               f"{entry['name']}: {how}", scale)
            rows.append(row)
            bar.advance(task)
        served = choose_served(rows, cfg.registry.primary_metric, cfg.registry.serve_tolerance,
                               cfg.registry.serve_min_level_in_range)
        results = {"primary_metric": cfg.registry.primary_metric, "samples": e.samples, "real_clips": len(store),
                   "split": {"train_clips": int(len(ref.rows(TRAIN))), "eval_clips": int(len(eval_rows)),
                             "fraction": e.fraction, "cells": len(set(ref.cells))},
                   "matched_sizes": {"generated": n, "real": int(len(eval_rows))}, "floor_subsets": e.floor_subsets,
                   "imq_gamma2": ref.gamma2, "bootstrap": e.bootstrap, "device": device, "served": served,
                   "gate": asdict(gate_settings), "controls": controls_check, "signal_range": ref.ruler_for(n).signal_range(),
                   "vocoder": {**vocoder_report(paths), "kind": vocoder.kind, "description": vocoder.describe()},
                   "classifier": {"holdout_accuracy": ref.classifier.holdout_accuracy,
                                  "train_examples": ref.classifier.train_examples,
                                  "holdout_examples": ref.classifier.holdout_examples,
                                  "labels": list(ref.classifier.vocabularies)},
                   "floor": floor, "models": rows}
        atomic_write_json(tmp / "metrics.json", results)
        table = steps_table(rows, floor)
        table.to_csv(tmp / "steps_vs_quality.csv", index=False)
        plot = plot_steps_vs_quality(rows, floor, tmp / "steps_vs_quality.png")
        compute_plot = plot_quality_vs_compute(rows, floor, tmp / "quality_vs_compute.png")
        write_html(tmp / "report.html", results=results, plot=plot, sample_dir=samples_dir, compute_plot=compute_plot)
    summary = flat_summary(results)
    summary["evaluate_seconds"] = round(time.perf_counter() - started, 2)
    return summary


def vocoder_report(paths: ProjectPaths) -> dict[str, Any]:
    """The vocoder stage's side-by-side scores on held-out clips (learned vs Griffin-Lim), if it ran."""
    path = vocoder_dir(paths.models) / EVALUATION_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def steps_table(rows: list[dict[str, Any]], floor: dict[str, dict[str, float]]) -> pd.DataFrame:
    """The leaderboard: one row per (model, steps) across families and every control, with
    value/low/high columns per metric, its ratio to the floor, network evaluations and RTF; then the
    floor (n training clips vs the evaluation set)."""
    records = []
    for r in [*rows, {"name": "floor", "kind": "floor", "steps": None, "status": "ok", "metrics": floor}]:
        rec = {"name": r["name"], "kind": r["kind"], "family": r.get("family"), "steps": r["steps"],
               "network_evaluations": r.get("network_evaluations"), "status": r["status"],
               "rtf": r.get("rtf"), "rtf_mel": r.get("rtf_mel")}
        for metric, m in r["metrics"].items():
            rec.update({metric: m["value"], f"{metric}_low": m["low"], f"{metric}_high": m["high"]})
            if metric in r.get("floor_ratios", {}):
                rec[f"{metric}_vs_real"] = r["floor_ratios"][metric]
        records.append(rec)
    return pd.DataFrame.from_records(records)


def flat_summary(results: dict[str, Any]) -> dict[str, Any]:
    """What `dvc metrics show` and the MLflow stage run get: flat numbers per model."""
    primary = results["primary_metric"]
    out: dict[str, Any] = {"primary_metric": primary, "served_model": results["served"]["model"],
                           "served_steps": results["served"]["steps"],
                           "served_family": results["served"].get("family", DIFFUSION), "samples_per_model": results["samples"],
                           "real_clips": results["real_clips"]}
    for label, acc in results["classifier"]["holdout_accuracy"].items():
        out[f"classifier_accuracy_{label}"] = acc
    for metric, m in results["floor"].items():
        out[f"floor.{metric}"] = m["value"]
    vocoder = results.get("vocoder", {})
    out["vocoder"] = vocoder.get("kind", "griffinlim")
    out.update({f"vocoder.{key}": value for key, value in flat_scores(vocoder.get("scores", {})).items()})
    for r in results["models"]:
        key = r["name"].replace("@", "-")  # MLflow metric names allow no '@'
        for metric, m in r["metrics"].items():
            out[f"{key}.{metric}"] = m["value"]
        for metric, ratio in r.get("floor_ratios", {}).items():
            out[f"{key}.{metric}_floor_ratio"] = ratio
        if "verdict" in r:
            out[f"{key}.verdict"] = r["verdict"]
            out[f"{key}.gate_passes"] = r["gate"]["passes"]
        if (r["model"], r["steps"]) == (results["served"]["model"], results["served"]["steps"]):
            out["served_verdict"] = r.get("verdict", "not scored")
            out.update({f"served_{metric}_floor_ratio": ratio for metric, ratio in r.get("floor_ratios", {}).items()})
        if "rtf" in r:
            out[f"{key}.rtf"] = r["rtf"]
        out[f"{key}.ok"] = r["status"] == "ok"
    return out
