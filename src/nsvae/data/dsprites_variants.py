"""Color-, noisy- and scream-dSprites, computed at sampling time as disentanglement_lib does.

Each wraps binary dSprites images ``[n, 1, 64, 64]`` (values 0/1) and returns RGB observations
``[n, 3, 64, 64]``; the random draws are disentanglement_lib's, in its order and (channels-last)
shapes, so a random state gives the same colours and backgrounds:

- color: the sprite in a colour drawn uniformly from [0.5, 1]^3 per image, on black;
- noisy: the sprite white, the background uniform noise in [0, 1] per pixel and channel;
- scream: the background a random 64 x 64 patch of Munch's *The Scream* (shrunk to fit 350 x 274)
  averaged with a random colour, the sprite drawn by inverting the patch under it.

The factors are dSprites' (shape, scale, orientation, posX, posY). The base images stay binary
uint8 in memory; training applies the variant to each batch
(:attr:`GroundTruthData.observation_transform`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nsvae.data.files import OfficialFile
from nsvae.data.ground_truth import GroundTruthData
from nsvae.data.images import UNDECODABLE, decode_rgb
from nsvae.errors import DataError, one_line

PATCH = 64
SCREAM = OfficialFile(
    "scream",
    "scream.jpg",
    "https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg",
    name="scream image",
)
SCREAM_BOX = (350, 274)  # disentanglement_lib's thumbnail size (width, height)


def colorize(images: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
    """color-dSprites of binary images [n, 1, H, W]: a colour in [0.5, 1]^3 per image."""
    colours = random_state.uniform(0.5, 1, [len(images), 1, 1, 3]).transpose(0, 3, 1, 2)
    return (images * colours).astype(np.float32)


def add_noise(images: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
    """noisy-dSprites of binary images [n, 1, H, W]: uniform noise behind a white sprite."""
    n, _, height, width = images.shape
    noise = random_state.uniform(0, 1, [n, height, width, 3]).transpose(0, 3, 1, 2)
    return np.minimum(images + noise, 1.0).astype(np.float32)


class Screamer:
    """scream-dSprites' transform around one image of *The Scream*.

    Parameters
    ----------
    path : path-like
        The image (JPEG or PNG, at most 33.5 megapixels; disentanglement_lib uses Wikimedia's
        ``The_Scream.jpg``). It is shrunk to fit :data:`SCREAM_BOX` and must then be larger than
        64 x 64.

    Raises
    ------
    DataError
        Missing, unreadable or too small image.
    """

    def __init__(self, path: str | os.PathLike):
        path = SCREAM.require(Path(path))
        try:
            image = decode_rgb(path)
            image.thumbnail(SCREAM_BOX)
        except UNDECODABLE as error:
            raise DataError(f"{path}: not a readable image ({one_line(error)})") from None
        self.scream = np.asarray(image, dtype=np.float64) / 255.0  # [H, W, 3]
        if min(self.scream.shape[:2]) <= PATCH:
            raise DataError(
                f"{path}: the image is {image.size[0]} x {image.size[1]} after "
                f"shrinking to fit {SCREAM_BOX[0]} x {SCREAM_BOX[1]}; it must be "
                f"larger than {PATCH} x {PATCH}"
            )

    def __call__(self, images: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
        """scream-dSprites of binary images [n, 1, 64, 64] -> [n, 3, 64, 64] float32."""
        out = np.empty((len(images), PATCH, PATCH, 3), np.float32)
        for i, image in enumerate(images):
            top = random_state.randint(0, self.scream.shape[0] - PATCH)
            left = random_state.randint(0, self.scream.shape[1] - PATCH)
            patch = self.scream[top : top + PATCH, left : left + PATCH]
            background = (patch + random_state.uniform(0, 1, size=3)) / 2
            mask = image[0] == 1
            background[mask] = 1 - background[mask]
            out[i] = background
        return out.transpose(0, 3, 1, 2)


class ProceduralDSprites(GroundTruthData):
    """A dSprites variant: the base's factors, RGB observations made by ``transform``.

    Parameters
    ----------
    base : GroundTruthData
        Binary single-channel images (:class:`nsvae.data.DSprites`, or any such data).
    transform : callable
        ``(images [n, 1, 64, 64], random_state) -> [n, 3, 64, 64]``: :func:`colorize`,
        :func:`add_noise` or a :class:`Screamer`.
    name : str
        The variant's name (for provenance).
    """

    observation_shape = (3, 64, 64)

    def __init__(self, base: GroundTruthData, transform, name: str):
        if base.observation_shape != (1, 64, 64):
            raise DataError(
                f"{name} needs single-channel 64 x 64 base images, got {base.observation_shape}"
            )
        self.base = base
        self.factor_names = base.factor_names
        self.factor_space = base.factor_space
        self.observation_transform = transform
        self.name = name

    def sample_observations_from_factors(self, factors, random_state):
        images = self.base.sample_observations_from_factors(factors, random_state)
        return self.observation_transform(images, random_state)

    def observations_array(self):
        return self.base.observations_array()
