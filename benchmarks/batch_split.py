"""One batch on T threads, or T half-batches on T threads of one: does splitting the batch pay?

Small convolutions use two threads poorly (``benchmarks/concurrency.py``: two one-thread
processes train more models per second than one two-thread process). This script asks whether
one model gains the same way within one process: the forward and backward pass of the batch on
``--threads`` OpenMP threads (what the trainer runs), against the batch cut into ``--threads``
equal parts, each part's forward and backward on its own Python thread with one OpenMP thread
(torch releases the GIL inside its operators; the main thread keeps one OpenMP thread too), and
the part gradients summed in a fixed order, so the result is deterministic. Both compute the
gradient of the same loss (a Bernoulli reconstruction and the KL to the prior, summed over the
batch, divided by the batch size) at the same sampled codes (one noise draw, cut into the same
parts). The script prints the largest difference between the two gradients relative to the
gradient's largest entry, then the medians of timed blocks and their ratio. Each block runs in a
fresh process and the variants alternate: in one process, the OpenMP threads that the whole
batch's passes start would stay behind, and with the ACTIVE wait policy spin on the cores the
split passes need.

Only the model's passes are timed: the objective, the selection and the optimiser step run
once per step either way. Data-parallel training would gain this ratio only on that share of
the step, and would have to gather every batch-level statistic of an objective (Non-Syn's
per-latent KL, FactorVAE's permutation, beta-TCVAE's [B, B, d] table) across the threads.
``--step`` times that share in place: nsvae's whole Non-Syn training step
(``train_step.NsvaeStep``), its encoder's convolutions and its decoder each run by
:class:`SplitPasses`, which cuts the batch as above in the forward pass and in the backward pass,
while the loss, the selection and Adam see the whole batch on the main thread.

Run: ``OMP_WAIT_POLICY=PASSIVE python benchmarks/batch_split.py`` (and ``ACTIVE``; the policy
must be set before torch loads OpenMP; the processes inherit it).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from train_step import NsvaeStep, dsprites_images

from nsvae.config import ModelConfig
from nsvae.device import physical_cores
from nsvae.models import build_model
from nsvae.precision import PRECISIONS, autocast, resolve_precision
from nsvae.provenance import cpu_description

WAIT = 600  # seconds a process may take to start and time its block


class Passes:
    """The gradient of the model's loss on ``batch``, whole or split over threads."""

    def __init__(self, model: torch.nn.Module, batch: torch.Tensor, precision: str, parts: int):
        self.model, self.batch, self.precision = model, batch, precision
        self.parameters = list(model.parameters())
        self.noise = torch.randn(len(batch), model.z_dim)  # one draw for every pass: the
        self.parts = list(zip(batch.chunk(parts), self.noise.chunk(parts), strict=True))  # same z
        self.pool = ThreadPoolExecutor(parts, initializer=torch.set_num_threads, initargs=(1,))

    def gradient(self, part: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Gradient of the part's share of the batch loss (summed, divided by the batch size),
        at the part's rows of the fixed noise."""
        images, noise = part
        with autocast("cpu", self.precision):
            mu, logvar = self.model.encode(images)
            logits = self.model.decode(mu + torch.exp(0.5 * logvar) * noise)
        recon = F.binary_cross_entropy_with_logits(logits, images, reduction="sum")
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum()
        return torch.autograd.grad((recon + kl) / len(self.batch), self.parameters)

    def whole(self) -> tuple[torch.Tensor, ...]:
        return self.gradient((self.batch, self.noise))

    def split(self) -> list[torch.Tensor]:
        first, *rest = self.pool.map(self.gradient, self.parts)
        return [sum(others, start) for start, *others in zip(first, *rest, strict=True)]


class _Parts(torch.autograd.Function):
    """``split.module`` on the parts of ``x``, one per pool thread, forward and backward."""

    @staticmethod
    def forward(ctx, split, x, *parameters):
        enabled, dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

        def part(chunk):  # autocast and grad mode are per thread: set them in each
            with torch.enable_grad(), torch.autocast("cpu", dtype=dtype, enabled=enabled):
                leaf = chunk.detach().requires_grad_(x.requires_grad)
                return leaf, split.module(leaf)

        ctx.split, ctx.parts = split, list(split.pool.map(part, x.chunk(split.count)))
        return torch.cat([out.detach() for _, out in ctx.parts])

    @staticmethod
    def backward(ctx, grad):
        parameters = list(ctx.split.module.parameters())

        def part(item):
            (leaf, out), part_grad = item
            inputs = [*parameters, leaf] if leaf.requires_grad else parameters
            return torch.autograd.grad(out, inputs, part_grad)

        items = zip(ctx.parts, grad.chunk(ctx.split.count), strict=True)
        grads = list(ctx.split.pool.map(part, items))
        ctx.parts, count = None, len(parameters)
        by_parameter = zip(*(g[:count] for g in grads), strict=True)
        summed = [sum(others, first) for first, *others in by_parameter]
        x_grad = torch.cat([g[count] for g in grads]) if len(grads[0]) > count else None
        return (None, x_grad, *summed)


class SplitPasses(torch.nn.Module):
    """``module`` run on ``count`` equal parts of the batch, each on a thread of ``pool``; the
    parameter gradients are summed in the parts' order."""

    def __init__(self, module: torch.nn.Module, pool: ThreadPoolExecutor, count: int):
        super().__init__()
        self.module, self.pool, self.count = module, pool, count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Parts.apply(self, x, *self.module.parameters())


def split_model(model, threads: int):
    """``model`` with its encoder's convolutions and its decoder in :class:`SplitPasses` (the
    same parameters; the posterior head stays whole)."""
    pool = ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,))
    *body, head = model.encoder
    body = SplitPasses(torch.nn.Sequential(*body), pool, threads)
    model.encoder = torch.nn.Sequential(body, head)
    model.decoder = torch.nn.Sequential(SplitPasses(model.decoder, pool, threads))
    return model


