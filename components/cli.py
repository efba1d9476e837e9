"""The ``melforge`` command line.

Environment defaults (embedded MLflow/Prefect/DVC, telemetry off) are applied before any tool is
imported, and the configuration is validated before any work starts.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperOption
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from components.config_base import MAX_SAMPLING_STEPS, MAX_SEED, ConfigError
from components.stages import STAGE_NAMES
from components.profiles import PROFILES
from components.generate_cli import MAX_COUNT, MAX_SECONDS, MAX_TOTAL_SECONDS
from components.errors import redact
from components.runtime import exit_now
from components.settings import (NoProject, ProjectPaths, apply_runtime_defaults, apply_tool_defaults, existing_project_root,
                                 require_project)

app = typer.Typer(help="melforge: audio in, trained and evaluated audio generators out.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False, rich_markup_mode="markdown")


def _flag_type(self, ctx) -> str | None:
    """Typer 0.29 prints ``<bool>`` beside every flag (``--push/--no-push <bool>``); a flag takes no value."""
    return None if self.is_flag else _value_type(self, ctx)


_value_type, TyperOption.display_type_rich = TyperOption.display_type_rich, _flag_type
data_app = typer.Typer(help="Look at the ingested data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
services_app = typer.Typer(help="Real MLflow, Prefect and S3 servers on 127.0.0.1 (no Docker).", no_args_is_help=True)
app.add_typer(services_app, name="services")
console = Console(stderr=True)

SetOption = Annotated[Optional[list[str]], typer.Option(
    "-S", "--set", help="Override a parameter: section.key=value, the value as YAML (64, [48, 60], null); the plain "
            "form of `dvc exp run -S`, without Hydra's +key / ~key. Repeatable.")]


DEBUG_ENV = "MELFORGE_DEBUG"


@app.callback()
def _options(debug: Annotated[bool, typer.Option(
        "--debug", help=f"Print the full traceback of a failure (anywhere on the command line; or set {DEBUG_ENV}=1). "
                        "Without it a failure is one `error:` line and its traceback goes to .melforge/logs/errors.log.")] = False) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {escape(redact(message))}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def _fail_on(exc: BaseException, prefix: str = "", code: int | None = None) -> None:
    """One `error:` line for ``exc`` (components/errors.py); its traceback to the error log, and to the
    screen with --debug."""
    from components.errors import describe, exit_code

    where = _log_traceback(exc)
    if os.environ.get(DEBUG_ENV) == "1":
        import traceback

        console.print(escape(redact("".join(traceback.format_exception(exc)))), soft_wrap=True, highlight=False)
    elif where is not None:
        console.print(f"[dim]traceback: {escape(str(where))} (or run with --debug)[/]", soft_wrap=True, highlight=False)
    _fail(prefix + describe(exc), code=exit_code(exc) if code is None else code)


def _log_traceback(exc: BaseException) -> Path | None:
    from components.errors import log_traceback
    from components.settings import STATE_DIR_NAME

    root = existing_project_root()
    if root is None:
        return None
    return log_traceback(exc, root / STATE_DIR_NAME / "logs" / "errors.log", sys.argv)


def _workspace(*, check_stores: bool = True) -> ProjectPaths:
    """This project's paths with the runtime defaults applied; fails, writing nothing, outside a project
    or when one of its embedded stores is damaged or was emptied (components/stores.py)."""
    try:
        paths = require_project()
    except NoProject as exc:
        _fail(str(exc))
    paths = apply_runtime_defaults(paths)
    if check_stores:
        _check_stores(paths)
    return paths


def _embedded_stores(paths: ProjectPaths) -> tuple[str, ...]:
    """The stores this process will use from the workspace (not a tracking server or Prefect server elsewhere)."""
    from components.settings import runtime_defaults

    ours = runtime_defaults(paths)
    return tuple(name for name, used in (
        ("mlflow", os.environ.get("MLFLOW_TRACKING_URI") == ours["MLFLOW_TRACKING_URI"]),
        ("prefect", os.environ.get("PREFECT_HOME") == ours["PREFECT_HOME"] and not os.environ.get("PREFECT_API_URL")),
    ) if used)


def _check_stores(paths: ProjectPaths) -> None:
    from components.stores import StoreDamaged, check

    try:
        check(paths, _embedded_stores(paths))
    except StoreDamaged as exc:
        _fail(str(exc), code=1)


def _say(text: str) -> None:
    console.print(escape(text), soft_wrap=True, highlight=False)


@app.command()
def run(
    profile: Annotated[Optional[str], typer.Option(help=f"Start from a profile ({', '.join(PROFILES)}) instead of the current params.yaml.")] = None,
    set_: SetOption = None,
    push: Annotated[bool, typer.Option(help="Push the data to the DVC remote afterwards.")] = True,
) -> None:
    """Run the whole pipeline (scan → ingest → validate → features → vocoder → train → distill → gan → evaluate,
    then registration and the champion gate) through Prefect + DVC + MLflow.

    The profile/overrides are validated before any work starts and written to params.yaml once
    the workspace is free (one run at a time per workspace; a waiting run says who holds it), so
    dvc.lock records exactly what ran. Unchanged stages are skipped. Ctrl-C or SIGTERM stops the
    run in seconds (exit 130/143); the next run continues from the last completed stage.
    """
    paths = _workspace()
    from components.params_file import resolve_params
    from components.interrupts import exit_code, raise_on_signals
    from components.run_lock import WorkspaceBusy, hold_workspace
    from components.tracking import TrackingUnavailable, check_tracking_server

    raise_on_signals()  # `timeout`, systemd, a container runtime: unwind like Ctrl-C
    try:
        cfg = resolve_params(paths.params, profile=profile, overrides=set_ or [], write=False)
        check_tracking_server(os.environ["MLFLOW_TRACKING_URI"])
    except (ConfigError, TrackingUnavailable) as exc:
        _fail(str(exc))
    try:
        with hold_workspace(paths.state, wait_s=cfg.orchestration.workspace_wait_minutes * 60, say=_say,
                            temp_folders=[paths.data, paths.models]):
            try:
                summary = _pipeline_with_local_api(paths, cfg, profile=profile, overrides=set_ or [], push=push)
            finally:
                _back_up_stores(paths)
    except WorkspaceBusy as exc:
        _fail(str(exc), code=1)
    except Exception as exc:  # a failed flow has already marked its MLflow run failed; say why and exit 1
        _fail_on(exc, code=1)
    except BaseException as exc:  # Ctrl-C, SIGTERM (or Prefect's own termination signal)
        if isinstance(exc, SystemExit):
            raise
        console.print(f"[bold red]interrupted[/] ({escape(str(exc) or type(exc).__name__)}): stopped, with any "
                      "training child; MLflow runs marked KILLED; dvc.lock keeps the stages that completed, and "
                      "the next `melforge run` continues from there (training from its last checkpoint)",
                      soft_wrap=True, highlight=False)
        raise typer.Exit(exit_code(exc)) from None
    table = Table(title="melforge pipeline", show_header=False)
    for key, value in summary.items():
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    Console().print(table)
    from components.tracking import redact_uri

    console.print(f"MLflow UI: [bold]melforge ui[/] (tracking URI {escape(redact_uri(os.environ['MLFLOW_TRACKING_URI']))})")


def _back_up_stores(paths: ProjectPaths) -> None:
    """A rotating backup of every embedded store the run changed (never fails the run: says why instead)."""
    from components.stores import back_up

    try:
        written = back_up(paths)
    except (OSError, sqlite3.Error) as exc:
        from components.errors import describe

        console.print(f"[yellow]warning:[/] could not back up the stores: {escape(describe(exc))}", soft_wrap=True,
                      highlight=False)
        return
    for path in written:
        console.print(f"[dim]backed up {escape(str(path))}[/]", soft_wrap=True, highlight=False)


def _pipeline_with_local_api(paths: ProjectPaths, cfg, *, profile: str | None, overrides: list[str], push: bool) -> dict:
    """The flow against this run's temporary Prefect server (started first, so its start-up
    overlaps the imports below, in its own session, and stopped last)."""
    from flows.local_api import LocalAPI, console_logs_without_tracebacks, flush_logs

    api = LocalAPI.launch()
    try:
        from components import stage_process, tracking
        from flows.pipeline import melforge_pipeline

        if not all((paths.models / name).is_dir() for name in ("teacher", cfg.distill.final_student)):
            stage_process.warm_up()  # training will run: its forkserver imports torch meanwhile
        tracking.setup_experiment(cfg.experiment, paths)
        with api.serving(), console_logs_without_tracebacks(debug=os.environ.get(DEBUG_ENV) == "1"):
            try:
                return melforge_pipeline(profile=profile, overrides=overrides, push=push, root=str(paths.root),
                                         back_up=False)  # taken below, once the server stopped
            finally:
                flush_logs()
    finally:
        api.stop()


@app.command()
def stage(
    name: Annotated[str, typer.Argument(help=" | ".join(STAGE_NAMES))],
    student: Annotated[Optional[str], typer.Option(help="distill only: which student, e.g. student-4 (every profile has it; distill.stages in params.yaml lists them).")] = None,
    family: Annotated[Optional[str], typer.Option(help="gan only: which GAN baseline, wavegan or specgan (see the gan section of params.yaml).")] = None,
    resume: Annotated[bool, typer.Option(help="vocoder/train/distill/gan: continue from the newest checkpoint written under the same config.")] = True,
) -> None:
    """Run one stage directly from params.yaml (what dvc.yaml calls; no Prefect, no MLflow)."""
    paths = _workspace()
    from components.params_file import load_config
    from components.stages import TABLE, run_stage

    rows = {row.name: row for row in TABLE}
    if name not in rows:
        _fail(f"unknown stage {name!r}; allowed: {', '.join(rows)}")
    try:
        cfg = load_config(paths.params)
    except ConfigError as exc:
        _fail(str(exc))
    options: dict = {"resume": resume} if rows[name].kind == "training" else {}
    for option, value in (("student", student), ("family", family)):  # a foreach stage's item (the table's ``item``)
        if rows[name].item == option:
            options[option] = value
        elif value is not None:
            _fail(f"--{option} applies to the {next(r.name for r in TABLE if r.item == option)} stage only")
    if name == "train":
        from components.train.launch import maybe_relaunch_distributed

        maybe_relaunch_distributed(["stage", "train", *([] if resume else ["--no-resume"])])
    try:
        summary = run_stage(name, cfg, paths, **options)
    except Exception as exc:
        _fail_on(exc, prefix="" if getattr(exc, "line", None) else f"stage {name}: ", code=1)
    console.print_json(json.dumps(summary, default=str))


def _label_order(value) -> tuple:
    """Numbers in numeric order (64 before 100, which text order reverses), then text."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def human_duration(seconds: float) -> str:
    """``300`` -> "5 min 0 s", ``5400`` -> "1 h 30 min", ``42.5`` -> "42.5 s"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@data_app.command("summary")
def data_summary(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False) -> None:
    """Clips, hours, labels and quarantine of the ingested data (data/clips)."""
    paths = _workspace()
    import pandas as pd

    from components.ingest.store import LABEL_PREFIX, read_manifest

    try:
        manifest = read_manifest(paths.clips)
    except FileNotFoundError as exc:
        _fail(str(exc))
    quarantine = pd.read_csv(paths.clips / "quarantine.csv") if (paths.clips / "quarantine.csv").is_file() else pd.DataFrame()
    labels = {c.removeprefix(LABEL_PREFIX): dict(sorted(manifest[c].value_counts().to_dict().items(),
                                                        key=lambda kv: _label_order(kv[0])))
              for c in manifest.columns if c.startswith(LABEL_PREFIX)}
    validation = paths.validation / "results.json"
    summary = {
        "clips": int(len(manifest)), "hours": round(float(manifest["duration_seconds"].sum()) / 3600, 4),
        "sources": manifest.groupby("source").size().to_dict(), "labels": labels,
        "quarantined": int(len(quarantine)),
        "quarantine_reasons": quarantine["reason"].str.split(":").str[0].value_counts().to_dict() if len(quarantine) else {},
        "validation": json.loads(validation.read_text())["summary"] if validation.is_file() else None,
    }
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    _print_data_summary(summary, manifest, quarantine)


def _print_data_summary(summary: dict[str, Any], manifest: Any, quarantine: Any) -> None:
    """``melforge data summary`` as tables: the clips, each label's values, the quarantine."""
    out = Console()
    head = Table(title="data/clips", show_header=False)
    head.add_row("clips", str(summary["clips"]))
    head.add_row("audio", human_duration(float(manifest["duration_seconds"].sum())))
    head.add_row("quarantined", str(summary["quarantined"]))
    for source, n in summary["sources"].items():
        head.add_row(f"source {source}", f"{n} clips")
    if summary["validation"]:
        v = summary["validation"]
        head.add_row("validation", f"{'passed' if v['success'] else 'FAILED'}: {v['passed']}/{v['expectations']} expectations")
    out.print(head)
    for name, counts in summary["labels"].items():
        t = Table(title=f"label {name}")
        t.add_column("value")
        t.add_column("clips", justify="right")
        for value, n in counts.items():
            t.add_row(str(value), str(n))
        out.print(t)
    if len(quarantine):
        t = Table(title="quarantine")
        for col in ("uri", "reason"):
            t.add_column(col, overflow="fold")
        for rec in quarantine.head(50).to_dict("records"):
            t.add_row(str(rec["uri"]), str(rec["reason"]))
        out.print(t)


