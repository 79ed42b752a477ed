"""Batches/s at batch 64: nsvae's BatchSampler against a per-item Dataset + DataLoader, and
the BatchSampler on a memory-mapped RGB cache against the same array in memory.

    python benchmarks/sampler.py [--batches 300] [--repeats 5] [--data-root DIR]
                                 [--rgb-images 100000] [--no-dsprites]

Both of the first pair read the same in-memory uint8 dSprites images (the rendered cache, read
once before timing). The baseline is the seed's way: a map-style torch Dataset whose
``__getitem__`` converts one image to float32, batched by a shuffling DataLoader
(num_workers=0). The second pair reads RGB uint8 images [N, 3, 64, 64] (random, in the layout of
the converted 3dshapes/MPI3D/CelebA caches) from a ``.npy`` opened as a copy-on-write memory
map, as the loaders open their caches, and from a copy in memory; the file's pages are in the
page cache (read once before timing). Prints the median batches/s of each, measured in the same
run, and their ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
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


def compare(first, second, batches: int, repeats: int) -> tuple[float, float]:
    """Median batches/s of two batch iterators, timed alternately ``repeats`` times."""
    a, b = [], []
    for _ in range(repeats):  # interleaved, so that load changes hit both alike
        a.append(batches_per_second(first(), batches))
        b.append(batches_per_second(second(), batches))
    return statistics.median(a), statistics.median(b)


def sampler_batches(images, scale):
    def batches():
        sampler = BatchSampler(images, batch_size=64, seed=0, scale=scale)
        while True:
            yield sampler.next()

    return batches


def dsprites_figure(args) -> None:
    images, scale = DSprites.load(args.data_root).observations_array()
    images.max()  # read every page once, for both contenders

    def loader_batches():
        loader = DataLoader(PerItemImages(images), batch_size=64, shuffle=True, num_workers=0)
        while True:
            yield from loader

    ours, baseline = compare(
        sampler_batches(images, scale), loader_batches, args.batches, args.repeats
    )
    print(f"BatchSampler:              {ours:8.0f} batches/s (batch 64, median of {args.repeats})")
    print(f"per-item Dataset+DataLoader:{baseline:7.0f} batches/s")
    print(f"ratio: {ours / baseline:.1f}x")


def memmap_figure(args) -> None:
    shape = (args.rgb_images, 3, 64, 64)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "images.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        for start in range(0, shape[0], 10_000):
            out[start : start + 10_000] = np.random.default_rng(start).integers(
                0, 256, (min(10_000, shape[0] - start), *shape[1:]), dtype=np.uint8
            )
        out.flush()
        del out
        mapped = np.load(path, mmap_mode="c")
        mapped.max()  # every page in the page cache
        in_memory = np.array(mapped)
        on_map, in_ram = compare(
            sampler_batches(mapped, 1 / 255),
            sampler_batches(in_memory, 1 / 255),
            args.batches,
            args.repeats,
        )
    size = np.prod(shape) / 1e9
    print(f"RGB [{shape[0]}, 3, 64, 64] uint8 ({size:.2f} GB), BatchSampler, batch 64:")
    print(f"  memory-mapped .npy: {on_map:8.0f} batches/s (median of {args.repeats})")
    print(f"  in memory:          {in_ram:8.0f} batches/s")
    print(f"  ratio memory map / in memory: {on_map / in_ram:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--rgb-images", type=int, default=100_000)
    parser.add_argument("--no-dsprites", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.no_dsprites:
        dsprites_figure(args)
    memmap_figure(args)


if __name__ == "__main__":
    main()
