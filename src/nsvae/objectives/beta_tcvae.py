"""The beta-TCVAE objective: the KL's total-correlation part weighed by beta (Chen et al., 2018)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nsvae.checks import non_negative
from nsvae.gaussian import log_density
from nsvae.objectives.base import Logged, Objective, ObjectiveConfig


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
    log_q = log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # [B, B, d]
    log_q_joint = torch.logsumexp(log_q.sum(2), dim=1)
    log_q_marginals = torch.logsumexp(log_q, dim=1).sum(1)
    return (log_q_joint - log_q_marginals).mean()


class BetaTCVAEObjective(Objective):
    """``recon + KL + (beta - 1) * TC``: beta weighs only the total correlation of q(z).

    Chen, Li, Grosse & Duvenaud, "Isolating sources of disentanglement in variational
    autoencoders", NeurIPS 2018, with the minibatch-weighted-sampling estimator as
    disentanglement_lib computes it (:func:`total_correlation`).
    """

    @dataclass
    class Config(ObjectiveConfig):
        """``beta``: weight of the total correlation (1 is the VAE); not beta-VAE's KL weight."""

        name: str = "beta_tcvae"
        beta: float = field(default=1.0, metadata={"check": non_negative})

    logged = Objective.logged | {"tc": Logged("total correlation (minibatch estimate)")}

    def __init__(self, config, likelihood: str = "bernoulli"):
        super().__init__(config, likelihood)
        self.beta = config.beta

    def penalty(self, kl_total, kl_per_sample_latent, outputs, step):
        """``KL + (beta - 1) * TC``; logs ``tc``."""
        tc = total_correlation(outputs["z"], outputs["mu"], outputs["logvar"])
        return kl_total + (self.beta - 1) * tc, {"tc": tc.detach()}