@app.command()
def generate(
    model: Annotated[str, typer.Option(help="models:/<name>@<alias>, models:/<name>/<version>, a version number, "
                                            "a run id, runs:/<run>/<path>, or a local model folder / model.pt.")]
    = "champion",
    n: Annotated[int, typer.Option("-n", "--count", min=1, max=MAX_COUNT, help="How many clips.")] = 4,
    seconds: Annotated[Optional[float], typer.Option(
        help=f"Clip length, at most {MAX_SECONDS:g} s; count x seconds at most {MAX_TOTAL_SECONDS:g} "
             "(default: the training clip length).")] = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Noise seed: the same seed gives the same clips.")] = 0,
    steps: Annotated[Optional[int], typer.Option(min=1, max=MAX_SAMPLING_STEPS,
                                                 help="Sampling steps (default: the model's own).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the WAV files.")] = Path("generated"),
    vocoder: Annotated[Optional[str], typer.Option(
        help="For a local model: 'griffinlim', or a vocoder folder / vocoder.pt (default: the project's "
             "vocoder.kind, Griffin-Lim outside a project). A registered model always uses the vocoder "
             "it was registered with.")] = None,
) -> None:
    """Generate audio with a registered (or local) model and write WAV files.

    A bare alias such as `champion` means that alias of registry.model_name from params.yaml.
    """
    from components.generate_cli import GenerationError, generate_to_folder, local_model, out_problem, request_problem

    problem = request_problem(n, seconds)
    if problem:
        _fail(problem)
    problem = out_problem(out)
    if problem:
        _fail(f"--out {out}: {problem}")
    root = existing_project_root()
    if root is not None:
        paths: ProjectPaths | None = apply_runtime_defaults(ProjectPaths(root))
        _check_stores(paths)
    elif local_model(model) is not None or os.environ.get("MLFLOW_TRACKING_URI"):
        paths = None  # no project here: nothing is written but the WAV files
        apply_tool_defaults()
    else:
        _fail(f"no melforge project in {Path.cwd()} or above (no dvc.yaml) and MLFLOW_TRACKING_URI is not set, so there "
              "is no registry to generate from: run this in a project, point MLFLOW_TRACKING_URI at a tracking server, "
              "or give --model <model folder>")
    if local_model(model) is None:
        from components.tracking import TrackingUnavailable, check_tracking_server

        try:
            check_tracking_server(os.environ.get("MLFLOW_TRACKING_URI", ""))
        except TrackingUnavailable as exc:
            _fail(str(exc), code=1)
    try:
        written, source = generate_to_folder(paths, model, n=n, seconds=seconds, seed=seed, steps=steps, out=out,
                                             vocoder=vocoder)
    except GenerationError as exc:
        _fail(str(exc))
    console.print(f"wrote {len(written)} clips from {escape(source)} to {escape(str(out))}/")
    for path in written:
        print(path)


