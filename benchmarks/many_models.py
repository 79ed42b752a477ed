"""Model-steps per second when K models of one setting train in one process, against one at a time.

Researchers train many seeds of one setting. This measures whether stacking K VAEs' parameters
and taking their steps together (:func:`torch.func.stack_module_state`, ``vmap`` over
:func:`torch.func.grad`; vmap turns the K convolutions into one grouped convolution) raises
model-steps per second on this machine. Each model sees its own batch of 64 and takes the plain
VAE step (Bernoulli reconstruction + KL, Adam); the Non-Syn selection and every other objective
add the same per-model work either way. Figures are medians over interleaved blocks.

Run: ``python benchmarks/many_models.py --models 1,2,4,8`` (``--precision`` is ``auto`` by default:
bf16 where the CPU has bf16 arithmetic, else fp32).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.func import functional_call, grad, stack_module_state, vmap

from nsvae.config import ModelConfig
from nsvae.device import physical_cores
from nsvae.models import build_model, reconstruction_loss
from nsvae.models.layers import plain_layers
from nsvae.objectives import kl_per_latent
from nsvae.objectives.base import adam
from nsvae.precision import PRECISIONS, autocast, resolve_precision
from nsvae.provenance import cpu_description


def elbo_loss(model, parameters, x):
    """The VAE loss of one model's parameters on its batch x (noise from the global generator)."""
    mu, logvar = _encode(model, parameters, x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    logits = functional_call(model.decoder, _prefixed(parameters, "decoder."), (z,)).float()
    return reconstruction_loss(logits, x, "bernoulli") + kl_per_latent(mu, logvar).sum(1).mean()


def _prefixed(parameters: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in parameters.items() if k.startswith(prefix)}


def _encode(model, parameters, x):
    out = functional_call(model.encoder, _prefixed(parameters, "encoder."), (x,)).float()
    return out.chunk(2, dim=1)


class Stacked:
    """K models' steps taken together: one vmapped gradient, one fused Adam over the stacks."""

    def __init__(self, k: int, batches: torch.Tensor, precision: str):
        models = []
        for seed in range(k):
            torch.manual_seed(seed)
            models.append(build_model(ModelConfig(arch="dlib", z_dim=10)))
        # torch's plain layers: vmap batches them into grouped convolutions (nsvae's layers are
        # autograd Functions without a vmap rule), so this variant also lacks their speed-up
        self.base = plain_layers(models[0])
        self.parameters, _ = stack_module_state(models)
        self.optimizer = adam(self.parameters.values(), lr=1e-4, betas=(0.9, 0.999))
        self.batches, self.precision, self.k = batches, precision, k
        loss = lambda p, x: elbo_loss(self.base, p, x)  # noqa: E731
        self.gradients = vmap(grad(loss), in_dims=(0, 0), randomness="different")

    def __call__(self) -> None:
        x = self.batches[: self.k]
        with autocast("cpu", self.precision):
            grads = self.gradients(self.parameters, x)
        for name, parameter in self.parameters.items():
            parameter.grad = grads[name]
        self.optimizer.step()


class OneAtATime:
    """K models' steps taken one after another, each the plain eager step."""

    def __init__(self, k: int, batches: torch.Tensor, precision: str):
        self.models, self.optimizers = [], []
        for seed in range(k):
            torch.manual_seed(seed)
            model = build_model(ModelConfig(arch="dlib", z_dim=10))
            self.models.append(model)
            self.optimizers.append(adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999)))
        self.batches, self.precision = batches, precision

    def __call__(self) -> None:
        for model, optimizer, x in zip(self.models, self.optimizers, self.batches, strict=False):
            with autocast("cpu", self.precision):
                out = model(x)
                loss = (
                    reconstruction_loss(out["x_logits"], x, "bernoulli")
                    + kl_per_latent(out["mu"], out["logvar"]).sum(1).mean()
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def model_steps_per_second(step, k: int, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return k * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="1,2,4,8", help="comma-separated K")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto: bf16 where the CPU has bf16 arithmetic, else fp32 (nsvae.precision)",
    )
    parser.add_argument("--steps", type=int, default=4, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    args.precision = resolve_precision(args.precision, "cpu")
    torch.set_num_threads(physical_cores())
    ks = [int(k) for k in args.models.split(",")]
    generator = torch.Generator().manual_seed(0)
    batches = (torch.rand(max(ks), 64, 1, 64, 64, generator=generator) > 0.9).float()
    variants = {}
    for k in ks:
        variants[f"K={k} one at a time"] = (OneAtATime(k, batches, args.precision), k)
        if k > 1:
            variants[f"K={k} stacked (vmap)"] = (Stacked(k, batches, args.precision), k)
    for step, _ in variants.values():
        step()
        step()
    rates = {name: [] for name in variants}
    for _ in range(args.blocks):
        for name, (step, k) in variants.items():
            rates[name].append(model_steps_per_second(step, k, args.steps))
    print(f"CPU: {cpu_description()}")
    print(
        f"K VAEs (dlib, batch 64 each, {args.precision}, {torch.get_num_threads()} threads), "
        f"median model-steps/s over {args.blocks} blocks of {args.steps} steps"
    )
    single = statistics.median(rates[f"K={ks[0]} one at a time"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"  {name:24s} {median:7.2f} model-steps/s  x{median / single:.2f}")


if __name__ == "__main__":
    main()
