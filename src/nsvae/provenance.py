"""What a result depends on besides its config: library versions, the code's commit and the CPU.

Every run's ``config.json`` and every evaluation in ``eval.json`` record :func:`versions`. The
CPU belongs there because oneDNN picks its kernels by instruction set and the kernels round
differently: a run is bit-exact on one machine, resume included, and another CPU gives another
trajectory of the same recipe (docs/performance.md#results-depend-on-the-cpu). The commit
belongs there because ``nsvae 0.1.0`` names many states of the code: a study whose trials
trained on different commits says so in each trial.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
"""The instruction sets that decide a CPU's fp32 and bf16 matrix throughput and kernels."""

PACKAGE = Path(__file__).resolve().parent


def versions() -> dict[str, str]:
    """Versions of everything that determines a result (provenance of runs and evaluations).

    ``nsvae_commit`` is there only when nsvae runs from a git checkout (:func:`code_commit`).
    """
    import numpy
    import scipy
    import sklearn
    import torch

    import nsvae

    found = {
        "nsvae": nsvae.__version__,
        "nsvae_commit": code_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_description(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
    }
    return {name: value for name, value in found.items() if value is not None}


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``model name; ISA: flag flag ...``: the CPU's model and which of :data:`ISA_FLAGS` it has.

    ``unknown CPU (no /proc/cpuinfo)`` where the file cannot be read (not Linux).
    """
    try:
        info = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"unknown CPU (no {cpuinfo})"
    fields = {}
    for line in info.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields.setdefault(key.strip(), value.strip())  # the first processor's
    flags = set(fields.get("flags", "").split())
    present = [flag for flag in ISA_FLAGS if flag in flags]
    return f"{fields.get('model name', 'unknown CPU')}; ISA: {' '.join(present) or 'none listed'}"


def code_commit(package: Path = PACKAGE) -> str | None:
    """``git describe --always --dirty`` of the checkout nsvae runs from, or None.

    Only a source checkout counts: ``package`` (nsvae's folder) must be ``src/nsvae`` at the top
    of its git work tree, as in an editable install. An installed copy inside some other
    repository (a virtual environment in a project's folder) and a machine without git give
    None. A ``-dirty`` suffix says the checkout had uncommitted changes.
    """
    top = _git(package, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != package.parent.parent:
        return None
    return _git(package, "describe", "--always", "--dirty", "--abbrev=12")


def _git(folder: Path, *arguments: str) -> str | None:
    """git's one-line answer in ``folder``, or None when git is missing or fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *arguments],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    answer = done.stdout.strip()
    return answer if done.returncode == 0 and answer else None
