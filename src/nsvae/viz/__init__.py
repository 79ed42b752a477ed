"""Figures of models and runs: traversals, latents against factors, training curves, reports."""
