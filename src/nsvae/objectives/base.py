"""The objective contract: one ``loss`` hook on the model's outputs, and the analytic KL.

Every objective is an ELBO variant: a reconstruction term (:mod:`nsvae.models.likelihoods`)
plus a penalty built from the posterior q(z|x) = N(mu, diag exp(logvar)) and the prior N(0, I)
(Kingma & Welling, 2014). The base class computes the reconstruction loss and the per-sample,
per-latent KL once; subclasses only say which penalty they add.
"""

from __future__ import annotations

import torch

from nsvae.models.likelihoods import reconstruction_loss


def kl_per_latent(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) of each sample and latent, in nats.

    ``k[b, j] = -0.5 * (1 + logvar[b, j] - mu[b, j]**2 - exp(logvar[b, j]))`` (>= 0); the KL of
    the diagonal posterior is the sum over latents (Kingma & Welling, 2014, appendix B).

    Parameters
    ----------
    mu, logvar : tensor [B, d]
        Posterior means and log-variances.

    Returns
    -------
    tensor [B, d]
    """
    return -0.5 * (1 + logvar - mu.square() - logvar.exp())


class Objective:
    """Base objective: ``loss = recon + penalty``; the plain VAE's penalty is the KL.

    Parameters
    ----------
    config : ObjectiveConfig
        Hyperparameters; each subclass reads the fields it needs.
    likelihood : str
        ``"bernoulli"`` or ``"gaussian"``, the model's ``likelihood``.

    Attributes
    ----------
    selection_batch : str
        ``"same"``, or ``"independent"`` when ``loss`` expects ``selection_kl`` computed on a second
        batch (only the Non-Syn objective uses it).
    """

    selection_batch = "same"

    def __init__(self, config, likelihood: str = "bernoulli"):
        self.likelihood = likelihood

    def loss(
        self,
        outputs: dict[str, torch.Tensor],
        batch: torch.Tensor,
        step: int,
        selection_kl: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss of one batch (the sum of :meth:`loss_terms`), and detached logs.

        Parameters
        ----------
        outputs : dict
            ``model(batch)``: ``mu``, ``logvar``, ``z``, ``x_logits``.
        batch : tensor [B, C, 64, 64]
            Observations in [0, 1].
        step : int
            Training step (for schedules).
        selection_kl : tensor [B', d], optional
            Per-latent KL of an independent batch (Non-Syn with ``selection_batch="independent"``).

        Returns
        -------
        loss : scalar tensor
        logs : dict of detached tensors
            ``recon``, ``kl`` (sum over latents, batch mean), ``kl_per_latent`` [d], and the
            objective's own terms. Nothing is moved to the host.
        """
        terms, logs = self.loss_terms(outputs, batch, step, selection_kl)
        return (terms[0] if len(terms) == 1 else torch.stack(terms).sum()), logs

    def loss_terms(
        self,
        outputs: dict[str, torch.Tensor],
        batch: torch.Tensor,
        step: int,
        selection_kl: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """The losses a training step minimises one after another, and detached logs.

        Almost every objective has one term, ``recon + penalty``: one gradient, one optimiser
        step. An objective whose :meth:`penalty` returns a list ``[p0, p1, ...]`` asks for one
        optimiser step per term, ``recon + p0`` first, then ``p1``, ..., every gradient taken at
        the parameters before the step (:func:`nsvae.train.trainer.optimizer_steps`). The
        arguments are those of :meth:`loss`.
        """
        recon = reconstruction_loss(outputs["x_logits"], batch, self.likelihood)
        k = kl_per_latent(outputs["mu"], outputs["logvar"])
        kl_latent = k.mean(0)
        kl = kl_latent.sum()
        penalty, extra = self.penalty(kl, k, outputs, step, selection_kl)
        first, *later = penalty if isinstance(penalty, list) else [penalty]
        logs = {"recon": recon.detach(), "kl": kl.detach(), "kl_per_latent": kl_latent.detach()}
        return [recon + first, *later], logs | extra

    def penalty(
        self,
        kl: torch.Tensor,
        k: torch.Tensor,
        outputs: dict[str, torch.Tensor],
        step: int,
        selection_kl: torch.Tensor | None,
    ) -> tuple[torch.Tensor | list[torch.Tensor], dict[str, torch.Tensor]]:
        """The term added to the reconstruction loss, and its detached logs.

        ``kl`` is the batch-mean KL (scalar), ``k`` the per-sample, per-latent KL [B, d]. A list
        of terms means one optimiser step per term (see :meth:`loss_terms`).
        """
        return kl, {}