def block_rate(function, steps: int) -> float:
    """Calls per second of ``steps`` calls."""
    start = time.perf_counter()
    for _ in range(steps):
        function()
    return steps / (time.perf_counter() - start)


def build_passes(args, threads: int, split: bool) -> Passes:
    """The passes of dlib's (or ``args.arch``'s) model, seed 0, on a fixed dSprites batch: the
    calling thread at ``threads`` OpenMP threads for the whole batch, at one when ``split``."""
    torch.set_num_threads(1 if split else threads)
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=args.arch, z_dim=10))
    images = dsprites_images(args.batch_size)
    batch = torch.from_numpy(images).float().contiguous(memory_format=torch.channels_last)
    return Passes(model, batch, args.precision, threads)


def time_block(args, threads: int, split: bool, results) -> None:
    """In a fresh process: three untimed calls, then one timed block; its rate to ``results``."""
    if args.step:
        torch.set_num_threads(1 if split else threads)
        arguments = SimpleNamespace(arch=args.arch, z_dim=10, batch_size=args.batch_size)
        images = dsprites_images(2048)
        step = NsvaeStep(images, arguments, precision=args.precision)
        if split:
            split_model(step.model, threads)
        function = step
    else:
        passes = build_passes(args, threads, split)
        function = passes.split if split else passes.whole
    for _ in range(3):
        function()
    results.put(block_rate(function, args.steps))


def block_in_process(args, threads: int, split: bool) -> float:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=time_block, args=(args, threads, split, results))
    process.start()
    rate = results.get(timeout=WAIT)
    process.join()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="dlib", choices=("dlib", "seed", "seed-linear"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="0: physical cores")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--step",
        action="store_true",
        help="time nsvae's whole Non-Syn training step, its passes split, not the passes alone",
    )
    args = parser.parse_args()
    args.precision = resolve_precision(args.precision, "cpu")  # once, for every process
    threads = args.threads or physical_cores()
    variants = {f"1 batch x {threads} threads": False, f"{threads} parts x 1 thread": True}
    rates = {name: [] for name in variants}
    for _ in range(args.blocks):
        for name, is_split in variants.items():
            rates[name].append(block_in_process(args, threads, is_split))
    passes = build_passes(args, threads, split=False)  # after the timing: its threads would spin
    whole = passes.whole()
    if args.step:  # the same fixed-noise loss through the split modules
        split_model(passes.model, threads)
        split = passes.whole()
        repeat = passes.whole
    else:
        split, repeat = passes.split(), passes.split
    scale = max(g.abs().max() for g in whole)
    difference = max((a - b).abs().max() for a, b in zip(whole, split, strict=True)) / scale
    repeated = all(torch.equal(a, b) for a, b in zip(split, repeat(), strict=True))
    print(f"CPU: {cpu_description()}")
    unit = "steps" if args.step else "passes"
    print(
        f"{'Non-Syn training step' if args.step else 'forward + backward'}, arch={args.arch}, "
        f"batch={args.batch_size}, {args.precision}, threads={threads}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, torch "
        f"{torch.__version__}, {args.blocks} blocks x {args.steps} {unit} (a process each), "
        f"median {unit}/s"
    )
    print(
        f"  largest gradient difference, relative to the largest entry: {difference:.1e}; "
        f"the split gradient is {'the same' if repeated else 'NOT the same'} when repeated"
    )
    baseline = statistics.median(next(iter(rates.values())))
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"  {name:24s} {median:7.2f} /s  [{min(values):.2f}, {max(values):.2f}]  "
            f"x{median / baseline:.2f}"
        )


if __name__ == "__main__":
    main()
