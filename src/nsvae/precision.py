"""Numeric precision of a step: fp32, or bf16 autocast with the statistics kept in fp32.

``"bf16"`` runs the convolutions and matrix products of the encoder and decoder under
:func:`torch.autocast` (CPU and CUDA) with ``torch.bfloat16``; everything the objectives and
metrics read stays fp32: the encoder's last layer (the posterior's mean and log-variance) runs
with autocast off (:func:`full_precision`), the decoder's logits are cast back to fp32 before any
loss, so the per-latent KL, Non-Syn's A_best selection, every loss reduction and every metric
are computed in fp32. ``"fp32"`` changes nothing: :func:`autocast` is then a no-op context.
"""

from __future__ import annotations

import contextlib

import torch

from nsvae.checks import choice

PRECISIONS = ("fp32", "bf16")
_DTYPES = {"bf16": torch.bfloat16}


def check_precision(key: str, value: str) -> None:
    """``value`` must be one of :data:`PRECISIONS` (one-line :class:`ConfigError` otherwise)."""
    choice(key, value, PRECISIONS)


def autocast(device: torch.device | str, precision: str = "fp32"):
    """A context in which the model's convolutions and products run at ``precision``.

    Parameters
    ----------
    device : torch.device or str
        Where the model runs (its type picks CPU or CUDA autocast).
    precision : {"fp32", "bf16"}
        ``"fp32"``: a no-op context.
    """
    check_precision("precision", precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_DTYPES[precision])


def full_precision(device: torch.device | str):
    """A context that turns autocast off on ``device``: inside it, fp32 inputs give fp32 results."""
    return torch.autocast(torch.device(device).type, enabled=False)
