"""Tiny ground-truth data shared by the test files: a square at 8 x 8 positions."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import nsvae
from nsvae.data import ArrayGroundTruthData, save_array_dataset


def square_images() -> np.ndarray:
    """64 binary uint8 images [64, 1, 64, 64]: an 8x8 square at each (x, y) of an 8 x 8 grid."""
    images = np.zeros((8, 8, 1, 64, 64), dtype=np.uint8)
    for x in range(8):
        for y in range(8):
            images[x, y, 0, 8 * y : 8 * y + 8, 8 * x : 8 * x + 8] = 1
    return images.reshape(64, 1, 64, 64)


@pytest.fixture(scope="session")
def squares() -> ArrayGroundTruthData:
    """The square images as ground-truth data with factors x, y (y fastest)."""
    return ArrayGroundTruthData(square_images(), [8, 8], ["x", "y"])


@pytest.fixture(scope="session")
def squares_npz(tmp_path_factory):
    """The same data as an array dataset file (``--data array --data-path``)."""
    path = tmp_path_factory.mktemp("data") / "squares.npz"
    return save_array_dataset(path, square_images(), [8, 8], ["x", "y"])


def face_images(num: int, seed: int = 0) -> np.ndarray:
    """``num`` generated CelebA-format pictures, uint8 [num, 218, 178, 3] (height, width, RGB).

    Not faces: a coloured background, a skin-toned ellipse that moves, grows and changes tone,
    two dark eyes and a mouth, so a VAE has something to learn in a few steps.
    """
    rng = np.random.RandomState(seed)
    rows, cols = np.mgrid[0:218, 0:178]
    images = np.empty((num, 218, 178, 3), np.uint8)
    for n in range(num):
        image = np.broadcast_to(rng.randint(0, 256, 3), (218, 178, 3)).astype(np.float64)
        cy, cx = 109 + rng.randint(-20, 21), 89 + rng.randint(-20, 21)
        ry, rx = rng.randint(45, 70), rng.randint(35, 55)
        face = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
        image[face] = np.array([230, 190, 150]) * rng.uniform(0.6, 1.1)
        for ex in (cx - rx // 2, cx + rx // 2):
            image[(rows - (cy - ry // 3)) ** 2 + (cols - ex) ** 2 <= 36] = 30
        image[(np.abs(rows - (cy + ry // 2)) <= 3) & (np.abs(cols - cx) <= rx // 2)] = [150, 40, 40]
        images[n] = np.clip(image, 0, 255)
    return images


def jpeg_bytes(image: np.ndarray) -> bytes:
    """``image`` [H, W, 3] uint8 as JPEG file bytes."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


CORRUPT_NAME = "img_align_celeba/000004.jpg"


def write_celeba_zip(path, num: int = 24, seed: int = 0):
    """A zip in the layout of ``img_align_celeba.zip`` (``img_align_celeba/000001.jpg``, ...)
    of :func:`face_images`; the file :data:`CORRUPT_NAME` is a JPEG cut short."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("img_align_celeba/", b"")
        for n, image in enumerate(face_images(num, seed), start=1):
            name = f"img_align_celeba/{n:06d}.jpg"
            data = jpeg_bytes(image)
            archive.writestr(name, data[: len(data) // 3] if name == CORRUPT_NAME else data)
    return path


@pytest.fixture(scope="session")
def celeba_zip(tmp_path_factory):
    """A CelebA-format zip of 24 generated JPEGs, one of them corrupt."""
    return write_celeba_zip(tmp_path_factory.mktemp("celeba") / "img_align_celeba.zip")


@pytest.fixture(scope="session")
def source_env() -> dict:
    """The environment for subprocesses that must import the nsvae under test."""
    return {**os.environ, "PYTHONPATH": str(Path(nsvae.__file__).parents[1])}


def terminate_after_first_row(
    command: list[str], metrics: Path, env: dict | None = None
) -> tuple[int, str, str]:
    """Run ``command``, send it SIGTERM once ``metrics`` has a row (or it ended); return its
    exit code, stdout and stderr."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        for _ in range(600):
            if process.poll() is not None or (metrics.exists() and metrics.read_text()):
                break
            threading.Event().wait(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, stdout, stderr
