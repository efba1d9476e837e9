"""Fault injection against a demo-sized workspace, as an operator meets the faults.

A fresh workspace is cloned from this checkout (profile demo unless --profile says otherwise).
Each fault is injected into a real `melforge run` (or, for S3 and the disk, into the component
that meets it), then the workspace is recovered the way cron would: by running again, with no
manual step. For every fault the table gives the time to stop (fault -> process gone or error
reported), the time to recover (the next run, to a completed pipeline) and the files lost (source
files neither ingested nor quarantined; must be 0).

    python benchmarks/faults.py                    # demo profile: ~20 min on 2 CPU cores
    python benchmarks/faults.py -S train.steps=200 # shorter training

Prints a table and writes benchmarks/results/faults.json. The disk-full row mounts a 2 MB tmpfs,
which needs root (it is skipped, and says so, otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MELFORGE = str(Path(sys.executable).parent / "melforge")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_", "DVC_", "AWS_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MELFORGE_PROGRESS"] = "0"
    return env


def _workspace(root: Path, profile: str, overrides: list[str]) -> Path:
    ws = root / "workspace"
    subprocess.run(["git", "clone", "-q", str(REPO), str(ws)], check=True)
    from components.params_file import resolve_params

    resolve_params(ws / "params.yaml", profile=profile, overrides=overrides)
    return ws


class Run:
    """A `melforge run` in its own process group (a terminal's foreground job), output to a log."""

    started_runs: list[Run] = []

    def __init__(self, ws: Path, log: Path, *args: str) -> None:
        Run.started_runs.append(self)
        self.log = log
        self.started = time.monotonic()
        with open(log, "w") as out:
            self.proc = subprocess.Popen([MELFORGE, "run", "--no-push", *args], cwd=ws, env=_env(),
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def _until(condition, timeout_s: float, what: str, poll_s: float = 0.05) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)
    return time.monotonic() - started


def _training(ws: Path, run: Run) -> int:
    """Wait until the training child wrote a checkpoint; its pid."""
    pid_file = ws / ".melforge" / "stages" / "train.pid"

    def ready() -> bool:
        if run.proc.poll() is not None:
            raise SystemExit(f"the run ended before training started:\n{run.text()[-3000:]}")
        return pid_file.is_file() and bool(list((ws / ".melforge" / "runs").glob("teacher-*/checkpoints/step-*.pt")))

    _until(ready, 1800, "training to write a checkpoint", poll_s=0.2)
    return int(pid_file.read_text())


def _files_lost(ws: Path) -> int:
    """Source files neither in the manifest nor in quarantine."""
    import pandas as pd

    from components.params_file import load_config
    from components.datasets import builtin_catalogue

    cfg = load_config(ws / "params.yaml")
    expected = sum(len(builtin_catalogue(s.removeprefix("builtin:"), cfg.data)) for s in cfg.data.sources
                   if s.startswith("builtin:"))
    manifest = pd.read_parquet(ws / "data" / "clips" / "manifest.parquet")
    quarantine = pd.read_csv(ws / "data" / "clips" / "quarantine.csv")
    return expected - manifest["source_uri"].nunique() - len(quarantine)


def _recover(ws: Path, logs: Path, name: str) -> float:
    run = Run(ws, logs / f"{name}-recover.log")
    code = run.wait()
    if code != 0:
        raise SystemExit(f"recovery run after {name} failed ({code}):\n{run.text()[-3000:]}")
    return time.monotonic() - run.started


def _last_pipeline_status(ws: Path) -> str:
    """The newest pipeline MLflow run's status."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{ws / '.melforge' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("melforge")
    runs = client.search_runs([experiment.experiment_id], "tags.`mlflow.parentRunId` IS NULL",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.status


def fault_second_run_and_signal(ws: Path, logs: Path, sig: signal.Signals, seed: int) -> list[dict]:
    rows = []
    run = Run(ws, logs / f"{sig.name}.log", "-S", f"seed={seed}")
    trainer = _training(ws, run)
    if sig == signal.SIGINT:  # while it trains: a second run in the same workspace
        second = subprocess.Popen([MELFORGE, "run", "-S", "orchestration.workspace_wait_minutes=0.2"], cwd=ws,
                                  env=_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        started = time.monotonic()
        said = _until(lambda: "waiting for the workspace" in (second.stderr.readline() or ""), 60, "the holder message")
        second.wait(60)
        rows.append({"fault": "second `melforge run` while one trains", "stop_s": round(said, 2),
                     "recover_s": None, "files_lost": 0,
                     "outcome": f"holder named after {said:.2f} s, gave up after {time.monotonic() - started:.0f} s "
                                f"(orchestration.workspace_wait_minutes=0.2; exit {second.returncode}); nothing written"})
    started = time.monotonic()
    os.killpg(run.proc.pid, sig)
    code = run.wait(120)
    stop = time.monotonic() - started
    trainer_gone = not _alive(trainer)
    status = _last_pipeline_status(ws)
    recover = _recover(ws, logs, sig.name)
    rows.append({"fault": f"{'Ctrl-C' if sig == signal.SIGINT else 'SIGTERM'} to the process group during training",
                 "stop_s": round(stop, 2), "recover_s": round(recover, 1), "files_lost": _files_lost(ws),
                 "outcome": f"exit {code}, 'interrupted' printed: {'interrupted' in run.text()}, "
                            f"training child stopped: {trainer_gone}, MLflow run {status}; recovery resumed and completed"})
    return rows


def fault_kill9(ws: Path, logs: Path, seed: int) -> dict:
    run = Run(ws, logs / "SIGKILL.log", "-S", f"seed={seed}")
    trainer = _training(ws, run)
    run.proc.send_signal(signal.SIGKILL)
    run.wait()
    stop = _until(lambda: not _alive(trainer), 30, "the training child to stop")
    recover = _recover(ws, logs, "SIGKILL")
    took_over = "took over the workspace" in (logs / "SIGKILL-recover.log").read_text()
    return {"fault": "kill -9 of `melforge run` during training", "stop_s": round(stop, 2),
            "recover_s": round(recover, 1), "files_lost": _files_lost(ws),
            "outcome": f"training child gone {stop:.1f} s after the kill; next run took over the lock: {took_over}"}


def fault_tampered_model(ws: Path, logs: Path) -> dict:
    import mlflow
    import torch

    from components.params_file import load_config

    name = load_config(ws / "params.yaml").registry.model_name
    client = mlflow.MlflowClient(f"sqlite:///{ws / '.melforge' / 'mlflow.db'}")
    latest = max(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    stored = list((ws / ".melforge" / "mlartifacts").rglob("model.pt"))
    originals = [(path, path.read_bytes()) for path in stored]
    for path in stored:  # whichever file belongs to the version asked for
        payload = torch.load(path, weights_only=True)
        payload["spec"]["payload"] = _Payload()
        torch.save(payload, path)
    started = time.monotonic()
    proc = subprocess.run([MELFORGE, "generate", "--model", f"{name}/{latest}", "--out", str(logs / "tampered-out")],
                          cwd=ws, env=_env(), capture_output=True, text=True)
    stop = time.monotonic() - started
    for path, data in originals:
        path.write_bytes(data)
    ran = (ws / "pwned").exists()
    return {"fault": f"pickle payload planted in the registered model.pt files ({name}/{latest})", "stop_s": round(stop, 2),
            "recover_s": None, "files_lost": 0,
            "outcome": f"generate exit {proc.returncode}, refused: {'modified after registration' in proc.stderr}, "
                       f"payload ran: {ran} (recovery: restore the artifact store)"}


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def fault_s3_outage(root: Path, objects: int = 100, after: int = 13) -> dict:
    """An S3 source whose endpoint stops after ``after`` of ``objects`` objects were read."""
    import io

    import boto3
    import numpy as np
    import pandas as pd
    import soundfile as sf
    from moto.server import ThreadedMotoServer

    from components.params_file import load_config
    from components.ingest import stage as ingest_stage
    from components.ingest.sources import SourceUnavailable
    from components.settings import apply_tool_defaults

    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    apply_tool_defaults()
    os.environ.update({"MELFORGE_PROGRESS": "0", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket="bench")
    cfg = load_config(REPO / "params.yaml", ["data.sources=[s3://bench/corpus]", f"data.s3_endpoint_url={endpoint}",
                                             "data.labels=none"])
    t = np.arange(int(16000 * (cfg.audio.clip_seconds + 0.5))) / 16000  # long enough for one clip
    for k in range(objects):
        buffer = io.BytesIO()
        sf.write(buffer, (0.5 * np.sin(2 * np.pi * (200 + 5 * k) * t)).astype(np.float32), 16000, format="WAV")
        s3.put_object(Bucket="bench", Key=f"corpus/n{k:03d}.wav", Body=buffer.getvalue())
    real_decode, reads, stopped_at = ingest_stage.decode_stream, [], []

    def decode(*args, **kwargs):
        reads.append(1)
        if len(reads) == after:
            threading.Thread(target=server.stop).start()
            stopped_at.append(time.monotonic())
        return real_decode(*args, **kwargs)

    ingest_stage.decode_stream = decode
    out = root / "s3-clips"
    try:
        ingest_stage.run_ingest(cfg, out)
        outcome = "ingest finished during an outage (a defect)"
    except SourceUnavailable as exc:
        outcome = f"stage failed as transient: {str(exc)[:90]}..."
    stop = time.monotonic() - stopped_at[0]
    ingest_stage.decode_stream = real_decode
    recorded = out.exists()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    started = time.monotonic()
    try:
        ingest_stage.run_ingest(cfg, out)
    finally:
        server.stop()
    recover = time.monotonic() - started
    manifest = pd.read_parquet(out / "manifest.parquet")
    quarantined = len(pd.read_csv(out / "quarantine.csv"))
    return {"fault": f"S3 endpoint stopped after {after} of {objects} objects (ingest)", "stop_s": round(stop, 2),
            "recover_s": round(recover, 1), "files_lost": objects - manifest["source_uri"].nunique() - quarantined,
            "outcome": f"{outcome} nothing recorded: {not recorded}; after S3 returned: "
                       f"{manifest['source_uri'].nunique()} ingested, {quarantined} quarantined"}


def fault_disk_full(root: Path) -> dict:
    import errno

    import torch

    from components.storage import atomic_save_torch

    mount = root / "small-disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        return {"fault": "disk full while writing a checkpoint", "stop_s": None, "recover_s": None, "files_lost": 0,
                "outcome": "skipped: mounting a 2 MB tmpfs needs root"}
    try:
        target = mount / "step-00000010.pt"
        atomic_save_torch({"w": torch.ones(1000)}, target)
        before = target.read_bytes()
        started = time.monotonic()
        try:
            atomic_save_torch({"w": torch.ones(1_000_000)}, target)  # 4 MB into 2 MB
            message = "no error (a defect)"
        except OSError as exc:
            message = f"{exc}" if exc.errno == errno.ENOSPC else f"wrong error {exc!r}"
        stop = time.monotonic() - started
        intact = target.read_bytes() == before
        leftovers = [p.name for p in mount.iterdir() if p != target]
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    return {"fault": "disk full while writing a checkpoint (2 MB tmpfs)", "stop_s": round(stop, 3), "recover_s": None,
            "files_lost": 0, "outcome": f"{message.replace(str(mount), '<disk>')}; previous checkpoint intact: {intact}; "
                                        f"partial files left: {len(leftovers)}"}


def _command(ws: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> dict:
    """Run ``melforge ARGS`` in ``ws``; how long it took, its exit status, and its failure as the
    user sees it: the one `error:` line, and whether a traceback reached the screen."""
    started = time.monotonic()
    proc = subprocess.run([MELFORGE, *args], cwd=ws, env=env or _env(), capture_output=True, text=True, timeout=timeout)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    return {"s": round(time.monotonic() - started, 2), "code": proc.returncode, "errors": errors,
            "traceback": "Traceback" in proc.stderr + proc.stdout, "stderr": proc.stderr}


def _verdict(result: dict, ws: Path | None = None) -> str:
    """'exit N, one line: <error>' or what is wrong with how it failed."""
    line = result["errors"][0] if result["errors"] else "(no error line)"
    if ws is not None:
        line = line.replace(str(ws), "<ws>")
    shape = "one line" if len(result["errors"]) == 1 and not result["traceback"] else \
        f"{len(result['errors'])} error lines, traceback: {result['traceback']}"
    return f"exit {result['code']}, {shape}: {line[:220]}"


def _registry_state(ws: Path) -> tuple[int, str | None]:
    """(registered versions, champion version) of the workspace's registry, read by a fresh process
    (MLflow caches its SQLAlchemy engine per URI: this one would keep reading a replaced file)."""
    script = ("import json, sys, mlflow\n"
              "from components.config import load_config\n"
              "name = load_config(__import__('pathlib').Path('params.yaml')).registry.model_name\n"
              "client = mlflow.MlflowClient('sqlite:///.melforge/mlflow.db')\n"
              "versions = client.search_model_versions(f\"name = '{name}'\")\n"
              "try:\n    champion = client.get_model_version_by_alias(name, 'champion').version\n"
              "except mlflow.exceptions.MlflowException:\n    champion = None\n"
              "print(json.dumps([len(versions), champion]))")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ws, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        return 0, None
    count, champion = json.loads(proc.stdout.strip().splitlines()[-1])
    return count, champion


def _copy_workspace(source: Path, root: Path) -> Path:
    """A finished workspace copied (without its virtual environment) for faults that damage it."""
    import shutil

    from components.settings import project_paths
    from components.stores import back_up

    ws = root / "finished"
    shutil.copytree(source, ws, symlinks=True, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    back_up(project_paths(ws))  # what every `melforge run` ends with (a workspace from before backups has none)
    return ws


def fault_store_truncated(ws: Path, fraction: float) -> dict:
    """The MLflow store cut to 0 bytes or to half: refused with the file named, then restored."""
    db = ws / ".melforge" / "mlflow.db"
    before = _registry_state(ws)
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.truncate(int(size * fraction))
    refused = _command(ws, "generate", "-n", "1", "--out", str(ws / "out-truncated"))
    restored = _command(ws, "restore")
    after = _registry_state(ws)
    lost = before[0] - after[0]
    what = "emptied (`: > .melforge/mlflow.db`)" if fraction == 0 else "truncated to half"
    return {"fault": f"MLflow store {what}", "stop_s": refused["s"], "recover_s": restored["s"], "files_lost": lost,
            "outcome": f"{_verdict(refused, ws)}; `melforge restore` exit {restored['code']}: {before[0]} versions and "
                       f"champion v{before[1]} before, {after[0]} and v{after[1]} after"}


def fault_local_model_tampered(ws: Path) -> dict:
    model = ws / "models" / "teacher" / "model.pt"
    original = model.read_bytes()
    damaged = bytearray(original)
    damaged[200:210] = b"xxxxxxxxxx"
    model.write_bytes(bytes(damaged))
    try:
        result = _command(ws, "generate", "--model", "models/teacher", "-n", "1", "--vocoder", "griffinlim",
                          "--out", str(ws / "out-tampered"))
    finally:
        model.write_bytes(original)
    return {"fault": "a local models/teacher/model.pt tampered with", "stop_s": result["s"], "recover_s": None,
            "files_lost": 0, "outcome": _verdict(result, ws)}


def fault_generate_inputs(ws: Path) -> list[dict]:
    """Bad `generate` options and an unreachable or credentialed tracking server."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = {**_env(), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
    secret = {**_env(), "MLFLOW_TRACKING_URI": f"http://melforge:s3cret-pass@127.0.0.1:{port}"}
    cases = [
        ("`generate --seed 2**63`", ["generate", "--seed", str(2**63)], None),
        ("`generate --steps 100000`", ["generate", "--steps", "100000"], None),
        ("`generate --model \"it's\"` (a quote in the name)", ["generate", "--model", "it's"], None),
        ("`generate` with the tracking server down", ["generate", "-n", "1"], down),
        ("`generate` with `user:password@` in the tracking URI, server down", ["generate", "-n", "1"], secret),
    ]
    rows = []
    for fault, args, env in cases:
        result = _command(ws, *args, "--out", str(ws / "out-inputs"), env=env)
        leaked = "s3cret-pass" in result["stderr"]
        rows.append({"fault": fault, "stop_s": result["s"], "recover_s": None, "files_lost": 0,
                     "outcome": _verdict(result, ws) + (f"; password printed: {leaked}" if env is secret else "")})
    return rows


def fault_config_nonsense(ws: Path) -> list[dict]:
    """Settings that used to be accepted: each refused before any work, naming the key (or line)."""
    rows = []
    for fault, args in (("`-S train.steps=true`", ["-S", "train.steps=true"]), ("`-S train.lr=.inf`", ["-S", "train.lr=.inf"]),
                        ("`-S seed=2**70`", ["-S", f"seed={2**70}"])):
        result = _command(ws, "run", "--no-push", *args)
        rows.append({"fault": fault, "stop_s": result["s"], "recover_s": None, "files_lost": 0,
                     "outcome": _verdict(result, ws)})
    params = ws / "params.yaml"
    original = params.read_text()
    params.write_text(original + "\ntrain:\n  steps: 5\n")
    try:
        result = _command(ws, "run", "--no-push")
    finally:
        params.write_text(original)
    rows.append({"fault": "a second `train:` key in params.yaml", "stop_s": result["s"], "recover_s": None,
                 "files_lost": 0, "outcome": _verdict(result, ws)})
    return rows


def _hostile_source(folder: Path) -> int:
    """Two good WAVs and the special files that used to stop or exhaust ingest; the number of entries."""
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000 * 2) / 16000).astype(np.float32)
    for name in ("good-a.wav", "good-b.wav"):
        sf.write(folder / name, tone, 16000)
    os.mkfifo(folder / "pipe.wav")
    os.symlink("/dev/zero", folder / "zero.wav")
    os.symlink(folder / "pipe.wav", folder / "to-pipe.wav")
    sf.write(folder / "cafe.wav", tone, 16000)
    os.rename(folder / "cafe.wav", bytes(folder) + b"/caf\xe9.wav")
    return 6


