"""Batches/s at batch 64: nsvae's BatchSampler against a per-item Dataset + DataLoader.

    python benchmarks/sampler.py [--batches 300] [--repeats 5] [--data-root DIR]

Both read the same in-memory uint8 dSprites images (the rendered cache, read once before
timing). The baseline is the seed's way: a map-style torch Dataset whose ``__getitem__``
converts one image to float32, batched by a shuffling DataLoader (num_workers=0). Prints the
median batches/s of each, measured in the same run, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from seed_data import PerItemImages
from torch.utils.data import DataLoader

from nsvae.data import BatchSampler, DSprites


def batches_per_second(batches, count: int) -> float:
    iterator = iter(batches)
    next(iterator)  # start-up (iterator creation, first index permutation) is not timed
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)

    images, scale = DSprites.load(args.data_root).observations_array()
    images.max()  # read every page once, for both contenders

    def sampler_batches():
        sampler = BatchSampler(images, batch_size=64, seed=0, scale=scale)
        while True:
            yield sampler.next()

    def loader_batches():
        loader = DataLoader(PerItemImages(images), batch_size=64, shuffle=True, num_workers=0)
        while True:
            yield from loader

    ours, baseline = [], []
    for _ in range(args.repeats):  # interleaved, so that load changes hit both alike
        ours.append(batches_per_second(sampler_batches(), args.batches))
        baseline.append(batches_per_second(loader_batches(), args.batches))
    ours, baseline = statistics.median(ours), statistics.median(baseline)
    print(f"BatchSampler:              {ours:8.0f} batches/s (batch 64, median of {args.repeats})")
    print(f"per-item Dataset+DataLoader:{baseline:7.0f} batches/s")
    print(f"ratio: {ours / baseline:.1f}x")


if __name__ == "__main__":
    main()
