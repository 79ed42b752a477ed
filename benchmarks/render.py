"""Full-grid dSprites render time and cache reload time (medians).

    python benchmarks/render.py [--repeats 3] [--threads N]

Renders all 737,280 images in memory ``repeats`` times (exact mode, into one preallocated array,
so page faults are paid once, before timing); then times a first load into an empty temporary
data root (render into the memory-mapped cache file), reopening that cache (a memory map: no
decoding) and reading every page of it once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from nsvae.data import dsprites


def seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: one per CPU")
    args = parser.parse_args()
    threads = args.threads or os.cpu_count()
    print(f"cpus={os.cpu_count()} threads={threads} load average={os.getloadavg()[0]:.1f}")

    renders = time_render(args.repeats, threads)
    print(
        f"full grid render (exact): median {statistics.median(renders):.1f} s over "
        f"{args.repeats} ({', '.join(f'{t:.1f}' for t in renders)})"
    )
    with tempfile.TemporaryDirectory() as root:
        first = seconds(lambda: dsprites.cached_images(root))
        print(f"first load: render into a new cache file (2.8 GB written): {first:.1f} s")
        time_reload(root, args.repeats)


def time_render(repeats: int, threads: int) -> list[float]:
    images = np.ones((dsprites.NUM_IMAGES, 64, 64), np.uint8)  # touched: no page faults below
    return [
        seconds(lambda: dsprites.render_all(out=images, threads=threads)) for _ in range(repeats)
    ]


def time_reload(root: str, repeats: int) -> None:
    opens = [seconds(lambda: dsprites.DSprites.load(root)) for _ in range(repeats)]
    reads = [
        seconds(lambda: int(dsprites.DSprites.load(root).images.max())) for _ in range(repeats)
    ]
    print(f"cache reload (memory map): median {statistics.median(opens) * 1000:.1f} ms")
    print(f"cache reload + read every image once: median {statistics.median(reads):.2f} s")


if __name__ == "__main__":
    main()
