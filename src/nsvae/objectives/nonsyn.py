"""The Non-Synergistic VAE objective (Barrientos & Sootla, 2018).

The penalty is the KL of the latents that a greedy search leaves out of the most informative
subset: ``loss = recon + beta * KL + alpha * KL(A_worst)`` (``beta = 1`` in the paper). A_best is
chosen without gradient by :func:`nsvae.objectives.selection.select_best`; A_worst is its
complement, and the gradient of the synergy term flows only through the KL of the latents in
A_worst.

Two update rules (``config.update``):

``"joint"`` (default)
    the stated objective, one loss, one gradient, one Adam step per batch.
``"seed"``
    the seed author's ``trainers/train_non_syn_vae.py``: per batch, one Adam step on
    ``recon + beta * KL``, then a second step of the same optimiser on ``alpha * KL(A_worst)``,
    both gradients taken at the parameters before the first step. The penalty returns the two
    terms as a list and :func:`nsvae.training.step.optimizer_steps` takes one step per term.

How the seed's rule is reproduced, and why the two rules differ by more than bookkeeping under
Adam: docs/nonsyn.md#update-rules-joint-and-seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nsvae.checks import check, choice, non_negative, setting
from nsvae.gaussian import kl_per_latent
from nsvae.objectives.base import Logged
from nsvae.objectives.beta_vae import BetaVAEObjective
from nsvae.objectives.selection import check_selection, select_best

MODES = ("batch", "sample")
SELECTION_BATCHES = ("same", "independent")
UPDATES = ("joint", "seed")


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

    With ``config.selection_batch == "independent"`` a step consumes two batches and the subset
    is chosen on the per-latent KL of the second, computed without gradient
    (``outputs["selection_kl"]``). Epsilon-greedy draws from torch's global generator, so a
    resumed run repeats them.
    """

    @dataclass
    class Config(BetaVAEObjective.Config):
        """``alpha`` (synergy weight), ``omega`` (greedy discount), ``policy``, ``mode``,
        ``selection_batch``, ``epsilon`` (exploration of epsilon-greedy), ``update`` (``"joint"``
        or the seed's two steps, ``"seed"``) and ``beta`` (KL weight).
        """

        name: str = "nonsyn"
        alpha: float = setting(5.0, "Weight of KL(A_worst).", check=non_negative)
        omega: float = setting(0.9, "Greedy discount of the A_best selection, in (0, 1].")
        policy: str = setting("sorted", "Selection: reference, sorted or epsilon-greedy.")
        mode: str = setting(
            "batch", "One subset per batch or per sample.", check=lambda k, v: choice(k, v, MODES)
        )
        selection_batch: str = setting(
            "same",
            "Select on the same or an independent batch.",
            check=lambda k, v: choice(k, v, SELECTION_BATCHES),
        )
        epsilon: float = setting(0.1, "Exploration of epsilon-greedy.")
        update: str = setting(
            "joint",
            "joint (one Adam step on the whole loss) or seed (the "
            "seed's two steps: ELBO, then alpha * KL(A_worst)).",
            check=lambda k, v: choice(k, v, UPDATES),
        )

        def validate(self, section: str = "objective") -> NonSynObjective.Config:
            """Field rules, the selection's rule and: an independent batch needs batch mode."""
            super().validate(section)
            check_selection(self.omega, self.policy, self.epsilon, prefix=f"{section}.")
            check(
                self.mode == "batch" or self.selection_batch == "same",
                f"{section}.selection_batch 'independent' needs {section}.mode 'batch' "
                "(a per-sample subset has no counterpart in another batch)",
            )
            return self

        def evaluation_params(self) -> dict[str, dict]:
            """``latent_synergy`` chooses its subsets as training did."""
            return {
                "latent_synergy": {
                    "omega": self.omega,
                    "policy": self.policy,
                    "epsilon": self.epsilon,
                }
            }

    logged = BetaVAEObjective.logged | {
        "synergy": Logged("synergy term KL(A_worst) (unweighted)"),
        "a_best_size": Logged("mean |A_best|", unit="latents"),
        "a_best_freq": Logged("share of steps each latent was in A_best", kind="share"),
    }

    def __init__(self, config, likelihood: str = "bernoulli", **context):
        super().__init__(config, likelihood, **context)
        self.alpha = config.alpha
        self.omega = config.omega
        self.policy = config.policy
        self.mode = config.mode
        self.epsilon = config.epsilon
        self.update = config.update
        self.batches_per_step = 2 if config.selection_batch == "independent" else 1

    def forward(self, model, batches):
        """The model's outputs on the first batch; with a second, its KL as ``selection_kl``."""
        outputs = model(batches[0])
        if len(batches) > 1:
            with torch.no_grad():
                outputs["selection_kl"] = kl_per_latent(*model.encode(batches[1]))
        return outputs

    def penalty(self, kl_total, kl_per_sample_latent, outputs, step):
        """``beta * KL + alpha * KL(A_worst)``; logs ``synergy``, ``a_best_freq``, ``a_best_size``.

        With ``update="seed"`` the two terms come as a list: one optimiser step each.
        """
        k = kl_per_sample_latent
        selection_kl = outputs.get("selection_kl")
        ranked = (k if selection_kl is None else selection_kl).detach()
        if self.mode == "batch":
            best = self.select(ranked.mean(0))
            synergy = (k.mean(0) * ~best).sum()
            a_best = best.to(k.dtype)
        else:
            best = self.select(ranked)
            synergy = (k * ~best).sum(1).mean()
            a_best = best.to(k.dtype).mean(0)
        logs = {"synergy": synergy.detach(), "a_best_freq": a_best, "a_best_size": a_best.sum()}
        if self.update == "seed":
            return [self.beta * kl_total, self.alpha * synergy], logs
        return self.beta * kl_total + self.alpha * synergy, logs

    def select(self, kl: torch.Tensor) -> torch.Tensor:
        """Boolean mask of A_best for KL values [..., d] (no gradient)."""
        return select_best(kl, self.omega, self.policy, self.epsilon)
