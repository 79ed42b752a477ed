"""nsvae: train, evaluate and compare disentangling VAEs, built around the Non-Synergistic VAE."""

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

