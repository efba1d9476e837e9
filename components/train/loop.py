"""The training loop, straight-line and model-agnostic: a model, an objective, a batch source.

Every random draw of step ``i`` comes from generators seeded by (seed, i), and the batch of step
``i`` is a pure function of i, so stopping after k steps and resuming from the checkpoint gives
exactly the weights of an uninterrupted run (on CPU). The teacher, every distillation stage, the
vocoder and the GAN baselines (with their critic) all train through :func:`train_loop`.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from components.config_base import OptimConfig
from components.progress import progress_bar
from components.train.checkpoint import latest_checkpoint, restore_rng_states, write_checkpoint


@dataclass(frozen=True)
class LabelledBatch:
    """Clean examples and their label-cell indices: what a conditional denoiser trains on. Moves
    and measures like the plain tensor batch of an unconditional one."""

    x: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "LabelledBatch":
        return LabelledBatch(self.x.to(device, non_blocking=non_blocking), self.labels.to(device, non_blocking=non_blocking))

    @property
    def shape(self) -> torch.Size:
        return self.x.shape


def examples_and_labels(batch: torch.Tensor | LabelledBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(x, labels) of either kind of batch (labels None for a plain tensor)."""
    return (batch.x, batch.labels) if isinstance(batch, LabelledBatch) else (batch, None)


Objective = Callable[[nn.Module, Any, "Draws"], torch.Tensor]  # (model, this rank's batch, the step's draws) -> loss
BatchAt = Callable[[int], "torch.Tensor | LabelledBatch"]


class Critic(Protocol):
    """A second network trained against the model (a GAN discriminator): updated once before each
    model step, saved in every checkpoint. The objective sees it through its own closure."""

    def to(self, device: torch.device) -> "Critic": ...

    def update(self, net: nn.Module, batch: torch.Tensor, generator: torch.Generator, step: int) -> torch.Tensor | None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class LoopSettings:
    steps: int
    lr: float
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0  # inf: no clipping (the GANs, as in their papers)
    betas: tuple[float, float] = (0.9, 0.99)
    log_every: int = 10
    checkpoint_every: int = 0
    sample_every: int = 0
    seed: int = 0
    device: str = "cpu"
    bf16: bool = False  # bf16 autocast on ``device`` (the caller decides: runner.bf16_autocast)
    compile: bool = False
    fingerprint: str = ""