@app.command()
def reproduce(
    model: Annotated[str, typer.Argument(help="<name>/<version> (or models:/<name>/<version>, <name>@<alias>).")],
    tolerance: Annotated[float, typer.Option(help="Relative difference allowed per metric.")] = 0.05,
    keep: Annotated[bool, typer.Option(help="Keep the temporary worktree for inspection.")] = False,
) -> None:
    """Rebuild a registered model from its git commit and DVC data version, and compare.

    Checks out the recorded commit in a temporary git worktree with the run's params.yaml and
    dvc.lock, pulls that data version from the DVC remote, re-runs train → distill → evaluate,
    and prints data hashes and metrics old vs new. Exit code 0: reproduced; 1: not reproduced.
    """
    paths = _workspace()
    from components.generate_cli import registry_name
    from components.registry.lookup import ModelNotFound, resolve
    from components.reproduce import ReproduceError, reproduce as rebuild
    from components.tracking import environment_client

    client = environment_client()
    try:
        resolved = resolve(client, model, default_name=registry_name(paths))
    except ModelNotFound as exc:
        _fail(f"{model}: {exc}")
    if resolved.version is None:
        _fail(f"{model}: reproduce needs a registered model version (<name>/<version>)")
    try:
        result = rebuild(client, paths.root, resolved.name, resolved.version, tolerance=tolerance, keep=keep,
                         say=lambda text: console.print(f"[dim]{escape(text)}[/]"))
    except ReproduceError as exc:
        _fail(str(exc), code=1)
    table = Table(title=f"reproduce {resolved.name}/{resolved.version} ({result.model}, commit {result.commit[:12]})")
    for col in ("check", "registered", "rebuilt", "ok"):
        table.add_column(col)
    table.add_row("data (data/mels DVC hash)", result.data_recorded, result.data_rebuilt, "yes" if result.data_equal else "NO")
    table.add_row("model weights (SHA-256)", "", "identical" if result.weights_identical else "different",
                  "yes" if result.weights_identical else "-")
    for m in result.metrics:
        rebuilt = "missing" if m["rebuilt"] is None else f"{m['rebuilt']:.6g}"
        table.add_row(m["metric"], f"{m['registered']:.6g}", rebuilt, "yes" if m["within"] else "NO")
    Console().print(table)
    for note in result.notes:
        console.print(f"note: {escape(note)}")
    verdict = "reproduced" if result.reproduced else "NOT reproduced"
    console.print(f"[bold]{verdict}[/] (metrics within {tolerance:.0%}, data hashes equal)")
    raise typer.Exit(0 if result.reproduced else 1)


