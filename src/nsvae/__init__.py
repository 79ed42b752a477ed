"""nsvae: train, evaluate and compare disentangling VAEs, built around the Non-Synergistic VAE."""

import os

# Idle OpenMP threads sleep instead of spinning: on a small shared CPU, spinning threads of one
# process slow every other process (training steps measured 3-5x slower under contention).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """Versions of everything that determines a result (provenance of runs and evaluations)."""
    import platform

    import numpy
    import scipy
    import sklearn
    import torch

    return {"nsvae": __version__, "python": platform.python_version(),
            "platform": platform.platform(), "numpy": numpy.__version__,
            "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "torch": torch.__version__}


def __getattr__(name: str):
    """Lazy top-level API: ``nsvae.evaluate`` (imports the metrics only when first used)."""
    if name == "evaluate":
        from nsvae.metrics.evaluate import evaluate

        return evaluate
    raise AttributeError(f"module 'nsvae' has no attribute {name!r}")
