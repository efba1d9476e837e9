"""Training throughput and sampling cost, side by side in one run.

1. Teacher training throughput (samples/s) of the configured U-Net for several batch sizes on the
   current device; on a GPU also bf16 autocast and torch.compile on/off, on a CPU with native bf16
   also bf16 autocast.
2. Sampling: wall time and network evaluations for the teacher at N steps and each distilled
   student, same noise, with the speed-up ratio against the teacher. Uses the trained models in
   models/ when they exist (else the same architecture untrained: cost does not depend on weights).

Needs only torch + numpy (runs on a bare GPU machine): prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from components.models.conditioning import conditioning_of, evaluations_per_step, label_v_function
from components.models.sampler import ddim_sample
from components.models.unet import UNet1d, UNetSpec, parameter_count
from components.train.loop import LoopSettings, cpu_has_native_bf16, train_loop
from components.train.objectives import teacher_v_objective


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def throughput(spec: UNetSpec, device: str, batch: int, steps: int, *, bf16: bool, compile: bool, tmp: Path) -> float:
    model = UNet1d(spec)
    data = torch.rand((batch, *spec.example_shape)) * 2 - 1
    settings = LoopSettings(steps=steps, lr=1e-4, log_every=steps, device=device, bf16=bf16, compile=compile,
                            ema_decay=0.999)
    warm = LoopSettings(**{**settings.__dict__, "steps": 3, "log_every": 3})
    train_loop(model, teacher_v_objective("snr_trunc"), lambda s: data, warm, tmp / "warm", resume=False)
    _sync(device)
    start = time.perf_counter()
    train_loop(model, teacher_v_objective("snr_trunc"), lambda s: data, settings, tmp / "run", resume=False)
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def sampling_table(models: dict[str, tuple[torch.nn.Module, int, dict]], shape: tuple[int, ...], device: str,
                   count: int, repeats: int) -> list[dict]:
    """Each model sampled as its file says (a guided conditional teacher: two evaluations per step)."""
    noise = torch.randn((count, *shape), generator=torch.Generator().manual_seed(0)).to(device)
    rows = []
    for name, (model, steps, meta) in models.items():
        model.to(device).eval()
        cells, guidance = conditioning_of(meta)
        inner = label_v_function(model, None if cells is None else cells.draw(count, 0), guidance)
        per_call = evaluations_per_step(cells, guidance)
        calls = 0

        def v_fn(z, t):
            nonlocal calls
            calls += per_call
            return inner(z, t)

        best = float("inf")
        with torch.no_grad():
            ddim_sample(v_fn, noise, steps)  # warm-up
            for _ in range(repeats):
                calls = 0
                _sync(device)
                start = time.perf_counter()
                ddim_sample(v_fn, noise, steps)
                _sync(device)
                best = min(best, time.perf_counter() - start)
        rows.append({"model": name, "steps": steps, "network_evaluations": calls, "seconds": best})
    base = rows[0]["seconds"]
    for r in rows:
        r["speedup_vs_teacher"] = base / r["seconds"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sample-count", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "training_speed.json")
    args = parser.parse_args()
    import tempfile

    import yaml

    params = yaml.safe_load(args.params.read_text())
    m = params["model"]
    mel = params["mel"]
    shape = (mel["pack_channels"], mel["n_mels"], mel["frames"] // mel["pack_channels"]) if mel["layout"] == "snake" else (mel["n_mels"], mel["frames"])
    spec = UNetSpec(example_shape=shape, base_channels=m["base_channels"], channel_mults=tuple(m["channel_mults"]),
                    blocks_per_level=m["blocks_per_level"], attention_levels=tuple(m["attention_levels"]),
                    attention_heads=m["attention_heads"], dropout=m["dropout"], groups=m["groups"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine()
    # bf16 autocast on a CPU only where it is native (train.cpu_bf16; elsewhere it is emulated and slower)
    cpu_bf16 = cpu_has_native_bf16()
    variants = ([(False, False)] + [(True, False)] * cpu_bf16) if device == "cpu" else [(False, False), (True, False), (True, True)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bf16, compile_ in variants:
            for batch in args.batches:
                sps = throughput(spec, device, batch, args.steps, bf16=bf16, compile=compile_, tmp=Path(tmp))
                rows.append({"batch": batch, "bf16": bf16, "compile": compile_, "samples_per_s": sps})
    print(f"training throughput on {device} ({device_name}), {parameter_count(UNet1d(spec)):,} parameters, example {shape}")
    print(f"{'batch':>6}{'bf16':>6}{'compile':>9}{'samples/s':>12}")
    for r in rows:
        print(f"{r['batch']:>6}{str(r['bf16']):>6}{str(r['compile']):>9}{r['samples_per_s']:>12.1f}")

    teacher_steps = params["distill"]["teacher_steps"]
    models: dict[str, tuple[torch.nn.Module, int, dict]] = {}
    from components.models.io import load_denoiser

    trained = (args.models / "teacher" / "model.pt").is_file()
    names = ["teacher", *params["distill"]["stages"]]
    for name in names:
        steps = teacher_steps if name == "teacher" else int(params["distill"]["stages"][name]["steps"])
        if trained and (args.models / name / "model.pt").is_file():
            model, meta = load_denoiser(args.models / name / "model.pt", device)
            models[name] = (model, steps, meta)
        else:
            models[name] = (UNet1d(spec), steps, {})
    sampling = sampling_table(models, shape, device, args.sample_count, args.repeats)
    print(f"\nsampling {args.sample_count} examples ({'trained models' if trained else 'untrained weights'})")
    print(f"{'model':<14}{'steps':>6}{'NFE':>6}{'seconds':>10}{'speed-up':>10}")
    for r in sampling:
        print(f"{r['model']:<14}{r['steps']:>6}{r['network_evaluations']:>6}{r['seconds']:>10.3f}{r['speedup_vs_teacher']:>9.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": device, "device_name": device_name, "example_shape": shape,
                                    "parameters": parameter_count(UNet1d(spec)), "training": rows,
                                    "sampling": sampling, "trained_models": trained, "torch": torch.__version__},
                                   indent=2))


if __name__ == "__main__":
    main()