def fault_hostile_ingest(root: Path) -> list[dict]:
    """A source folder with a FIFO, symlinks to /dev/zero and to the FIFO, and a non-UTF-8 name; then
    a labels.csv row that escapes the folder."""
    import pandas as pd

    ws = root / "ingest-workspace"
    subprocess.run(["git", "clone", "-q", str(REPO), str(ws)], check=True)
    source = root / "hostile"
    entries = _hostile_source(source)
    from components.params_file import resolve_params

    resolve_params(ws / "params.yaml", profile="demo", overrides=[f"data.sources=[{source}]"])
    scan = _command(ws, "stage", "scan")
    started = time.monotonic()
    ingest = _command(ws, "stage", "ingest", timeout=300)
    manifest = pd.read_parquet(ws / "data" / "clips" / "manifest.parquet") if ingest["code"] == 0 else pd.DataFrame()
    quarantine = pd.read_csv(ws / "data" / "clips" / "quarantine.csv") if ingest["code"] == 0 else pd.DataFrame()
    ingested = manifest["source_uri"].nunique() if len(manifest) else 0
    reasons = sorted({r.split(":")[0] for r in quarantine.get("reason", [])})
    rows = [{"fault": "FIFO, symlinks to /dev/zero and to a FIFO, a non-UTF-8 name (ingest)",
             "stop_s": round(time.monotonic() - started, 2), "recover_s": None,
             "files_lost": entries - ingested - len(quarantine),
             "outcome": f"scan exit {scan['code']}, ingest exit {ingest['code']}: {ingested} ingested, "
                        f"{len(quarantine)} quarantined ({'; '.join(reasons)[:200]})"}]
    (source / "labels.csv").write_text("path,digit\ngood-a.wav,1\n../good-b.wav,2\n")
    result = _command(ws, "stage", "scan")
    if result["code"] == 0:
        result = _command(ws, "stage", "ingest")
    rows.append({"fault": "a labels.csv row `../good-b.wav` (outside the source)", "stop_s": result["s"],
                 "recover_s": None, "files_lost": 0, "outcome": _verdict(result, root)})
    return rows


