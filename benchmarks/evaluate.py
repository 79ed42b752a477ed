"""Seconds of the metric suite: one shared encoding per evaluation against per-metric encoding.

    python benchmarks/evaluate.py [RUN_DIR] [--fast] [--metrics a,b] [--threads 2]

Both evaluations run in this process, one after the other, through
:func:`nsvae.metrics.evaluate.evaluate_model` with the same model, data, seed and parameters:
``cache=False`` encodes every metric's observations itself (disentanglement_lib's way, nsvae's
before the shared encoding), ``cache=True`` encodes each grid point at most once for the whole
suite (:mod:`nsvae.metrics.codes`). The script prints per-metric and total seconds of both and
whether every value is identical. In the cached run a metric's seconds include the encoding of
the grid points it was the first to ask for, so compare the totals.

With RUN_DIR the run's model, data and ``train.precision`` are used; without, a freshly
initialised conv64 model (seed 0) on rendered dSprites (``--data squares``: 64 images of a
square on an 8 x 8 grid, for a quick check that the script runs).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from nsvae.config import Config
from nsvae.data import ArrayGroundTruthData
from nsvae.data.dsprites import DSprites
from nsvae.metrics.evaluate import evaluate_model
from nsvae.models import build_model


def squares() -> ArrayGroundTruthData:
    """64 images [64, 1, 64, 64] of an 8 x 8 square at each point of an 8 x 8 grid."""
    images = np.zeros((8, 8, 1, 64, 64), dtype=np.uint8)
    for x in range(8):
        for y in range(8):
            images[x, y, 0, 8 * y : 8 * y + 8, 8 * x : 8 * x + 8] = 1
    return ArrayGroundTruthData(images.reshape(64, 1, 64, 64), [8, 8], ["x", "y"])


def subject(args):
    """``(model, data, precision, description)`` of the run, or of a fresh model."""
    if args.run_dir:
        from nsvae.rundir import load_run

        run = load_run(args.run_dir)
        return (
            run.model,
            run.data(),
            run.config.train.precision,
            f"run {args.run_dir} (step {run.step})",
        )
    torch.manual_seed(0)
    model = build_model(Config().model).eval()
    data = squares() if args.data == "squares" else DSprites.load()
    return model, data, args.precision, "fresh conv64 (seed 0, untrained)"


def differences(first: dict, second: dict) -> list[str]:
    """``metric.key`` of every value that differs between two results' ``metrics``."""
    return [
        f"{name}.{key}"
        for name, values in first.items()
        for key, value in values.items()
        if second[name][key] != value
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=None)
    parser.add_argument("--metrics", default=None, help="comma-separated (default: all)")
    parser.add_argument("--fast", action="store_true", help="the --fast sample counts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32", help="without RUN_DIR: fp32 or bf16")
    parser.add_argument(
        "--data", default="dsprites", choices=("dsprites", "squares"), help="without RUN_DIR"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, data, precision, what = subject(args)
    print(
        f"{what}; {len(data):,} grid points; precision {precision}; threads {args.threads}; "
        f"{'fast' if args.fast else 'default'} sample counts"
    )
    results = {}
    for label, cache in (("per metric", False), ("shared", True)):
        start = time.perf_counter()
        results[label] = evaluate_model(
            model, data, args.metrics, fast=args.fast, precision=precision, cache=cache
        )
        results[label]["total"] = time.perf_counter() - start
    before, after = results["per metric"], results["shared"]
    print(f"{'metric':<26}{'per metric':>12}{'shared':>12}")
    for name, seconds in before["seconds"].items():
        print(f"{name:<26}{seconds:>10.1f} s{after['seconds'][name]:>10.1f} s")
    print(
        f"{'total':<26}{before['total']:>10.1f} s{after['total']:>10.1f} s  "
        f"x{before['total'] / after['total']:.2f}"
    )
    differ = differences(before["metrics"], after["metrics"])
    print(
        "values identical: "
        + ("yes, every metric and key" if not differ else f"NO: {', '.join(differ)}")
    )


if __name__ == "__main__":
    main()
