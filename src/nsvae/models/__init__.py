"""Models: the convolutional VAE, its builder and the representation function for metrics."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from nsvae.checks import at_least, choice
from nsvae.errors import ConfigError, DataError
from nsvae.models.conv64 import ARCHS, VAE
from nsvae.models.likelihoods import LIKELIHOODS, reconstruction_loss

__all__ = [
    "ARCHS",
    "LIKELIHOODS",
    "VAE",
    "build_model",
    "check_model",
    "decode_codes",
    "encode_observations",
    "model_device",
    "reconstruction_loss",
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


@torch.no_grad()
def _batched(function, inputs: np.ndarray, batch_size: int, device) -> list:
    """``function`` of float32 tensors of at most ``batch_size`` rows of ``inputs``."""
    inputs = np.asarray(inputs, dtype=np.float32)
    return [function(torch.from_numpy(inputs[i : i + batch_size]).to(device))
            for i in range(0, len(inputs), batch_size)]


def encode_observations(
    model, observations: np.ndarray, batch_size: int = BATCH_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log-variances ``([n, d], [n, d])`` float32 of observations [n, ...].

    The model (anything with ``encode(x) -> (mu, logvar)``) sees at most ``batch_size``
    observations at a time, on the device of its parameters, without gradient.
    """
    parts = _batched(model.encode, observations, batch_size, model_device(model))
    return tuple(torch.cat(p).cpu().numpy() for p in zip(*parts, strict=True))


def decode_codes(model, codes: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Mean images ``sigmoid(decode(z))`` float32 [n, C, H, W] of codes [n, d], in batches.

    The model (anything with ``decode(z) -> logits``) sees at most ``batch_size`` codes at a
    time, on the device of its parameters, without gradient.
    """
    parts = _batched(lambda z: torch.sigmoid(model.decode(z)), codes, batch_size,
                     model_device(model))
    return torch.cat(parts).cpu().numpy() if parts else np.zeros((0,), np.float32)


def representation_function(
    model: VAE, kind: str = "mean", batch_size: int = BATCH_SIZE, seed: int = 0
) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping observations to codes, for metrics (disentanglement_lib's contract).

    Parameters
    ----------
    model : VAE
        Trained model; it runs on the device of its parameters, without gradient.
    kind : {"mean", "sampled"}
        Posterior means, or one sample of q(z|x) per observation.
    batch_size : int
        Observations encoded at a time.
    seed : int
        Seed of the sampling noise (``kind="sampled"``); the returned function keeps its own
        generator, so a sequence of calls is reproducible.

    Returns
    -------
    callable
        numpy float array [n, C, 64, 64] in [0, 1] -> float32 numpy array [n, z_dim].
    """
    if kind not in ("mean", "sampled"):
        raise ConfigError(f"unknown representation {kind!r} (choose from: mean, sampled)")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    device = model_device(model)
    generator = torch.Generator(device).manual_seed(seed)
    expected = (model.num_channels, 64, 64)

    @torch.no_grad()
    def represent(observations: np.ndarray) -> np.ndarray:
        observations = np.asarray(observations)
        if observations.ndim != 4 or observations.shape[1:] != expected:
            raise DataError(
                f"observations must have shape [n, {', '.join(map(str, expected))}], "
                f"got {list(observations.shape)}"
            )
        codes = []
        for start in range(0, len(observations), batch_size):
            x = torch.as_tensor(observations[start : start + batch_size], dtype=torch.float32)
            mu, logvar = model.encode(x.to(device))
            if kind == "sampled":
                noise = torch.randn(mu.shape, generator=generator, device=device)
                mu = mu + torch.exp(0.5 * logvar) * noise
            codes.append(mu.cpu())
        if not codes:
            return np.zeros((0, model.z_dim), dtype=np.float32)
        return torch.cat(codes).numpy()

    return represent
