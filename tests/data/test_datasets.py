"""Loaders of 3dshapes, MPI3D, smallNORB and Cars3D on generated files of the official formats.

Each test writes a small file in exactly the official container, keys, dtypes and layout, on a
smaller factor grid (the module's grid constant is patched), with every image a flat colour that
encodes its position in the file. Loading must put each image at the grid point the file's own
labels (or layout) give it, and every malformed file must be one line of :class:`DataError`.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import urllib.error
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io

from nsvae import cli
from nsvae.data import DATASETS, cars3d, fetch_dataset, fetchable_datasets, mpi3d, norb, shapes3d
from nsvae.data import files as data_files
from nsvae.data.ground_truth import FactorSpace
from nsvae.errors import DataError

RNG = np.random.RandomState(0)


def one_line_error(load, match: str) -> str:
    """Call ``load`` and return its DataError message, checked to be one line matching."""
    with pytest.raises(DataError, match=match) as error:
        load()
    assert "\n" not in str(error.value)
    return str(error.value)


def flat_images(values: np.ndarray, size: int = 64) -> np.ndarray:
    """Images [n, size, size, 3] uint8 whose every pixel is ``values[i]`` (RGB [n, 3])."""
    return np.broadcast_to(values[:, None, None, :], (len(values), size, size, 3)).astype(np.uint8)


def truncate(path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# ------------------------------------------------------------------------------------- 3dshapes

SHAPES_SIZES = (2, 2, 2, 2, 2, 3)


def shapes3d_labels(sizes) -> np.ndarray:
    """Official label values (first ``size`` of each factor) of the grid in row-major order."""
    values = [
        np.linspace(0, 0.9, 10),
        np.linspace(0, 0.9, 10),
        np.linspace(0, 0.9, 10),
        np.linspace(0.75, 1.25, 8),
        np.arange(4.0),
        np.linspace(-30, 30, 15),
    ]
    classes = FactorSpace(sizes).index_to_factors(np.arange(int(np.prod(sizes))))
    return np.stack([values[k][classes[:, k]] for k in range(len(sizes))], axis=1)


def write_shapes3d(path, images=None, labels=None, image_key="images"):
    num = int(np.prod(SHAPES_SIZES))
    index = np.arange(num)
    if images is None:
        images = flat_images(np.stack([index, 255 - index, index % 7], axis=1))
    with h5py.File(path, "w") as file:
        file[image_key] = images
        file["labels"] = shapes3d_labels(SHAPES_SIZES) if labels is None else labels
    return path


@pytest.fixture
def small_shapes3d(monkeypatch):
    monkeypatch.setattr(shapes3d, "FACTOR_SIZES", SHAPES_SIZES)


def test_3dshapes_puts_each_image_at_its_labels_grid_point(tmp_path, small_shapes3d, monkeypatch):
    path = write_shapes3d(tmp_path / "3dshapes.h5")
    data = shapes3d.load_shapes3d(path, tmp_path / "root", checksum=None)
    assert data.factor_names == shapes3d.FACTOR_NAMES and data.observation_shape == (3, 64, 64)
    factors = data.sample_factors(200, RNG)
    observations = data.sample_observations_from_factors(factors, RNG)
    rows = np.rint(observations[:, 0, 0, 0] * 255).astype(int)  # the file row of each image
    labels = h5py.File(path)["labels"][()]
    np.testing.assert_allclose(
        labels[rows], shapes3d_labels(SHAPES_SIZES)[data.factors_to_index(factors)]
    )
    np.testing.assert_array_equal(np.rint(observations[:, 1, 5, 9] * 255), 255 - rows)  # RGB kept
    np.testing.assert_array_equal(data.index_to_factors(data.factors_to_index(factors)), factors)

    monkeypatch.setattr(shapes3d, "_convert", lambda *a: pytest.fail("converted again"))
    again = shapes3d.load_shapes3d(path, tmp_path / "root", checksum=None)
    assert isinstance(again.observations.base, np.memmap)  # the cache, memory-mapped


def test_3dshapes_rejects_malformed_files_in_one_line(tmp_path, small_shapes3d):
    num = int(np.prod(SHAPES_SIZES))
    labels = shapes3d_labels(SHAPES_SIZES)
    cases = {
        "missing dataset 'images'": write_shapes3d(tmp_path / "key.h5", image_key="imgs"),
        "images has dtype float32": write_shapes3d(
            tmp_path / "dtype.h5", images=np.zeros((num, 64, 64, 3), np.float32)
        ),
        r"labels has shape \[96, 5\]": write_shapes3d(tmp_path / "shape.h5", labels=labels[:, :5]),
        "labels are not the factor grid": write_shapes3d(
            tmp_path / "order.h5", labels=labels[::-1].copy()
        ),
        "unreadable hdf5 file": truncate(write_shapes3d(tmp_path / "cut.h5")),
    }
    for match, path in cases.items():
        message = one_line_error(
            lambda p=path: shapes3d.load_shapes3d(p, tmp_path / "root", checksum=None), match
        )
        assert str(path) in message
    good = write_shapes3d(tmp_path / "3dshapes.h5")
    one_line_error(
        lambda: shapes3d.load_shapes3d(good, tmp_path / "root"),
        "checksum mismatch .*expected 099a2078d58cec4daad0702c55d06868",
    )
    one_line_error(
        lambda: shapes3d.load_shapes3d(None, tmp_path / "empty"),
        "no 3dshapes file at .*download https://storage.googleapis.com/3d-shapes/",
    )
    folder = tmp_path / "a-folder.h5"
    folder.mkdir()
    one_line_error(
        lambda: shapes3d.load_shapes3d(folder, tmp_path / "root"),
        "a-folder.h5 is a folder, not the 3dshapes file",
    )
    assert not list((tmp_path / "root").rglob("*.tmp"))


# ---------------------------------------------------------------------------------------- MPI3D

MPI3D_SIZES = (2, 2, 2, 2, 2, 1, 3)


@pytest.fixture
def small_mpi3d(monkeypatch):
    monkeypatch.setattr(mpi3d, "LAYOUTS", {96: MPI3D_SIZES})


def mpi3d_images() -> np.ndarray:
    index = np.arange(int(np.prod(MPI3D_SIZES)))
    return flat_images(np.stack([index, 255 - index, 2 * index], axis=1))


def test_mpi3d_follows_the_files_row_major_layout(tmp_path, small_mpi3d):
    images = mpi3d_images()
    for save in (np.savez, np.savez_compressed):  # stored or deflated npz members both stream
        path = tmp_path / f"{save.__name__}.npz"
        save(path, images=images)
        data = mpi3d.load_mpi3d("real", path, tmp_path / "root", checksum=None)
        assert data.factor_names[0] == "object_color" and data.factor_sizes == list(MPI3D_SIZES)
        factors = data.sample_factors(100, RNG)
        observations = data.sample_observations_from_factors(factors, RNG)
        expected = images.reshape(*MPI3D_SIZES, 64, 64, 3)[tuple(factors.T)]  # the file's layout
        np.testing.assert_array_equal(np.rint(observations * 255), expected.transpose(0, 3, 1, 2))


def test_mpi3d_rejects_malformed_files_in_one_line(tmp_path, small_mpi3d):
    images = mpi3d_images()
    np.savez(tmp_path / "key.npz", imgs=images)
    np.savez(tmp_path / "dtype.npz", images=images.astype(np.float32))
    np.savez(tmp_path / "shape.npz", images=images[:50])
    np.savez(tmp_path / "object.npz", images=np.array([images, None], dtype=object))
    np.savez(tmp_path / "cut.npz", images=images)
    truncate(tmp_path / "cut.npz", 0.7)
    np.savez(tmp_path / "scalar.npz", images=np.uint8(7))
    np.savez(tmp_path / "fortran.npz", images=np.asfortranarray(images))
    cases = {
        "key": r"missing key 'images' \(has \['imgs'\]\)",
        "dtype": "images has dtype float32",
        "shape": r"images has shape \[50, 64, 64, 3\]",
        "object": "images has dtype object",
        "cut": "unreadable npz file",
        "scalar": r"images has shape \[\]",
        "fortran": r"images is stored in Fortran \(column-major\) order",
    }
    for name, match in cases.items():
        one_line_error(
            lambda n=name: mpi3d.load_mpi3d(
                "toy", tmp_path / f"{n}.npz", tmp_path / "root", checksum=None
            ),
            match,
        )
    with (
        zipfile.ZipFile(tmp_path / "short.npz", "w") as archive,
        archive.open("images.npy", "w") as member,
    ):  # a whole zip, the array cut short
        np.lib.format.write_array_header_1_0(
            member, {"descr": "|u1", "fortran_order": False, "shape": images.shape}
        )
        member.write(images.tobytes()[:1000])
    one_line_error(
        lambda: mpi3d.load_mpi3d("toy", tmp_path / "short.npz", tmp_path / "root", checksum=None),
        "images end early: truncated",
    )
    np.savez(tmp_path / "good.npz", images=images)
    one_line_error(
        lambda: mpi3d.load_mpi3d("toy", tmp_path / "good.npz", tmp_path / "root"),
        "checksum mismatch .*expected 55889cb7c7dfc655d6e0277beee88868",
    )


# ------------------------------------------------------------------------------------ smallNORB

NORB_SIZES = (2, 2, 2, 3, 2)  # category, instance, elevation, azimuth, lighting


def write_matrix(path, array: np.ndarray, magic: int = 0x1E3D4C55, gzipped: bool = True):
    """A binary matrix file of the smallNORB release."""
    dims = list(array.shape) + [1] * (3 - array.ndim)
    header = np.array([magic, array.ndim, *dims], "<i4").tobytes()
    data = header + np.ascontiguousarray(array).tobytes()
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def write_norb(folder, gzipped: bool = True, instances=(0, 1), azimuth_step: int = 2):
    """The six files for the grid :data:`NORB_SIZES`; half h holds instance ``instances[h]``,
    its rows shuffled; the left image of a pair is flat at 5 x (grid index), the right at 1."""
    folder.mkdir(parents=True, exist_ok=True)
    space = FactorSpace(NORB_SIZES)
    full = space.index_to_factors(np.arange(space.num_total))
    for half, prefix in enumerate(norb.HALVES):
        rows = full[full[:, 1] == instances[half]]
        rows = rows[np.random.RandomState(half).permutation(len(rows))]
        pairs = np.ones((len(rows), 2, 96, 96), np.uint8)
        pairs[:, 0] = (5 * space.factors_to_index(rows)).astype(np.uint8)[:, None, None]
        info = rows[:, 1:].copy()
        info[:, 2] *= azimuth_step
        suffix = ".mat.gz" if gzipped else ".mat"
        write_matrix(folder / f"{prefix}-dat{suffix}", pairs, gzipped=gzipped)
        write_matrix(
            folder / f"{prefix}-cat{suffix}", rows[:, 0].astype("<i4"), 0x1E3D4C54, gzipped
        )
        write_matrix(folder / f"{prefix}-info{suffix}", info.astype("<i4"), 0x1E3D4C54, gzipped)
    return folder


@pytest.fixture
def small_norb(monkeypatch):
    monkeypatch.setattr(norb, "FULL_SIZES", NORB_SIZES)


def test_smallnorb_places_images_by_their_labels_and_draws_the_instance(tmp_path, small_norb):
    for gzipped in (True, False):
        folder = write_norb(tmp_path / f"norb-{gzipped}", gzipped)
        data = norb.load_smallnorb(folder, tmp_path / "root", checksum=None)
        assert data.factor_names == ("category", "elevation", "azimuth", "lighting")
        factors = data.sample_factors(300, RNG)
        observations = data.sample_observations_from_factors(factors, RNG)
        assert observations.shape == (300, 1, 64, 64)
        index = np.rint(observations[:, 0, 30, 30] * 255 / 5).astype(int)
        full = FactorSpace(NORB_SIZES).index_to_factors(index)
        np.testing.assert_array_equal(np.delete(full, 1, axis=1), factors)
        assert set(full[:, 1]) == {0, 1}  # the instance is drawn at random


def test_smallnorb_rejects_malformed_files_in_one_line(tmp_path, small_norb):
    prefix = norb.HALVES[0]
    good = write_norb(tmp_path / "good")
    cases = {}
    bad = write_norb(tmp_path / "magic")
    write_matrix(bad / f"{prefix}-dat.mat.gz", np.zeros((24, 2, 96, 96), "<i4"), 0x1E3D4C54)
    cases[bad] = "matrix of type int32, expected uint8"
    bad = write_norb(tmp_path / "shape")
    write_matrix(bad / f"{prefix}-cat.mat.gz", np.zeros(23, "<i4"), 0x1E3D4C54)
    cases[bad] = r"matrix of shape \[23\], expected \[24\]"
    cases[truncate(write_norb(tmp_path / "cut") / f"{prefix}-dat.mat.gz").parent] = "unreadable"
    cases[write_norb(tmp_path / "odd", azimuth_step=1)] = "azimuth values must be even"
    cases[write_norb(tmp_path / "twice", instances=(0, 0))] = "do not cover the grid"
    for folder, match in cases.items():
        one_line_error(
            lambda f=folder: norb.load_smallnorb(f, tmp_path / "root", checksum=None), match
        )
    one_line_error(
        lambda: norb.load_smallnorb(good, tmp_path / "root"),
        f"checksum mismatch .*expected {norb.MD5[0, 'dat']}",
    )
    (good / f"{prefix}-info.mat.gz").unlink()
    one_line_error(
        lambda: norb.load_smallnorb(good, tmp_path / "root"),
        re.escape(f"download {norb.URL}{prefix}-info.mat.gz"),
    )


# --------------------------------------------------------------------------------------- Cars3D

CARS = ("car_b_mesh", "car_a_mesh")  # list.txt order, not sorted


def car_mesh(car: int) -> np.ndarray:
    """``im`` [128, 128, 3, 24, 4]: flat (40 car + 20, 10 azimuth, 60 elevation)."""
    mesh = np.empty(cars3d.MESH_SHAPE, np.uint8)
    for azimuth in range(24):
        for elevation in range(4):
            mesh[:, :, :, azimuth, elevation] = [40 * car + 20, 10 * azimuth, 60 * elevation]
    return mesh


def mat_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, arrays)
    return buffer.getvalue()


def write_cars(path, meshes=None, names=CARS):
    meshes = (
        {name: {"im": car_mesh(car)} for car, name in enumerate(CARS)} if meshes is None else meshes
    )
    with tarfile.open(path, "w:gz") as archive:
        files = {"data/cars/list.txt": "\n".join(names).encode()}
        files |= {f"data/cars/{name}.mat": mat_bytes(**arrays) for name, arrays in meshes.items()}
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def small_cars(monkeypatch):
    monkeypatch.setattr(cars3d, "NUM_CARS", len(CARS))


def test_cars3d_grid_is_elevation_azimuth_object_in_list_order(tmp_path, small_cars):
    data = cars3d.load_cars3d(
        write_cars(tmp_path / "cars.tar.gz"), tmp_path / "root", checksum=None
    )
    assert data.factor_names == ("elevation", "azimuth", "object_type")
    assert data.factor_sizes == [4, 24, 2]
    factors = data.sample_factors(200, RNG)
    colour = np.rint(data.sample_observations_from_factors(factors, RNG)[:, :, 32, 32] * 255)
    elevation, azimuth, car = factors.T
    np.testing.assert_array_equal(
        colour, np.stack([40 * car + 20, 10 * azimuth, 60 * elevation], axis=1)
    )


def test_cars3d_from_its_extracted_folder_is_the_archive(tmp_path, small_cars):
    archive = write_cars(tmp_path / "cars.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    from_archive = cars3d.load_cars3d(archive, tmp_path / "root", checksum=None)
    from_folder = cars3d.load_cars3d(tmp_path / "extracted", tmp_path / "root")  # no checksum
    np.testing.assert_array_equal(from_folder.observations, from_archive.observations)


def test_cars3d_rejects_malformed_archives_in_one_line(tmp_path, small_cars):
    good = {name: {"im": car_mesh(car)} for car, name in enumerate(CARS)}
    cases = {
        "missing key 'im'": good | {CARS[0]: {"mask": np.zeros((2, 2), np.uint8)}},
        "im has dtype float64": good | {CARS[0]: {"im": car_mesh(0).astype(float)}},
        r"im has shape \[128, 128, 3, 24, 3\]": good | {CARS[0]: {"im": car_mesh(0)[..., :3]}},
        "1 of 2 car meshes missing": {CARS[0]: good[CARS[0]]},
    }
    for n, (match, meshes) in enumerate(cases.items()):
        path = write_cars(tmp_path / f"bad{n}.tar.gz", meshes)
        one_line_error(
            lambda p=path: cars3d.load_cars3d(p, tmp_path / "root", checksum=None), match
        )
    path = truncate(write_cars(tmp_path / "cut.tar.gz"), 0.3)
    one_line_error(lambda: cars3d.load_cars3d(path, tmp_path / "root", checksum=None), "unreadable")
    path = write_cars(tmp_path / "cars.tar.gz")
    one_line_error(
        lambda: cars3d.load_cars3d(path, tmp_path / "root"),
        "checksum mismatch .*expected 4e866a7919c1beedf53964e6f7a23686",
    )


def test_a_cars3d_source_that_cannot_be_read_is_a_read_error_not_a_cache_error(
    tmp_path, small_cars
):
    folder = tmp_path / "cars"
    (folder / "list.txt").mkdir(parents=True)  # a folder where the list of cars should be
    message = one_line_error(
        lambda: cars3d.load_cars3d(folder, tmp_path / "root"),
        "cannot read .*list.txt: Is a directory",
    )
    assert "cache" not in message
    assert not list((tmp_path / "root").rglob("*.npy*"))


# ---------------------------------------------------------------------------------------- fetch


def test_fetch_offline_names_url_checksum_and_path_for_every_dataset(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data_files.urllib.request, "urlopen", offline)
    for name in fetchable_datasets():
        official = DATASETS[name].files
        assert cli.main(["data", "fetch", name, "--data-root", str(tmp_path)]) == 3
        err = capsys.readouterr().err
        assert err.startswith("nsvae: error: cannot download ") and err.count("\n") == 1
        for file in official:
            assert file.url in err and str(file.path(tmp_path)) in err
            assert (" or ".join(file.checksums) or "no published checksum") in err
    with pytest.raises(Exception, match="no official files to fetch for 'images'"):
        fetch_dataset("images")


def test_fetch_keeps_an_extracted_cars3d_folder_and_refuses_a_folder_for_a_file(
    tmp_path, monkeypatch, capsys
):
    def no_download(*args, **kwargs):
        raise AssertionError("fetch must not download over what is already there")

    monkeypatch.setattr(data_files.urllib.request, "urlopen", no_download)
    extracted = cars3d.OFFICIAL.path(tmp_path)
    extracted.mkdir(parents=True)
    assert fetch_dataset("cars3d", tmp_path) == [extracted]
    toy = mpi3d.VARIANTS["toy"].path(tmp_path)  # named in the message as the loader names it
    toy.mkdir(parents=True)
    assert cli.main(["data", "fetch", "mpi3d-toy", "--data-root", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err == (
        f"nsvae: error: {toy} is a folder, not the mpi3d-toy file: put the file there "
        f"or give its path ({mpi3d.VARIANTS['toy'].url})\n"
    )


def test_a_cars3d_mesh_file_matlab_cannot_read_here_is_one_line():
    from scipy.io import savemat

    buffer = io.BytesIO()
    savemat(buffer, {"im": np.zeros((2, 2), np.uint8)})
    hdf5 = bytearray(buffer.getvalue())
    hdf5[124:126] = (0x0200).to_bytes(2, "little")  # the header's version: 7.3, an HDF5 file
    for data, match in ((bytes(hdf5), "v7.3"), (b"hello world" * 20, "Unknown mat file type")):
        one_line_error(
            lambda d=data: cars3d._read_mesh(d, "car_001_mesh.mat"),
            f"car_001_mesh.mat: unreadable MATLAB file .*{match}",
        )