def loop_settings(optim: OptimConfig, *, steps: int, **run: Any) -> LoopSettings:
    """The loop's settings: a section's optimiser (every trainable section is an ``OptimConfig``) plus how
    this run is driven (``run``: log/checkpoint/sample cadence, seed, device, precision, fingerprint)."""
    return LoopSettings(steps=steps, lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay,
                        warmup_steps=optim.warmup_steps, min_lr_ratio=optim.min_lr_ratio, ema_decay=optim.ema_decay,
                        grad_clip=math.inf if optim.grad_clip is None else optim.grad_clip, **run)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX); elsewhere bf16 is
    emulated and slower than fp32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def lr_factor(step: int, *, steps: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``min_ratio`` of the peak at the last step."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """The random stream of one step; ``salt`` separates streams within a step (the critic's from the
    model's, and a critic's per DDP rank), so no two of them draw the same values."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7919 + salt) % (2**63))


@dataclass(frozen=True)
class Draws:
    """A step's per-example random draws, as one process at the global batch makes them: each call
    draws the whole global batch's values from the step's one stream and keeps this rank's rows
    (``rank::world``, the rows ``batch_source`` deals it). So W DDP ranks together draw exactly what
    one process draws, every rank draws different values, and with one process nothing changes."""

    stream: torch.Generator
    rank: int = 0
    world: int = 1

    def _mine(self, values: torch.Tensor) -> torch.Tensor:
        return values[self.rank::self.world] if self.world > 1 else values

    def rand(self, n: int) -> torch.Tensor:
        """U(0, 1), one per example of this rank's ``n``."""
        return self._mine(torch.rand(n * self.world, generator=self.stream))

    def randn(self, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
        """N(0, 1) of ``shape``, whose first axis is this rank's examples."""
        return self._mine(torch.randn((shape[0] * self.world, *shape[1:]), generator=self.stream))

    def randint(self, low: int, high: int, n: int) -> torch.Tensor:
        """Integers in [low, high), one per example of this rank's ``n``."""
        return self._mine(torch.randint(low, high, (n * self.world,), generator=self.stream))

    @property
    def generator(self) -> torch.Generator:
        """The step's stream itself, for objectives that draw other than per example (one process only:
        under DDP every rank would draw the same values from it)."""
        if self.world > 1:
            raise RuntimeError("this objective draws from the step's generator directly, which every DDP rank "
                               "shares; draw per example through Draws.rand/randn/randint to train on several ranks")
        return self.stream


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """EMA with warm-up (decay ramps from 0 so short runs do not stay at the initial weights)."""
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - d)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@dataclass
class _Run:
    """One training run's state: the model, its EMA, optimiser, schedule and optional critic, and where
    it checkpoints (rank 0 only)."""

    model: nn.Module
    ema: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    critic: Critic | None
    settings: LoopSettings
    ckpt_dir: Path
    is_main: bool

    @classmethod
    def create(cls, model: nn.Module, settings: LoopSettings, out_dir: Path, critic: Critic | None,
               is_main: bool) -> "_Run":
        """Everything on the settings' device; the EMA starts as a copy of the model."""
        model.to(torch.device(settings.device))
        if critic is not None:
            critic.to(torch.device(settings.device))
        ema = copy.deepcopy(model).eval().requires_grad_(False)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay,
                                      betas=settings.betas)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(
            s, steps=settings.steps, warmup=settings.warmup_steps, min_ratio=settings.min_lr_ratio))
        return cls(model, ema, optimizer, scheduler, critic, settings, out_dir / "checkpoints", is_main)

    def restore(self) -> int:
        """Load the latest checkpoint of this fingerprint (RNG states included); the step to start from."""
        state = latest_checkpoint(self.ckpt_dir, self.settings.fingerprint)
        if state is None:
            return 0
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_states(state["rng"])
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
        return int(state["step"])

    def checkpoint(self, step: int) -> None:
        if self.is_main:
            write_checkpoint(self.ckpt_dir, step, {
                "model": self.model.state_dict(), "ema": self.ema.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "fingerprint": self.settings.fingerprint,
                **({"critic": self.critic.state_dict()} if self.critic is not None else {})})

    def update(self, forward_net: nn.Module, objective: Objective, batch: torch.Tensor, step: int, rank: int,
               world: int, autocast: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One step: the critic's update (if any), then the model's; (loss, grad norm, critic loss)."""
        s = self.settings
        critic_loss = None if self.critic is None else \
            self.critic.update(forward_net, batch, step_generator(s.seed, step, salt=2 * rank + 1), step)
        with autocast:
            loss = objective(forward_net, batch, Draws(step_generator(s.seed, step), rank, world))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)  # read when logged: no sync per step
        self.optimizer.step()
        self.scheduler.step()
        ema_update(self.ema, self.model, s.ema_decay, step)
        return loss, grad_norm, critic_loss


@dataclass
class _Log:
    """The logged training curve: one record per ``log_every`` steps, appended to ``metrics.jsonl`` on rank 0."""

    path: Path
    history: list[dict[str, Any]]
    is_main: bool
    window_start: float = field(default_factory=time.perf_counter)
    window_samples: int = 0

    def write(self, done: int, loss: torch.Tensor, lr: float, grad_norm: torch.Tensor,
              critic_loss: torch.Tensor | None) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.window_start
        record = {"step": done, "loss": float(loss.detach()), "lr": lr, "grad_norm": float(grad_norm),
                  "samples_per_s": self.window_samples / max(elapsed, 1e-9), "time": time.time()}
        if critic_loss is not None:
            record["critic_loss"] = float(critic_loss)
        self.window_start, self.window_samples = time.perf_counter(), 0
        if self.is_main:
            self.history.append(record)
            _append_jsonl(self.path, record)
        return record

    def summary(self, last: int, start: int, loss_value: float) -> dict[str, Any]:
        losses = [h["loss"] for h in self.history]
        tail = losses[-max(1, len(losses) // 5):] if losses else [float("nan")]
        recent = self.history[-5:]
        return {"steps": last, "resumed_from_step": start, "final_loss": losses[-1] if losses else loss_value,
                "final_loss_mean_last_20pct": sum(tail) / len(tail),
                "samples_per_s": sum(h["samples_per_s"] for h in recent) / len(recent) if recent else 0.0}


def global_mean(value: torch.Tensor, world: int) -> torch.Tensor:
    """The mean of ``value`` over the DDP ranks (equal shares of the global batch: the global batch's
    loss); itself with one process. Called only when a step is logged, so training does not sync on it."""
    if world == 1:
        return value
    total = value.detach().float().clone()
    torch.distributed.all_reduce(total)
    return total / world


def _due(every: int, done: int) -> bool:
    return bool(every) and done % every == 0


def train_loop(model: nn.Module, objective: Objective, batch_at: BatchAt, settings: LoopSettings, out_dir: Path, *,
               on_sample: Callable[[int, nn.Module], None] | None = None, resume: bool = True,
               label: str = "train", rank: int = 0, world: int = 1, ddp_model: nn.Module | None = None,
               stop_after: int | None = None, critic: Critic | None = None) -> dict[str, Any]:
    """Train ``model`` for ``settings.steps``; return {model, ema, summary}. Writes checkpoints and
    ``metrics.jsonl`` under ``out_dir`` (only on rank 0). ``stop_after`` ends the run early
    at that step with a checkpoint (a time-boxed run; resuming continues the same schedule).
    ``critic`` (optional) is updated before every model step and checkpointed with it."""
    device = torch.device(settings.device)
    is_main = rank == 0
    run = _Run.create(model, settings, out_dir, critic, is_main)
    net = ddp_model or model
    forward_net = torch.compile(net) if settings.compile else net
    start = run.restore() if resume else 0
    log = _Log(out_dir / "metrics.jsonl", _kept_history(out_dir / "metrics.jsonl", start) if is_main else [], is_main)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if settings.bf16 else nullcontext()
    model.train()
    log.window_start = time.perf_counter()
    loss_value = float("nan")
    last = min(settings.steps, stop_after) if stop_after is not None else settings.steps
    with progress_bar() as progress:
        task = progress.add_task(label, total=settings.steps, completed=start, info="")
        for step in range(start, last):
            batch = batch_at(step).to(device, non_blocking=True)
            loss, grad_norm, critic_loss = run.update(forward_net, objective, batch, step, rank, world, autocast)
            log.window_samples += batch.shape[0]
            done = step + 1
            if done % settings.log_every == 0 or done == settings.steps:
                record = log.write(done, global_mean(loss, world), run.optimizer.param_groups[0]["lr"], grad_norm, critic_loss)
                loss_value = record["loss"]
                progress.update(task, info=f"loss {loss_value:.4f}  {record['samples_per_s']:.0f} samples/s")
            if _due(settings.checkpoint_every, done) and done < settings.steps:
                run.checkpoint(done)
            if on_sample and is_main and _due(settings.sample_every, done):
                on_sample(done, run.ema)
                model.train()
            progress.update(task, advance=1)
    run.checkpoint(last)
    return {"model": model, "ema": run.ema, "summary": log.summary(last, start, loss_value), "history": log.history}


def _append_jsonl(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _kept_history(path: Path, start: int) -> list[dict]:
    """Metrics up to the resumed step (later lines belong to an interrupted run and are dropped)."""
    if not path.is_file():
        return []
    kept = [r for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip()) if r["step"] <= start]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)
    return kept