ModelOption = Annotated[Optional[str], typer.Option(help="Registered model name (default: registry.model_name).")]


def _registry(model: str | None):
    """(client, model name) for the champion commands: this project's registry, or outside a project
    the one MLFLOW_TRACKING_URI names, after checking that a tracking server answers."""
    from components.generate_cli import registry_name
    from components.tracking import TrackingUnavailable, check_tracking_server, environment_client

    paths: ProjectPaths | None = None
    if existing_project_root() is not None:
        paths = _workspace()
    elif os.environ.get("MLFLOW_TRACKING_URI"):
        apply_tool_defaults()
    else:
        _fail(f"no melforge project in {Path.cwd()} or above (no dvc.yaml) and MLFLOW_TRACKING_URI is not set, so there "
              "is no registry: run this in a project or point MLFLOW_TRACKING_URI at a tracking server")
    try:
        check_tracking_server(os.environ.get("MLFLOW_TRACKING_URI", ""))
    except TrackingUnavailable as exc:
        _fail(str(exc), code=1)
    return environment_client(), model or registry_name(paths)


@app.command()
def champion(model: ModelOption = None,
             as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False) -> None:
    """Show the champion and every decision about it (gate runs and rollbacks), oldest first."""
    from components.registry.champion import champion_state
    from components.registry.history import history_rows
    from components.registry.lookup import ModelNotFound

    client, name = _registry(model)
    try:
        state = champion_state(client, name)
    except ModelNotFound as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps({"model_name": name, "champion": state.version, "history": state.history}, indent=2))
        return
    out = Console()
    if state.version is None:
        out.print(f"{escape(name)} has no champion yet")
    else:
        tags = state.tags
        out.print(f"champion: {escape(name)}/{state.version} ({escape(tags.get('melforge.model', '?'))}, "
                  f"{escape(tags.get('melforge.sampling_steps', '?'))} steps): "
                  f"{escape(tags.get('melforge.promotion_reason', 'no recorded reason'))}", highlight=False)
    rows = history_rows(state.history)
    if not rows:
        out.print("no decisions recorded yet")
        return
    table = Table(title=f"promotion history of {name}")
    for column in rows[0]:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*map(escape, row.values()))
    out.print(table)


