"""The objective contract: what one training step computes, declared by the objective.

Every objective is an ELBO variant: a reconstruction term (:mod:`nsvae.models.likelihoods`)
plus a penalty built from the posterior q(z|x) = N(mu, diag exp(logvar)) and the prior N(0, I)
(Kingma & Welling, 2014). The base class computes the reconstruction loss and the per-sample,
per-latent KL once; most subclasses only say which penalty they add (:meth:`Objective.penalty`).

Beyond the penalty, an objective declares everything the trainer needs to know about it, so the
trainer never tests an objective's name:

- its config section, a dataclass beside it (``Objective.Config``) that validates its own fields;
- ``batches_per_step``: how many batches one step consumes (Non-Syn's independent selection
  batch, FactorVAE's permuted batch);
- :meth:`~Objective.modules` and :meth:`~Objective.optimizers`: extra networks with their own
  optimisers (FactorVAE's discriminator), checkpointed and resumed with the model;
- :meth:`~Objective.terms`: a step is a sequence of loss terms, each followed by a step of its
  optimiser, every gradient taken at the parameters before the step
  (:func:`nsvae.training.step.train_step`);
- ``logged``: the scalars it logs, with titles for the training curves;
- :meth:`ObjectiveConfig.evaluation_params`: settings that evaluation must share with training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from nsvae.checks import check_fields
from nsvae.gaussian import kl_per_latent
from nsvae.models.likelihoods import reconstruction_loss


@dataclass
class ObjectiveConfig:
    """Base of every objective's config section; ``name`` is its key in the registry.

    A subclass declares its hyperparameters as fields whose metadata holds their rule
    (``setting(default, "help", check=non_negative)``) and overrides :meth:`validate`
    only for rules that tie fields together.
    """

    name: str = ""

    def validate(self, section: str = "objective") -> ObjectiveConfig:
        """Check every field with its own rule; return ``self``.

        Raises
        ------
        ConfigError
            One line naming the first invalid field, e.g. ``objective.alpha must be >= 0``.
        """
        check_fields(self, section)
        return self

    def evaluation_params(self) -> dict[str, dict]:
        """Per-metric parameters that evaluation must share with training (none by default)."""
        return {}

    def fields(self) -> dict:
        """The hyperparameters, without ``name``."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "name"}


@dataclass(frozen=True)
class Logged:
    """A logged quantity, as the training curves show it.

    ``kind`` is ``"scalar"`` (one line), ``"per_latent"`` (one line per latent) or ``"share"``
    (per latent, a fraction in [0, 1], drawn as a latents x steps heat map).
    """

    title: str
    unit: str = "nats"
    kind: str = "scalar"


@dataclass
class Term:
    """One loss term of a step and the optimiser (a key of ``optimizers()``) that it drives."""

    loss: torch.Tensor
    optimizer: str = "model"


