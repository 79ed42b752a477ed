"""The beta-TCVAE objective: the KL's total-correlation part weighed by beta (Chen et al., 2018).

Chen, Li, Grosse & Duvenaud decompose the average KL of the posterior (their eq. 2)::

    E_n KL(q(z|n) || p(z)) = I_q(z; n)                            index-code mutual information
                           + KL(q(z) || prod_j q(z_j))            total correlation (TC)
                           + sum_j KL(q(z_j) || p(z_j))           dimension-wise KL

where q(z) = 1/N sum_n q(z|n) is the aggregate posterior over the N training points. Every term
needs log q(z) (and log q(z_j)) at samples z ~ q(z|n), which a minibatch of B points estimates as
``log sum_m w[b, m] q(z_b | x_m)`` with one of two weightings (section 4.1 and appendix C):

``"mws"`` (minibatch weighted sampling)
    ``w[b, m] = 1 / (N B)`` for every m. disentanglement_lib's estimator. Its weights sum to
    1/N rather than 1, so q(z) is underestimated: with narrow posteriors q(z_b) ~ q(z_b|x_b) / N
    and the estimate ~ q(z_b|x_b) / (N B), i.e. log q(z) is low by about log B (see
    :func:`estimator_weights`).
``"mss"`` (minibatch stratified sampling, the default of the authors' code)
    the sample's own point weighs 1/N, one other point of the batch (the next, cyclically)
    (N - M) / (N M) and the remaining B - 2 points 1/M each, with M = B - 1: weights that sum
    to 1 and give an unbiased estimate of q(z) over random minibatches (the log is then only
    Jensen-biased).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from nsvae.checks import choice, non_negative, setting
from nsvae.errors import ConfigError
from nsvae.gaussian import log_density
from nsvae.objectives.base import Logged, Objective, ObjectiveConfig

ESTIMATORS = ("mws", "mss")


def _estimator(key: str, value: str) -> None:
    choice(key, value, ESTIMATORS)


@functools.lru_cache(maxsize=16)
def estimator_weights(
    batch_size: int,
    dataset_size: int,
    estimator: str,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Log-weights ``log w[b, m]`` [B, B] of the minibatch estimate of q(z_b) (module docstring).

    Parameters
    ----------
    batch_size : int
        B, the points of the minibatch; the estimate of sample b uses all of them.
    dataset_size : int
        N, the points of the training set (N >= B).
    estimator : {"mws", "mss"}

    The matrix depends on its arguments only, so it is built once per (B, N, estimator, dtype,
    device) and shared, not rebuilt (and copied to the device) at every training step; callers
    must not modify it in place.
    """
    size, n = batch_size, dataset_size
    if n < size:
        raise ConfigError(
            f"the {estimator} estimator needs a dataset of at least one batch "
            f"(N = {n} < B = {size})"
        )
    if estimator == "mws":
        return torch.full((size, size), -math.log(n * size), dtype=dtype, device=device)
    if size < 2:
        raise ConfigError("the mss estimator needs batches of at least 2 points")
    m = size - 1
    weights = torch.full((size, size), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(size)
    weights[rows, (rows + 1) % size] = (n - m) / (n * m)
    weights[rows, rows] = 1.0 / n
    return weights.log().to(dtype=dtype, device=device)


def kl_decomposition(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    dataset_size: int,
    estimator: str = "mws",
) -> dict[str, torch.Tensor]:
    """The terms of Chen et al.'s KL decomposition, estimated on one minibatch (batch means).

    Parameters
    ----------
    z, mu, logvar : tensor [B, d]
        Samples of q(z|x_b) and its parameters, for the same batch.
    dataset_size : int
        N, the size of the training set.
    estimator : {"mws", "mss"}
        How the minibatch estimates q(z) (module docstring).

    Returns
    -------
    dict of scalar tensors
        ``log_qz`` (estimated E log q(z)), ``mi`` (index-code mutual information), ``tc``
        (total correlation) and ``dwkl`` (dimension-wise KL), in nats.
    """
    size = len(z)
    log_q = log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # [B, B, d]
    log_w = estimator_weights(size, dataset_size, estimator, log_q.dtype, log_q.device)
    log_qz = torch.logsumexp(log_w + log_q.sum(2), dim=1)
    log_qz_marginals = torch.logsumexp(log_w[:, :, None] + log_q, dim=1).sum(1)
    log_qz_given_x = log_q.diagonal(dim1=0, dim2=1).sum(0)
    log_pz = log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
    return {
        "log_qz": log_qz.mean(),
        "mi": (log_qz_given_x - log_qz).mean(),
        "tc": (log_qz - log_qz_marginals).mean(),
        "dwkl": (log_qz_marginals - log_pz).mean(),
    }


def total_correlation(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    dataset_size: int,
    estimator: str = "mws",
) -> torch.Tensor:
    """Minibatch estimate of TC = KL(q(z) || prod_j q(z_j)), batch mean (Chen et al., 2018).

    The ``tc`` of :func:`kl_decomposition`; arguments as there. With ``"mws"`` the estimate
    equals disentanglement_lib's plus ``(d - 1) log(N B)``, the constant it leaves out (the
    gradient is the same).
    """
    return kl_decomposition(z, mu, logvar, dataset_size, estimator)["tc"]


class BetaTCVAEObjective(Objective):
    """``recon + KL + (beta - 1) * TC``: beta weighs only the total correlation of q(z).

    Chen, Li, Grosse & Duvenaud, "Isolating sources of disentanglement in variational
    autoencoders", NeurIPS 2018; the TC is estimated on each minibatch with the run's dataset
    size N (:func:`kl_decomposition`), and the decomposition's terms are logged.
    """

    @dataclass
    class Config(ObjectiveConfig):
        """``beta``: weight of the total correlation (1 is the VAE), not beta-VAE's KL weight;
        ``estimator``: ``"mws"`` (disentanglement_lib) or ``"mss"`` (Chen et al.'s code)."""

        name: str = "beta_tcvae"
        beta: float = setting(1.0, "Weight of the total correlation.", check=non_negative)
        estimator: str = setting(
            "mws", "Minibatch estimator of log q(z): mws or mss.", check=_estimator
        )

    logged = Objective.logged | {
        "tc": Logged("total correlation (minibatch estimate)"),
        "mi": Logged("index-code mutual information (minibatch estimate)"),
        "dwkl": Logged("dimension-wise KL (minibatch estimate)"),
        "log_qz": Logged("E log q(z) (minibatch estimate)"),
    }

    def __init__(self, config, likelihood: str = "bernoulli", **context):
        super().__init__(config, likelihood, **context)
        if self.dataset_size is None:
            raise ConfigError("beta_tcvae needs the dataset size N to estimate q(z)")
        self.beta = config.beta

    def penalty(self, kl_total, kl_per_sample_latent, outputs, step):
        """``KL + (beta - 1) * TC``; logs ``tc``, ``mi``, ``dwkl`` and ``log_qz``."""
        terms = kl_decomposition(
            outputs["z"], outputs["mu"], outputs["logvar"], self.dataset_size, self.config.estimator
        )
        logs = {key: value.detach() for key, value in terms.items()}
        return kl_total + (self.beta - 1) * terms["tc"], logs