@app.command()
def rollback(
    version: Annotated[Optional[str], typer.Argument(help="The version to serve (default: the previous champion).")]
    = None,
    reason: Annotated[str, typer.Option(help="Why: kept in the promotion history.")] = "",
    model: ModelOption = None,
) -> None:
    """Move the champion alias back to an earlier version, recorded in the promotion history."""
    from components.registry.champion import RollbackRefused, rollback as move_back
    from components.registry.lookup import ModelNotFound

    client, name = _registry(model)
    try:
        done = move_back(client, name, version, reason=reason)
    except (RollbackRefused, ModelNotFound) as exc:
        _fail(str(exc))
    before = f"v{done['before']}" if done["before"] else "none"
    console.print(f"{escape(name)}: champion {before} -> v{done['after']} (history entry {done['seq']}): "
                  f"{escape(done['reason'])}", highlight=False)


@app.command()
def schedule(
    cron: Annotated[str, typer.Option(help="When to run the retraining flow (cron, five fields).")] = "0 2 * * *",
    pipeline_cron: Annotated[Optional[str], typer.Option(help="Also run the whole pipeline on this schedule.")] = None,
    timezone: Annotated[str, typer.Option(help="Time zone of the cron expressions (IANA name).")] = "UTC",
) -> None:
    """Serve scheduled retraining from this machine (Ctrl-C stops it).

    The retraining flow re-scans the sources and runs the pipeline only when DVC says the data
    changed; promotion still goes through the gate. Runs show up in Prefect (PREFECT_API_URL) and
    MLflow with the data version of each run.
    """
    paths = _workspace()
    from flows.schedule import ScheduleError, build_deployments, serve_schedules

    try:
        deployments = build_deployments(retrain_cron=cron, pipeline_cron=pipeline_cron, timezone=timezone,
                                        root=str(paths.root))
    except ScheduleError as exc:
        _fail(str(exc))
    console.print(f"serving melforge-retrain/retrain on '{cron}' ({timezone})"
                  + (f" and melforge-pipeline/pipeline on '{pipeline_cron}'" if pipeline_cron else "")
                  + f" for {paths.root}")
    serve_schedules(deployments)