class Objective:
    """Base objective: ``loss = recon + penalty``; the plain VAE's penalty is the KL.

    Parameters
    ----------
    config : Objective.Config
        This objective's config section.
    likelihood : str
        ``"bernoulli"`` or ``"gaussian"``, the model's ``likelihood``.
    z_dim : int, optional
        Number of latents (for objectives with networks of their own, e.g. FactorVAE's
        discriminator).
    dataset_size : int, optional
        Number of training observations N (for estimators of q(z), e.g. beta-TCVAE's).

    Notes
    -----
    A subclass that defines ``__init__`` passes these keywords on:
    ``def __init__(self, config, likelihood="bernoulli", **context)``.
    """

    Config = ObjectiveConfig
    batches_per_step = 1
    logged: dict[str, Logged] = {
        "recon": Logged("reconstruction"),
        "kl": Logged("KL(q(z|x) || p(z))"),
        "kl_per_latent": Logged("KL per latent", kind="per_latent"),
    }

    def __init__(
        self,
        config: ObjectiveConfig,
        likelihood: str = "bernoulli",
        *,
        z_dim: int | None = None,
        dataset_size: int | None = None,
    ):
        self.config = config
        self.likelihood = likelihood
        self.z_dim = z_dim
        self.dataset_size = dataset_size

    # --------------------------------------------------------------------- what a step needs

    def modules(self) -> dict[str, torch.nn.Module]:
        """Networks the objective trains besides the VAE, by name (none by default)."""
        return {}

    def optimizers(
        self, model: torch.nn.Module, lr: float, betas: tuple[float, float]
    ) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser of a step, by name; ``"model"`` (Adam on the VAE) comes first."""
        return {"model": adam(model.parameters(), lr=lr, betas=betas)}

    def forward(self, model: torch.nn.Module, batches: list[torch.Tensor]) -> dict:
        """``model(batches[0])``: ``mu``, ``logvar``, ``z``, ``x_logits``."""
        return model(batches[0])

    def terms(
        self, model: torch.nn.Module, batches: list[torch.Tensor], step: int
    ) -> tuple[list[Term], dict[str, torch.Tensor]]:
        """The loss terms of one step (each with its optimiser) and the step's detached logs.

        Parameters
        ----------
        model : VAE
        batches : list of tensor [B, C, H, W]
            ``batches_per_step`` independent batches; the first is the one reconstructed.
        step : int
            Steps taken before this one (for schedules).
        """
        outputs = self.forward(model, batches)
        parts, logs = self.loss_terms(outputs, batches[0], step)
        return [Term(part) for part in parts], logs

    # --------------------------------------------------------------------- the loss

    def loss(
        self, outputs: dict[str, torch.Tensor], batch: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss of one batch (the sum of :meth:`loss_terms`), and detached logs.

        Parameters
        ----------
        outputs : dict
            ``model(batch)``: ``mu``, ``logvar``, ``z``, ``x_logits`` (and what
            :meth:`forward` adds).
        batch : tensor [B, C, 64, 64]
            Observations in [0, 1].
        step : int
            Training step (for schedules).

        Returns
        -------
        loss : scalar tensor
        logs : dict of detached tensors
            ``recon``, ``kl`` (sum over latents, batch mean), ``kl_per_latent`` [d], and the
            objective's own terms (see ``logged``). Nothing is moved to the host.
        """
        terms, logs = self.loss_terms(outputs, batch, step)
        return (terms[0] if len(terms) == 1 else torch.stack(terms).sum()), logs

    def loss_terms(
        self, outputs: dict[str, torch.Tensor], batch: torch.Tensor, step: int
    ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """The losses a step minimises one after another, and detached logs.

        Almost every objective has one term, ``recon + penalty``: one gradient, one optimiser
        step. A :meth:`penalty` that returns a list ``[p0, p1, ...]`` asks for one optimiser step
        per term, ``recon + p0`` first, then ``p1``, ..., every gradient taken at the parameters
        before the first step (:func:`nsvae.training.step.optimizer_steps`). The arguments are those
        of :meth:`loss`.
        """
        recon = reconstruction_loss(outputs["x_logits"], batch, self.likelihood)
        kl_per_sample_latent = kl_per_latent(outputs["mu"], outputs["logvar"])
        kl_latent = kl_per_sample_latent.mean(0)
        kl_total = kl_latent.sum()
        penalty, extra = self.penalty(kl_total, kl_per_sample_latent, outputs, step)
        first, *later = penalty if isinstance(penalty, list) else [penalty]
        logs = {
            "recon": recon.detach(),
            "kl": kl_total.detach(),
            "kl_per_latent": kl_latent.detach(),
        }
        return [recon + first, *later], logs | extra

    def penalty(
        self,
        kl_total: torch.Tensor,
        kl_per_sample_latent: torch.Tensor,
        outputs: dict[str, torch.Tensor],
        step: int,
    ) -> tuple[torch.Tensor | list[torch.Tensor], dict[str, torch.Tensor]]:
        """The term added to the reconstruction loss, and its detached logs.

        ``kl_total`` is the batch-mean KL (scalar), ``kl_per_sample_latent`` the KL of each
        sample and latent [B, d]. A list of terms makes a step of several optimiser updates:
        the first is added to the reconstruction loss, each later one is a step of its own.
        """
        return kl_total, {}


def adam(parameters, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam (Kingma & Ba, 2015) with its fused kernel: one pass over every parameter per step.

    The same update as the default (foreach) implementation, up to the rounding of its fp32
    arithmetic, in fewer passes over memory (``benchmarks/train_step.py`` times the step with
    the foreach one as its "plain layers" baseline). Devices without a fused kernel get the
    default implementation.
    """
    parameters = list(parameters)
    fused = all(p.device.type in ("cpu", "cuda") for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, betas=betas, fused=fused or None)
