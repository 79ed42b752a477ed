"""Training steps per second: nsvae's Non-Syn step, fp32 and bf16, against the seed's algorithm.

nsvae's step is the trainer's loop body (``train.precision`` fp32, bf16 and, with ``--compile``,
bf16 with the model compiled; the first compiled call, which pays the compilation, is timed): a
batch from :class:`nsvae.data.sampler.BatchSampler` (uint8 images in memory, random indices, one
float conversion per batch), one forward pass, the Non-Syn objective with the vectorised
``sorted`` selection, one backward pass, one Adam step.

The baseline follows the seed's algorithm (Barrientos & Sootla, 2018, github.com/Gonzalob90/
non-synergistic-vae) on the same architecture, batch and optimiser:

* a ``torch.utils.data.DataLoader`` (shuffled, batch 64, no worker processes: the machine has
  few cores) over a dataset that returns one float tensor per item;
* the greedy search as a Python loop over candidate subsets, computing each subset's KL from
  mu and logvar and reading it with ``.item()`` (the seed's rule: strict argmax in round one,
  later candidates accepted when ``omega * (S + k_j)`` beats the best so far);
* two optimiser steps per batch: ``recon + KL`` first, then ``alpha * KL(A_worst)``. The seed
  back-propagated the second loss through the graph built before the first step, which modern
  PyTorch refuses (in-place modification of saved weights); here the second step recomputes the
  encoder's forward pass (all that the synergy term needs) after the first step. A second figure,
  ``seed (one forward)``, takes both gradients from the one graph before stepping (the cheapest
  two-backward variant, a lower bound on the seed's cost).

Images are dSprites rendered at a few thousand random rows of the grid (so the full grid need not
be rendered; dense convolutions cost the same whatever the pixels).
Steps are timed in alternating blocks, so load from other processes hits all variants alike; the
figures are medians over blocks, with each nsvae variant's ratio to the seed's algorithm
(recomputed forward). ``nsvae fp32/bf16, plain layers`` is nsvae's step as it was before the
convolutions were reformulated (torch's plain layers, the default foreach Adam:
:mod:`nsvae.models.layers`), timed in the same run. The script names the CPU and the instruction
sets that set its matrix throughput (AVX-512 BF16, AMX), measures the machine's matrix-product
peak at the run's thread count for fp32, and for bf16 where the CPU has bf16 arithmetic (the
best of warmed-up calls after each round of timed blocks, so a host's passing load moves the
ceiling no more than the steps), and prints the FLOPs of nsvae's step and the share of the peak,
fp32 or bf16 as the variant computes, that it reaches. ``--layers`` adds a table of every
layer's forward pass, data gradient and weight gradient, plain against reformulated, at each of
``--precisions``, so the slowest primitive shows in one run (:func:`silicon.layer_table`).

``--models all`` adds every other objective of :data:`MODELS` (FactorVAE's discriminator, the
seed's two-step Non-Syn update, beta-TCVAE's [B, B, d] density table...) so their cost shows
beside the Non-Syn step, in fp32 or ``--models-precision bf16``, and ``--plain-models`` times
each with torch's plain layers too. The demo's step (its ``"auto"`` precision is bf16 on a CPU
with bf16 arithmetic, else fp32): ``--arch seed-linear --plain-models``.

``--precisions`` picks the Non-Syn step's precisions: by default fp32, and bf16 where the CPU
has bf16 arithmetic (AVX-512 BF16, AMX); a CPU with AVX2 alone runs bf16 in torch's reference
convolutions, over ten times slower than fp32, which ``--precisions fp32,bf16`` shows.

Run: ``OMP_WAIT_POLICY=PASSIVE python benchmarks/train_step.py`` (``--help`` for options;
``--profile`` adds torch.profiler's table of the operators each nsvae step spends its time in). On a
machine shared with other processes, OpenMP threads that spin while waiting slow every variant
several-fold; the passive policy (set before torch loads OpenMP) lets them sleep instead.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np
import torch
from seed_data import PerItemImages
from silicon import layer_table, matmul_peak
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from nsvae.config import ModelConfig
from nsvae.data import dsprites
from nsvae.data.sampler import BatchSampler
from nsvae.device import physical_cores
from nsvae.models import build_model, reconstruction_loss
from nsvae.models.layers import plain_layers
from nsvae.objectives import build_objective, kl_per_latent, objective_config
from nsvae.precision import native_bf16
from nsvae.provenance import cpu_description
from nsvae.training import train_step


def dsprites_images(n: int, seed: int = 0) -> np.ndarray:
    """n rendered dSprites images [n, 1, 64, 64] (uint8 {0, 1}) at random rows of the grid."""
    classes = dsprites.latents_classes()
    rows = np.random.default_rng(seed).choice(len(classes), n, replace=False)
    return dsprites.render(classes[rows])[:, None]


# Every objective at the settings a user would train it with (disentanglement_lib's / the seed's).
MODELS = {
    "nonsyn": {"alpha": 5.0, "omega": 0.9, "policy": "sorted"},
    "nonsyn (seed update)": {
        "name": "nonsyn",
        "alpha": 5.0,
        "omega": 0.9,
        "policy": "sorted",
        "update": "seed",
    },
    "vae": {},
    "beta_vae": {"beta": 4.0},
    "annealed_vae": {},
    "factor_vae": {"gamma": 30.0},
    "beta_tcvae": {"beta": 6.0},
    "dip_vae": {},
}


class NsvaeStep:
    """One training step as :func:`nsvae.training.train` takes it
    (:func:`nsvae.training.train_step`).

    ``model`` is a key of :data:`MODELS` (Non-Syn by default); ``precision`` is
    ``train.precision`` and ``compile`` compiles the model (``train.compile``). ``plain`` is the
    step before the reformulation: torch's plain convolutions and the default (foreach) Adam.
    """

    def __init__(
        self,
        images,
        args,
        model: str = "nonsyn",
        precision: str = "fp32",
        compile: bool = False,
        plain: bool = False,
    ):
        torch.manual_seed(0)
        self.model = build_model(ModelConfig(arch=args.arch, z_dim=args.z_dim))
        if plain:
            plain_layers(self.model)
        if compile:
            self.model.compile()
        self.precision = precision
        fields = dict(MODELS[model])
        config = objective_config(fields.pop("name", model), **fields)
        self.objective = build_objective(
            config, likelihood=self.model.likelihood, z_dim=args.z_dim, dataset_size=len(images)
        )
        self.optimizers = self.objective.optimizers(self.model, lr=1e-4, betas=(0.9, 0.999))
        if plain:
            self.optimizers = {
                name: torch.optim.Adam(
                    optimizer.param_groups[0]["params"],
                    lr=optimizer.defaults["lr"],
                    betas=optimizer.defaults["betas"],
                )
                for name, optimizer in self.optimizers.items()
            }
        self.sampler = BatchSampler(images, args.batch_size, seed=0)
        self.step = 0

    def __call__(self) -> torch.Tensor:
        loss, _ = train_step(
            self.model, self.objective, self.optimizers, self.sampler, self.step, self.precision
        )
        self.step += 1
        return loss


def seed_greedy(mu: torch.Tensor, logvar: torch.Tensor, omega: float) -> list[int]:
    """The seed's greedy search over subsets: a Python loop, one ``.item()`` per candidate."""
    mu, logvar = mu.detach(), logvar.detach()
    d = mu.shape[1]
    chosen: list[int] = []
    best = -float("inf")
    for round_ in range(d):
        winner = None
        for j in range(d):
            if j in chosen:
                continue
            subset = [*chosen, j]
            value = kl_per_latent(mu[:, subset], logvar[:, subset]).sum(1).mean().item()
            if (value if round_ == 0 else omega * value) > best:
                best, winner = value, j
        if winner is None:
            break
        chosen.append(winner)
    return chosen


