"""The Non-Synergistic VAE objective (Barrientos & Sootla, 2018).

The penalty is the KL of the latents that a greedy search leaves out of the most informative
subset: ``loss = recon + beta * KL + alpha * KL(A_worst)`` (``beta = 1`` in the paper). A_best is
chosen without gradient by :func:`nsvae.synergy.selection.select_best`; A_worst is its complement,
and the gradient of the synergy term flows only through the KL of the latents in A_worst.

Two update rules (``config.update``):

``"joint"`` (default)
    the stated objective, one loss, one gradient, one Adam step per batch.
``"seed"``
    the seed author's ``trainers/train_non_syn_vae.py``: per batch, one Adam step on
    ``recon + beta * KL``, then a second step of the same optimiser on ``alpha * KL(A_worst)``,
    A_worst chosen on the posterior before the first step and both gradients taken at the
    parameters before the first step (the seed back-propagated the second loss through the
    graph built before the first step; nsvae takes both gradients from one graph instead, which
    gives the same numbers without PyTorch's in-place error).

The two rules differ by more than bookkeeping. Adam divides each step by the square root of its
running second moment, so a step's size hardly depends on the scale of its loss: in the seed's
rule alpha changes the *direction* of the second step only through the mixing of the moment
estimates, not its length, and the ELBO and synergy gradients share one pair of moment estimates
(each batch advances Adam's step count by two). In the joint rule alpha scales the synergy
gradient against the ELBO gradient inside one normalised step.
"""

from __future__ import annotations

import torch

from nsvae.objectives.beta_vae import BetaVAEObjective
from nsvae.synergy.selection import select_best


class NonSynObjective(BetaVAEObjective):
    """Non-Syn VAE: ``recon + beta * KL + alpha * KL(A_worst)``.

    Barrientos & Sootla, "Non-synergistic variational autoencoders", 2018
    (OpenReview: Skl3M20qYQ).

    Modes (``config.mode``):

    ``"batch"`` (the seed's)
        one subset per batch, chosen on the batch-mean KL ``kbar = k.mean(0)``; the term is
        ``sum_{j in A_worst} kbar[j]``.
    ``"sample"``
        one subset per sample, chosen on ``k[b]``; the term is ``sum_j k[b, j] * worst[b, j]``
        averaged over b (closer to S_max, whose max sits inside the expectation over x).

    With ``config.selection_batch == "independent"`` the subset is chosen on ``selection_kl``,
    the per-latent KL of a second batch that the trainer computes without gradient.
    Other fields read: ``alpha``, ``omega``, ``policy``, ``epsilon`` (epsilon-greedy draws from
    torch's global generator, so a resumed run repeats them), ``beta`` and ``update``.
    """

    def __init__(self, config, likelihood: str = "bernoulli"):
        super().__init__(config, likelihood)
        self.alpha = config.alpha
        self.omega = config.omega
        self.policy = config.policy
        self.mode = config.mode
        self.epsilon = config.epsilon
        self.selection_batch = config.selection_batch
        self.update = config.update

    def penalty(self, kl, k, outputs, step, selection_kl):
        """``beta * KL + alpha * KL(A_worst)``; logs ``synergy``, ``a_best``, ``a_best_size``.

        With ``update="seed"`` the two terms come as a list: one optimiser step each.
        """
        chooser = (k if selection_kl is None else selection_kl).detach()
        if self.mode == "batch":
            best = self.select(chooser.mean(0))
            synergy = (k.mean(0) * ~best).sum()
            a_best = best.to(k.dtype)
        else:
            best = self.select(chooser)
            synergy = (k * ~best).sum(1).mean()
            a_best = best.to(k.dtype).mean(0)
        logs = {"synergy": synergy.detach(), "a_best": a_best, "a_best_size": a_best.sum()}
        if self.update == "seed":
            return [self.beta * kl, self.alpha * synergy], logs
        return self.beta * kl + self.alpha * synergy, logs

    def select(self, kl: torch.Tensor) -> torch.Tensor:
        """Boolean mask of A_best for KL values [..., d] (no gradient)."""
        return select_best(kl, self.omega, self.policy, self.epsilon)
