"""Training objectives: one contract (:class:`Objective`), a registry and a builder."""

from __future__ import annotations

from nsvae.errors import ConfigError
from nsvae.objectives.annealed_vae import AnnealedVAEObjective
from nsvae.objectives.base import Objective, kl_per_latent
from nsvae.objectives.beta_tcvae import BetaTCVAEObjective
from nsvae.objectives.beta_vae import BetaVAEObjective
from nsvae.objectives.dip_vae import DIPVAEObjective
from nsvae.objectives.nonsyn import NonSynObjective
from nsvae.objectives.vae import VAEObjective

__all__ = [
    "OBJECTIVES",
    "AnnealedVAEObjective",
    "BetaTCVAEObjective",
    "BetaVAEObjective",
    "DIPVAEObjective",
    "NonSynObjective",
    "Objective",
    "VAEObjective",
    "build_objective",
    "kl_per_latent",
]

OBJECTIVES: dict[str, type[Objective]] = {
    "vae": VAEObjective,
    "beta_vae": BetaVAEObjective,
    "nonsyn": NonSynObjective,
    "annealed_vae": AnnealedVAEObjective,
    "beta_tcvae": BetaTCVAEObjective,
    "dip_vae": DIPVAEObjective,
}


def build_objective(objective_config, likelihood: str = "bernoulli") -> Objective:
    """The objective named by ``objective_config.name``, configured by its fields.

    Parameters
    ----------
    objective_config : ObjectiveConfig
    likelihood : str
        The model's likelihood (``model.likelihood``): how reconstructions are scored.
    """
    name = objective_config.name
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r} (choose from: {', '.join(OBJECTIVES)})")
    return OBJECTIVES[name](objective_config, likelihood)
