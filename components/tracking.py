"""The MLflow run side: runs, params, metrics and artifacts (the model registry is ``registry/``).

Defaults to the embedded SQLite store with artifacts under the project state folder; the standard
``MLFLOW_TRACKING_URI`` (and ``MLFLOW_S3_ENDPOINT_URL`` for S3 artifacts) point it at a server.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.settings import ProjectPaths


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


def flatten_params(params: dict[str, Any]) -> dict[str, str]:
    """{"mel": {"n_mels": 128}} -> {"mel.n_mels": "128"} (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    _flatten("", params, out)
    return out


def numeric_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a stage summary (booleans as 0/1)."""
    metrics = {}
    for key, value in summary.items():
        if isinstance(value, bool):
            metrics[key] = float(value)
        elif isinstance(value, (int, float)) and math.isfinite(value):
            metrics[key] = float(value)
    return metrics


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking server does not answer; the message names it."""


def redact_uri(uri: str) -> str:
    """``https://user:secret@host/x`` -> ``https://user:***@host/x``: credentials are never printed."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparsable URI>"
    if parts.password is None and "@" not in parts.netloc:
        return uri
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}" if parts.password is not None else f"***@{host}"))


def check_tracking_server(uri: str, timeout_s: float = 5.0) -> None:
    """Ask a tracking server for its health once, so a run stops in seconds when it is down
    (MLflow's own client retries each request for minutes first). Local stores need no check.
    Credentials in the URI (``user:password@``) are sent as HTTP basic auth and never printed."""
    import base64
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit, urlunsplit

    if not uri.startswith(("http://", "https://")):
        return
    shown = redact_uri(uri)
    try:
        parts = urlsplit(uri)
        plain = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))
        request = urllib.request.Request(f"{plain.rstrip('/')}/health")
        if parts.username is not None:
            token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
    except ValueError as exc:
        raise TrackingUnavailable(f"MLFLOW_TRACKING_URI {shown} is not a usable URL ({str(exc).replace(uri, shown)})") from None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        problem = str(getattr(exc, "reason", None) or exc)
    raise TrackingUnavailable(f"the MLflow tracking server at {shown} (MLFLOW_TRACKING_URI) does not answer: {problem}; "
                              "start it (`melforge services up` starts one) or unset MLFLOW_TRACKING_URI to use the "
                              "project's own store")


# MLflow 3's UI opens an experiment by its kind: without this tag it guesses, and an experiment with no
# traces opened on the GenAI overview (traces, tokens, cost) instead of the runs table
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.note.content": "melforge: audio generators trained on mel-spectrograms. Each pipeline run is a parent "
                           "run with one nested run per stage (ingest ... evaluate); the models are in the registry, "
                           "the served one under the `champion` alias, and each evaluate run holds the report.",
}


def environment_client() -> Any:
    """A client on the store MLFLOW_TRACKING_URI names, made that process's default too: a command
    must read the store it was pointed at, not one an earlier call in the same process selected
    with mlflow.set_tracking_uri (which outranks the environment)."""
    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or None)
    return mlflow.MlflowClient()


def setup_experiment(name: str, paths: ProjectPaths) -> str:
    """Select (creating if needed) the experiment, marked as model training and described (tags an
    operator set by hand are kept); local stores keep artifacts in .melforge/."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{paths.mlflow_db}"
    _create_local_store(uri)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None and uri == f"sqlite:///{paths.mlflow_db}":
        if reroot_local_store(paths, experiment.artifact_location):
            experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        location = paths.mlflow_artifacts.as_uri() if uri.startswith("sqlite:") else None
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    existing = experiment.tags if experiment is not None else {}
    client = mlflow.MlflowClient()
    for key, value in EXPERIMENT_TAGS.items():
        if key not in existing:
            client.set_experiment_tag(experiment_id, key, value)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


# where a SQLite store writes absolute paths of its own workspace (MLflow keeps artifact locations as URIs)
PATH_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"), ("logged_models", "artifact_location"),
                ("model_versions", "storage_location"), ("model_versions", "source"), ("datasets", "dataset_source"))


def reroot_local_store(paths: ProjectPaths, artifact_location: str) -> bool:
    """A workspace copied or moved to another folder: its store still points every artifact at the
    old folder, so runs would write there and the registry would break once it is gone. Rewrite those
    paths to this workspace (one transaction) and say so; False when nothing pointed elsewhere."""
    import sqlite3
    from urllib.parse import unquote, urlparse

    if not artifact_location.startswith("file:"):
        return False
    old_artifacts = Path(unquote(urlparse(artifact_location).path))
    tail = paths.mlflow_artifacts.relative_to(paths.root)
    if old_artifacts == paths.mlflow_artifacts or old_artifacts.parts[-len(tail.parts):] != tail.parts:
        return False
    old_root = old_artifacts.parents[len(tail.parts) - 1]
    with sqlite3.connect(paths.mlflow_db) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, column in PATH_COLUMNS:
            if table in tables and column in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"UPDATE {table} SET {column} = REPLACE({column}, ?, ?) WHERE instr({column}, ?) > 0",
                           (f"{old_root}/", f"{paths.root}/", f"{old_root}/"))
    import logging

    logging.getLogger(__name__).warning("this workspace was moved from %s: its MLflow store now points at %s",
                                        old_root, paths.root)
    return True


