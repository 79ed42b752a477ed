"""The beta-VAE objective (Higgins et al., 2017)."""

from __future__ import annotations

from nsvae.objectives.base import Objective


class BetaVAEObjective(Objective):
    """``recon + beta * KL``: beta > 1 presses the posterior towards the factorised prior.

    Higgins et al., "beta-VAE: Learning basic visual concepts with a constrained variational
    framework", ICLR 2017. Reads ``config.beta``.
    """

    def __init__(self, config, likelihood: str = "bernoulli"):
        super().__init__(config, likelihood)
        self.beta = config.beta

    def penalty(self, kl, k, outputs, step, selection_kl):
        """``beta * KL``."""
        return self.beta * kl, {}