def fault_promotion_race() -> dict:
    """The two-workspace promotion race, both orders, as its test runs it (real processes sharing
    one SQLite store; tests/registry/test_promotion_race.py)."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/registry/test_promotion_race.py"], cwd=REPO, capture_output=True, text=True)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-200:]
    return {"fault": "two runs promoting at once against one tracking store (both orders)",
            "stop_s": None, "recover_s": None, "files_lost": 0 if proc.returncode == 0 else None,
            "outcome": f"same champion (v1, the best) in either order: {proc.returncode == 0} ({summary}; "
                       f"{time.monotonic() - started:.0f} s)"}


def fault_checkpoint_out_of_memory(root: Path) -> dict:
    """Memory runs out while a checkpoint is serialised (the address space capped just above use)."""
    script = f"""
import resource, time, torch
from components.errors import describe
from components.storage import atomic_save_torch
weights = torch.ones(40_000_000)
size = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + 100 * 2**20, resource.RLIM_INFINITY))
started = time.monotonic()
try:
    atomic_save_torch({{"w": weights}}, __import__("pathlib").Path({str(root / 'oom' / 'step.pt')!r}))
    print("no error (a defect)")
except MemoryError as exc:
    print(f"{{time.monotonic() - started:.3f}}|{{describe(exc)}}")
