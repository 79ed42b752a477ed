"""Does bf16 change results? The same Non-Syn runs in fp32 and bf16, side by side with seed spread.

    python benchmarks/precision.py [--seeds 3] [--steps 10000] [--threads 2] [--out DIR]

Trains the default Non-Syn configuration (``nsvae train`` defaults, batch 64, on dSprites) for
``--seeds`` seeds in each precision (``train.precision`` fp32 and bf16, nothing else changed),
then reads each run's last logged reconstruction, KL and synergy term (means over the last
``log_every`` steps) and scores it with the fast metric suite (``nsvae evaluate --fast``, which
encodes at the run's precision). For every quantity it prints the mean and standard deviation
over seeds of both precisions, their difference, and that difference in units of its standard
error; the closing line counts the quantities where bf16 moved the mean by more than two standard
errors (beyond seed noise). bf16 rounds the KL ranking of near-equal latents differently, which
can change Non-Syn's greedy subset: this measures what that does to the results, not to the bits.

At the defaults (3 x 2 runs of 10,000 steps) this takes hours on a 2-core CPU; ``--steps 20
--seeds 2 --data squares`` checks in a minute that it runs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

from evaluate import squares  # the benchmark's 64-image grid, for a quick check

from nsvae.config import Config
from nsvae.data import build_data
from nsvae.metrics.evaluate import evaluate_run
from nsvae.training import train

PRECISIONS = ("fp32", "bf16")
TRAINED = ("recon", "kl", "synergy")


def run_config(precision: str, seed: int, args) -> Config:
    """The default Non-Syn run at ``precision`` and ``seed``; one log row per 100 steps."""
    return (
        Config()
        .updated(
            {
                "objective": {"name": "nonsyn"},
                "train": {
                    "steps": args.steps,
                    "seed": seed,
                    "precision": precision,
                    "threads": args.threads,
                    "device": "cpu",
                    "figures": False,
                    "log_every": min(100, args.steps),
                    "checkpoint_every": args.steps,
                    "keep_checkpoints": 1,
                },
            }
        )
        .validate()
    )


def outcome(precision: str, seed: int, data, args) -> dict[str, float]:
    """Last logged ``recon``, ``kl``, ``synergy`` and every scalar of the fast metrics."""
    run = train(run_config(precision, seed, args), args.out / f"{precision}-seed{seed}", data=data)
    last = [row for row in run.metrics() if "loss" in row][-1]
    scores = evaluate_run(run, data=data, seed=seed, fast=True, progress=False)["metrics"]
    return {
        **{key: last[key] for key in TRAINED},
        **{
            f"{name}.{key}": value
            for name, values in scores.items()
            for key, value in values.items()
            if isinstance(value, int | float)
        },
    }


def summary(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def compare(results: dict[str, list[dict]]) -> int:
    """Print the side-by-side table; return how many quantities moved beyond seed noise."""
    print(f"{'quantity':<52}{'fp32 mean +- sd':>22}{'bf16 mean +- sd':>22}{'diff':>10}{'z':>7}")
    beyond = 0
    for key in results["fp32"][0]:
        (m32, s32), (m16, s16) = (summary([r[key] for r in results[p]]) for p in PRECISIONS)
        error = math.sqrt((s32**2 + s16**2) / len(results["fp32"]))
        z = (m16 - m32) / error if error > 0 else (0.0 if m16 == m32 else math.inf)
        beyond += abs(z) > 2
        print(
            f"{key:<52}{m32:>13.4f} +- {s32:<6.4f}{m16:>13.4f} +- {s16:<6.4f}"
            f"{m16 - m32:>+10.4f}{z:>7.1f}"
        )
    return beyond


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=0, help="0: physical cores")
    parser.add_argument("--data", default="dsprites", choices=("dsprites", "squares"))
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: temporary)")
    args = parser.parse_args()
    data = squares() if args.data == "squares" else build_data(Config().data)
    with tempfile.TemporaryDirectory() as scratch:
        args.out = args.out or Path(scratch)
        results = {
            precision: [outcome(precision, seed, data, args) for seed in range(args.seeds)]
            for precision in PRECISIONS
        }
    print(
        f"Non-Syn defaults, {args.steps} steps, seeds 0..{args.seeds - 1}, data {args.data}; "
        "z = (bf16 - fp32) / standard error of the difference of the means"
    )
    beyond = compare(results)
    total = len(results["fp32"][0])
    print(
        f"bf16 moved {beyond} of {total} quantities by more than 2 standard errors "
        f"(about {total * 0.046:.1f} expected by chance when nothing changes)"
    )


if __name__ == "__main__":
    main()
