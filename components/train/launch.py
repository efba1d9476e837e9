"""Multi-GPU: re-launch the train stage under torchrun when more than one GPU is visible."""

from __future__ import annotations

import os
import subprocess
import sys

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
