"""Diagonal Gaussian maths shared by the objectives and the estimators: KL, densities, mixtures.

Posteriors are kept as raw ``(mu, logvar)`` tensors, q(z|x) = N(mu, diag exp(logvar)), because
the per-latent analytic KL is the core quantity of every objective. The total-correlation
estimator of beta-TCVAE, Chen et al.'s MIG and the synergy estimators all evaluate the same
Gaussian log-density and mixtures of it; they do it here, once (tested against scipy).
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)
CHUNK_ELEMENTS = 4_000_000  # log-densities of one [samples, components, d] block (32 MB float64)


def kl_per_latent(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) of each sample and latent, in nats.

    ``k[b, j] = -0.5 * (1 + logvar[b, j] - mu[b, j]**2 - exp(logvar[b, j]))`` (>= 0); the KL of
    the diagonal posterior is the sum over latents (Kingma & Welling, 2014, appendix B).

    Parameters
    ----------
    mu, logvar : tensor [B, d]
        Posterior means and log-variances.

    Returns
    -------
    tensor [B, d]
    """
    return -0.5 * (1 + logvar - mu.square() - logvar.exp())


def log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log N(z; mu, exp(logvar))``, broadcasting the three tensors."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).square() * torch.exp(-logvar))


def mixture_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-latent log-density [S, d] of points z [S, d] under ``1/N sum_n N(mu_n, exp(logvar_n))``.

    Each latent j is scored under its own 1-D marginal mixture, the N components being the rows
    of ``mu`` and ``logvar`` [N, d] with equal weights.
    """
    return _log_mean_exp(log_density(z[:, None, :], mu[None], logvar[None]), dim=1)


def mixture_entropy(samples: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-latent entropy [d] of the mixture of :func:`mixture_log_density`, by Monte Carlo.

    ``H_j = -mean_s log q(z_sj)`` over ``samples`` [S, d] drawn from the mixture; the samples are
    scored in blocks of about :data:`CHUNK_ELEMENTS` log-densities.
    """
    total = torch.zeros(mu.shape[1], dtype=torch.float64)
    chunk = max(1, CHUNK_ELEMENTS // mu.numel())
    for start in range(0, len(samples), chunk):
        total -= mixture_log_density(samples[start : start + chunk], mu, logvar).sum(0)
    return total / len(samples)


def _log_mean_exp(values: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.logsumexp(values, dim=dim) - math.log(values.shape[dim])
