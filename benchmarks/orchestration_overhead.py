"""Orchestration overhead, side by side in one run.

Two fresh workspaces are cloned from this checkout and given the same parameters:

A. direct: every stage's component entry point called in order in one Python process
   (components.stages.run_stage: scan ... distill ... evaluate) — no Prefect, no DVC, no MLflow;
B. orchestrated: `melforge run` — the Prefect flow, every stage through DVC, MLflow tracking,
   the DVC push and the registry gate;
C. `melforge run` again with nothing changed (every stage skipped).

B uses this machine's database templates (components.db_template) when an earlier run made them,
as any new workspace would; `--cold-cache` gives B an empty template cache instead, which measures
a machine's very first run (Prefect's and MLflow's migrations replayed). The JSON says which.

Prints a table and writes benchmarks/results/orchestration_overhead.json. Takes about two demo
pipelines' time (~11 min on 2 CPU cores); `-S train.steps=50` etc. shrink it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIRECT = """
from components.params_file import load_config
from components.settings import apply_runtime_defaults
from components.stages import pipeline_order, run_stage, stage_options
paths = apply_runtime_defaults()
cfg = load_config(paths.params)
for stage in pipeline_order(cfg):
    name, options = stage_options(stage)
    run_stage(name, cfg, paths, **options)
"""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_", "DVC_"))}
    env.update(extra or {})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MELFORGE_PROGRESS"] = "0"
    return env


def _timed(cmd: list[str], cwd: Path, log: Path | None = None, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=_env(env), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed in {cwd}:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return seconds


def _workspace(root: Path, name: str, profile: str, overrides: list[str]) -> Path:
    ws = root / name
    subprocess.run(["git", "clone", "-q", str(REPO), str(ws)], check=True)
    from components.params_file import resolve_params

    resolve_params(ws / "params.yaml", profile=profile, overrides=overrides)
    return ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[])
    parser.add_argument("--cold-cache", action="store_true",
                        help="Give B an empty database-template cache (a machine's first run).")
    parser.add_argument("--logs", type=Path, help="Keep each run's output (direct.log, run.log, noop.log) in this folder.")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "orchestration_overhead.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="melforge-bench-") as tmp:
        root = Path(tmp)
        direct_ws = _workspace(root, "direct", args.profile, args.overrides)
        flow_ws = _workspace(root, "flow", args.profile, args.overrides)
        melforge = str(Path(sys.executable).parent / "melforge")
        logs = {name: args.logs / f"{name}.log" if args.logs else None for name in ("direct", "run", "noop")}
        from components.db_template import cache_dir

        cache = {"MELFORGE_CACHE_DIR": str(root / "empty-cache")} if args.cold_cache else {}
        templates = sorted(p.name for p in Path(cache.get("MELFORGE_CACHE_DIR", cache_dir())).glob("*.db"))
        direct = _timed([sys.executable, "-c", DIRECT], direct_ws, logs["direct"])
        orchestrated = _timed([melforge, "run"], flow_ws, logs["run"], cache)
        noop = _timed([melforge, "run"], flow_ws, logs["noop"], cache)
    result = {"profile": args.profile, "overrides": args.overrides, "machine": platform.platform(),
              "cpu_count": os.cpu_count(), "database_templates_at_start": templates, "direct_seconds": round(direct, 1),
              "orchestrated_seconds": round(orchestrated, 1), "noop_rerun_seconds": round(noop, 1),
              "overhead_ratio": round(orchestrated / direct, 3),
              "overhead_percent": round(100 * (orchestrated / direct - 1), 1)}
    print(f"{'run':<52}{'seconds':>10}")
    print(f"{'A. components called directly (no Prefect/DVC/MLflow)':<52}{direct:>10.1f}")
    print(f"{'B. melforge run (Prefect + DVC + MLflow + registry)':<52}{orchestrated:>10.1f}")
    print(f"{'C. melforge run again, nothing changed':<52}{noop:>10.1f}")
    print(f"overhead B/A = {result['overhead_ratio']:.3f} ({result['overhead_percent']:+.1f}%)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
