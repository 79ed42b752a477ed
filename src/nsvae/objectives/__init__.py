"""Training objectives: one contract (:class:`Objective`), a registry and a builder.

Adding an objective is one module (an :class:`Objective` subclass with its ``Config``) and one
line in :data:`OBJECTIVES`; the config, trainer, logs and curves need no change.
"""

from __future__ import annotations

from nsvae.checks import choice
from nsvae.gaussian import kl_per_latent
from nsvae.objectives.annealed_vae import AnnealedVAEObjective
from nsvae.objectives.base import Logged, Objective, ObjectiveConfig, Term
from nsvae.objectives.beta_tcvae import BetaTCVAEObjective
from nsvae.objectives.beta_vae import BetaVAEObjective
from nsvae.objectives.dip_vae import DIPVAEObjective
from nsvae.objectives.factor_vae import FactorVAEObjective
from nsvae.objectives.nonsyn import NonSynObjective
from nsvae.objectives.vae import VAEObjective

__all__ = [
    "OBJECTIVES",
    "AnnealedVAEObjective",
    "BetaTCVAEObjective",
    "BetaVAEObjective",
    "DIPVAEObjective",
    "FactorVAEObjective",
    "Logged",
    "NonSynObjective",
    "Objective",
    "ObjectiveConfig",
    "Term",
    "VAEObjective",
    "build_objective",
    "kl_per_latent",
    "objective_class",
    "objective_config",
]

OBJECTIVES: dict[str, type[Objective]] = {
    "vae": VAEObjective,
    "beta_vae": BetaVAEObjective,
    "nonsyn": NonSynObjective,
    "annealed_vae": AnnealedVAEObjective,
    "beta_tcvae": BetaTCVAEObjective,
    "dip_vae": DIPVAEObjective,
    "factor_vae": FactorVAEObjective,
}


def objective_class(name: str, key: str = "objective.name") -> type[Objective]:
    """The registered objective ``name``.

    Raises
    ------
    ConfigError
        ``unknown objective.name ...`` with the registered names.
    """
    choice(key, name, OBJECTIVES)
    return OBJECTIVES[name]


def objective_config(name: str = "nonsyn", **fields) -> ObjectiveConfig:
    """The config section of objective ``name`` with ``fields`` set (unvalidated)."""
    return objective_class(name).Config(name=name, **fields)


def build_objective(config: ObjectiveConfig, likelihood: str = "bernoulli", **context) -> Objective:
    """The objective of a config section (validated here), e.g. ``NonSynObjective.Config()``.

    Parameters
    ----------
    config : ObjectiveConfig
        ``objective_class(config.name).Config`` instance.
    likelihood : str
        The model's likelihood (``model.likelihood``): how reconstructions are scored.
    **context
        ``z_dim`` and ``dataset_size`` of the run, for the objectives that need them
        (:class:`Objective`).
    """
    return objective_class(config.name)(config.validate(), likelihood, **context)