def _create_local_store(uri: str) -> None:
    """A new SQLite store starts as a copy of this machine's migrated template (components.db_template)."""
    import mlflow

    from components.db_template import create_database, sqlite_file
    from components.runtime import initialize_mlflow_tables, mlflow_has_table_step

    db = sqlite_file(uri)
    if db is None or not mlflow_has_table_step():  # no step to run: MLflow creates the store itself
        return
    create_database(db, f"mlflow-{mlflow.__version__}", lambda: initialize_mlflow_tables(db))


@contextmanager
def parent_run(name: str, *, params: dict[str, Any], tags: dict[str, str]) -> Iterator[Any]:
    """The pipeline's MLflow run; failed (with the error as a tag) if the body raises."""
    import mlflow

    with mlflow.start_run(run_name=name, tags=tags, log_system_metrics=True) as run:
        mlflow.log_params(flatten_params(params))
        with _failed_on_error():
            yield run


def end_status(exc: BaseException) -> str:
    """FAILED for an error; KILLED when the run was stopped from outside (Ctrl-C, SIGTERM: these
    are BaseExceptions, as are Prefect's termination signals)."""
    return "FAILED" if isinstance(exc, Exception) else "KILLED"


@contextmanager
def _failed_on_error() -> Iterator[None]:
    """End the active run as FAILED (or KILLED when interrupted), with the error as the
    ``melforge.error`` tag, if the body raises."""
    import mlflow

    try:
        yield
    except BaseException as exc:
        mlflow.set_tag("melforge.error", f"{type(exc).__name__}: {exc}"[:5000])
        mlflow.end_run(status=end_status(exc))
        raise


def open_stage_run(stage: str, parent_run_id: str) -> str:
    """Create a stage's nested run when the stage starts, so that MLflow shows when it started and
    how long it took (a run created afterwards showed a 4-minute training as 61 ms); :func:`log_stage`
    fills and ends it."""
    import mlflow
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    client = mlflow.MlflowClient()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    run = client.create_run(experiment_id, run_name=stage, tags={MLFLOW_PARENT_RUN_ID: parent_run_id,
                                                                 "melforge.stage": stage})
    return run.info.run_id


def log_stage(stage: str, *, summary: dict[str, Any], params: dict[str, Any], artifacts: list[Path],
              skipped: bool, status: str = "FINISHED", error: str | None = None,
              history: list[dict[str, Any]] | None = None, run_id: str | None = None) -> str:
    """One nested run per stage: its params section, numeric metrics, summary JSON and artifacts.
    ``run_id``: the stage's run opened when it started (:func:`open_stage_run`), else a new one.

    ``history`` (training curves: dicts with ``step``, ``time`` and metric values) is logged per
    step with its original timestamps, so the curves look as if they had been logged live.
    """
    import mlflow

    with mlflow.start_run(run_id=run_id, run_name=None if run_id else stage, nested=True,
                          tags={"melforge.stage": stage, "melforge.skipped": str(skipped).lower()}) as run:
        if params:
            mlflow.log_params(flatten_params(params))
        if history:
            _log_history(run.info.run_id, history)
        mlflow.log_metrics({f"final_{k}" if history else k: v for k, v in numeric_metrics(summary).items()})
        mlflow.log_dict(summary, f"{stage}/summary.json")
        verdicts = {f"melforge.{k}": v[:5000] for k, v in summary.items() if k.endswith("verdict") and isinstance(v, str)}
        if verdicts:  # how far each model is from the real data, in words, searchable in the UI
            mlflow.set_tags(verdicts)
        _log_artifacts(stage, artifacts)
        if error:
            mlflow.set_tag("melforge.error", error[:5000])
        if status != "FINISHED":
            mlflow.end_run(status=status)
        return run.info.run_id


