"""What people look at after an evaluation: the steps-vs-quality plot and a self-contained HTML
report (metrics table, plot, spectrogram grids, audio players), one file that opens anywhere,
including MLflow's artifact viewer."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from components.evaluate.quality import lower_is_better


def _fmt(m: dict[str, float] | None) -> str:
    if not m or not np.isfinite(m.get("value", np.nan)):
        return "—"
    return f"{m['value']:.4g} [{m['low']:.4g}, {m['high']:.4g}]"


def plot_metrics(metric_names: list[str]) -> list[str]:
    """The metrics worth a panel: classifier FAD / KID (IMQ), the first IS, CREPE FAD when present."""
    picks = [m for m in ("fad_classifier", "kid_imq_classifier") if m in metric_names]
    picks += [m for m in metric_names if m.startswith("is_")][:1]
    picks += [m for m in ("fad_crepe",) if m in metric_names]
    return picks


GAN_MARKERS = {"wavegan": "^", "specgan": "v"}
GAN_COLOURS = {"wavegan": "tab:green", "specgan": "tab:red"}


def _yerr(m: dict[str, float]) -> list[list[float]]:
    """matplotlib's asymmetric error bar for one point with a 95% interval."""
    return [[max(0.0, m["value"] - m["low"])], [max(0.0, m["high"] - m["value"])]]


