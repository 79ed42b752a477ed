"""Cars3D (Reed et al., 2015) from the official ``nips2015-analogy-data.tar.gz``.

The archive (read in place, never extracted) or its extracted folder holds ``data/cars/``: one
MATLAB file ``car_XXX_mesh.mat`` per car with ``im`` uint8 [128, 128, 3, 24, 4] (height, width,
RGB, azimuth, elevation), and ``list.txt`` naming the 183 cars in order (without it, sorted file
names). As in disentanglement_lib's ``Cars3D``: images are resized to 64 x 64 (Lanczos) and the
grid is elevation (4) x azimuth (24) x object type (183), row-major, object type fastest.
disentanglement_lib numbers the cars in directory-listing order, which differs between
machines; ``list.txt`` order is the reproducible one.
"""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from nsvae.data.files import OfficialFile, converted_images
from nsvae.data.ground_truth import ArrayGroundTruthData
from nsvae.data.images import resize
from nsvae.errors import DataError, one_line

FACTOR_NAMES = ("elevation", "azimuth", "object_type")
NUM_CARS = 183
MESH_SHAPE = (128, 128, 3, 24, 4)
OFFICIAL = OfficialFile(
    "cars3d",
    "nips2015-analogy-data.tar.gz",
    "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",
    ("4e866a7919c1beedf53964e6f7a23686",),
    folder_ok=True,
    name="Cars3D",
)
UNREADABLE = (tarfile.TarError, OSError, EOFError, zlib.error)


def factor_sizes() -> tuple[int, int, int]:
    """Elevation, azimuth and object type counts."""
    return MESH_SHAPE[4], MESH_SHAPE[3], NUM_CARS


def load_cars3d(
    path: str | os.PathLike | None = None, data_root=None, checksum: str | None = "official"
) -> ArrayGroundTruthData:
    """Cars3D from the archive or folder ``path`` (default: the archive under the data root).

    The archive is checked (see :func:`nsvae.data.shapes3d.load_shapes3d`; a folder has no
    checksum) and converted on first use only.

    Raises
    ------
    DataError
        Missing (saying where to get it), wrong, truncated or corrupt archive; a mesh file
        without ``im`` or of the wrong type or shape; not :data:`NUM_CARS` cars.
    """
    source = OFFICIAL.require(OFFICIAL.path(data_root) if path is None else Path(path))
    sizes = factor_sizes()

    def fill(out):
        if source.is_file():
            OFFICIAL.check(source, checksum)
        grid = out.reshape(*sizes, 3, 64, 64)
        order, done = _car_order(source), set()
        for name, data in _members(source):
            if name not in order:
                raise DataError(f"{source}: {name} is not in the list of cars")
            mesh = _read_mesh(data, f"{source}:{name}")
            for azimuth in range(sizes[1]):
                for elevation in range(sizes[0]):
                    image = resize(mesh[:, :, :, azimuth, elevation])
                    grid[elevation, azimuth, order[name]] = image.transpose(2, 0, 1)
            done.add(name)
        if len(done) != NUM_CARS:
            raise DataError(f"{source}: {NUM_CARS - len(done)} of {NUM_CARS} car meshes missing")

    return ArrayGroundTruthData(
        converted_images("cars3d", [source], (int(np.prod(sizes)), 3, 64, 64), fill, data_root),
        sizes,
        FACTOR_NAMES,
        scale=1 / 255,
    )


def _car_order(source: Path) -> dict[str, int]:
    """Car file base name -> object type, from ``list.txt`` (or sorted names)."""
    names = _list(source)
    if len(names) != NUM_CARS or len(set(names)) != NUM_CARS:
        raise DataError(f"{source}: {len(set(names))} distinct cars, expected {NUM_CARS}")
    return {name: car for car, name in enumerate(names)}


def _list(source: Path) -> list[str]:
    """The car names of ``list.txt``, else the sorted mesh file names (without ``.mat``)."""
    text, meshes = None, []
    if source.is_file():
        for name, data in _tar_files(source, lambda name: name.endswith("cars/list.txt")):
            if data is not None:
                text = data.decode("utf-8", "replace")
            elif _is_mesh(name):
                meshes.append(Path(name).stem)
    else:
        lists = sorted(source.rglob("list.txt"))
        text = lists[0].read_text("utf-8", "replace") if lists else None
        meshes = [p.stem for p in source.rglob("*.mat") if _is_mesh(p.name)]
    return text.split() if text is not None else sorted(meshes)


def _members(source: Path) -> Iterator[tuple[str, bytes]]:
    """(base name, bytes) of every mesh file, in archive (or sorted) order."""
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*.mat") if _is_mesh(p.name)):
            yield path.stem, path.read_bytes()
        return
    for name, data in _tar_files(source, _is_mesh):
        if data is not None:
            yield Path(name).stem, data


def _is_mesh(name: str) -> bool:
    base = Path(name).name
    return base.startswith("car_") and base.endswith("_mesh.mat")


def _tar_files(source: Path, wanted: Callable[[str], bool]) -> Iterator[tuple[str, bytes | None]]:
    """(name, bytes) of each file of the archive in one pass, bytes only for ``wanted`` names
    (None otherwise); errors reading the archive become one-line :class:`DataError`."""
    try:
        with tarfile.open(source, "r|*") as archive:  # a stream: no seeking back
            for member in archive:
                if member.isfile():
                    wants = wanted(member.name)
                    yield member.name, archive.extractfile(member).read() if wants else None
    except UNREADABLE as error:
        raise DataError(f"{source}: unreadable archive ({one_line(error)})") from None


def _read_mesh(data: bytes, where: str) -> np.ndarray:
    """The ``im`` array of a car's MATLAB file, checked."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(io.BytesIO(data), variable_names=["im"])
    except (
        MatReadError,
        ValueError,
        TypeError,
        IndexError,
        NotImplementedError,
        OSError,
        EOFError,
        zlib.error,
    ) as error:  # NotImplementedError: a v7.3 (HDF5) file
        raise DataError(f"{where}: unreadable MATLAB file ({one_line(error)})") from None
    if "im" not in mat:
        raise DataError(f"{where}: missing key 'im'")
    mesh = mat["im"]
    if mesh.dtype != np.uint8:
        raise DataError(f"{where}: im has dtype {mesh.dtype}, expected uint8")
    if mesh.shape != MESH_SHAPE:
        raise DataError(f"{where}: im has shape {list(mesh.shape)}, expected {list(MESH_SHAPE)}")
    return mesh
