"""The VAE objective: the negative ELBO, recon + KL (Kingma & Welling, 2014)."""

from __future__ import annotations

from nsvae.objectives.base import Objective


class VAEObjective(Objective):
    """Negative evidence lower bound of Kingma & Welling (2014): ``recon + KL(q(z|x) || p(z))``."""
