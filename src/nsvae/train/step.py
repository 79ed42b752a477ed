"""One training step, as the trainer and ``benchmarks/train_step.py`` both take it."""

from __future__ import annotations

import torch

from nsvae.data.sampler import BatchSampler
from nsvae.objectives import Objective


def train_step(
    model: torch.nn.Module,
    objective: Objective,
    optimizers: dict[str, torch.optim.Optimizer],
    sampler: BatchSampler,
    step: int,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Draw the objective's batches, compute its loss terms and take one optimiser step per term.

    Every term's gradient is taken at the parameters before any update (one forward graph), with
    respect to the parameters of that term's optimiser only; then the optimisers step in the order
    of the terms. With one term (every objective by default) this is ``backward()`` and
    ``step()``; with several it is, e.g., the seed's two Adam steps per batch, or FactorVAE's VAE
    and discriminator updates.

    Parameters
    ----------
    model : VAE
        In training mode.
    objective : Objective
        Says how many batches a step consumes and which terms drive which optimiser.
    optimizers : dict of str to Optimizer
        ``objective.optimizers(...)``.
    sampler : BatchSampler
        Source of the batches.
    step : int
        Steps taken before this one.

    Returns
    -------
    loss : scalar tensor
        The sum of the terms, detached (for the logs and the finiteness guard).
    logs : dict of detached tensors
    """
    batches = [sampler.next() for _ in range(objective.batches_per_step)]
    terms, logs = objective.terms(model, batches, step)
    gradients = [
        torch.autograd.grad(term.loss, _parameters(optimizers[term.optimizer]),
                            retain_graph=index < len(terms) - 1, allow_unused=True)
        for index, term in enumerate(terms)
    ]
    for term, grads in zip(terms, gradients, strict=True):
        optimizer = optimizers[term.optimizer]
        for parameter, gradient in zip(_parameters(optimizer), grads, strict=True):
            parameter.grad = gradient
        optimizer.step()
    loss = terms[0].loss.detach()
    for term in terms[1:]:
        loss = loss + term.loss.detach()
    return loss, logs


def _parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]
