"""`melforge generate`: model reference -> WAV files (written atomically, with a JSON record)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from components.settings import ProjectPaths
from components.storage import atomic_write_bytes, atomic_write_json


MAX_SECONDS = 300.0  # per clip: a typo like 1e9 would otherwise ask for terabytes
MAX_TOTAL_SECONDS = 3600.0  # clips x seconds in one call
MAX_COUNT = 256


class GenerationError(RuntimeError):
    """Why nothing was generated, phrased for the user."""


def request_problem(n: int, seconds: float | None) -> str | None:
    """What is wrong with a request's size (checked before any model is loaded), or None."""
    if seconds is not None and not 0 < seconds <= MAX_SECONDS:
        return f"--seconds must be > 0 and at most {MAX_SECONDS:g} (one clip), got {seconds:g}"
    if seconds is not None and n * seconds > MAX_TOTAL_SECONDS:
        return (f"--count {n} x --seconds {seconds:g} = {n * seconds:g} s of audio; at most {MAX_TOTAL_SECONDS:g} s "
                "per call (generate in several calls with different --seed)")
    return None


def out_problem(out: Path) -> str | None:
    """Why WAV files could not be written into ``out`` (checked before generating), or None."""
    if out.exists():
        if not out.is_dir():
            return "exists and is not a folder"
        target = out
    else:
        target = next(p for p in out.absolute().parents if p.exists())
        if not target.is_dir():
            return f"cannot be created: {target} is not a folder"
    if not os.access(target, os.W_OK | os.X_OK):
        return f"{target} is not writable (permissions or a read-only file system)"
    return None


def local_model(text: str) -> Path | None:
    path = Path(text)
    if path.is_dir() and (path / "model.pt").is_file():
        return path / "model.pt"
    if path.is_file() and path.suffix == ".pt":
        return path
    return None


def registry_name(paths: ProjectPaths | None) -> str:
    from components.config_base import ConfigError
    from components.params_file import load_config

    try:
        if paths is None:
            raise ConfigError("no project")
        return load_config(paths.params).registry.model_name
    except ConfigError:
        from components.config import RegistryConfig

        return RegistryConfig().model_name


def local_vocoder(paths: ProjectPaths | None, choice: str | None):
    """The vocoder for a local model: ``choice`` ('griffinlim' or a vocoder folder / file), else the
    project's ``vocoder.kind``; None means Griffin-Lim."""
    from components.vocoder.interface import VOCODER_FILE, VocoderMismatch, load_vocoder, workspace_vocoder_file

    if choice == "griffinlim":
        return None
    if choice is not None:
        path = Path(choice)
        path = path / VOCODER_FILE if path.is_dir() else path
    elif paths is not None and paths.params.is_file():
        from components.config_base import ConfigError
        from components.params_file import load_config

        try:
            if load_config(paths.params).vocoder.kind != "learned":
                return None
        except ConfigError as exc:
            raise GenerationError(str(exc)) from None
        path = workspace_vocoder_file(paths)
    else:
        return None
    try:
        return load_vocoder(path)
    except (FileNotFoundError, VocoderMismatch) as exc:
        raise GenerationError(f"vocoder: {exc}") from None


def generate_to_folder(paths: ProjectPaths | None, model: str, *, n: int, seconds: float | None, seed: int,
                       steps: int | None, out: Path, vocoder: str | None = None) -> tuple[list[Path], str]:
    local = local_model(model)
    if local is not None:
        from components.families import load_generator
        from components.vocoder.interface import VocoderMismatch

        try:
            gen = load_generator(local, vocoder=local_vocoder(paths, vocoder))
        except VocoderMismatch as exc:
            raise GenerationError(f"{local}: {exc}") from None
        try:
            audio, rate, source = gen.generate(n, seed, seconds=seconds, steps=steps), gen.sample_rate, str(local)
        except ValueError as exc:  # e.g. longer than a GAN's fixed clip, or steps for a GAN
            raise GenerationError(f"{local}: {exc}") from None
        used = {"model": local.parent.name if local.name.endswith(".pt") else local.name, "family": gen.family,
                "registered": None, "version": None, "alias": None,
                "steps": gen.steps_for(steps),
                "vocoder": gen.active_vocoder.describe() if gen.uses_vocoder else "none (makes waveforms)"}
    else:
        if vocoder is not None:
            raise GenerationError("--vocoder applies to a local model; a registered model uses the vocoder it was registered with")
        audio, rate, source, used = _from_registry(paths, model, n=n, seconds=seconds, seed=seed, steps=steps)
    out.mkdir(parents=True, exist_ok=True)
    import soundfile as sf

    written = []
    for k, clip in enumerate(np.asarray(audio, np.float32)):
        buffer = io.BytesIO()
        sf.write(buffer, clip, rate, format="WAV", subtype="PCM_16")
        path = out / f"melforge-seed{seed}-{k:03d}.wav"
        atomic_write_bytes(path, buffer.getvalue())
        written.append(path)
    # what made these clips: the model, its registered name, version and the alias resolved, the steps
    # and the vocoder actually used (not the options as typed)
    atomic_write_json(out / f"melforge-seed{seed}.json", {
        "source": source, **used, "count": n, "seed": seed, "seconds": seconds, "sample_rate": rate,
        "files": [p.name for p in written]})
    return written, source


