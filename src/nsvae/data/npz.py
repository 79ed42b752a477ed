"""npz archives read and written without pickle, and the ``array`` dataset file format.

An array dataset file lets users train and evaluate on their own ground-truth data. It is an
npz archive with

- ``observations``: images ``[N, C, 64, 64]`` or ``[N, 64, 64]``, either uint8 (0..255, or 0/1
  binary) or float in [0, 1];
- ``factor_sizes``: int ``[K]``, the number of values of each factor, with
  ``N == prod(factor_sizes)`` and the observations in row-major factor order (last factor
  fastest), as :class:`nsvae.data.ground_truth.ArrayGroundTruthData` expects;
- ``factor_names`` (optional): str ``[K]``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nsvae.data.files import ARCHIVE_ERRORS
from nsvae.data.ground_truth import ArrayGroundTruthData, FactorSpace
from nsvae.errors import DataError, one_line
from nsvae.files import atomic_path

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip
IMAGE_SIZE = 64


def read_npz(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> dict:
    """The arrays ``required`` (and those of ``optional`` present) of an npz archive.

    Nothing is unpickled: an object array makes the file unreadable.

    Raises
    ------
    DataError
        The file is not an npz archive, is corrupt, holds object arrays or lacks a key.
    """
    try:
        with open(path, "rb") as file:
            if file.read(4) not in ZIP_MAGIC:  # np.load would take an npy, or call it pickled
                raise DataError(f"{path}: not an npz archive")
        archive = np.load(path, allow_pickle=False)
    except ARCHIVE_ERRORS as error:
        raise DataError(f"{path}: unreadable npz file ({one_line(error)})") from None
    with archive:
        missing = sorted(set(required) - set(archive.files))
        if missing:
            raise DataError(f"{path}: missing keys {missing} (has {sorted(archive.files)})")
        try:
            return {key: archive[key] for key in (*required, *optional) if key in archive.files}
        except ARCHIVE_ERRORS as error:
            raise DataError(f"{path}: unreadable npz file ({one_line(error)})") from None
        except MemoryError as error:  # e.g. a damaged header claiming petabytes
            raise DataError(
                f"{path}: an array does not fit in memory ({one_line(error)})"
            ) from None


def write_npz(path: str | os.PathLike, arrays: dict, compress: bool = True) -> Path:
    """Write ``arrays`` to the npz archive ``path`` (exactly that name), atomically.

    Raises
    ------
    DataError
        The file cannot be written.
    """
    path = Path(path)
    save = np.savez_compressed if compress else np.savez
    with atomic_path(path, DataError) as temporary, open(temporary, "wb") as file:
        save(file, **arrays)
    return path


def load_array_dataset(path: str | os.PathLike) -> ArrayGroundTruthData:
    """Read an array dataset file (module docstring) as ground-truth data.

    uint8 observations stay uint8 in memory, with scale 1 if they are all 0 or 1, else 1/255.

    Raises
    ------
    DataError
        Missing or unreadable file, missing keys, wrong dtypes or shapes, ``N`` not the product
        of the factor sizes, or values out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no array dataset file at {path}")
    headers = npz_headers(path)
    _check_layout({key: headers[key] for key in _KEYS if key in headers}, path)
    sizes = read_npz(path, ("factor_sizes",))["factor_sizes"]
    rows = headers["observations"][0][0]
    try:
        expected = FactorSpace(sizes.tolist()).num_total
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    if rows != expected:  # checked before the observations are read, not after
        raise DataError(
            f"{path}: expected {expected} observations (the product of factor sizes "
            f"{sizes.tolist()}), got {rows}"
        )
    arrays = read_npz(path, ("observations", "factor_sizes"), ("factor_names",))
    return _array_data(arrays, path)


_KEYS = ("observations", "factor_sizes", "factor_names")


def npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The shape and dtype of every array of an npz archive, read from the headers of its
    members without reading (or inflating) the data.

    Raises
    ------
    DataError
        The file is not an npz archive, or a member is not a readable npy array.
    """
    headers = {}
    try:
        with open(path, "rb") as file:
            if file.read(4) not in ZIP_MAGIC:
                raise DataError(f"{path}: not an npz archive")
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                with archive.open(name) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(member)
                headers[name.removesuffix(".npy")] = (shape, dtype)
    except ARCHIVE_ERRORS as error:
        raise DataError(f"{path}: unreadable npz file ({one_line(error)})") from None
    missing = sorted({"observations", "factor_sizes"} - set(headers))
    if missing:
        raise DataError(f"{path}: missing keys {missing} (has {sorted(headers)})")
    return headers


def save_array_dataset(
    path: str | os.PathLike, observations, factor_sizes: Sequence[int], factor_names=None
) -> Path:
    """Write an array dataset file that :func:`load_array_dataset` reads back.

    Parameters
    ----------
    path : path-like
        The npz file to write (its name is kept as given).
    observations : array [prod(factor_sizes), C, 64, 64] or [prod(factor_sizes), 64, 64]
        uint8 (0..255 or 0/1) or float in [0, 1], in row-major factor order.
    factor_sizes : sequence of int
        Number of values of each factor; the last factor varies fastest.
    factor_names : sequence of str, optional
        Names of the factors.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    DataError
        The arrays break the format (checked as on loading) or the file cannot be written.
    """
    arrays = {"observations": np.asarray(observations), "factor_sizes": np.asarray(factor_sizes)}
    if factor_names is not None:
        arrays["factor_names"] = np.asarray(factor_names)
    _array_data(arrays, path)
    return write_npz(path, arrays)


def _check_layout(layout: dict[str, tuple[tuple[int, ...], np.dtype]], path) -> None:
    """The shapes and dtypes of an array dataset file's arrays (from the arrays or from their
    npy headers) are those of the format (module docstring)."""
    shape, dtype = layout["observations"]
    if len(shape) == 3:
        shape = (shape[0], 1, *shape[1:])
    if len(shape) != 4 or shape[1] < 1 or tuple(shape[2:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{path}: observations has shape {list(layout['observations'][0])}, "
            "expected [N, C, 64, 64] or [N, 64, 64]"
        )
    if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
        raise DataError(f"{path}: observations has dtype {dtype}, expected uint8 or float")
    shape, dtype = layout["factor_sizes"]
    if len(shape) != 1 or not np.issubdtype(dtype, np.integer):
        raise DataError(f"{path}: factor_sizes must be a 1-d int array, got {dtype} {list(shape)}")
    if "factor_names" in layout:
        shape, dtype = layout["factor_names"]
        if len(shape) != 1 or dtype.kind != "U":
            raise DataError(
                f"{path}: factor_names must be a 1-d str array, got {dtype} {list(shape)}"
            )


def _array_data(arrays: dict, path) -> ArrayGroundTruthData:
    """Check the arrays of an array dataset file and wrap them (``path`` names them in errors)."""
    _check_layout(
        {
            key: (arrays[key].shape, arrays[key].dtype)
            for key in _KEYS
            if key in arrays and arrays[key] is not None
        },
        path,
    )
    observations, sizes = arrays["observations"], arrays["factor_sizes"]
    names = arrays.get("factor_names")
    if observations.ndim == 3:
        observations = observations[:, None]
    scale = _scale(observations, path)
    try:
        return ArrayGroundTruthData(
            observations, sizes.tolist(), None if names is None else names.tolist(), scale=scale
        )
    except DataError as error:
        raise DataError(f"{path}: {error}") from None


def _scale(observations: np.ndarray, path) -> float:
    """The factor that maps stored observations to [0, 1]: 1/255 for 0..255 uint8, else 1."""
    if observations.dtype == np.uint8:
        return 1.0 if observations.max(initial=0) <= 1 else 1 / 255
    if observations.size and not 0 <= observations.min() <= observations.max() <= 1:
        raise DataError(
            f"{path}: float observations must lie in [0, 1], found values in "
            f"[{observations.min():g}, {observations.max():g}]"
        )
    return 1.0
