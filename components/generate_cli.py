"""`melforge generate`: model reference -> WAV files (written atomically, with a JSON record)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from components.settings import ProjectPaths
from components.storage import atomic_write_bytes, atomic_write_json


class GenerationError(RuntimeError):
    """Why nothing was generated, phrased for the user."""


def _local_model(text: str) -> Path | None:
    path = Path(text)
    if path.is_dir() and (path / "model.pt").is_file():
        return path / "model.pt"
    if path.is_file() and path.suffix == ".pt":
        return path
    return None


def registry_name(paths: ProjectPaths) -> str:
    from components.config import ConfigError, load_config

    try:
        return load_config(paths.params).registry.model_name
    except ConfigError:
        from components.config import RegistryConfig

        return RegistryConfig().model_name


def generate_to_folder(paths: ProjectPaths, model: str, *, n: int, seconds: float | None, seed: int,
                       steps: int | None, out: Path) -> tuple[list[Path], str]:
    local = _local_model(model)
    if local is not None:
        from components.generation import MelGenerator

        gen = MelGenerator.load(local)
        audio, rate, source = gen.generate(n, seed, seconds=seconds, steps=steps), gen.sample_rate, str(local)
    else:
        audio, rate, source = _from_registry(paths, model, n=n, seconds=seconds, seed=seed, steps=steps)
    out.mkdir(parents=True, exist_ok=True)
    import soundfile as sf

    written = []
    for k, clip in enumerate(np.asarray(audio, np.float32)):
        buffer = io.BytesIO()
        sf.write(buffer, clip, rate, format="WAV", subtype="PCM_16")
        path = out / f"melforge-seed{seed}-{k:03d}.wav"
        atomic_write_bytes(path, buffer.getvalue())
        written.append(path)
    atomic_write_json(out / f"melforge-seed{seed}.json", {
        "model": source, "count": n, "seed": seed, "seconds": seconds, "steps": steps, "sample_rate": rate,
        "files": [p.name for p in written]})
    return written, source


def _from_registry(paths: ProjectPaths, model: str, *, n: int, seconds: float | None, seed: int,
                   steps: int | None) -> tuple[np.ndarray, int, str]:
    import mlflow

    from components.registry.lookup import RUN_ID, ModelNotFound, resolve

    name = registry_name(paths)
    client = mlflow.MlflowClient()
    text = model
    if not ("/" in model or "@" in model or model.isdigit() or RUN_ID.match(model)):
        # a plain word: a registered model's name, or else an alias of registry.model_name
        text = model if client.search_registered_models(f"name = '{model}'") else f"{name}@{model}"
    try:
        resolved = resolve(client, text, default_name=name)
    except ModelNotFound as exc:
        raise GenerationError(f"{model}: {exc}") from None
    pyfunc = mlflow.pyfunc.load_model(resolved.uri)
    request = {"n": n, "seed": seed}
    if seconds is not None:
        request["seconds"] = seconds
    if steps is not None:
        request["steps"] = steps
    audio = pyfunc.predict(request)
    rate = int(pyfunc.metadata.metadata["sample_rate"])
    return audio, rate, resolved.uri + (f" (version {resolved.version})" if resolved.version else "")
