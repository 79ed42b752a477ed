"""3dshapes (Burgess & Kim, 2018) from the official ``3dshapes.h5``.

The file holds ``images`` uint8 [480000, 64, 64, 3] and ``labels`` float64 [480000, 6], the
values of the six factors of disentanglement_lib's ``Shapes3D``, in its order: floor hue (10),
wall hue (10), object hue (10), scale (8), shape (4) and orientation (15), the images in
row-major order of that grid (orientation fastest). The loader checks keys, dtypes, shapes and
that the labels are that grid in that order, then converts the images once to a channel-first
uint8 cache (5.9 GB) that training memory-maps.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nsvae.data.files import OfficialFile, converted_images, copy_channels_first
from nsvae.data.ground_truth import ArrayGroundTruthData, FactorSpace, classes_of_values
from nsvae.errors import DataError, one_line

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
IMAGE_SHAPE = (64, 64, 3)
OFFICIAL = OfficialFile(
    "3dshapes",
    "3dshapes.h5",
    "https://storage.googleapis.com/3d-shapes/3dshapes.h5",
    ("099a2078d58cec4daad0702c55d06868",),
    name="3dshapes",
)


def load_shapes3d(
    path: str | os.PathLike | None = None, data_root=None, checksum: str | None = "official"
) -> ArrayGroundTruthData:
    """3dshapes from ``path`` (default: where ``nsvae data fetch 3dshapes`` puts it).

    The file is checked (published MD5 for ``checksum="official"``, a given digest, or none for
    None) and converted on first use only; later loads open the cache.

    Raises
    ------
    DataError
        Missing (saying where to get it), wrong, truncated or corrupt file; wrong keys, dtypes,
        shapes or label order.
    """
    path = OFFICIAL.require(OFFICIAL.path(data_root) if path is None else Path(path))
    space = FactorSpace(FACTOR_SIZES)

    def fill(out):
        OFFICIAL.check(path, checksum)
        _convert(path, space, out)

    shape = (space.num_total, IMAGE_SHAPE[2], *IMAGE_SHAPE[:2])
    images = converted_images("3dshapes", [path], shape, fill, data_root)
    return ArrayGroundTruthData(images, FACTOR_SIZES, FACTOR_NAMES, scale=1 / 255)


def _convert(path: Path, space: FactorSpace, out: np.ndarray) -> None:
    """Check the file's layout and copy its images into ``out`` [N, 3, 64, 64]."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            for key in ("images", "labels"):
                if not isinstance(file.get(key), h5py.Dataset):
                    raise DataError(f"{path}: missing dataset {key!r} (has {sorted(file)})")
            images, labels = file["images"], file["labels"]
            _check(images, np.uint8, (space.num_total, *IMAGE_SHAPE), "images", path)
            _check(labels, np.float64, (space.num_total, space.num_factors), "labels", path)
            space.check_grid(classes_of_values(labels[()]), str(path))
            copy_channels_first(lambda start, stop: images[start:stop], out)
    except OSError as error:
        raise DataError(f"{path}: unreadable hdf5 file ({one_line(error)})") from None


def _check(dataset, dtype, shape, key: str, path: Path) -> None:
    if dataset.dtype != dtype:
        raise DataError(f"{path}: {key} has dtype {dataset.dtype}, expected {np.dtype(dtype)}")
    if dataset.shape != shape:
        raise DataError(f"{path}: {key} has shape {list(dataset.shape)}, expected {list(shape)}")
