"""MPI3D (Gondal et al., 2019): the toy, realistic and real ``.npz`` files of the official release.

Each file holds one array, ``images`` uint8 [1036800, 64, 64, 3], in row-major order of
disentanglement_lib's ``MPI3D`` factors: object colour (6), object shape (6), object size (2),
camera height (3), background colour (3), first and second degree of freedom of the robot arm
(40 each), the last fastest. disentanglement_lib hard-codes 4 colours and 4 shapes, the
460,800-image files of the NeurIPS 2019 challenge; a file of that size loads with those sizes.
The files have no label arrays: the order is the layout.

The 12.7 GB array is never read into memory: the ``.npy`` member of the npz is streamed from the
zip (stored or deflated) into a channel-first uint8 cache that training memory-maps. Nothing is
unpickled: an object dtype is rejected from the header.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path

import numpy as np

from nsvae.data.files import (
    ARCHIVE_ERRORS,
    OfficialFile,
    converted_images,
    copy_channels_first,
)
from nsvae.data.ground_truth import ArrayGroundTruthData
from nsvae.errors import DataError, one_line

FACTOR_NAMES = (
    "object_color",
    "object_shape",
    "object_size",
    "camera_height",
    "background_color",
    "first_dof",
    "second_dof",
)
#: factor sizes by number of images: the released files, and the challenge's (disentanglement_lib)
LAYOUTS = {1_036_800: (6, 6, 2, 3, 3, 40, 40), 460_800: (4, 4, 2, 3, 3, 40, 40)}
IMAGE_SHAPE = (64, 64, 3)
URL = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/{}"
VARIANTS = {
    name: OfficialFile(
        "mpi3d", f"mpi3d_{name}.npz", URL.format(f"mpi3d_{name}.npz"), (md5,), name=f"mpi3d-{name}"
    )
    for name, md5 in (
        ("toy", "55889cb7c7dfc655d6e0277beee88868"),
        ("realistic", "59a6225b88b635365f70c91b3e52f70f"),
        ("real", "0f33f609918fb5c97996692f91129802"),
    )
}
HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def load_mpi3d(
    variant: str,
    path: str | os.PathLike | None = None,
    data_root=None,
    checksum: str | None = "official",
) -> ArrayGroundTruthData:
    """MPI3D ``variant`` (toy, realistic or real) from ``path`` (default: the data root).

    The file is checked (see :func:`nsvae.data.shapes3d.load_shapes3d`) and converted on first
    use only.

    Raises
    ------
    DataError
        Missing, wrong, truncated or corrupt file; no ``images`` member; wrong dtype or shape.
    """
    file = VARIANTS[variant]
    path = file.require(file.path(data_root) if path is None else Path(path))
    with _images_member(path) as (_, shape):
        sizes = LAYOUTS[shape[0]]
    num = int(np.prod(sizes))

    def fill(out):
        file.check(path, checksum)
        with _images_member(path) as (member, _):
            copy_channels_first(lambda start, stop: _read_rows(member, stop - start, path), out)

    shape = (num, 3, *IMAGE_SHAPE[:2])
    images = converted_images(f"mpi3d-{variant}", [path], shape, fill, data_root)
    return ArrayGroundTruthData(images, sizes, FACTOR_NAMES, scale=1 / 255)


@contextlib.contextmanager
def _images_member(path: Path):
    """Open the ``images.npy`` member of an npz and check its header; yield (stream, shape).

    Errors become one-line :class:`DataError`; nothing is unpickled.
    """
    with contextlib.ExitStack() as stack:
        try:
            archive = stack.enter_context(zipfile.ZipFile(path))
            if "images.npy" not in archive.namelist():
                keys = sorted(name.removesuffix(".npy") for name in archive.namelist())
                raise DataError(f"{path}: missing key 'images' (has {keys})")
            member = stack.enter_context(archive.open("images.npy"))
            read_header = HEADER_READERS.get(np.lib.format.read_magic(member))
            if read_header is None:
                raise DataError(f"{path}: images.npy has an unsupported npy version")
            shape, fortran, dtype = read_header(member)
        except ARCHIVE_ERRORS as error:
            raise DataError(f"{path}: unreadable npz file ({one_line(error)})") from None
        if dtype != np.uint8:
            raise DataError(f"{path}: images has dtype {dtype}, expected uint8")
        if len(shape) != 4 or shape[0] not in LAYOUTS or tuple(shape[1:]) != IMAGE_SHAPE:
            expected = " or ".join(f"[{n}, 64, 64, 3]" for n in LAYOUTS)
            raise DataError(f"{path}: images has shape {list(shape)}, expected {expected}")
        if fortran:
            raise DataError(
                f"{path}: images is stored in Fortran (column-major) order, "
                "expected C (row-major) order as in the official file"
            )
        yield member, shape


def _read_rows(member, count: int, path: Path) -> np.ndarray:
    """The next ``count`` images [count, 64, 64, 3] of the stream; a short read is truncation."""
    row_bytes = int(np.prod(IMAGE_SHAPE))
    try:
        data = member.read(count * row_bytes)
    except ARCHIVE_ERRORS as error:
        raise DataError(f"{path}: unreadable npz file ({one_line(error)})") from None
    if len(data) != count * row_bytes:
        raise DataError(f"{path}: images end early: truncated file")
    return np.frombuffer(data, np.uint8).reshape(count, *IMAGE_SHAPE)
