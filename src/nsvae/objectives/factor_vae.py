"""The FactorVAE objective: a discriminator's estimate of the total correlation (Kim & Mnih, 2018).

A discriminator D learns to tell codes z ~ q(z) from codes whose latents were permuted
independently across a batch (samples of prod_j q(z_j)). Its two logits give the density-ratio
estimate ``TC ~ E[D(z)_0 - D(z)_1]``, which the VAE minimises with weight gamma. The two updates
of a step are separate, as in disentanglement_lib:

- the VAE term ``recon + KL + gamma * TC`` steps the VAE only; the discriminator's weights enter
  it as constants, so it leaves no gradient on them;
- the discriminator term, the cross-entropy of real (class 0) against permuted (class 1) codes,
  is computed on detached codes, so it leaves no gradient on the encoder.

Both gradients are taken at the parameters before either step (:func:`nsvae.training.step.
optimizer_steps`), which also avoids the in-place autograd error of implementations that step
the VAE before back-propagating the discriminator loss through the same graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional

from nsvae.checks import adam_betas, at_least, choice, non_negative, positive, setting
from nsvae.errors import ConfigError
from nsvae.objectives.base import Logged, Objective, ObjectiveConfig, Term, adam

PERMUTE_FROM = ("same", "independent")


def _permute_from(key: str, value: str) -> None:
    choice(key, value, PERMUTE_FROM)


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Each latent (column) of ``z`` [B, d] permuted across the batch, independently of the others.

    The rows of the result are samples of the product of the marginals prod_j q(z_j) (Kim &
    Mnih, 2018, algorithm 2). The permutations come from torch's global generator on z's device.
    """
    order = torch.rand(z.shape, device=z.device).argsort(dim=0)
    return z.gather(0, order)


class Discriminator(nn.Sequential):
    """``layers`` fully connected layers of ``width`` units with LeakyReLU(0.2), then 2 logits.

    disentanglement_lib's FactorVAE discriminator is 6 layers of 1,000 units. Logit 0 stands for
    "a code of q(z)", logit 1 for "a permuted code".
    """

    def __init__(self, z_dim: int, width: int = 1000, layers: int = 6):
        sizes = [z_dim] + [width] * layers
        blocks = []
        for inputs, outputs in zip(sizes[:-1], sizes[1:], strict=True):
            blocks += [nn.Linear(inputs, outputs), nn.LeakyReLU(0.2)]
        super().__init__(*blocks, nn.Linear(sizes[-1], 2))


class FactorVAEObjective(Objective):
    """``recon + KL + gamma * TC``, TC estimated by a discriminator trained alongside.

    Kim & Mnih, "Disentangling by factorising", ICML 2018. Fields of the config section:
    ``gamma`` (TC weight), ``permute`` (``"same"``: permute the codes of the reconstructed batch,
    as disentanglement_lib does; ``"independent"``: of a second batch, as in the paper's
    algorithm 2), and the discriminator's size and Adam settings (``disc_width``,
    ``disc_layers``, ``disc_lr``, ``disc_betas``; defaults of disentanglement_lib).
    """

    @dataclass
    class Config(ObjectiveConfig):
        """``gamma``, ``permute`` and the discriminator's ``disc_*`` settings."""

        name: str = "factor_vae"
        gamma: float = setting(10.0, "Weight of the total correlation.", check=non_negative)
        permute: str = setting(
            "same",
            "Batch whose codes are permuted for the discriminator: same or independent.",
            check=_permute_from,
        )
        disc_width: int = setting(1000, "Discriminator's hidden units.", check=at_least(1))
        disc_layers: int = setting(6, "Discriminator's hidden layers.", check=at_least(1))
        disc_lr: float = setting(1e-4, "Discriminator's Adam learning rate.", check=positive)
        disc_betas: tuple[float, float] = setting(
            (0.5, 0.9), "Discriminator's Adam betas.", check=adam_betas
        )

    logged = Objective.logged | {
        "tc": Logged("total correlation (discriminator estimate)"),
        "disc_loss": Logged("discriminator cross-entropy"),
        "disc_accuracy": Logged("discriminator accuracy (chance 0.5)", unit="fraction"),
    }

    def __init__(self, config, likelihood: str = "bernoulli", **context):
        super().__init__(config, likelihood, **context)
        if self.z_dim is None:
            raise ConfigError("factor_vae needs the number of latents for its discriminator")
        self.discriminator = Discriminator(self.z_dim, config.disc_width, config.disc_layers)
        self.batches_per_step = 2 if config.permute == "independent" else 1

    def modules(self) -> dict[str, nn.Module]:
        """The discriminator."""
        return {"discriminator": self.discriminator}

    def optimizers(self, model, lr, betas):
        """The VAE's Adam and the discriminator's own (``disc_lr``, ``disc_betas``)."""
        discriminator = adam(
            self.discriminator.parameters(), lr=self.config.disc_lr, betas=self.config.disc_betas
        )
        return super().optimizers(model, lr, betas) | {"discriminator": discriminator}

    def terms(self, model, batches, step):
        """The VAE term (model optimiser) and the discriminator term (its own optimiser)."""
        outputs = model(batches[0])
        (vae,), logs = self.loss_terms(outputs, batches[0], step)
        real = outputs["z"].detach()
        if len(batches) > 1:
            with torch.no_grad():
                other = model(batches[1])["z"]
        else:
            other = real
        loss, accuracy = self.discriminator_loss(real, permute_dims(other))
        logs |= {"disc_loss": loss.detach(), "disc_accuracy": accuracy}
        return [Term(vae), Term(loss, "discriminator")], logs

    def penalty(self, kl_total, kl_per_sample_latent, outputs, step):
        """``KL + gamma * TC``, the discriminator held constant; logs ``tc``."""
        tc = self.total_correlation(outputs["z"])
        return kl_total + self.config.gamma * tc, {"tc": tc.detach()}

    def total_correlation(self, z: torch.Tensor) -> torch.Tensor:
        """``mean_b D(z_b)_0 - D(z_b)_1``, differentiable in z but not in D's weights."""
        constants = {name: value.detach() for name, value in self.discriminator.named_parameters()}
        logits = functional_call(self.discriminator, constants, (z,))
        return (logits[:, 0] - logits[:, 1]).mean()

    def discriminator_loss(
        self, real: torch.Tensor, permuted: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of real codes (class 0) and permuted codes (class 1), and the accuracy.

        Both inputs are detached codes [B, d]; the result is the mean of the two classes' losses
        (disentanglement_lib weighs them equally) and the detached share classified right.
        """
        logits = self.discriminator(torch.cat([real, permuted]))
        labels = torch.cat(
            [
                torch.zeros(len(real), dtype=torch.long, device=logits.device),
                torch.ones(len(permuted), dtype=torch.long, device=logits.device),
            ]
        )
        losses = functional.cross_entropy(logits, labels, reduction="none")
        loss = 0.5 * (losses[: len(real)].mean() + losses[len(real) :].mean())
        right = (logits.argmax(1) == labels).float()
        accuracy = 0.5 * (right[: len(real)].mean() + right[len(real) :].mean())
        return loss, accuracy.detach()
