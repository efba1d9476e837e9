"""Finding a registered model from what a user types, with errors that list what exists.

Accepted: ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``<name>@<alias>``,
``<name>/<version>``, a bare version number (of ``registry.model_name``), ``runs:/<run id>/<path>``,
or a run id (the pipeline's registry run or any run that logged exactly one model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ModelNotFound(LookupError):
    """The model, version, alias or run does not exist; the message lists what does."""


@dataclass(frozen=True)
class ResolvedModel:
    uri: str  # what mlflow.pyfunc.load_model takes
    name: str | None = None
    version: str | None = None


def _registered_names(client) -> list[str]:
    return sorted(m.name for m in client.search_registered_models())


def check_name(client, name: str):
    """The registered model ``name``, or ModelNotFound listing the registered ones."""
    try:
        return client.get_registered_model(name)
    except MlflowException:
        names = _registered_names(client)
        raise ModelNotFound(f"no registered model {name!r}; registered models: {', '.join(names) or 'none yet'} "
                            "(run `melforge run` to train and register one)") from None


def _aliases(model) -> dict[str, str]:
    return {str(k): str(v) for k, v in (getattr(model, "aliases", None) or {}).items()}


def quoted(value: str) -> str:
    """A string literal for an MLflow search filter (which has no escapes): quoted by the quote it lacks."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ModelNotFound(f"{value!r} holds both kinds of quote; MLflow's search filters cannot express it")


def _versions(client, name: str) -> list[str]:
    return sorted((str(v.version) for v in client.search_model_versions(f"name = {quoted(name)}")), key=int)


def resolve(client, text: str, *, default_name: str) -> ResolvedModel:
    spec = text.strip()
    if spec.startswith("runs:/"):
        run_id = spec.removeprefix("runs:/").split("/", 1)[0]
        _check_run(client, run_id)
        return ResolvedModel(uri=spec)
    if RUN_ID.match(spec):
        return _from_run(client, spec)
    spec = spec.removeprefix("models:/")
    if spec.isdigit():
        spec = f"{default_name}/{spec}"
    if "@" in spec:
        return _by_alias(client, *spec.split("@", 1))
    if "/" in spec:
        return _by_version(client, text, *spec.rsplit("/", 1))
    model = check_name(client, spec)
    aliases = ", ".join(f"{spec}@{a}" for a in sorted(_aliases(model))) or "none"
    raise ModelNotFound(f"say which version of {spec!r}: {spec}/<version> or an alias ({aliases}); "
                        f"versions: {', '.join(_versions(client, spec)) or 'none'}")


def _by_alias(client, name: str, alias: str) -> ResolvedModel:
    model = check_name(client, name)
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        aliases = ", ".join(f"@{a} -> v{v}" for a, v in sorted(_aliases(model).items())) or "none"
        if alias == "champion":
            raise ModelNotFound(_no_champion(client, name, aliases)) from None
        raise ModelNotFound(f"model {name!r} has no alias {alias!r}; aliases: {aliases}; versions: "
                            f"{', '.join(_versions(client, name)) or 'none'}") from None
    return ResolvedModel(uri=f"models:/{name}/{version.version}", name=name, version=str(version.version))


def _by_version(client, text: str, name: str, version: str) -> ResolvedModel:
    try:
        check_name(client, name)
    except ModelNotFound as exc:
        if Path(name).is_dir():  # a mistyped local model folder, not a <name>/<version>
            raise ModelNotFound(f"no model folder {text!r} (a folder holding model.pt) and {exc}") from None
        raise
    versions = _versions(client, name)
    if version not in versions:
        raise ModelNotFound(f"model {name!r} has no version {version!r}; versions: {', '.join(versions) or 'none'}")
    return ResolvedModel(uri=f"models:/{name}/{version}", name=name, version=version)


def _check_run(client, run_id: str) -> None:
    try:
        client.get_run(run_id)
    except MlflowException:
        raise ModelNotFound(f"no MLflow run {run_id!r} in {client.tracking_uri}") from None


def _from_run(client, run_id: str) -> ResolvedModel:
    _check_run(client, run_id)
    versions = client.search_model_versions(f"run_id = {quoted(run_id)}")
    if len(versions) == 1:
        v = versions[0]
        return ResolvedModel(uri=f"models:/{v.name}/{v.version}", name=v.name, version=str(v.version))
    if not versions:
        raise ModelNotFound(f"run {run_id} registered no model; give models:/<name>/<version> or runs:/{run_id}/<path>")
    listing = ", ".join(f"models:/{v.name}/{v.version} ({v.tags.get('melforge.model', '?')})"
                        for v in sorted(versions, key=lambda v: int(v.version)))
    raise ModelNotFound(f"run {run_id} registered {len(versions)} models; pick one: {listing}")


def best_version(client, name: str):
    """The registered version with the best recorded primary metric (its own ``melforge.primary_metric``)."""
    from components.metric_table import lower_is_better

    from components.registry.tags import metric_from_tags

    scored = []
    for v in client.search_model_versions(f"name = {quoted(name)}"):
        metric = v.tags.get("melforge.primary_metric")
        value = metric_from_tags(v.tags, metric) if metric else None
        if value is not None and v.tags.get("melforge.evaluation", "ok") == "ok":
            scored.append((value.value if lower_is_better(metric) else -value.value, int(v.version), v))
    return min(scored)[2] if scored else None


def _no_champion(client, name: str, aliases: str) -> str:
    from components.registry.tags import metric_from_tags

    best = best_version(client, name)
    text = (f"model {name!r} has no champion yet: no version has passed the promotion gate "
            f"(it needs a quality within registry.max_floor_ratio / registry.min_real_ratio of the real data); aliases: {aliases}")
    if best is None:
        return text + f"; versions: {', '.join(_versions(client, name)) or 'none'}"
    metric = best.tags["melforge.primary_metric"]
    reason = best.tags.get("melforge.promotion_reason")
    return (text + f". The best registered version is {name}/{best.version} ({best.tags.get('melforge.model', '?')}, "
            f"{metric} {metric_from_tags(best.tags, metric).value:.4g}" + (f"; {reason}" if reason else "") +
            f"): use --model {name}/{best.version} to generate from it anyway")
