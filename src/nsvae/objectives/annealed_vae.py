"""The AnnealedVAE objective: KL pressed towards a growing capacity (Burgess et al., 2018)."""

from __future__ import annotations

from dataclasses import dataclass

from nsvae.checks import at_least, non_negative, setting
from nsvae.objectives.base import Logged, Objective, ObjectiveConfig


class AnnealedVAEObjective(Objective):
    """``recon + gamma * |KL - C(step)|`` with ``C(step) = min(c_max, c_max * step / steps)``.

    Burgess et al., "Understanding disentangling in beta-VAE", NIPS 2017 workshop on Learning
    Disentangled Representations (arXiv:1804.03599). The capacity C grows linearly from 0 to
    ``c_max`` nats over ``capacity_steps`` steps, as in disentanglement_lib.
    """

    @dataclass
    class Config(ObjectiveConfig):
        """``capacity_gamma`` (gamma), ``c_max`` (nats) and ``capacity_steps``."""

        name: str = "annealed_vae"
        capacity_gamma: float = setting(1000.0, "Weight of |KL - C|.", check=non_negative)
        c_max: float = setting(25.0, "Final capacity C, in nats.", check=non_negative)
        capacity_steps: int = setting(
            100000, "Steps over which C grows from 0 to c_max.", check=at_least(1)
        )

    logged = Objective.logged | {"capacity": Logged("capacity C")}

    def __init__(self, config, likelihood: str = "bernoulli", **context):
        super().__init__(config, likelihood, **context)
        self.gamma = config.capacity_gamma
        self.c_max = config.c_max
        self.capacity_steps = config.capacity_steps

    def penalty(self, kl_total, kl_per_sample_latent, outputs, step):
        """``gamma * |KL - C|``; logs the capacity C."""
        capacity = min(self.c_max, self.c_max * step / self.capacity_steps)
        return (
            self.gamma * (kl_total - capacity).abs(),
            {"capacity": kl_total.new_full((), capacity)},
        )
