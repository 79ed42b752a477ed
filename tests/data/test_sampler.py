"""In-memory batch sampler: shapes, dtypes, seeding, resumable state."""

import json

import numpy as np
import pytest
import torch

from nsvae.data import BatchSampler
from nsvae.errors import DataError


@pytest.fixture
def rows():
    """200 uint8 'images' [1, 4, 4]; row r is filled with r so a batch reveals its indices."""
    return np.repeat(np.arange(200, dtype=np.uint8), 16).reshape(200, 1, 4, 4)


def indices_of(batch, scale=1.0):
    return torch.round(batch[:, 0, 0, 0] / scale).long()


def test_batches_are_float32_rows_of_the_data(rows):
    sampler = BatchSampler(rows, batch_size=16, seed=0, scale=1 / 255)
    batch = sampler.next()
    assert batch.dtype == torch.float32 and batch.shape == (16, 1, 4, 4)
    index = indices_of(batch, 1 / 255)
    assert torch.allclose(batch, torch.from_numpy(rows)[index].float() / 255)
    assert len(sampler) == 200
    unscaled = BatchSampler(torch.from_numpy(rows), batch_size=3, seed=0).next()
    assert torch.equal(unscaled, torch.from_numpy(rows)[indices_of(unscaled)].float())


def test_same_seed_same_batches_other_seed_other_batches(rows):
    a, b, c = (BatchSampler(rows, 32, seed=s) for s in (7, 7, 8))
    first = [a.next() for _ in range(5)]
    assert all(torch.equal(x, b.next()) for x in first)
    assert not all(torch.equal(x, c.next()) for x in first)
    assert not torch.equal(first[0], first[1])


def test_indices_cover_the_data_uniformly(rows):
    sampler = BatchSampler(rows, 1000, seed=1)
    drawn = torch.cat([indices_of(sampler.next()) for _ in range(40)])
    counts = torch.bincount(drawn, minlength=200)
    assert counts.min() > 100 and counts.max() < 300  # 200 expected each


def test_state_round_trip_through_json_resumes_the_same_batches(rows):
    sampler = BatchSampler(rows, 8, seed=3)
    for _ in range(3):
        sampler.next()
    state = json.loads(json.dumps(sampler.state_dict()))
    expected = [sampler.next() for _ in range(4)]
    resumed = BatchSampler(rows, 8, seed=99)
    resumed.load_state_dict(state)
    assert all(torch.equal(x, resumed.next()) for x in expected)


def test_bad_arguments(rows):
    with pytest.raises(DataError, match="batch size"):
        BatchSampler(rows, 0)
    with pytest.raises(DataError, match="empty"):
        BatchSampler(np.zeros((0, 4), np.uint8), 4)
