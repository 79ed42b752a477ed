"""Model-steps per second of P training processes of T threads each: how to split a machine.

A sweep trains many models. With ``--cpus-per-trial T --max-concurrent P`` it runs P trials at
once, each with T torch threads. Small convolutions use two threads poorly (oneDNN's work per
layer is a few hundred microseconds), so P processes of one thread may train more models per
second than one process of P threads. This script measures it: for each layout ``PxT`` it starts
P processes, each taking nsvae's training step (:class:`train_step.NsvaeStep`, the Non-Syn step
by default) with T threads, times ``--seconds`` of steps in all of them at once, and prints the
summed steps per second and their ratio to the first layout. Layouts alternate over ``--rounds``
and the figures are medians, so load from other processes hits every layout alike.

Run: ``OMP_WAIT_POLICY=ACTIVE python benchmarks/concurrency.py --layouts 1x2,2x1`` (the wait
policy of a machine given to the sweep; it must be set before torch loads OpenMP).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import statistics
import time
from types import SimpleNamespace

import torch

from nsvae.precision import PRECISIONS, resolve_precision
from nsvae.provenance import cpu_description

WAIT = 600  # seconds a process may take to start, and a layout to report, before it is given up


def worker(threads: int, model: str, precision: str, seconds: float, start, results) -> None:
    """Warm up, wait for every process of the layout, then count steps for ``seconds``."""
    from train_step import NsvaeStep, dsprites_images

    torch.set_num_threads(threads)
    args = SimpleNamespace(arch="dlib", z_dim=10, batch_size=64)
    step = NsvaeStep(dsprites_images(2048), args, model, precision)
    for _ in range(5):
        step().item()
    start.wait()
    steps, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        step().item()
        steps += 1
    results.put(steps / (time.perf_counter() - begin))


def layout_rate(processes: int, threads: int, args) -> float:
    """Summed steps per second of ``processes`` processes of ``threads`` threads each."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes, timeout=WAIT), context.Queue()
    jobs = [
        context.Process(
            target=worker,
            args=(threads, args.model, args.precision, args.seconds, start, results),
        )
        for _ in range(processes)
    ]
    for job in jobs:
        job.start()
    try:
        rates = [results.get(timeout=WAIT + args.seconds) for _ in jobs]
    except queue.Empty:
        for job in jobs:
            job.terminate()
        codes = [job.exitcode for job in jobs]
        message = f"layout {processes}x{threads}: a process failed (exit codes {codes})"
        raise SystemExit(message) from None
    for job in jobs:
        job.join()
    return sum(rates)


def parse_layouts(text: str) -> list[tuple[int, int]]:
    """``"1x2,2x1"`` -> [(1, 2), (2, 1)]: processes x threads (argparse's type)."""
    layouts = []
    for item in text.split(","):
        processes, _, threads = item.partition("x")
        if not (processes.isdigit() and threads.isdigit() and int(processes) and int(threads)):
            raise argparse.ArgumentTypeError(f"{item!r} is not PROCESSESxTHREADS, e.g. 2x1")
        layouts.append((int(processes), int(threads)))
    return layouts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--layouts",
        type=parse_layouts,
        default="1x2,2x1",
        help="processes x threads, comma-separated",
    )
    parser.add_argument("--model", default="nonsyn", help="a key of train_step.MODELS")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto: bf16 where the CPU has bf16 arithmetic, else fp32 (nsvae.precision)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per layout")
    parser.add_argument("--rounds", type=int, default=3, help="timings of each layout")
    args = parser.parse_args()
    args.precision = resolve_precision(args.precision, "cpu")
    layouts = args.layouts
    rates = {layout: [] for layout in layouts}
    for _ in range(args.rounds):
        for layout in layouts:
            rates[layout].append(layout_rate(*layout, args))
    print(f"CPU: {cpu_description()}; {os.cpu_count()} logical CPUs")
    print(
        f"{args.model} step, dlib, batch 64, {args.precision}, torch {torch.__version__}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
        f"{args.rounds} rounds x {args.seconds:.0f} s, median summed model-steps/s"
    )
    baseline = statistics.median(rates[layouts[0]])
    for (processes, threads), values in rates.items():
        median = statistics.median(values)
        spread = f"[{min(values):.1f}, {max(values):.1f}]"
        print(
            f"  {processes} process(es) x {threads} thread(s)  {median:6.1f} steps/s  "
            f"{spread:14s} x{median / baseline:.2f} the first layout"
        )


if __name__ == "__main__":
    main()
