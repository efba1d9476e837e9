"""What people look at after an evaluation: the steps-vs-quality plot and a self-contained HTML
report (metrics table, plot, spectrogram grids, audio players), one file that opens anywhere,
including MLflow's artifact viewer."""

from __future__ import annotations

import base64
import functools
import io
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup

from components.families import FAMILIES, family
from components.metric_table import METRICS, lower_is_better, metric_info


def _fmt(m: dict[str, float] | None) -> str:
    if not m or not np.isfinite(m.get("value", np.nan)):
        return "—"
    return f"{m['value']:.4g} [{m['low']:.4g}, {m['high']:.4g}]"


def plot_metrics(metric_names: list[str]) -> list[str]:
    """The metrics worth a panel: classifier FAD / KID (IMQ), the first IS, CREPE FAD when present."""
    picks = [m for m in ("fad_classifier", "fadinf_classifier", "coverage_classifier") if m in metric_names]
    picks += [m for m in metric_names if metric_info(m).prefix == "is"][:1]
    picks += [m for m in ("fad_crepe",) if m in metric_names]
    return picks


def ordered_metrics(names) -> list[str]:
    """Metric names in the metric table's order (distances, IS, fidelity/diversity, memorisation, signal)."""
    rank = {m.prefix: i for i, m in enumerate(METRICS)}
    return sorted(set(names), key=lambda n: (rank[metric_info(n).prefix], n))




def _yerr(m: dict[str, float]) -> list[list[float]]:
    """matplotlib's asymmetric error bar for one point with a 95% interval."""
    return [[max(0.0, m["value"] - m["low"])], [max(0.0, m["high"] - m["value"])]]


def _finish_panel(ax, name: str, floor: dict[str, dict[str, float]], xlabel: str) -> None:
    ax.axhline(floor[name]["value"], color="grey", ls="--", lw=1, label="floor (training clips)")
    ax.set_xlabel(xlabel)
    ax.set_title(f"{name} ({'lower' if lower_is_better(name) else 'higher'} is better)", fontsize=9)
    ax.grid(alpha=0.3)


def _save_figure(fig, axes, path: Path) -> Path:
    import matplotlib.pyplot as plt

    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _one_shot(row: dict[str, Any]) -> bool:
    """Whether an evaluation row is of a one-step family (the family table says; controls are of none)."""
    return any(f.one_shot and f.name == row.get("family") for f in FAMILIES)


def _one_shot_points(ax: Any, rows: list[dict[str, Any]], name: str) -> None:
    """The one-step families (the GANs) as single points, each in its family's style."""
    for r in rows:
        if _one_shot(r) and r["status"] == "ok" and name in r["metrics"]:
            ax.errorbar([r["steps"]], [r["metrics"][name]["value"]], yerr=_yerr(r["metrics"][name]),
                        marker=family(r["family"]).marker, color=family(r["family"]).colour,
                        capsize=3, ls="none", label=f"{r['name']} ({family(r['family']).label})")


