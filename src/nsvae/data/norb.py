"""smallNORB (LeCun et al., 2004) from the binary ``.mat`` files of the official release.

The release is six files, a ``dat``, ``cat`` and ``info`` file for each of the training and test
halves, gzipped (``*.mat.gz``, the published checksums are theirs; they are read without
extracting) or extracted (``*.mat``, checked by layout only). Each is a binary matrix: an int32
magic number (``0x1E3D4C55`` bytes, ``0x1E3D4C54`` int32), the number of dimensions, at least
three int32 dimensions, then the data, little-endian, last dimension fastest. ``dat`` is uint8
[24300, 2, 96, 96] (a stereo pair; the first image is used), ``cat`` int32 [24300] the category,
``info`` int32 [24300, 4] instance, elevation, azimuth (0, 2, ..., 34) and lighting.

As in disentanglement_lib's ``SmallNORB``: images are resized to 64 x 64 (Lanczos), the grid
is category (5) x instance (10) x elevation (9) x azimuth (18) x lighting (6), 48,600 images
over both halves, and the instance is not a factor: it is drawn at random for each observation.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from nsvae.data.files import OfficialFile, converted_images
from nsvae.data.files import data_root as data_folder
from nsvae.data.ground_truth import FactorSpace, GroundTruthData
from nsvae.data.images import resize
from nsvae.errors import DataError, one_line

FACTOR_NAMES = ("category", "elevation", "azimuth", "lighting")
#: the full grid: category, instance, elevation, azimuth, lighting
FULL_SIZES = (5, 10, 9, 18, 6)
INSTANCE = 1  # column of the instance in the full grid: not a factor, sampled at random
SOURCE_SIZE = 96
URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
HALVES = ("smallnorb-5x46789x9x18x6x2x96x96-training", "smallnorb-5x01235x9x18x6x2x96x96-testing")
MD5 = {  # published with the release, of the .mat.gz files
    (0, "dat"): "66054832f9accfe74a0f4c36a75bc0a2",
    (0, "cat"): "23c8b86101fbf0904a000b43d3ed2fd9",
    (0, "info"): "51dee1210a742582ff607dfd94e332e3",
    (1, "dat"): "e4ad715691ed5a3a5f138751a4ceb071",
    (1, "cat"): "5aa791cd7e6016cf957ce9bdb93b8603",
    (1, "info"): "a9454f3864d7fd4bb3ea7fc3eb84924e",
}
OFFICIAL_FILES = tuple(
    OfficialFile(
        "smallnorb",
        f"{HALVES[half]}-{kind}.mat.gz",
        f"{URL}{HALVES[half]}-{kind}.mat.gz",
        (md5,),
        name="smallNORB",
    )
    for (half, kind), md5 in MD5.items()
)
MAGIC = {0x1E3D4C55: np.dtype(np.uint8), 0x1E3D4C54: np.dtype("<i4")}
UNREADABLE = (OSError, EOFError, zlib.error)
CHUNK = 1024  # images read at a time


class SmallNORB(GroundTruthData):
    """smallNORB as ground-truth data: category, elevation, azimuth, lighting (instance random).

    Parameters
    ----------
    images : uint8 array [48600, 1, 64, 64]
        Every image in row-major order of the full grid :data:`FULL_SIZES`.
    """

    factor_names = FACTOR_NAMES
    observation_shape = (1, 64, 64)

    def __init__(self, images: np.ndarray):
        self.full_space = FactorSpace(FULL_SIZES)
        if images.dtype != np.uint8 or images.shape != (
            self.full_space.num_total,
            *self.observation_shape,
        ):
            raise DataError(
                f"smallNORB images must be uint8 [{self.full_space.num_total}, 1, 64,"
                f" 64], got {images.dtype} {list(images.shape)}"
            )
        self.factor_space = FactorSpace(np.delete(FULL_SIZES, INSTANCE))
        self.images = images

    def sample_observations_from_factors(self, factors, random_state):
        factors = self.factor_space.check_factors(factors)
        instance = random_state.randint(FULL_SIZES[INSTANCE], size=len(factors))
        index = self.full_space.factors_to_index(np.insert(factors, INSTANCE, instance, axis=1))
        return np.multiply(self.images[index], 1 / 255, dtype=np.float32)

    def observations_array(self):
        return self.images, 1 / 255


def load_smallnorb(
    path: str | os.PathLike | None = None, data_root=None, checksum: str | None = "official"
) -> SmallNORB:
    """smallNORB from the folder ``path`` holding the six files (default: the data root's).

    Each ``.mat.gz`` is checked (see :func:`nsvae.data.shapes3d.load_shapes3d`) and the files
    are converted on first use only.

    Raises
    ------
    DataError
        A missing file (saying where to get it), a wrong, truncated or corrupt file, a wrong
        type or shape, or labels that are not the full grid.
    """
    folder = data_folder(data_root) / "smallnorb" if path is None else Path(path)
    files = [_find(folder, file) for file in OFFICIAL_FILES]
    space = FactorSpace(FULL_SIZES)

    def fill(out):
        for file, found in zip(OFFICIAL_FILES, files, strict=True):
            if found.suffix == ".gz":
                file.check(found, checksum)
        seen = np.concatenate(
            [
                _convert_half(files[3 * half : 3 * half + 3], space, out)
                for half in range(len(HALVES))
            ]
        )
        if np.any(np.bincount(seen, minlength=space.num_total) != 1):
            raise DataError(
                f"{folder}: the labels do not cover the grid {list(FULL_SIZES)} exactly once"
            )

    images = converted_images("smallnorb", files, (space.num_total, 1, 64, 64), fill, data_root)
    return SmallNORB(images)


def _find(folder: Path, file: OfficialFile) -> Path:
    """The ``.mat.gz`` of ``file`` in ``folder``, else its extracted ``.mat``."""
    gzipped = folder / file.filename
    extracted = gzipped.with_suffix("")
    return extracted if extracted.is_file() and not gzipped.is_file() else file.require(gzipped)


def _convert_half(paths, space: FactorSpace, out: np.ndarray) -> np.ndarray:
    """Write one half's images into ``out`` at their grid rows; return those rows."""
    dat, cat, info = paths
    num = space.num_total // len(HALVES)
    factors = np.column_stack(
        [_read_matrix(cat, "<i4", (num,)), _read_matrix(info, "<i4", (num, 4))]
    ).astype(np.int64)
    if np.any(factors[:, 3] % 2):
        raise DataError(f"{info}: azimuth values must be even (0, 2, ..., 34)")
    factors[:, 3] //= 2
    try:
        rows = space.factors_to_index(factors)
    except DataError as error:
        raise DataError(f"{info}: {error}") from None
    pair = 2 * SOURCE_SIZE * SOURCE_SIZE
    with _open(dat, np.uint8, (num, 2, SOURCE_SIZE, SOURCE_SIZE)) as stream:
        for start in range(0, num, CHUNK):
            count = min(CHUNK, num - start)
            pairs = np.frombuffer(_read_exactly(stream, count * pair, dat), np.uint8)
            lefts = pairs.reshape(count, 2, SOURCE_SIZE, SOURCE_SIZE)[:, 0]
            out[rows[start : start + count], 0] = [resize(image) for image in lefts]
    return rows


def _read_matrix(path: Path, dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The whole binary matrix of ``path``, checked for type and shape."""
    with _open(path, dtype, shape) as stream:
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(_read_exactly(stream, size, path), dtype).reshape(shape)


@contextlib.contextmanager
def _open(path: Path, dtype, shape: tuple[int, ...]):
    """Open a binary matrix file (gzipped or not); check its header; yield it at its data."""
    opener = gzip.open if path.suffix == ".gz" else open  # errors surface on the first read
    with opener(path, "rb") as stream:
        magic, ndim = np.frombuffer(_read_exactly(stream, 8, path), "<i4")
        dims = np.frombuffer(_read_exactly(stream, 4 * max(3, int(ndim)), path), "<i4")
        kind = MAGIC.get(int(magic))
        if kind != np.dtype(dtype):
            raise DataError(
                f"{path}: matrix of type {kind or hex(magic)}, expected {np.dtype(dtype)}"
            )
        if tuple(dims[:ndim]) != shape:
            raise DataError(
                f"{path}: matrix of shape {dims[:ndim].tolist()}, expected {list(shape)}"
            )
        yield stream


def _read_exactly(stream, size: int, path: Path) -> bytes:
    """``size`` bytes of ``stream``; fewer means a truncated file."""
    try:
        data = stream.read(size)
    except UNREADABLE as error:
        raise DataError(f"{path}: unreadable ({one_line(error)})") from None
    if len(data) != size:
        raise DataError(f"{path}: ends early: truncated file")
    return data
