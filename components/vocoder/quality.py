"""Scoring a vocoder on real clips: how close its audio is to the clip the mel came from, and how fast.

Every vocoder gets the same held-out clips' log-mels and is scored side by side in one run:

- spectral convergence (dB): 20 log10(||M - M_hat||_F / ||M||_F) on mel magnitudes after
  re-analysing the vocoded audio (the round-trip measure the features stage reports);
- log-mel L1: mean |log mel(x) - log mel(x_hat)| after re-analysis;
- multi-resolution STFT distance to the original waveform (L_sc + L_mag, Parallel WaveGAN);
- real-time factor: seconds of compute per second of audio, best of ``repeats`` (below 1 is
  faster than real time).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from components.features.griffinlim import mel_spectral_convergence_db
from components.features.mel import LogMel, MelSpec
from components.vocoder.interface import Vocoder
from components.vocoder.losses import multi_resolution_stft

EVAL_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))


def mean_interval(values: np.ndarray) -> dict[str, float]:
    """Mean with a normal-approximation 95% interval over clips."""
    values = np.asarray(values, dtype=np.float64)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return {"value": float(values.mean()), "low": float(values.mean() - half), "high": float(values.mean() + half),
            "n": int(len(values))}


def reanalysed_l1(reference_logmel: np.ndarray, estimate_logmel: np.ndarray) -> np.ndarray:
    """Per clip mean |log mel(x) - log mel(vocoded)| over the frames both have."""
    frames = min(reference_logmel.shape[-1], estimate_logmel.shape[-1])
    diff = reference_logmel[..., :frames] - estimate_logmel[..., :frames]
    return np.abs(diff).reshape(len(diff), -1).mean(axis=1)


def mrstft_distance(reference_audio: np.ndarray, audio: np.ndarray,
                    resolutions: Sequence[tuple[int, int]] = EVAL_RESOLUTIONS) -> np.ndarray:
    """Per clip multi-resolution STFT distance over the samples both have."""
    length = min(reference_audio.shape[-1], audio.shape[-1])
    with torch.inference_mode():
        return multi_resolution_stft(torch.as_tensor(reference_audio[:, :length], dtype=torch.float32),
                                     torch.as_tensor(audio[:, :length], dtype=torch.float32), resolutions).numpy()


def vocode_timed(vocoder: Vocoder, logmel: np.ndarray, repeats: int) -> tuple[np.ndarray, float]:
    """The vocoder's audio and its best-of-``repeats`` wall time."""
    best, audio = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        audio = vocoder(logmel)
        best = min(best, time.perf_counter() - start)
    return audio, best


def score_vocoders(vocoders: dict[str, Vocoder], reference_audio: np.ndarray, spec: MelSpec, *,
                   repeats: int = 3) -> dict[str, dict[str, Any]]:
    """{name: {sc_db, logmel_l1, mrstft: mean/low/high/n, rtf, seconds}} for each vocoder on the same clips."""
    analyse = LogMel(spec)
    logmel = analyse(reference_audio).numpy()
    audio_seconds = len(reference_audio) * spec.hop_length * (logmel.shape[-1] - 1) / spec.sample_rate
    scores = {}
    for name, vocoder in vocoders.items():
        audio, seconds = vocode_timed(vocoder, logmel, repeats)
        reanalysed = analyse(audio).numpy()
        scores[name] = {
            "kind": vocoder.kind,
            "sc_db": mean_interval(mel_spectral_convergence_db(logmel, reanalysed)),
            "logmel_l1": mean_interval(reanalysed_l1(logmel, reanalysed)),
            "mrstft": mean_interval(mrstft_distance(reference_audio, audio)),
            "rtf": seconds / audio_seconds,
            "seconds": seconds,
        }
    return scores


def flat_scores(scores: dict[str, dict[str, Any]], versus: dict[str, dict[str, float]] | None = None) -> dict[str, float]:
    """Flat numbers for `dvc metrics show` and MLflow: <vocoder>.<measure>, learned_vs_<baseline>.<ratio>
    ('@' becomes '-': MLflow metric names allow no '@')."""
    out: dict[str, float] = {}
    for name, s in scores.items():
        key = name.replace("@", "-")
        out.update({f"{key}.sc_db": s["sc_db"]["value"], f"{key}.logmel_l1": s["logmel_l1"]["value"],
                    f"{key}.mrstft": s["mrstft"]["value"], f"{key}.rtf": s["rtf"]})
    for name, ratios in (versus or {}).items():
        out.update({f"learned_vs_{name.replace('@', '-')}.{k}": val for k, val in ratios.items()})
    return out


def comparison(scores: dict[str, dict[str, Any]], learned: str, baseline: str) -> dict[str, float]:
    """The learned vocoder against a baseline: dB gained, relative L1 / MR-STFT drop, speed-up."""
    a, b = scores[learned], scores[baseline]
    return {"sc_db_gain": b["sc_db"]["value"] - a["sc_db"]["value"],
            "logmel_l1_reduction": 1.0 - a["logmel_l1"]["value"] / b["logmel_l1"]["value"],
            "mrstft_reduction": 1.0 - a["mrstft"]["value"] / b["mrstft"]["value"],
            "speedup": b["rtf"] / a["rtf"]}