def _log_history(run_id: str, history: list[dict[str, Any]]) -> None:
    """A training curve, each value at its step with its original timestamp (batches of 1000)."""
    import mlflow
    from mlflow.entities import Metric

    metrics = [Metric(key, float(value), int(rec.get("time", 0) * 1000), int(rec["step"]))
               for rec in history for key, value in rec.items()
               if key not in ("step", "time") and isinstance(value, (int, float)) and math.isfinite(value)]
    client = mlflow.MlflowClient()
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000])


def _log_artifacts(stage: str, artifacts: list[Path]) -> None:
    """Files and folders under the stage's name (a missing one is skipped: a failed stage may lack it)."""
    import mlflow

    for path in artifacts:
        if path.is_dir():
            mlflow.log_artifacts(str(path), f"{stage}/{path.name}")
        elif path.is_file():
            mlflow.log_artifact(str(path), stage)


def log_dataset(manifest_summary: Any, *, name: str, digest: str, source: str, context: str = "features") -> None:
    """Log the data as an MLflow dataset input whose digest is its DVC hash."""
    import warnings

    import mlflow

    numeric = manifest_summary.select_dtypes("number").columns
    frame = manifest_summary.astype({c: "float64" for c in numeric})  # no int-with-missing-values hint
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "source can be interpreted in multiple ways"
        dataset = mlflow.data.from_pandas(frame, source=source, name=name, digest=digest)
    mlflow.log_input(dataset, context=context)


def tag_active_run(tags: dict[str, str]) -> None:
    import mlflow

    mlflow.set_tags(tags)


def log_json(obj: dict[str, Any], artifact_file: str) -> None:
    import mlflow

    mlflow.log_dict(obj, artifact_file)


@contextmanager
def child_run(name: str, parent_run_id: str, *, tags: dict[str, str]) -> Iterator[Any]:
    """A nested run under ``parent_run_id`` (explicit, so it works from any thread); failed with
    the error as a tag if the body raises."""
    import mlflow

    with mlflow.start_run(run_name=name, nested=True, parent_run_id=parent_run_id, tags=tags) as run:
        with _failed_on_error():
            yield run


def ui_base_url() -> str:
    """Where a person opens the MLflow UI: the tracking server, or `melforge ui`'s default address."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"


# MLflow 3.17's UI chooses GenAI or model-training pages by a workflow type kept in the browser
# (GenAI by default: an experiment opened on a traces overview with 0 traces); a link carrying it
# opens the runs table and shows the model registry in the sidebar
UI_MODE = "workflowType=machine_learning"


def ui_url(base: str, route: str) -> str:
    """``base/#/route`` in the model-training view of the MLflow UI."""
    return f"{base}/#/{route.lstrip('/')}?{UI_MODE}"


def ui_links(base: str, experiment: str, model_name: str) -> list[tuple[str, str]]:
    """Deep links into the MLflow UI at ``base``: the experiment's runs table, the latest pipeline
    run, the latest evaluation report and the champion's version page (those that exist)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    links: list[tuple[str, str]] = []
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        home = f"experiments/{found.experiment_id}"
        links.append(("runs", ui_url(base, f"{home}/runs")))
        latest = client.search_runs([found.experiment_id], "attributes.run_name LIKE 'pipeline-%'",
                                    order_by=["attributes.start_time DESC"], max_results=1)
        if latest:
            links.append(("latest pipeline run", ui_url(base, f"{home}/runs/{latest[0].info.run_id}")))
        for run in client.search_runs([found.experiment_id], "attributes.run_name = 'evaluate'",
                                      order_by=["attributes.start_time DESC"], max_results=20):
            if any(a.path == "evaluate/report.html" for a in client.list_artifacts(run.info.run_id, "evaluate")):
                links.append(("latest report", ui_url(base, f"{home}/runs/{run.info.run_id}/artifacts/evaluate/report.html")))
                break
    try:
        champion = client.get_model_version_by_alias(model_name, "champion")
        links.append((f"champion ({model_name}/{champion.version})",
                      ui_url(base, f"models/{model_name}/versions/{champion.version}")))
    except MlflowException:
        pass
    return links


def run_url(run_id: str, tab: str = "") -> str:
    import mlflow

    experiment_id = mlflow.get_run(run_id).info.experiment_id
    return ui_url(ui_base_url(), f"experiments/{experiment_id}/runs/{run_id}{'/' + tab if tab else ''}")


def model_version_url(name: str, version: str | int) -> str:
    return ui_url(ui_base_url(), f"models/{name}/versions/{version}")


def artifact_url(run_id: str | None) -> str:
    """A link to a run's artifacts tab in the MLflow UI ("" without a run)."""
    if not run_id:
        return ""
    return run_url(run_id, "artifacts")