def _resolve(client, paths: ProjectPaths | None, model: str):
    """(the text resolved, the registry's answer): a plain word is a registered model's name, or else an
    alias of registry.model_name."""
    from components.registry.lookup import RUN_ID, ModelNotFound, quoted, resolve

    name = registry_name(paths)
    text = model
    if not ("/" in model or "@" in model or model.isdigit() or RUN_ID.match(model)):
        text = model if client.search_registered_models(f"name = {quoted(model)}") else f"{name}@{model}"
    try:
        return text, resolve(client, text, default_name=name)
    except ModelNotFound as exc:
        raise GenerationError(f"{model}: {exc}") from None


def _from_registry(paths: ProjectPaths | None, model: str, *, n: int, seconds: float | None, seed: int,
                   steps: int | None) -> tuple[np.ndarray, int, str, dict[str, Any]]:
    import mlflow

    from components.tracking import environment_client

    client = environment_client()
    text, resolved = _resolve(client, paths, model)
    with tempfile.TemporaryDirectory(prefix="melforge-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=resolved.uri, dst_path=tmp)
        if resolved.version is not None:
            verify_model_file(client.get_model_version(resolved.name, resolved.version), Path(local))
        pyfunc = mlflow.pyfunc.load_model(local)
    request = {"n": n, "seed": seed, **({"seconds": seconds} if seconds is not None else {}),
               **({"steps": steps} if steps is not None else {})}
    try:
        audio = pyfunc.predict(request)
    except ValueError as exc:  # e.g. longer than a GAN's fixed clip, or steps for a GAN
        raise GenerationError(f"{model}: {exc}") from None
    from components.registry.publish import VOCODER_HASH_TAG

    meta = pyfunc.metadata.metadata
    tags = client.get_model_version(resolved.name, resolved.version).tags if resolved.version else {}
    from components.families import family
    from components.gan import DIFFUSION

    row = family(tags.get("melforge.family", DIFFUSION))
    used = {"model": meta.get("melforge_model"), "family": row.name, "registered": resolved.name,
            "version": resolved.version, "alias": text.rpartition("@")[2] if "@" in text else None,
            "steps": 1 if row.one_shot else (steps or int(meta["sampling_steps"])),
            "vocoder": "none (makes waveforms)" if not row.generator.uses_vocoder else
                       "Griffin-Lim" if tags.get(VOCODER_HASH_TAG, "none") == "none" else
                       f"learned vocoder registered with the model (sha256 {tags[VOCODER_HASH_TAG][:12]})"}
    return audio, int(meta["sample_rate"]), resolved.uri + (f" (version {resolved.version})" if resolved.version else ""), used


def verify_model_file(version, model_path: Path) -> None:
    """Refuse a registered model whose weights files (the denoiser, and the learned vocoder when it
    has one) differ from the ones registered (their SHA-256s are version tags, kept in the tracking
    database, apart from the artifact store)."""
    from components.models.io import MODEL_FILE
    from components.registry.publish import MODEL_HASH_TAG, VOCODER_HASH_TAG
    from components.vocoder.interface import VOCODER_FILE

    _check_hash(version, model_path, MODEL_FILE, version.tags.get(MODEL_HASH_TAG))
    vocoder_hash = version.tags.get(VOCODER_HASH_TAG)
    _check_hash(version, model_path, VOCODER_FILE, vocoder_hash if vocoder_hash != "none" else None)


def _check_hash(version, model_path: Path, file_name: str, recorded: str | None) -> None:
    from components.provenance import file_sha256

    if recorded is None:
        return  # registered before the hash was recorded (or no such file): weights still load with weights_only
    found = sorted(model_path.rglob(file_name))
    if len(found) != 1:
        raise GenerationError(f"models:/{version.name}/{version.version}: expected one {file_name} in the model, "
                              f"found {len(found)}; refusing to load it")
    actual = file_sha256(found[0])
    if actual != recorded:
        raise GenerationError(f"models:/{version.name}/{version.version}: {file_name} has SHA-256 {actual[:16]}..., "
                              f"not the {recorded[:16]}... recorded at registration; the artifact store was modified "
                              "after registration: refusing to load it (see docs/operations.md, Security)")
