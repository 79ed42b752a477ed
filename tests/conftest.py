"""Tiny ground-truth data shared by the test files: a square at 8 x 8 positions."""

from __future__ import annotations

import os
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
            images[x, y, 0, 8 * y:8 * y + 8, 8 * x:8 * x + 8] = 1
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


@pytest.fixture(scope="session")
def source_env() -> dict:
    """The environment for subprocesses that must import the nsvae under test."""
    return {**os.environ, "PYTHONPATH": str(Path(nsvae.__file__).parents[1])}