@services_app.command("up")
def services_up(
    s3_port: Annotated[int, typer.Option(help="S3-compatible endpoint port.")] = 9000,
    mlflow_port: Annotated[int, typer.Option(help="MLflow tracking server port.")] = 5000,
    prefect_port: Annotated[int, typer.Option(help="Prefect server port.")] = 4200,
) -> None:
    """Start an S3 endpoint (buckets melforge-dvc, melforge-mlflow), an MLflow server (artifacts on
    S3) and a Prefect server; print the variables that point melforge at them.

    Use it as `eval "$(melforge services up)"`. The S3 endpoint keeps its data in memory only.
    """
    paths = _workspace()
    from components.services import Ports, ServiceError, up

    try:
        env = up(paths, Ports(s3_port, mlflow_port, prefect_port))
    except ServiceError as exc:
        _fail(str(exc), code=1)
    for key, value in env.items():
        print(f"export {key}={value}")
    console.print(f"services up; variables also in {paths.state / 'services' / 'env.sh'}. DVC remote on S3:\n"
                  f"  dvc remote add -d --local services s3://melforge-dvc/store && "
                  f"dvc remote modify --local services endpointurl {env['AWS_ENDPOINT_URL_S3']}")


@services_app.command("down")
def services_down() -> None:
    """Stop the services `melforge services up` started in this project."""
    paths = _workspace()
    from components.services import down

    stopped = down(paths)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@services_app.command("status")
