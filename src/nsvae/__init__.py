"""nsvae: train, evaluate and compare disentangling VAEs, built around the Non-Synergistic VAE."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy top-level API: ``nsvae.evaluate`` (imports the metrics only when first used)."""
    if name == "evaluate":
        from nsvae.metrics.evaluate import evaluate

        return evaluate
    raise AttributeError(f"module 'nsvae' has no attribute {name!r}")
