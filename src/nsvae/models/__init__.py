"""Models: the convolutional VAE, its builder and the representation function for metrics."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from nsvae.checks import at_least, choice
from nsvae.errors import ConfigError, DataError
from nsvae.models.conv64 import ARCHS, VAE
from nsvae.models.likelihoods import LIKELIHOODS, reconstruction_loss
from nsvae.precision import autocast

__all__ = [
    "ARCHS",
    "LIKELIHOODS",
    "VAE",
    "build_model",
    "check_model",
    "decode_codes",
    "encode_observations",
    "encode_posterior",
    "model_device",
    "reconstruction_loss",
    "posterior_representation",
    "representation_function",
    "resolve_likelihood",
]


BATCH_SIZE = 256  # observations (or codes) a model sees at a time outside training


def resolve_likelihood(likelihood: str, num_channels: int) -> str:
    """``"auto"`` -> Bernoulli for one channel (binary images), Gaussian otherwise."""
    choice("model.likelihood", likelihood, ("auto", *LIKELIHOODS))
    if likelihood == "auto":
        return "bernoulli" if num_channels == 1 else "gaussian"
    return likelihood


def check_model(arch: str, z_dim: int, likelihood: str) -> None:
    """The rules for ``model.arch``, ``model.z_dim`` and ``model.likelihood``.

    Raises
    ------
    ConfigError
        One line naming the first invalid value.
    """
    choice("model.arch", arch, ARCHS)
    at_least(1)("model.z_dim", z_dim)
    choice("model.likelihood", likelihood, ("auto", *LIKELIHOODS))


def build_model(model_config, num_channels: int = 1) -> VAE:
    """Build the VAE of a :class:`nsvae.config.ModelConfig` for C-channel 64x64 images.

    Parameters
    ----------
    model_config : ModelConfig
        ``arch``, ``z_dim`` and ``likelihood`` (``"auto"`` resolves with ``num_channels``).
    num_channels : int
        Channels of the observations (``data.observation_shape[0]``).
    """
    check_model(model_config.arch, model_config.z_dim, model_config.likelihood)
    if num_channels < 1:
        raise ConfigError(f"num_channels must be >= 1, got {num_channels}")
    likelihood = resolve_likelihood(model_config.likelihood, num_channels)
    return VAE(model_config.arch, model_config.z_dim, num_channels, likelihood)


def model_device(model) -> torch.device:
    """The device of a model's parameters (CPU for a stand-in without parameters)."""
    parameters = getattr(model, "parameters", None)
    parameter = next(parameters(), None) if callable(parameters) else None
    return parameter.device if parameter is not None else torch.device("cpu")