def services_status() -> None:
    """Which services run, where, and whether they answer."""
    paths = _workspace()
    from components.services import status

    table = Table(title="melforge services")
    for col in ("service", "pid", "url", "state"):
        table.add_column(col)
    for row in status(paths):
        table.add_row(*row.values())
    Console().print(table)


@app.command()
def restore(
    store: Annotated[str, typer.Option(help="Which embedded store: mlflow (tracking and registry) or prefect.")] = "mlflow",
    backup: Annotated[Optional[Path], typer.Option(help="A backup file to restore (default: the newest sound one).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the backups and restore nothing.")] = False,
) -> None:
    """Bring back a store from its rotating backups in .melforge/backups/ (one is taken after every run).

    The current file, and its WAL/SHM side files, are kept beside it as <name>.damaged-<time>.
    """
    from components.run_lock import WorkspaceBusy, hold_workspace
    from components.stores import StoreDamaged, backups, problem, restore as put_back, stores

    paths = _workspace(check_stores=False)
    if store not in {s.name for s in stores(paths)}:
        _fail(f"--store {store!r}: expected one of {', '.join(s.name for s in stores(paths))}")
    if list_:
        for path in backups(paths, store):
            state = problem(path) or "sound"
            print(f"{path}  {path.stat().st_size:,} bytes  {state}")
        return
    try:
        with hold_workspace(paths.state, wait_s=5, say=_say):
            used, kept = put_back(paths, store, backup)
    except WorkspaceBusy as exc:
        _fail(f"{exc}; restore while no run is using the workspace", code=1)
    except StoreDamaged as exc:
        _fail(str(exc), code=1)
    console.print(f"restored the {store} store from {escape(str(used))}" +
                  (f"; the previous file is kept as {escape(str(kept))}" if kept else ""), highlight=False)