"""
    (root / "oom").mkdir()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    stop, _, line = proc.stdout.strip().partition("|")
    left = [p.name for p in (root / "oom").iterdir()]
    return {"fault": "memory runs out while a 153 MiB checkpoint is serialised", "stop_s": float(stop or "nan"),
            "recover_s": None, "files_lost": 0,
            "outcome": f"{line.replace(str(root), '<tmp>')[:200]}; partial files left: {len(left)}"}


def fault_training_child_sigkill(ws: Path, logs: Path, seed: int) -> dict:
    """SIGKILL of the training child alone: what the kernel's out-of-memory killer does."""
    run = Run(ws, logs / "child-SIGKILL.log", "-S", f"seed={seed}")
    trainer = _training(ws, run)
    started = time.monotonic()
    os.kill(trainer, signal.SIGKILL)
    code = run.wait(600)
    stop = time.monotonic() - started
    errors = [line for line in run.text().splitlines() if line.startswith("error:")]
    recover = _recover(ws, logs, "child-SIGKILL")
    return {"fault": "SIGKILL of the training child (as the OOM killer does)", "stop_s": round(stop, 2),
            "recover_s": round(recover, 1), "files_lost": _files_lost(ws),
            "outcome": f"exit {code}: {(errors[0] if errors else '(no error line)')[:220]}"}


