"""nsvae: train, evaluate and compare disentangling VAEs, built around the Non-Synergistic VAE."""

__version__ = "0.1.0"
