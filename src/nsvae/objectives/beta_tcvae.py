"""The beta-TCVAE objective: the KL's total-correlation part weighed by beta (Chen et al., 2018)."""

from __future__ import annotations

import math

import torch

from nsvae.objectives.base import Objective


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; mu, exp(logvar)) (broadcasting)."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).square() * torch.exp(-logvar))


def total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Minibatch-weighted-sampling estimate of TC = KL(q(z) || prod_j q(z_j)), batch mean.

    q(z_b) is estimated by ``logsumexp_i log q(z_b | x_i)`` over the batch and each marginal
    likewise (Chen et al., 2018, section 4.1). As in disentanglement_lib, the normalising
    constant ``log(N B)`` (N the dataset size) is left out: the estimate is shifted by
    ``(d - 1) log(N B)``, which does not change its gradient.

    Parameters
    ----------
    z, mu, logvar : tensor [B, d]
        Samples of q(z|x) and its parameters, for the same batch.
    """
    log_q = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # [B, B, d]
    log_q_joint = torch.logsumexp(log_q.sum(2), dim=1)
    log_q_marginals = torch.logsumexp(log_q, dim=1).sum(1)
    return (log_q_joint - log_q_marginals).mean()


class BetaTCVAEObjective(Objective):
    """``recon + KL + (beta - 1) * TC``: beta weighs only the total correlation of q(z).

    Chen, Li, Grosse & Duvenaud, "Isolating sources of disentanglement in variational
    autoencoders", NeurIPS 2018, with the minibatch-weighted-sampling estimator as
    disentanglement_lib computes it (:func:`total_correlation`). Reads ``config.beta``.
    """

    def __init__(self, config, likelihood: str = "bernoulli"):
        super().__init__(config, likelihood)
        self.beta = config.beta

    def penalty(self, kl, k, outputs, step, selection_kl):
        """``KL + (beta - 1) * TC``; logs ``tc``."""
        tc = total_correlation(outputs["z"], outputs["mu"], outputs["logvar"])
        return kl + (self.beta - 1) * tc, {"tc": tc.detach()}
