"""The beta-VAE objective (Higgins et al., 2017)."""

from __future__ import annotations

from dataclasses import dataclass

from nsvae.checks import non_negative, setting
from nsvae.objectives.base import Objective, ObjectiveConfig


class BetaVAEObjective(Objective):
    """``recon + beta * KL``: beta > 1 presses the posterior towards the factorised prior.

    Higgins et al., "beta-VAE: Learning basic visual concepts with a constrained variational
    framework", ICLR 2017.
    """

    @dataclass
    class Config(ObjectiveConfig):
        """``beta``: weight of the KL (1 is the VAE)."""

        name: str = "beta_vae"
        beta: float = setting(1.0, "Weight of the KL.", check=non_negative)

    def __init__(self, config, likelihood: str = "bernoulli", **context):
        super().__init__(config, likelihood, **context)
        self.beta = config.beta

    def penalty(self, kl_total, kl_per_sample_latent, outputs, step):
        """``beta * KL``."""
        return self.beta * kl_total, {}
