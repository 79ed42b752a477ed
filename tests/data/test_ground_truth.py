"""The ground-truth data contract: index <-> factor maps, sampling, errors."""

import numpy as np
import pytest

from nsvae.data import ArrayGroundTruthData, FactorSpace, GroundTruthData
from nsvae.errors import DataError

DSPRITES_SIZES = [3, 6, 40, 32, 32]


def square_images(side=8, grid=8, size=64):
    """Images [grid * grid, 1, size, size] of a square at grid x grid positions (row-major)."""
    images = np.zeros((grid, grid, 1, size, size), np.uint8)
    for y in range(grid):
        for x in range(grid):
            images[y, x, 0, 4 + 6 * y : 4 + 6 * y + side, 4 + 6 * x : 4 + 6 * x + side] = 255
    return images.reshape(grid * grid, 1, size, size)


def test_round_trip_over_the_full_dsprites_grid():
    space = FactorSpace(DSPRITES_SIZES)
    index = np.arange(737_280)
    factors = space.index_to_factors(index)
    assert np.array_equal(factors, np.indices(DSPRITES_SIZES).reshape(5, -1).T)
    assert np.array_equal(space.factors_to_index(factors), index)
    assert space.bases.tolist() == [245760, 40960, 1024, 32, 1]
    # the official notebook: index 1 is posY 1, index 32 is posX 1 (posY varies fastest)
    assert space.index_to_factors(np.array([1, 32])).tolist() == [[0, 0, 0, 0, 1], [0, 0, 0, 1, 0]]
    assert space.num_total == 737_280 and space.num_factors == 5


def test_sample_factors_is_seeded_uniform_and_in_range():
    space = FactorSpace(DSPRITES_SIZES)
    a = space.sample_factors(20_000, np.random.RandomState(0))
    b = space.sample_factors(20_000, np.random.RandomState(0))
    assert a.dtype == np.int64 and a.shape == (20_000, 5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, space.sample_factors(20_000, np.random.RandomState(1)))
    for j, size in enumerate(DSPRITES_SIZES):
        counts = np.bincount(a[:, j], minlength=size)
        assert counts.size == size
        expected = 20_000 / size
        assert np.all(np.abs(counts - expected) < 6 * np.sqrt(expected))


def test_array_data_returns_the_observations_of_the_sampled_factors():
    images = square_images()
    data = ArrayGroundTruthData(images, [8, 8], ["y", "x"])
    assert data.factor_names == ("y", "x") and data.factor_sizes == [8, 8]
    assert data.observation_shape == (1, 64, 64) and len(data) == 64 and data.num_factors == 2
    factors, observations = data.sample(200, np.random.RandomState(3))
    assert observations.dtype == np.float32 and observations.shape == (200, 1, 64, 64)
    assert np.array_equal(observations, images[factors[:, 0] * 8 + factors[:, 1]])
    # each observation shows the square where its factors put it
    rows = np.nonzero(observations.sum(axis=(1, 3)))[1].reshape(200, 8)[:, 0]
    cols = np.nonzero(observations.sum(axis=(1, 2)))[1].reshape(200, 8)[:, 0]
    assert np.array_equal(rows, 4 + 6 * factors[:, 0])
    assert np.array_equal(cols, 4 + 6 * factors[:, 1])
    again = data.sample_observations_from_factors(factors, np.random.RandomState(0))
    assert np.array_equal(again, observations)
    array, scale = data.observations_array()
    assert array is data.observations and scale == 1.0
    assert data.sample_observations(5, np.random.RandomState(0)).shape == (5, 1, 64, 64)


def test_default_names_and_any_observation_shape():
    data = ArrayGroundTruthData(np.arange(12.0).reshape(6, 2), [2, 3])
    assert data.factor_names == ("factor_0", "factor_1") and data.observation_shape == (2,)
    assert data.sample_observations_from_factors(np.array([[1, 2]]), None).tolist() == [[10, 11]]


@pytest.mark.parametrize("sizes", [[], [3, 0], [[2, 3]], [-1]])
def test_bad_factor_sizes(sizes):
    with pytest.raises(DataError, match="factor sizes"):
        FactorSpace(sizes)


@pytest.mark.parametrize(
    ("factors", "message"),
    [
        (np.zeros((3, 4), np.int64), "shape"),
        (np.zeros(5, np.int64), "shape"),
        (np.zeros((3, 5)), "integer"),
        (np.array([[0, 0, 0, 0, 32]]), "out of range"),
        (np.array([[-1, 0, 0, 0, 0]]), "out of range"),
    ],
)
def test_bad_factors(factors, message):
    with pytest.raises(DataError, match=message):
        FactorSpace(DSPRITES_SIZES).factors_to_index(factors)


def test_bad_indices_and_arrays():
    space = FactorSpace(DSPRITES_SIZES)
    with pytest.raises(DataError, match="out of range"):
        space.index_to_factors(np.array([737_280]))
    with pytest.raises(DataError, match="expected 64 observations"):
        ArrayGroundTruthData(np.zeros((63, 4)), [8, 8])
    with pytest.raises(DataError, match="factor names"):
        ArrayGroundTruthData(np.zeros((64, 4)), [8, 8], ["only one"])
    with pytest.raises(NotImplementedError):
        GroundTruthData().observations_array()
