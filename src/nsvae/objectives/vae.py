"""The VAE objective: the negative ELBO, recon + KL (Kingma & Welling, 2014)."""

from __future__ import annotations

from dataclasses import dataclass

from nsvae.objectives.base import Objective, ObjectiveConfig


class VAEObjective(Objective):
    """Negative evidence lower bound of Kingma & Welling (2014): ``recon + KL(q(z|x) || p(z))``."""

    @dataclass
    class Config(ObjectiveConfig):
        """No hyperparameters."""

        name: str = "vae"