def _finish_panel(ax, name: str, floor: dict[str, dict[str, float]], xlabel: str) -> None:
    ax.axhline(floor[name]["value"], color="grey", ls="--", lw=1, label="real vs real")
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
        for r in rows:
            if r["kind"] == "gan" and r["status"] == "ok" and name in r["metrics"]:
                ax.errorbar([r["steps"]], [r["metrics"][name]["value"]], yerr=_yerr(r["metrics"][name]),
                            marker=GAN_MARKERS.get(r["family"], "D"), color=GAN_COLOURS.get(r["family"], "tab:red"),
                            capsize=3, ls="none", label=f"{r['name']} (GAN)")
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
            colour, marker = (GAN_COLOURS.get(r["family"], "tab:red"), GAN_MARKERS.get(r["family"], "D")) \
                if r["kind"] == "gan" else styles[r["kind"]]
            group = r["family"] if r["kind"] == "gan" else f"diffusion {r['kind']}"
            m = r["metrics"][name]
            ax.errorbar([r["rtf"]], [m["value"]], yerr=_yerr(m), color=colour, marker=marker, capsize=3, ls="none",
                        label=None if group in labelled else group)
            labelled.add(group)
            ax.annotate(r["name"], (r["rtf"], m["value"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: minor ones overlap
        _finish_panel(ax, name, floor, "seconds of compute per second of audio (RTF)")
    return _save_figure(fig, axes, path)


def _img(path: Path, *, photo: bool = False) -> str:
    """Embedded image; spectrogram grids (noisy, photo-like) as JPEG, ~10x smaller than PNG."""
    if photo:
        from PIL import Image

        buffer = io.BytesIO()
        Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=80)
        data, mime = base64.b64encode(buffer.getvalue()).decode(), "image/jpeg"
    else:
        data, mime = base64.b64encode(path.read_bytes()).decode(), "image/png"
    return f'<img src="data:{mime};base64,{data}" alt="{html.escape(path.name)}" style="max-width:100%">'


def _audio(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<audio controls preload="none" src="data:audio/wav;base64,{data}"></audio>'


def vocoder_section(vocoder: dict[str, Any]) -> str:
    """The vocoder table: learned vs Griffin-Lim on the same held-out real clips, with 95% intervals."""
    scores = vocoder.get("scores")
    if not scores:
        return ""
    esc = html.escape

    def cell(m: dict[str, float]) -> str:
        return f"{m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"

    body = "".join(f"<tr><td>{esc(name)}{' ★' if s['kind'] == vocoder.get('kind') == 'learned' else ''}</td>"
                   f"<td>{cell(s['sc_db'])}</td><td>{cell(s['logmel_l1'])}</td><td>{cell(s['mrstft'])}</td>"
                   f"<td>{s['rtf']:.4g}</td></tr>" for name, s in scores.items())
    ratios = "; ".join(f"vs {esc(b)}: {r['sc_db_gain']:+.1f} dB SC, log-mel L1 {r['logmel_l1_reduction']:+.0%} lower, "
                       f"{r['speedup']:.1f}x faster" for b, r in vocoder.get("learned_vs", {}).items())
    return f"""<h2>Vocoder</h2><p>{vocoder.get('held_out_clips', '?')} held-out real clips (never trained on), each
vocoder given the same log-mels; lower is better everywhere. Spectral convergence: mel magnitudes of the vocoded
audio against the clip's (dB). Log-mel L1: after re-analysing the vocoded audio. MR-STFT: distance to the original
waveform. RTF: seconds of compute per second of audio. {f"Learned {esc(ratios)}. " if ratios else ""}Served: {esc(vocoder.get('description', ''))}.</p>
<table><tr><th>vocoder</th><th>spectral convergence (dB)</th><th>log-mel L1</th><th>MR-STFT</th><th>RTF</th></tr>{body}</table>"""


def write_html(path: Path, *, results: dict[str, Any], plot: Path, sample_dir: Path, compute_plot: Path | None = None) -> Path:
    """The report: summary, the leaderboard across families with intervals, the steps and compute
    plots, per-model grids and audio."""
    rows, floor = results["models"], results["real_vs_real"]
    names = list(floor)
    primary = results["primary_metric"]
    esc = html.escape
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    body = []
    for r in rows:
        served = " ★" if r["name"] == results["served"]["model"] else ""
        cells = "".join(f"<td>{_fmt(r['metrics'].get(n))}</td>" for n in names)
        body.append(f"<tr><td>{esc(r['name'])}{served}</td><td>{esc(r.get('family', 'diffusion'))}</td>"
                    f"<td>{r.get('network_evaluations', r['steps'])}</td><td>{esc(r['status'])}</td>"
                    f"<td>{esc(r.get('verdict', r.get('error', '')))}</td>{cells}"
                    f"<td>{r.get('rtf', float('nan')):.3g}</td></tr>")
    floor_cells = "".join(f"<td>{_fmt(floor[n])}</td>" for n in names)
    body.append(f"<tr class='floor'><td>real vs real</td><td></td><td></td><td>floor</td><td></td>{floor_cells}<td></td></tr>")
    accuracy = ", ".join(f"{k}: {v:.3f}" for k, v in results["classifier"]["holdout_accuracy"].items())
    sizes = results.get("matched_sizes", {"generated": results["samples"], "real": results["real_clips"]})
    gammas = ", ".join(f"{k} {v:.4g}" for k, v in results.get("imq_gamma2", {}).items()) or "fixed"
    vocoder = results.get("vocoder", {})
    sections = []
    for r in rows:
        grid = sample_dir / f"{r['name']}.png"
        players = "".join(_audio(p) for p in sorted(sample_dir.glob(f"{r['name']}-*.wav")))
        if grid.is_file():
            how = "one network evaluation (GAN)" if r.get("kind") == "gan" else f"{r['steps']} steps"
            sections.append(f"<h3>{esc(r['name'])} — {how}</h3>{_img(grid, photo=True)}<div>{players}</div>")
    real_grid = sample_dir / "real.png"
    real_players = "".join(_audio(p) for p in sorted(sample_dir.glob("real-*.wav")))
    text = f"""<!doctype html><html><head><meta charset="utf-8"><title>melforge evaluation</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td:first-child{{text-align:left}}
tr.floor{{background:#f3f3f3;font-style:italic}}audio{{margin:4px;height:32px}}</style></head><body>
<h1>melforge evaluation</h1>
<p>{results['samples']} generated clips per model; {results['real_clips']} real clips, split by clip id into halves A
and B. FAD and KID compare {sizes['generated']} generated clips with the {sizes['real']} clips of half B; the
real-vs-real floor compares {sizes['generated']} clips of half A with half B, so model and floor are measured at
the same sample sizes (Fréchet distance grows as n shrinks). The Inception Score uses all generated clips; its
floor is the IS of as many real clips. KID's IMQ kernel uses γ² = {esc(gammas)} (half the median squared
distance between real embeddings unless set). Intervals: 95% bootstrap percentile intervals
({results['bootstrap']} resamples of both the generated and the real clips, recentred on the full-sample value;
KID's resamples never pair a clip with its own copy). They cover the sampling noise of this evaluation, not the
variation between training runs. "Distance from real" states the primary metric against the floor: FAD/KID as
a multiple of the floor, IS as a fraction of real. Real clips are passed through the same vocoder as
generated ones ({esc(vocoder.get('description', 'Griffin-Lim'))}) before the CREPE embedding. Classifier held-out accuracy: {esc(accuracy)}.</p>
<p><b>Served model</b> (the cheapest model of any family within {results['served']['tolerance']:.0%} of the best on
<code>{esc(primary)}</code>): <b>{esc(results['served']['model'])}</b> — {esc(results['served']['reason'])}</p>
<h2>Leaderboard</h2><table><tr><th>model</th><th>family</th><th>network evaluations per clip</th><th>status</th><th>distance from real ({esc(primary)})</th>{head}<th>RTF</th></tr>{''.join(body)}</table>
<p>Every family on the same ruler: the same real clips, sample count, seed, classifier, metrics and intervals.
Network evaluations: DDIM steps for the diffusion models, 1 for a GAN. RTF: seconds of compute (the network,
then the vocoder for mel models; WaveGAN makes audio directly) per second of audio on {esc(results['device'])};
below 1 is faster than real time.</p>
<h2>Quality vs sampling steps</h2>{_img(plot)}
{f"<h2>Quality vs compute</h2>{_img(compute_plot)}" if compute_plot is not None and compute_plot.is_file() else ""}
{vocoder_section(vocoder)}
<h2>Samples</h2><h3>real clips</h3>{_img(real_grid, photo=True) if real_grid.is_file() else ''}<div>{real_players}</div>
{''.join(sections)}
</body></html>"""
    path.write_text(text)
    return path
