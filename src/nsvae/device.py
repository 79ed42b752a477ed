"""The compute environment of a run: device, CPU threads and global random generators."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from nsvae.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unavailable CUDA device is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device is cuda but CUDA is not available (use cpu or auto)")
        if (device.index or 0) >= torch.cuda.device_count():
            raise ConfigError(f"no CUDA device {device.index} ({torch.cuda.device_count()} found)")
    return device


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads of one core count once)."""
    if hasattr(os, "sched_getaffinity"):
        cpus = os.sched_getaffinity(0)
    else:
        cpus = range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's and Python's global generators."""
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the global generator, for code that uses it)
    random.seed(seed)
