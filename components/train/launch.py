"""Distributed training: joining the process group torchrun starts, and re-launching the train stage under
torchrun when more than one GPU is visible."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import torch


def maybe_relaunch_distributed(cli_args: list[str]) -> None:
    """With >1 visible GPU and not already under torchrun, run ``melforge <cli_args>`` on every GPU
    (DDP; only rank 0 writes and logs) and exit with its status. Otherwise return and train here."""
    if "LOCAL_RANK" in os.environ or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return
    gpus = torch.cuda.device_count()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
           "-m", "components.cli", *cli_args]
    raise SystemExit(subprocess.call(cmd))


# how long a collective waits for a rank that stopped answering before the stage fails (a rank that dies
# is noticed by torchrun at once: measured 1.1 s on 2 CPU ranks, tests/train/test_ddp.py)
COLLECTIVE_TIMEOUT = timedelta(minutes=5)


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from the environment torchrun sets; (0, 1) in a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def join_process_group(device: str, batch_size: int, setting: str) -> tuple[int, int]:
    """Under torchrun, join the process group (NCCL on GPU, gloo on CPU, with a timeout on every
    collective); check that ``batch_size`` (the global batch, named by ``setting``) splits evenly."""
    rank, world = distributed_rank()
    if world > 1:
        if batch_size % world:
            raise ValueError(f"{setting} {batch_size} must be a multiple of the {world} DDP ranks "
                             "(each rank takes an equal share of the global batch)")
        import torch.distributed

        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=COLLECTIVE_TIMEOUT)
    return rank, world
