"""The DIP-VAE objectives: moment matching of the aggregate posterior (Kumar et al., 2018)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nsvae.checks import choice, non_negative, setting
from nsvae.objectives.base import Logged, Objective, ObjectiveConfig

DIP_TYPES = ("i", "ii")


def _dip_type(key: str, value: str) -> None:
    choice(key, value, DIP_TYPES)


def dip_covariance(mu: torch.Tensor, logvar: torch.Tensor, dip_type: str) -> torch.Tensor:
    """Covariance [d, d] that DIP-VAE pushes towards the identity.

    ``"i"``: Cov[mu(x)]; ``"ii"``: Cov[mu(x)] + E[diag exp(logvar(x))], the covariance of
    q(z) = E_x q(z|x). Expectations are batch means.
    """
    centred = mu - mu.mean(0)
    covariance = centred.T @ centred / len(mu)
    if dip_type == "ii":
        covariance = covariance + torch.diag(logvar.exp().mean(0))
    return covariance


class DIPVAEObjective(Objective):
    """``recon + KL + lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2``.

    Kumar, Sattigeri & Balakrishnan, "Variational inference of disentangled latent concepts
    from unlabeled observations", ICLR 2018. C is :func:`dip_covariance` of type
    ``config.dip_type`` ("i" or "ii"); ``lambda_d = config.lambda_d_factor * config.lambda_od``
    (disentanglement_lib's parameterisation: factor 10 for DIP-VAE-I, 1 for DIP-VAE-II).
    """

    @dataclass
    class Config(ObjectiveConfig):
        """``lambda_od``, ``lambda_d_factor`` and ``dip_type`` ("i" or "ii")."""

        name: str = "dip_vae"
        lambda_od: float = setting(
            10.0, "Weight of the off-diagonal covariance penalty.", check=non_negative
        )
        lambda_d_factor: float = setting(
            10.0, "Diagonal weight, as a multiple of lambda_od.", check=non_negative
        )
        dip_type: str = setting(
            "i", "Covariance matched: i (of the means) or ii (of z).", check=_dip_type
        )

    logged = Objective.logged | {"dip": Logged("DIP moment-matching penalty")}

    def __init__(self, config, likelihood: str = "bernoulli", **context):
        super().__init__(config, likelihood, **context)
        self.dip_type = config.dip_type
        self.lambda_od = config.lambda_od
        self.lambda_d = config.lambda_d_factor * config.lambda_od

    def penalty(self, kl_total, kl_per_sample_latent, outputs, step):
        """``KL`` plus the moment-matching penalty; logs it as ``dip``."""
        covariance = dip_covariance(outputs["mu"], outputs["logvar"], self.dip_type)
        diagonal = torch.diagonal(covariance)
        off_diagonal = covariance.square().sum() - diagonal.square().sum()
        dip = self.lambda_od * off_diagonal + self.lambda_d * (diagonal - 1).square().sum()
        return kl_total + dip, {"dip": dip.detach()}