class SeedStep:
    """One step of the seed's algorithm (see the module docstring).

    ``recompute=True``: the second optimiser step recomputes the encoder after the first step.
    ``recompute=False``: both gradients come from one graph, taken before either step.
    """

    def __init__(self, images, args, recompute: bool):
        torch.manual_seed(0)
        self.model = build_model(ModelConfig(arch=args.arch, z_dim=args.z_dim))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.loader = DataLoader(PerItemImages(images), batch_size=args.batch_size, shuffle=True)
        self.batches = iter(self.loader)
        self.recompute = recompute
        self.alpha, self.omega = 5.0, 0.9

    def next_batch(self) -> torch.Tensor:
        try:
            return next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            return next(self.batches)

    def synergy(self, mu, logvar, best: list[int]) -> torch.Tensor:
        worst = [j for j in range(mu.shape[1]) if j not in best]
        return self.alpha * kl_per_latent(mu[:, worst], logvar[:, worst]).sum(1).mean()

    def __call__(self) -> torch.Tensor:
        x = self.next_batch()
        out = self.model(x)
        elbo = (
            reconstruction_loss(out["x_logits"], x, "bernoulli")
            + kl_per_latent(out["mu"], out["logvar"]).sum(1).mean()
        )
        best = seed_greedy(out["mu"], out["logvar"], self.omega)
        if self.recompute:
            self.optimizer.zero_grad()
            elbo.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
            self.synergy(*self.model.encode(x), best).backward()
            self.optimizer.step()
        else:
            params = list(self.model.parameters())
            first = torch.autograd.grad(elbo, params, retain_graph=True)
            syn = self.synergy(out["mu"], out["logvar"], best)
            second = torch.autograd.grad(syn, params, allow_unused=True)
            for grads in (first, second):
                for p, g in zip(params, grads, strict=True):
                    p.grad = torch.zeros_like(p) if g is None else g
                self.optimizer.step()
        return elbo


