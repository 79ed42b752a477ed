"""The ``array`` dataset: users' own ground-truth data in an npz file, and its errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nsvae.data import get_dataset, save_array_dataset
from nsvae.errors import ConfigError, DataError

SIZES = [2, 3, 2]  # 12 grid points


def index_images(channels: int = 3) -> np.ndarray:
    """uint8 images [12, C, 64, 64]: image i, channel c is filled with 20 i + c (0..222)."""
    values = 20 * np.arange(12)[:, None] + np.arange(channels)
    return np.broadcast_to(values[:, :, None, None], (12, channels, 64, 64)).astype(np.uint8)


def row_major_index(factors: np.ndarray) -> list[int]:
    """Index of each factor vector in the grid, last factor fastest, by enumerating the grid."""
    grid = list(itertools.product(*(range(size) for size in SIZES)))
    return [grid.index(tuple(f)) for f in factors.tolist()]


def test_uint8_round_trip_returns_the_saved_images_of_the_sampled_factors(tmp_path):
    images = index_images()
    path = save_array_dataset(tmp_path / "mine", images, SIZES, ["a", "b", "c"])
    assert path == tmp_path / "mine" and path.is_file()  # the name is kept, no ".npz" added

    data = get_dataset("array", path=str(path))
    assert data.factor_names == ("a", "b", "c") and data.factor_sizes == SIZES
    assert data.observation_shape == (3, 64, 64) and len(data) == 12
    factors, observations = data.sample(100, np.random.RandomState(0))
    assert observations.dtype == np.float32 and observations.shape == (100, 3, 64, 64)
    assert observations.min() >= 0 and observations.max() <= 1
    expected = images[row_major_index(factors)] / 255  # 0..255 -> [0, 1]
    np.testing.assert_allclose(observations, expected, rtol=1e-6)

    stored, scale = data.observations_array()  # what the trainer's sampler holds
    assert stored.dtype == np.uint8 and np.array_equal(stored, images) and scale == 1 / 255


def test_binary_uint8_and_float_images_keep_their_values(tmp_path):
    binary = (index_images(1)[:, 0] % 40 == 0).astype(np.uint8)  # [12, 64, 64] of 0 and 1
    data = get_dataset("array", path=save_array_dataset(tmp_path / "binary.npz", binary, SIZES))
    assert data.factor_names == ("factor_0", "factor_1", "factor_2")
    assert data.observation_shape == (1, 64, 64)
    stored, scale = data.observations_array()
    assert stored.dtype == np.uint8 and scale == 1
    factors, observations = data.sample(50, np.random.RandomState(1))
    assert np.array_equal(observations[:, 0], binary[row_major_index(factors)])

    floats = index_images(2).astype(np.float32) / 255
    data = get_dataset("array", path=save_array_dataset(tmp_path / "floats.npz", floats, SIZES))
    factors, observations = data.sample(50, np.random.RandomState(2))
    assert np.array_equal(observations, floats[row_major_index(factors)])


def bad_files(tmp_path) -> list[tuple[object, str]]:
    """(path, expected message) of every kind of bad array dataset file."""
    good = {"observations": index_images(1), "factor_sizes": np.array(SIZES)}

    def npz(name, **changes):
        arrays = {key: value for key, value in {**good, **changes}.items() if value is not None}
        np.savez(tmp_path / name, **arrays)
        return tmp_path / name

    text = tmp_path / "text.npz"
    text.write_text("observations,factor_sizes\n")
    npy = tmp_path / "array.npy"
    np.save(npy, good["observations"])
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(npz("whole.npz").read_bytes()[:3000])
    images = good["observations"]
    return [
        (tmp_path / "absent.npz", "no array dataset file at"),
        (text, "not an npz archive"),
        (npy, "not an npz archive"),
        (truncated, "unreadable npz file"),
        (npz("no-sizes.npz", factor_sizes=None), r"missing keys \['factor_sizes'\]"),
        (npz("no-images.npz", observations=None), r"missing keys \['observations'\]"),
        (npz("int32.npz", observations=images.astype(np.int32)), "observations has dtype int32"),
        (npz("bool.npz", observations=images > 0), "observations has dtype bool"),
        (npz("small.npz", observations=images[:, :, :32, :32]), "observations has shape"),
        (npz("flat.npz", observations=images.reshape(12, -1)), "observations has shape"),
        (npz("no-channel.npz", observations=images[:, :0]), "observations has shape"),
        (npz("float-sizes.npz", factor_sizes=np.array(SIZES, float)), "factor_sizes must be"),
        (npz("2d-sizes.npz", factor_sizes=np.array([SIZES])), "factor_sizes must be"),
        (npz("zero-size.npz", factor_sizes=np.array([2, 0, 6])), "positive ints"),
        (npz("int-names.npz", factor_names=np.arange(3)), "factor_names must be a 1-d str"),
        (npz("two-names.npz", factor_names=np.array(["a", "b"])), "2 factor names for 3"),
        (npz("n.npz", observations=images[:11]), r"expected 12 observations .* \[2, 3, 2\]"),
        (npz("n-grid.npz", factor_sizes=np.array([2, 3, 3])), "expected 18 observations"),
        (npz("negative.npz", observations=images / 255 - 0.1), r"must lie in \[0, 1\]"),
        (npz("above.npz", observations=images / 100), r"must lie in \[0, 1\], .* 2\.2\]"),
        (npz("nan.npz", observations=np.full(images.shape, np.nan)), r"must lie in \[0, 1\]"),
        (
            npz("pickled-names.npz", factor_names=np.array(["a", "b", 3], dtype=object)),
            "factor_names must be a 1-d str array, got object",
        ),  # refused from its header,
        (
            npz("pickled-images.npz", observations=images.astype(object)),  # never unpickled
            "observations has dtype object",
        ),
    ]


def test_every_bad_file_is_a_one_line_data_error_naming_the_file(tmp_path):
    for path, message in bad_files(tmp_path):
        with pytest.raises(DataError, match=message) as error:
            get_dataset("array", path=path)
        assert "\n" not in str(error.value), path
        assert str(error.value).startswith(("no array dataset file at ", f"{path}: ")), path


def test_the_writer_refuses_what_the_loader_refuses_and_writes_nothing(tmp_path):
    images = index_images(1)
    for observations, sizes, names, message in [
        (images[:11], SIZES, None, "expected 12 observations"),
        (images.astype(np.int64), SIZES, None, "observations has dtype int64"),
        (images / 100, SIZES, None, r"must lie in \[0, 1\]"),
        (images, SIZES, ["a", "b"], "2 factor names for 3 factors"),
    ]:
        with pytest.raises(DataError, match=message):
            save_array_dataset(tmp_path / "bad.npz", observations, sizes, names)
    assert list(tmp_path.iterdir()) == []


def test_the_array_dataset_needs_a_path():
    with pytest.raises(ConfigError, match="dataset 'array' needs its npz file"):
        get_dataset("array")
