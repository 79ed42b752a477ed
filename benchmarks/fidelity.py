"""Fidelity of the dSprites renderer against the real images and the official GIF.

    python benchmarks/fidelity.py [--real ../shared/data/dsprites-real]

Renders the classes of the 46,080 real dSprites images and of the 320 GIF frames and prints the
share of bit-exact images per shape, the wrong pixels per image and the worst image, for the
exact mode (vertex snapping + fill rule) and the smooth mode.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from nsvae.data import dsprites

DEFAULT_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsprites-real"


def pixel_errors(classes: np.ndarray, images: np.ndarray, exact: bool) -> np.ndarray:
    """Wrong pixels of each rendered image."""
    return (dsprites.render(classes, exact=exact) != images).sum(axis=(1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    args = parser.parse_args()
    with np.load(args.real / "dsprites_real_46080.npz") as real:
        classes, images = real["latents_classes"], real["imgs"]
    shapes = classes[:, 1]
    for exact in (True, False):
        errors = pixel_errors(classes, images, exact)
        per_shape = ", ".join(
            f"{name} {np.mean(errors[shapes == s] == 0):.3%}"
            for s, name in enumerate(dsprites.SHAPE_NAMES)
        )
        print(
            f"{'exact' if exact else 'smooth'} mode, {len(errors)} real images: bit-exact "
            f"{np.mean(errors == 0):.3%} ({per_shape}); wrong pixels per image "
            f"{errors.mean():.4f}, worst image {errors.max()} px"
        )
    frames = iio.imread(args.real / "dsprites.gif", index=None) // 255
    errors = pixel_errors(dsprites.gif_frame_classes(), frames, exact=True)
    print(
        f"official GIF: {np.sum(errors == 0)} of {len(frames)} frames bit-exact, "
        f"{errors.sum()} wrong pixels in all, worst frame {errors.max()} px"
    )


if __name__ == "__main__":
    main()