def encode_posterior(
    model, observations: np.ndarray, batch_size: int = BATCH_SIZE, precision: str = "fp32"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances ``([n, d], [n, d])``, fp32 tensors on the model's device.

    The model (anything with ``encode(x) -> (mu, logvar)``) runs without gradient under
    :func:`nsvae.precision.autocast` on batches of exactly ``batch_size`` rows, the last one
    padded with zeros: a row's code then does not depend on how many rows were encoded with it
    (oneDNN picks other kernels for small batches, which changes the last bits), so encoding an
    observation alone, in a metric's chunk or in a sweep of the whole grid gives the same bits.
    """
    device = model_device(model)
    parts = _batched(model.encode, observations, batch_size, device, precision, pad=True)
    if not parts:
        return torch.zeros(0, 0, device=device), torch.zeros(0, 0, device=device)
    mu, logvar = (torch.cat(p) for p in zip(*parts, strict=True))
    return mu, logvar


@torch.no_grad()
def _batched(
    function,
    inputs: np.ndarray,
    batch_size: int,
    device,
    precision: str = "fp32",
    pad: bool = False,
) -> list:
    """``function`` of float32 tensors of at most ``batch_size`` rows of ``inputs``, at
    ``precision``; with ``pad`` every call sees ``batch_size`` rows and the outputs are cut back.
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    parts = []
    with autocast(device, precision):
        for start in range(0, len(inputs), batch_size):
            chunk = torch.from_numpy(inputs[start : start + batch_size]).to(device)
            rows = len(chunk)
            if pad and rows < batch_size:
                chunk = torch.cat([chunk, chunk.new_zeros((batch_size - rows, *chunk.shape[1:]))])
            out = function(chunk)
            parts.append(tuple(o[:rows] for o in out) if isinstance(out, tuple) else out[:rows])
    return parts


def encode_observations(
    model, observations: np.ndarray, batch_size: int = BATCH_SIZE, precision: str = "fp32"
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log-variances ``([n, d], [n, d])`` float32 of observations [n, ...].

    :func:`encode_posterior`, moved to the host as numpy arrays.
    """
    mu, logvar = encode_posterior(model, observations, batch_size, precision)
    return mu.cpu().numpy(), logvar.cpu().numpy()


def decode_codes(model, codes: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Mean images ``sigmoid(decode(z))`` float32 [n, C, H, W] of codes [n, d], in batches.

    The model (anything with ``decode(z) -> logits``) sees at most ``batch_size`` codes at a
    time, on the device of its parameters, without gradient.
    """
    parts = _batched(
        lambda z: torch.sigmoid(model.decode(z)), codes, batch_size, model_device(model)
    )
    return torch.cat(parts).cpu().numpy() if parts else np.zeros((0,), np.float32)


def representation_function(
    model: VAE,
    kind: str = "mean",
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
    precision: str = "fp32",
) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping observations to codes, for metrics (disentanglement_lib's contract).

    Parameters
    ----------
    model : VAE
        Trained model, or any module with ``encode(x) -> (mu, logvar)``; it runs on the device
        of its parameters, without gradient.
    kind : {"mean", "sampled"}
        Posterior means, or one sample of q(z|x) per observation.
    batch_size : int
        Observations encoded at a time (:func:`encode_posterior`).
    seed : int
        Seed of the sampling noise (``kind="sampled"``); the returned function keeps its own
        generator, so a sequence of calls is reproducible.
    precision : {"fp32", "bf16"}
        Autocast of the encoder (:mod:`nsvae.precision`); the codes are fp32.

    Returns
    -------
    callable
        numpy float array [n, C, 64, 64] in [0, 1] -> float32 numpy array [n, z_dim].
    """
    channels = getattr(model, "num_channels", None)  # an nsvae VAE's; any other encoder: any

    def posterior(observations: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_posterior(model, observations, batch_size, precision)

    def check(observations: np.ndarray) -> np.ndarray:
        observations = np.asarray(observations)
        if channels is not None and (
            observations.ndim != 4 or observations.shape[1:] != (channels, 64, 64)
        ):
            raise DataError(
                f"observations must have shape [n, {channels}, 64, 64], got "
                f"{list(observations.shape)}"
            )
        return observations

    represent = posterior_representation(
        posterior, kind, getattr(model, "z_dim", 0), model_device(model), batch_size, seed
    )
    return lambda observations: represent(check(observations))


def posterior_representation(
    posterior: Callable,
    kind: str,
    z_dim: int,
    device: torch.device,
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
) -> Callable[[np.ndarray], np.ndarray]:
    """Codes of inputs from their posterior: its means, or one sample each (own generator).

    ``posterior(inputs[i : i + batch_size]) -> (mu, logvar)`` fp32 tensors on ``device``; the
    inputs are observations (:func:`representation_function`) or anything a posterior can be
    looked up by (a cached evaluation's grid indices). ``kind="sampled"`` draws the noise of each
    chunk of ``batch_size`` inputs from one generator seeded with ``seed``, so the codes depend
    only on the sequence of inputs, not on where their posteriors come from.

    Raises
    ------
    ConfigError
        Unknown ``kind`` or ``batch_size`` < 1.
    """
    if kind not in ("mean", "sampled"):
        raise ConfigError(f"unknown representation {kind!r} (choose from: mean, sampled)")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator(device).manual_seed(seed)

    @torch.no_grad()
    def represent(inputs: np.ndarray) -> np.ndarray:
        codes = []
        for start in range(0, len(inputs), batch_size):
            mu, logvar = posterior(inputs[start : start + batch_size])
            if kind == "sampled":
                noise = torch.randn(mu.shape, generator=generator, device=device)
                mu = mu + torch.exp(0.5 * logvar) * noise
            codes.append(mu.cpu())
        if not codes:
            return np.zeros((0, z_dim), dtype=np.float32)
        return torch.cat(codes).numpy()

    return represent
