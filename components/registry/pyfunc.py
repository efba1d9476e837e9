"""The registered model: a plain ``mlflow.pyfunc`` model that generates audio, whatever its family
(diffusion: any length and step count; WaveGAN / SpecGAN: up to their clip length, one step).

    model = mlflow.pyfunc.load_model("models:/melforge-mel-diffusion@champion")
    audio = model.predict({"n": 8, "seed": 0})            # (8, samples) float32 in [-1, 1]
    audio = model.predict({"n": 2, "seed": 1, "seconds": 2.5, "steps": 4})
    model.metadata.metadata["sample_rate"]                  # 16000

The denoiser file inside carries the network spec, its config and the mel statistics; the learned
vocoder (when the pipeline served one) travels as a second artifact; the ``components`` package
travels with the model as code, so loading needs no melforge install.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

DENOISER_ARTIFACT = "denoiser"
VOCODER_ARTIFACT = "vocoder"  # absent: the model is served with Griffin-Lim


def _requests(model_input: Any) -> list[dict[str, Any]]:
    if isinstance(model_input, pd.DataFrame):
        records = model_input.to_dict("records")
    elif isinstance(model_input, dict):
        records = [model_input]
    elif isinstance(model_input, list):
        records = list(model_input)
    else:
        raise TypeError(f"expected a dict like {{'n': 8, 'seed': 0}}, a list of them or a DataFrame; "
                        f"got {type(model_input).__name__}")
    cleaned = []
    for rec in records:
        rec = {k: v for k, v in rec.items() if v is not None and not (isinstance(v, float) and np.isnan(v))}
        unknown = set(rec) - {"n", "seed", "seconds", "steps"}
        if unknown:
            raise ValueError(f"unknown request fields {sorted(unknown)}; allowed: n, seed, seconds, steps")
        cleaned.append(rec)
    return cleaned


class MelDiffusionModel(mlflow.pyfunc.PythonModel):
    """Request rows ``{n, seed, seconds?, steps?}`` -> an (total clips, samples) audio array."""

    def load_context(self, context) -> None:
        import torch

        from components.families import load_generator
        from components.vocoder.interface import load_vocoder

        device = "cuda" if torch.cuda.is_available() else "cpu"
        vocoder = load_vocoder(context.artifacts[VOCODER_ARTIFACT], device) if VOCODER_ARTIFACT in context.artifacts else None
        self.generator = load_generator(context.artifacts[DENOISER_ARTIFACT], device, vocoder=vocoder)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        """Served requests arrive as a DataFrame (the model's explicit signature); a dict or a list
        of dicts works too when called directly. The DataFrame hint tells MLflow to validate with
        the signature instead of inferring a schema from the hint."""
        gen = self.generator
        clips = []
        for rec in _requests(model_input):
            n, seed = int(rec.get("n", 1)), int(rec.get("seed", 0))
            seconds = float(rec["seconds"]) if "seconds" in rec else None
            steps = int(rec["steps"]) if "steps" in rec else None
            clips.append(gen.generate(n, seed, seconds=seconds, steps=steps))
        lengths = {c.shape[1] for c in clips}
        if len(lengths) > 1:
            raise ValueError("all requests in one call must ask for the same seconds")
        return np.concatenate(clips)


# MLflow "models from code": log_model(python_model=<this file>) loads the model by running this
# module, so no pickled object is stored.
mlflow.models.set_model(MelDiffusionModel())
