"""Time every metric at its disentanglement_lib defaults on rendered dSprites, for a conv64 model.

    python benchmarks/metrics.py [RUN_DIR] [--metrics a,b] [--threads 2] [--fraction 1.0]

With RUN_DIR the trained model of that run is scored; without, a freshly initialised conv64
model (seed 0), whose codes barely vary: FactorVAE then prunes every latent and skips its votes,
so its time is not representative. ``--fraction`` scales the sample counts of BetaVAE and
FactorVAE (their cost is linear in them) and the figures are extrapolated to the defaults.

DCI is timed on one sample of 10,000 / 5,000 (factor, code) pairs: the default estimator fitted
factor after factor (disentanglement_lib), the same fitted in parallel over factors (n_jobs = the
threads), and the ``forest`` option, with the differences of their scores.
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import torch

from nsvae.config import Config
from nsvae.data.dsprites import DSprites
from nsvae.metrics import METRICS
from nsvae.metrics.dci import compute_dci
from nsvae.metrics.utils import sample_factor_codes
from nsvae.models import build_model, encode_observations, representation_function

SCALED = {
    "beta_vae": ("num_train", "num_eval"),
    "factor_vae": ("num_train", "num_eval"),
}
DEFAULT_COUNTS = {"num_train": 10_000, "num_eval": 5_000}


def load_model(run_dir):
    if run_dir:
        from nsvae.rundir import load_run

        run = load_run(run_dir)
        return run.model, f"trained run {run_dir} (step {run.step})"
    torch.manual_seed(0)
    return build_model(Config().model).eval(), "freshly initialised conv64 (seed 0), not trained"


def time_metrics(names, data, model, fraction):
    representation = representation_function(model, "mean")
    for name in names:
        params = {key: int(DEFAULT_COUNTS[key] * fraction) for key in SCALED.get(name, ())}
        encoder = functools.partial(encode_observations, model)
        first = encoder if METRICS[name].input_kind == "encoder" else representation
        start = time.perf_counter()
        result = METRICS[name](data, first, np.random.RandomState(0), **params)
        seconds = time.perf_counter() - start
        scale = 1 / fraction if params else 1.0
        shown = {k: round(v, 4) for k, v in result.items() if isinstance(v, int | float)}
        note = f" (x{scale:g} extrapolated from {params})" if params and fraction != 1 else ""
        print(f"{name:<26}{seconds * scale:9.1f} s{note}  {shown}", flush=True)


def time_dci(data, model, threads):
    rng = np.random.RandomState(0)
    representation = representation_function(model, "mean")
    start = time.perf_counter()
    train = sample_factor_codes(data, representation, 10_000, rng)
    test = sample_factor_codes(data, representation, 5_000, rng)
    print(f"dci: sampling 15,000 codes        {time.perf_counter() - start:7.1f} s")
    runs = {}
    for label, kwargs in (
        ("gbt, factor after factor", {"n_jobs": 1}),
        (f"gbt, n_jobs={threads}", {"n_jobs": threads}),
        (f"forest, n_jobs={threads}", {"n_jobs": threads, "estimator": "forest"}),
    ):
        start = time.perf_counter()
        runs[label] = compute_dci(train, test, np.random.RandomState(0), **kwargs)
        runs[label]["seconds"] = time.perf_counter() - start
    baseline = next(iter(runs.values()))
    keys = ("disentanglement", "completeness", "informativeness_train", "informativeness_test")
    for label, result in runs.items():
        diffs = ", ".join(f"{k[:4]} {result[k]:.4f} ({result[k] - baseline[k]:+.4f})" for k in keys)
        ratio = baseline["seconds"] / result["seconds"]
        print(f"dci fit: {label:<26}{result['seconds']:7.1f} s  x{ratio:4.1f}  {diffs}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=None)
    parser.add_argument("--metrics", default=",".join(m for m in METRICS if m != "dci"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--skip-dci", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, what = load_model(args.run_dir)
    start = time.perf_counter()
    data = DSprites.load()
    print(
        f"model: {what}; torch threads {args.threads}; dSprites loaded in "
        f"{time.perf_counter() - start:.1f} s"
    )
    names = [name for name in args.metrics.split(",") if name]
    time_metrics(names, data, model, args.fraction)
    if not args.skip_dci:
        time_dci(data, model, args.threads)


if __name__ == "__main__":
    main()