def time_block(step, steps: int) -> float:
    """Steps per second over ``steps`` calls (the last loss is read to finish pending work)."""
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()
    return steps / (time.perf_counter() - start)


def step_flops(step) -> float:
    """Floating-point operations of one step (convolutions and matrix products, both passes)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def profile_table(step, steps: int, rows: int = 15) -> str:
    """torch.profiler's tables of the operators that ``steps`` calls spend their time in (self
    CPU time, largest first): where a step's time goes, by operator and then by operator and
    input shapes (which layer's pass it is)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        time_block(step, steps)
    by_operator = profiler.key_averages()
    by_shape = profiler.key_averages(group_by_input_shape=True)
    return "\n".join(
        [
            by_operator.table(sort_by="self_cpu_time_total", row_limit=rows),
            "by operator and input shapes:",
            by_shape.table(sort_by="self_cpu_time_total", row_limit=rows),
        ]
    )


def variants(images, args, models: list[str]) -> dict:
    """The steps to time, by name: nsvae's Non-Syn at each of ``--precisions``, the same with
    the plain layers and Adam it had before the reformulation, bf16 compiled, the other
    ``models`` at ``--models-precision`` (and with plain layers, ``--plain-models``), and the
    seed's two."""
    steps = {}
    for precision in args.precisions:
        steps[f"nsvae {precision}"] = NsvaeStep(images, args, precision=precision)
    for precision in args.precisions:
        steps[f"nsvae {precision}, plain layers"] = NsvaeStep(
            images, args, precision=precision, plain=True
        )
    if args.compile:
        steps["nsvae bf16 + compile"] = NsvaeStep(images, args, precision="bf16", compile=True)
    for name in (name for name in models if name != "nonsyn"):
        precision = args.models_precision
        steps[f"nsvae {name} {precision}"] = NsvaeStep(images, args, name, precision)
        if args.plain_models:
            steps[f"nsvae {name} {precision}, plain layers"] = NsvaeStep(
                images, args, name, precision, plain=True
            )
    steps[SEED] = SeedStep(images, args, recompute=True)
    steps["seed (one forward)"] = SeedStep(images, args, recompute=False)
    return steps


SEED = "seed (recomputed forward)"
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def parse_precisions(text: str) -> list[str]:
    """``"fp32,bf16"`` -> ["fp32", "bf16"]; ``"auto"``: fp32, and bf16 where the CPU has bf16
    arithmetic (:func:`nsvae.precision.native_bf16`) (argparse's type)."""
    if text == "auto":
        return ["fp32", "bf16"] if native_bf16("cpu") else ["fp32"]
    names = list(dict.fromkeys(text.split(",")))
    unknown = [name for name in names if name not in PRECISIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown precision {unknown[0]!r} (fp32, bf16)")
    return names


def warm_up(steps: dict) -> dict[str, float]:
    """Three untimed calls of each step; the seconds of each one's first call."""
    first = {}
    for name, step in steps.items():
        start = time.perf_counter()
        step().item()
        first[name] = time.perf_counter() - start
        time_block(step, 2)
    return first


def report(args, threads, rates, first, flops: dict[str, float], peaks: dict[str, float]) -> None:
    """Print the medians, the ratios to the seed's algorithm and each nsvae step's share of the
    ``peaks`` (FLOP/s by precision; ``flops``: each step's floating-point operations, by name)."""
    print(f"CPU: {cpu_description()}")
    print(
        f"train step, arch={args.arch}, z_dim={args.z_dim}, batch={args.batch_size}, "
        f"threads={threads}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
        f"torch {torch.__version__}, "
        f"{args.blocks} blocks x {args.steps} steps, median steps/s"
    )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    width = max(28, *map(len, rates))
    for name, values in rates.items():
        spread = f"[{min(values):.2f}, {max(values):.2f}]"
        print(
            f"  {name:{width}s} {medians[name]:7.2f} steps/s  {spread:18s} "
            f"x{medians[name] / medians[SEED]:.2f} the seed's"
        )
    measured = ", ".join(f"{name} {peak / 1e9:.0f} GFLOP/s" for name, peak in peaks.items())
    print(
        f"measured matmul peaks (best of 1024^2 and 2048^2 products, warmed up, {threads} "
        f"threads, after each round of timed blocks): {measured}; each nsvae step's GFLOP "
        "(forward + backward) and its rate:"
    )
    for name, step_flop in flops.items():
        dtype = "bf16" if "bf16" in name else "fp32"
        rate = step_flop * medians[name]
        share = (
            f"{rate / peaks[dtype]:.0%} of the {dtype} peak"
            if dtype in peaks
            else f"no {dtype} peak: the CPU has no {dtype} arithmetic"
        )
        print(f"  {name:{width}s} {step_flop / 1e9:5.2f} GFLOP  {rate / 1e9:6.0f} GFLOP/s =", share)
    if "nsvae bf16 + compile" in first:
        print(
            f"torch.compile: first call {first['nsvae bf16 + compile']:.1f} s "
            f"(uncompiled bf16: {first['nsvae bf16']:.2f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="dlib", choices=("dlib", "seed", "seed-linear"))
    parser.add_argument("--z-dim", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=4096, help="dSprites images rendered")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks per variant")
    parser.add_argument("--threads", type=int, default=0, help="0: physical cores")
    parser.add_argument("--compile", action="store_true", help="also time bf16 + torch.compile")
    parser.add_argument(
        "--layers",
        action="store_true",
        help="also print each layer's forward, data and weight gradient, plain "
        "torch layers against nsvae's, at each of --precisions",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print where each nsvae step (Non-Syn, the compiled one and --models; not the "
        "plain twins) spends its time",
    )
    parser.add_argument(
        "--models", default="nonsyn", help=f"comma-separated, or 'all': {', '.join(MODELS)}"
    )
    parser.add_argument(
        "--precisions",
        default="auto",
        type=parse_precisions,
        help="comma-separated precisions of the Non-Syn step (fp32, bf16); auto: fp32, and "
        "bf16 where the CPU has bf16 arithmetic (without it torch runs bf16 in slow reference "
        "code)",
    )
    parser.add_argument(
        "--models-precision",
        default="fp32",
        choices=("fp32", "bf16"),
        help="precision of the --models other than nonsyn",
    )
    parser.add_argument(
        "--plain-models",
        action="store_true",
        help="also time each of --models with torch's plain layers and Adam",
    )
    args = parser.parse_args()
    models = list(MODELS) if args.models == "all" else args.models.split(",")
    unknown = [name for name in models if name not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r} (choose from: {', '.join(MODELS)})")

    if args.compile and "bf16" not in args.precisions:
        parser.error("--compile times bf16: give --precisions with bf16")
    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    if args.precisions == ["fp32"] and not native_bf16("cpu"):
        print("bf16 left out: this CPU has no bf16 arithmetic (--precisions fp32,bf16 times it)")
    steps = variants(dsprites_images(args.images), args, models)
    first = warm_up(steps)  # allocator, oneDNN primitives, DataLoader, compilation
    flops = {  # per nsvae step: each objective has its own (FactorVAE's discriminator)
        name: step_flops(step)
        for name, step in steps.items()
        if name.startswith("nsvae") and not name.endswith(" + compile")
    }
    if "nsvae bf16 + compile" in steps:  # the same operations as the uncompiled step's
        flops["nsvae bf16 + compile"] = flops["nsvae bf16"]
    rates = {name: [] for name in steps}
    # A CPU without bf16 arithmetic multiplies bf16 matrices in reference code: minutes a
    # product, and no ceiling of the machine's.
    precisions = (*args.precisions, args.models_precision)
    peaks = {p: 0.0 for p in precisions if p == "fp32" or native_bf16("cpu")}
    repeats = max(3, math.ceil(10 / args.blocks))  # at least 10 timed products per size in all
    for _ in range(args.blocks):
        for name, step in steps.items():
            rates[name].append(time_block(step, args.steps))
        for precision in peaks:  # best over rounds, each under its load
            peak = matmul_peak(PRECISIONS[precision], repeats=repeats)
            peaks[precision] = max(peaks[precision], peak)
        next(iter(steps.values()))().item()  # the next round's first step finds warm caches
    report(args, threads, rates, first, flops, peaks)
    if args.layers:
        batch = torch.from_numpy(dsprites_images(args.batch_size, seed=1)).float()
        for precision in args.precisions:
            print()
            print(layer_table(steps[f"nsvae {precision}"].model, batch, precision))
    if args.profile:
        for name in (name for name in steps if name.startswith("nsvae") and "plain" not in name):
            print(f"\nprofile of {name}, {args.steps} steps:")
            print(profile_table(steps[name], args.steps))


if __name__ == "__main__":
    main()