def plot_steps_vs_quality(rows: list[dict[str, Any]], floor: dict[str, dict[str, float]], path: Path) -> Path:
    """One panel per metric: value vs sampling steps (log2 axis) with 95% intervals, the teacher at
    each step count beside the distilled students and the GANs (one step), the real-vs-real floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = plot_metrics(list(floor))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        for kind, colour, marker in (("teacher", "tab:blue", "o"), ("student", "tab:orange", "s")):
            points = sorted((r["steps"], r["metrics"][name]) for r in rows
                            if r["kind"] == kind and r["status"] == "ok" and name in r["metrics"])
            if not points:
                continue
            steps = np.array([p[0] for p in points])
            value = np.array([p[1]["value"] for p in points])
            err = np.array([[p[1]["value"] - p[1]["low"] for p in points], [p[1]["high"] - p[1]["value"] for p in points]])
            ax.errorbar(steps, value, yerr=np.clip(err, 0, None), color=colour, marker=marker, capsize=3,
                        label="teacher (DDIM)" if kind == "teacher" else "distilled students")
        _one_shot_points(ax, rows, name)
        ax.set_xscale("log", base=2)
        _finish_panel(ax, name, floor, "sampling steps (network evaluations per clip)")
    return _save_figure(fig, axes, path)


def plot_quality_vs_compute(rows: list[dict[str, Any]], floor: dict[str, dict[str, float]], path: Path) -> Path:
    """One panel per metric: value (95% interval) against seconds of compute per second of audio
    (RTF, log axis) for every model of every family, each point named; the floor dashed. Lower-left
    (distances) or upper-left (IS) is better: the same quality for less compute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    names = plot_metrics(list(floor))
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.8), squeeze=False)
    styles = {"teacher": ("tab:blue", "o"), "student": ("tab:orange", "s")}
    for ax, name in zip(axes[0], names):
        labelled: set[str] = set()
        for r in rows:
            if r["status"] != "ok" or name not in r["metrics"] or "rtf" not in r:
                continue
            colour, marker = (family(r["family"]).colour, family(r["family"]).marker) \
                if _one_shot(r) else styles[r["kind"]]
            group = r["family"] if _one_shot(r) else f"diffusion {r['kind']}"
            m = r["metrics"][name]
            ax.errorbar([r["rtf"]], [m["value"]], yerr=_yerr(m), color=colour, marker=marker, capsize=3, ls="none",
                        label=None if group in labelled else group)
            labelled.add(group)
            ax.annotate(r["name"], (r["rtf"], m["value"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: minor ones overlap
        _finish_panel(ax, name, floor, "seconds of compute per second of audio (RTF)")
    return _save_figure(fig, axes, path)


def _img(path: Path, *, photo: bool = False) -> Markup:
    """Embedded image; spectrogram grids (noisy, photo-like) as JPEG, ~10x smaller than PNG."""
    if photo:
        from PIL import Image

        buffer = io.BytesIO()
        Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=80)
        data, mime = base64.b64encode(buffer.getvalue()).decode(), "image/jpeg"
    else:
        data, mime = base64.b64encode(path.read_bytes()).decode(), "image/png"
    return Markup('<img src="data:{};base64,{}" alt="{}" style="max-width:100%">').format(mime, data, path.name)


def _audio(path: Path) -> Markup:
    """An embedded player captioned with its clip's name (``student-4-0.wav`` -> "student-4, clip 1")."""
    data = base64.b64encode(path.read_bytes()).decode()
    name, _, index = path.stem.rpartition("-")
    label = f"{name}, clip {int(index) + 1}" if index.isdigit() and name else path.stem
    return Markup('<figure><figcaption>{}</figcaption><audio controls preload="none" aria-label="{}" '
                  'src="data:audio/wav;base64,{}"></audio></figure>').format(label, label, data)


def _interval(m: dict[str, float] | None, decimals: int | None = None) -> str:
    """value [low, high]: 4 significant digits, or ``decimals`` fixed ones."""
    if decimals is None:
        return _fmt(m)
    return f"{m['value']:.{decimals}f} [{m['low']:.{decimals}f}, {m['high']:.{decimals}f}]"


def _percent(value: float, signed: bool = False) -> str:
    return f"{value:+.0%}" if signed else f"{value:.0%}"


@functools.cache
def _environment():
    """The report templates (``templates/``), every value HTML-escaped."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("components.evaluate", "templates"), autoescape=select_autoescape(["j2"]),
                      undefined=StrictUndefined, trim_blocks=False)
    env.filters.update(image=_img, audio=_audio, interval=_interval, percent=_percent)
    return env


def vocoder_section(vocoder: dict[str, Any]) -> str:
    """The vocoder table: learned vs Griffin-Lim on the same held-out real clips, with 95% intervals."""
    return str(_environment().get_template("vocoder.html.j2").module.vocoder_section(_Lenient(vocoder))).strip()


def _model_sections(rows: list[dict[str, Any]], sample_dir: Path) -> list[dict[str, Any]]:
    """Each model with a spectrogram grid: the grid, its audio players and how its clips were made."""
    return [{"name": r["name"], "grid": sample_dir / f"{r['name']}.png",
             "audio": sorted(sample_dir.glob(f"{r['name']}-*.wav")),
             "how": f"one network evaluation ({family(r['family']).label})" if _one_shot(r) else f"{r['steps']} steps"}
            for r in rows if (sample_dir / f"{r['name']}.png").is_file()]


def _signal_rows(results: dict[str, Any], floor: dict[str, Any]) -> list[dict[str, Any]]:
    """The signal statistics' table: each with the evaluation clips' range, then the shares in range."""
    ranges = results.get("signal_range", {})
    return [{"name": n, "label": metric_info(n).label, "range": rng, "floor": floor.get(n)} for n, rng in ranges.items()] \
        + [{"name": n, "label": metric_info(n).label, "range": None, "floor": floor[n]}
           for n in ("level_in_range", "voiced_in_range") if n in floor and ranges]


def write_html(path: Path, *, results: dict[str, Any], plot: Path, sample_dir: Path, compute_plot: Path | None = None) -> Path:
    """The report: summary, the leaderboard across families with intervals, the steps and compute
    plots, per-model grids and audio."""
    rows, floor = results["models"], results["floor"]
    real_grid = sample_dir / "real.png"
    text = _environment().get_template("report.html.j2").render(
        results=results, rows=[_Lenient(r) for r in rows], floor=floor, primary=results["primary_metric"],
        names=ordered_metrics([n for r in rows for n in r["metrics"]] + list(floor)),
        signal=_signal_rows(results, floor), sizes=results["matched_sizes"], split=results["split"],
        gammas=", ".join(f"{k} {v:.4g}" for k, v in results.get("imq_gamma2", {}).items()) or "fixed",
        accuracy=", ".join(f"{k}: {v:.3f}" for k, v in results["classifier"]["holdout_accuracy"].items()),
        vocoder=_Lenient(results.get("vocoder", {})), plot=plot,
        compute_plot=compute_plot if compute_plot is not None and compute_plot.is_file() else None,
        real_grid=real_grid if real_grid.is_file() else None, real_audio=sorted(sample_dir.glob("real-*.wav")),
        sections=_model_sections(rows, sample_dir), nan=float("nan"))
    path.write_text(text)
    return path


class _Lenient(dict):
    """A row or section whose missing keys read as None in the template (optional fields), while a
    typo in the template itself still fails (StrictUndefined)."""

    def __getattr__(self, key: str) -> Any:
        return self.get(key)