@app.command()
def ui(port: Annotated[Optional[int], typer.Option(help="Port on 127.0.0.1 (default 5000; 4200 with --prefect).")] = None,
       prefect: Annotated[bool, typer.Option(
           "--prefect", help="Serve Prefect's UI on this workspace's own Prefect database instead: past flow runs, "
                             "their timeline, logs and artifacts.")] = False) -> None:
    """Open the MLflow UI (or with --prefect the Prefect UI) on 127.0.0.1 for this project's stores."""
    paths = _workspace()
    if prefect:
        raise typer.Exit(_prefect_ui(paths, port or 4200))
    port = port or 5000
    uri = os.environ["MLFLOW_TRACKING_URI"]
    from components.config_base import ConfigError
    from components.params_file import load_config
    from components.tracking import redact_uri, setup_experiment, ui_links

    console.print(f"MLflow UI for {escape(redact_uri(uri))} on http://127.0.0.1:{port} (Ctrl-C to stop)")
    try:
        cfg = load_config(paths.params)
        setup_experiment(cfg.experiment, paths)  # marks an older workspace's experiment as model training
        for label, url in ui_links(f"http://127.0.0.1:{port}", cfg.experiment, cfg.registry.model_name):
            console.print(f"  {label}: {url}", highlight=False, soft_wrap=True)
    except ConfigError as exc:
        console.print(f"(no links: {escape(str(exc))})")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner: starts in seconds
    raise typer.Exit(_serve_until_stopped(cmd, env))


def _prefect_ui(paths: ProjectPaths, port: int) -> int:
    """Prefect's own server and UI on the workspace's database (.melforge/prefect/prefect.db), where
    every `melforge run` recorded its flow runs through the temporary API it started."""
    if os.environ.get("PREFECT_API_URL"):
        _fail(f"PREFECT_API_URL is set ({os.environ['PREFECT_API_URL']}): this workspace's flow runs are on that "
              "server; open its UI (unset PREFECT_API_URL to see the workspace's own database)")
    database = paths.state / "prefect" / "prefect.db"
    if not database.is_file():
        _fail(f"{database} does not exist yet: `melforge run` records its flow runs there")
    console.print(f"Prefect UI for {escape(str(database))} on http://127.0.0.1:{port} (Ctrl-C to stop): "
                  "Runs shows each `melforge run`, its timeline and logs; Artifacts the stage tables",
                  highlight=False, soft_wrap=True)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api", "PREFECT_LOGGING_LEVEL": "WARNING"}
    return _serve_until_stopped(cmd, env)


def _serve_until_stopped(cmd: list[str], env: dict[str, str]) -> int:
    """Run a server (and whatever it starts: MLflow's uvicorn workers) in its own process group;
    Ctrl-C or SIGTERM here stops the whole group, so nothing is left listening."""
    import signal

    from components.interrupts import exit_code, raise_on_signals

    raise_on_signals()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (components.interrupts.Interrupted)
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait_s)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # workers the server started and left behind in its group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return exit_code(exc)


def _run_app() -> int:
    """Run the command; its exit code. Every failure is said in one line (usage errors included)."""
    usage_error = typer.BadParameter.__base__  # click's UsageError, which typer vendors without exporting it
    try:
        result = app(prog_name="melforge", standalone_mode=False)  # usage errors come back here, to be said in one line
        return result if isinstance(result, int) else 0
    except usage_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `melforge`: the help
            exc.show()
        else:  # a bad option or value: the user's to fix (exit 2)
            command = exc.ctx.command_path if exc.ctx is not None else "melforge"
            console.print(f"[bold red]error:[/] {escape(redact(exc.format_message()))} (see `{escape(command)} --help`)",
                          soft_wrap=True, highlight=False)
        return exc.exit_code
    except typer.TyperException as exc:
        exc.show()
        return exc.exit_code
    except typer.Abort:  # Ctrl-C at a prompt
        return 130
    except Exception as exc:  # whatever a command did not catch itself: one line, never a traceback
        try:
            _fail_on(exc)
        except typer.Exit as done:
            return done.exit_code
    return 1


def main() -> None:
    """Console entry point. Once the command is done (and the atexit handlers have run: Prefect's
    temporary server stopped, logs flushed), the process exits without tearing the interpreter
    down object by object (measured: ~1 s after a no-op pipeline run, for nothing)."""
    if "--debug" in sys.argv[1:]:  # accepted after the command too, not only before it
        os.environ[DEBUG_ENV] = "1"
        sys.argv[1:] = [arg for arg in sys.argv[1:] if arg != "--debug"]
    try:
        code = _run_app()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    exit_now(code)


if __name__ == "__main__":
    main()
