"""Numeric precision of a step: fp32, or bf16 autocast with the statistics kept in fp32.

``"bf16"`` runs the convolutions and matrix products of the encoder and decoder under
:func:`torch.autocast` (CPU and CUDA) with ``torch.bfloat16``; everything the objectives and
metrics read stays fp32: the encoder's last layer (the posterior's mean and log-variance) runs
with autocast off (:func:`full_precision`), the decoder's logits are cast back to fp32 before any
loss, so the per-latent KL, Non-Syn's A_best selection, every loss reduction and every metric
are computed in fp32. ``"fp32"`` changes nothing: :func:`autocast` is then a no-op context.
``"auto"`` is bf16 where the device has bf16 arithmetic (:func:`native_bf16`) and fp32
elsewhere: a CPU with AVX2 alone runs bf16 convolutions in torch's reference code, over ten
times slower than fp32 (docs/performance.md). The trainer writes the precision ``"auto"``
resolved to into the run's ``config.json``, so a run resumes and is scored at the precision it
trained with on any machine.
"""

from __future__ import annotations

import contextlib
import functools
import platform

import torch

from nsvae.checks import choice
from nsvae.errors import warn

PRECISIONS = ("fp32", "bf16", "auto")
_DTYPES = {"bf16": torch.bfloat16}


def check_precision(key: str, value: str) -> None:
    """``value`` must be one of :data:`PRECISIONS` (one-line :class:`ConfigError` otherwise)."""
    choice(key, value, PRECISIONS)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` has bf16 arithmetic, so that bf16 autocast makes a step faster.

    A CUDA device of compute capability 8.0 or later (Ampere on: earlier ones emulate bf16); an
    x86 CPU with AVX-512 BF16 (AMX CPUs have it too); an Arm CPU whose oneDNN has bf16 kernels
    (the BF16 extension). An x86 CPU with AVX-512 but not its BF16 extension (Skylake to Ice
    Lake) has oneDNN bf16 kernels that convert to fp32: ``"auto"`` takes fp32 there, and asking
    for bf16 runs those kernels without a warning. Other devices: no.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu":
        return False
    if platform.machine().lower() in ("x86_64", "amd64"):
        return torch.cpu._is_avx512_bf16_supported()
    return _onednn_bf16()


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"auto"`` -> ``"bf16"`` where :func:`native_bf16`, else ``"fp32"``; others unchanged."""
    check_precision("precision", precision)
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def autocast(device: torch.device | str, precision: str = "fp32"):
    """A context in which the model's convolutions and products run at ``precision``.

    Parameters
    ----------
    device : torch.device or str
        Where the model runs (its type picks CPU or CUDA autocast).
    precision : {"fp32", "bf16", "auto"}
        ``"fp32"``: a no-op context; ``"auto"``: :func:`resolve_precision`. bf16 on a CPU
        whose oneDNN has no bf16 kernels warns once per process: it runs, slowly.
    """
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    if device_type == "cpu" and not _onednn_bf16():
        _warn_reference_bf16()
    return torch.autocast(device_type, dtype=_DTYPES[precision])


def full_precision(device: torch.device | str):
    """A context that turns autocast off on ``device``: inside it, fp32 inputs give fp32 results."""
    return torch.autocast(torch.device(device).type, enabled=False)


@functools.cache
def _onednn_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions on this CPU (AVX-512, or Arm's BF16); torch's
    reference code runs them otherwise. Asked once: every bf16 training step checks it."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@functools.cache
def _warn_reference_bf16() -> None:
    warn(
        "bf16 on a CPU without bf16 kernels (no AVX-512 or Arm BF16) runs in torch's reference "
        "code, over 10x slower than fp32 (docs/performance.md); use precision 'auto' or 'fp32'"
    )
