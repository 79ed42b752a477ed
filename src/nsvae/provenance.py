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

ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "asimd",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)
"""The instruction sets that decide a CPU's fp32 and bf16 matrix throughput and kernels: x86's
(``flags`` in /proc/cpuinfo) and ARM's (``Features``)."""

PACKAGE = Path(__file__).resolve().parent

TRAINED_ON = ("cpu", "nsvae_commit")
"""The versions that say which machine and code a run trained on (results.csv's columns)."""


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
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
    }
    return {name: value for name, value in found.items() if value is not None}


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``name; ISA: flag flag ...``: the CPU's model and which of :data:`ISA_FLAGS` it has.

    The name is /proc/cpuinfo's ``model name`` (x86), else its ``CPU implementer`` and ``CPU
    part`` (ARM), else :func:`platform.processor`. Where /proc/cpuinfo cannot be read (macOS,
    Windows) the ISA part says so; torch's own dispatch level
    (:func:`torch.backends.cpu.get_cpu_capability`) is recorded beside it by :func:`versions`.
    """
    try:
        info = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"{platform.processor() or 'unknown CPU'}; ISA: not read (no {cpuinfo})"
    fields = {}
    for line in info.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields.setdefault(key.strip(), value.strip())  # the first processor's
    flags = set(fields.get("flags", fields.get("Features", "")).split())
    present = [flag for flag in ISA_FLAGS if flag in flags]
    arm = "CPU implementer" in fields and "CPU part" in fields
    name = fields.get("model name") or (
        f"ARM implementer {fields['CPU implementer']} part {fields['CPU part']}" if arm else None
    )
    name = name or platform.processor() or "unknown CPU"
    return f"{name}; ISA: {' '.join(present) or 'none listed'}"


def code_commit(package: Path = PACKAGE) -> str | None:
    """The commit of the checkout nsvae runs from (12 hex digits), or None.

    Only a source checkout counts: ``package`` (nsvae's folder) must be ``src/nsvae`` at the top
    of its git work tree, as in an editable install. An installed copy inside some other
    repository (a virtual environment in a project's folder) and a machine without git give
    None. A ``-dirty`` suffix says that nsvae's own source differed from the commit (changed or
    new files under ``package``); edits elsewhere in the checkout (results, docs) do not count.
    """
    package = package.resolve()
    top = _git(package, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != package.parent.parent:
        return None
    commit = _git(package, "rev-parse", "--short=12", "HEAD")
    if commit is None:
        return None
    changes = _git(package, "status", "--porcelain", "--untracked-files=all", "--", ".")
    return commit + ("-dirty" if changes else "")


def _git(folder: Path, *arguments: str) -> str | None:
    """git's answer in ``folder`` (stripped; empty is ""), or None when git is missing or fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *arguments],
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