def fault_dvc_commit_disk_full(root: Path) -> dict:
    """DVC's cache fills while the features stage commits (a 4 KB tmpfs); then space returns."""
    ws = root / "commit-workspace"
    subprocess.run(["git", "clone", "-q", str(REPO), str(ws)], check=True)
    from components.params_file import resolve_params

    resolve_params(ws / "params.yaml", profile="demo", overrides=[])
    env = {**_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'commit-mlflow.db'}"}
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "-f"], cwd=ws, env=env, check=False)
    for stage in ("scan", "ingest", "validate"):
        subprocess.run([sys.executable, "-m", "dvc", "repro", "-q", stage], cwd=ws, env=env, check=True)
    cache, aside = ws / ".dvc" / "cache", ws / ".dvc" / "cache-aside"
    cache.rename(aside)
    cache.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(cache)], capture_output=True).returncode:
        cache.rmdir()
        aside.rename(cache)
        return {"fault": "DVC cache full while a stage commits", "stop_s": None, "recover_s": None, "files_lost": 0,
                "outcome": "skipped: mounting a tmpfs needs root"}
    code = ("from pathlib import Path; import time; from components.settings import project_paths; "
            "from flows.dvc_runner import run_and_commit; t = time.monotonic(); p = project_paths(Path('.'))\n"
            "try:\n    run_and_commit(p, 'features')\n    print(f'{time.monotonic() - t:.2f}|ok')\n"
            "except Exception as e:\n    from components.errors import describe; print(f'{time.monotonic() - t:.2f}|{describe(e)}')")
    try:
        first = subprocess.run([sys.executable, "-c", code], cwd=ws, env=env, capture_output=True, text=True)
    finally:
        subprocess.run(["umount", str(cache)], check=True)
        cache.rmdir()
        aside.rename(cache)
    stop, _, line = first.stdout.strip().rpartition("\n")[-1].partition("|")
    mels = ws / "data" / "mels" / "index.json"
    before = mels.stat().st_mtime_ns if mels.is_file() else None
    second = subprocess.run([sys.executable, "-c", code], cwd=ws, env=env, capture_output=True, text=True)
    recover, _, outcome = second.stdout.strip().rpartition("\n")[-1].partition("|")
    kept = mels.is_file() and mels.stat().st_mtime_ns == before
    return {"fault": "DVC cache full while the features stage commits (4 KB tmpfs)", "stop_s": float(stop or "nan"),
            "recover_s": float(recover or "nan"), "files_lost": 0,
            "outcome": f"{line.replace(str(ws), '<ws>')[:200]}; after space returned: {outcome}, "
                       f"committed without recomputing: {kept}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "faults.json")
    groups = ("runs", "registry", "config", "ingest", "race", "s3", "disk", "memory")
    parser.add_argument("--only", nargs="*", choices=groups, default=groups,
                        help="runs: interrupts, second run, kill -9 of the run and of its training child, planted "
                             "payload (the long part); registry: store truncation + restore, tampered local model, "
                             "generate's inputs and servers (on a finished workspace); config: nonsense settings; "
                             "ingest: hostile source files; race: concurrent promotion; s3; disk; memory")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="a finished workspace to copy for the registry and config faults (default: the one "
                             "the runs faults finished, else a fresh pipeline run)")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory(prefix="melforge-faults-") as tmp:
        root = Path(tmp)
        logs = root / "logs"
        logs.mkdir()
        rows: list[dict] = []

        def record(new: list[dict]) -> None:  # saved after every fault: a later failure keeps these
            rows.extend(new)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"profile": args.profile, "overrides": args.overrides,
                                            "cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n")

        try:
            finished = None
            if "runs" in args.only:
                ws = _workspace(root, args.profile, args.overrides)
                record(fault_second_run_and_signal(ws, logs, signal.SIGINT, seed=1))
                record(fault_second_run_and_signal(ws, logs, signal.SIGTERM, seed=2))
                record([fault_kill9(ws, logs, seed=3)])
                record([fault_training_child_sigkill(ws, logs, seed=4)])
                record([fault_tampered_model(ws, logs)])
                finished = ws
            if {"registry", "config"} & set(args.only):
                if args.workspace is not None:
                    finished = _copy_workspace(args.workspace, root)
                elif finished is None:
                    finished = _workspace(root, args.profile, args.overrides)
                    _recover(finished, logs, "first-run")
                if "config" in args.only:
                    record(fault_config_nonsense(finished))
                if "registry" in args.only:
                    record([fault_local_model_tampered(finished)])
                    record(fault_generate_inputs(finished))
                    record([fault_store_truncated(finished, 0.5)])
                    record([fault_store_truncated(finished, 0.0)])
            if "ingest" in args.only:
                record(fault_hostile_ingest(root))
            if "race" in args.only:
                record([fault_promotion_race()])
            if "s3" in args.only:
                record([fault_s3_outage(root)])
            if "disk" in args.only:
                record([fault_disk_full(root), fault_dvc_commit_disk_full(root)])
            if "memory" in args.only:
                record([fault_checkpoint_out_of_memory(root)])
        finally:  # a failed fault must not leave a run behind in a folder being deleted
            for run in Run.started_runs:
                if run.proc.poll() is None:
                    os.killpg(run.proc.pid, signal.SIGKILL)
                    run.proc.wait()
    table = Table(title=f"melforge faults ({args.profile} profile; {os.cpu_count()} CPUs)")
    for col in ("fault", "time to stop (s)", "time to recover (s)", "files lost", "outcome"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["fault"], str(r["stop_s"] if r["stop_s"] is not None else "-"),
                      str(r["recover_s"] if r["recover_s"] is not None else "-"), str(r["files_lost"]), r["outcome"])
    Console(width=200).print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
