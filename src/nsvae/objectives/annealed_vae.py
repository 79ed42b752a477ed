"""The AnnealedVAE objective: KL pulled towards a growing capacity (Burgess et al., 2018)."""

from __future__ import annotations

from nsvae.objectives.base import Objective


class AnnealedVAEObjective(Objective):
    """``recon + gamma * |KL - C(step)|`` with ``C(step) = min(c_max, c_max * step / steps)``.

    Burgess et al., "Understanding disentangling in beta-VAE", NIPS 2017 workshop on Learning
    Disentangled Representations (arXiv:1804.03599). The capacity C grows linearly from 0 to
    ``c_max`` nats over ``capacity_steps`` steps, as in disentanglement_lib. Reads
    ``config.capacity_gamma`` (gamma), ``config.c_max`` and ``config.capacity_steps``.
    """

    def __init__(self, config, likelihood: str = "bernoulli"):
        super().__init__(config, likelihood)
        self.gamma = config.capacity_gamma
        self.c_max = config.c_max
        self.capacity_steps = config.capacity_steps

    def penalty(self, kl, k, outputs, step, selection_kl):
        """``gamma * |KL - C|``; logs the capacity C."""
        capacity = min(self.c_max, self.c_max * step / self.capacity_steps)
        return self.gamma * (kl - capacity).abs(), {"capacity": kl.new_full((), capacity)}
