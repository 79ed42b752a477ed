"""One training step, as the trainer and ``benchmarks/train_step.py`` both take it."""

from __future__ import annotations

from collections import Counter

import torch

from nsvae.data.sampler import BatchSampler
from nsvae.objectives import Objective, Term
from nsvae.precision import autocast
from nsvae.rundir.checkpoint import like_parameter


def train_step(
    model: torch.nn.Module,
    objective: Objective,
    optimizers: dict[str, torch.optim.Optimizer],
    sampler: BatchSampler,
    step: int,
    precision: str = "fp32",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Draw the objective's batches, compute its loss terms and take one optimiser step per term.

    The forward pass and the loss terms run under :func:`nsvae.precision.autocast`; the
    gradients are taken outside it (autocast's recommended use) and the optimisers step in fp32.

    Parameters
    ----------
    model : VAE
        In training mode.
    objective : Objective
        Says how many batches a step consumes (``batches_per_step``) and which loss terms drive
        which optimiser (:meth:`~nsvae.objectives.Objective.terms`).
    optimizers : dict of str to Optimizer
        ``objective.optimizers(...)``.
    sampler : BatchSampler
        Source of the batches.
    step : int
        Steps taken before this one.
    precision : {"fp32", "bf16"}
        ``train.precision``.

    Returns
    -------
    loss : scalar tensor
        The sum of the terms, detached (for the logs and the finiteness guard).
    logs : dict of detached tensors
    """
    batches = [sampler.next() for _ in range(objective.batches_per_step)]
    with autocast(batches[0].device, precision):
        terms, logs = objective.terms(model, batches, step)
    optimizer_steps(optimizers, terms)
    return sum(term.loss.detach() for term in terms), logs


def optimizer_steps(
    optimizers: dict[str, torch.optim.Optimizer] | torch.optim.Optimizer,
    terms: list[Term] | list[torch.Tensor],
) -> None:
    """One optimiser step per loss term, every gradient taken at the current parameters.

    Each term is differentiated on the one graph of the step, before anything moves, with
    respect to the parameters of its own optimiser; then the optimisers step in the order of the
    terms. One term is the usual step. Several terms of one optimiser (the seed's Non-Syn update,
    :mod:`nsvae.objectives.nonsyn`) are applied one after another; a parameter that one of them
    does not reach gets a zero gradient, not none, for that step, as in the seed's code (PyTorch
    0.4's ``zero_grad`` zeroed gradients), so Adam still moves it by its momentum. Terms of
    different optimisers (FactorVAE's VAE and discriminator) each step their own parameters.
    Each gradient is laid out in memory as its parameter, as a fused optimiser needs.

    Parameters
    ----------
    optimizers : dict of str to Optimizer, or one Optimizer
        By name (one optimiser is ``{"model": optimizer}``).
    terms : list of Term, or of scalar tensors
        Tensors are terms of the ``"model"`` optimiser.
    """
    if isinstance(optimizers, torch.optim.Optimizer):
        optimizers = {"model": optimizers}
    terms = [term if isinstance(term, Term) else Term(term) for term in terms]
    steps_of = Counter(term.optimizer for term in terms)
    gradients = [
        torch.autograd.grad(
            term.loss,
            _parameters(optimizers[term.optimizer]),
            retain_graph=index < len(terms) - 1,
            allow_unused=True,
        )
        for index, term in enumerate(terms)
    ]
    for term, grads in zip(terms, gradients, strict=True):
        optimizer = optimizers[term.optimizer]
        for parameter, gradient in zip(_parameters(optimizer), grads, strict=True):
            zero = gradient is None and steps_of[term.optimizer] > 1
            parameter.grad = (
                torch.zeros_like(parameter) if zero else like_parameter(gradient, parameter)
            )
        optimizer.step()
    for name in steps_of:
        optimizers[name].zero_grad(set_to_none=True)


def _parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]
