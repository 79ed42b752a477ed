"""color-, noisy- and scream-dSprites against disentanglement_lib's definitions, and their batches.

The base images are the shared 8 x 8 squares (binary, like dSprites); the variants do not care
which binary sprites they colour.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nsvae.config import Config
from nsvae.data import BatchSampler, get_dataset
from nsvae.data.dsprites_variants import ProceduralDSprites, Screamer, add_noise, colorize
from nsvae.errors import DataError
from nsvae.training import train


def dlib_channels_last(images: np.ndarray) -> np.ndarray:
    """Binary [n, 1, 64, 64] -> disentanglement_lib's repeated [n, 64, 64, 3]."""
    return np.repeat(images.transpose(0, 2, 3, 1), 3, axis=3)


def scream_file(path, size=(420, 300)):
    """A smooth RGB picture (not the painting) standing in for ``scream.jpg``."""
    rows, cols = np.mgrid[0 : size[1], 0 : size[0]]
    picture = np.stack([rows % 256, cols % 256, (rows + cols) % 256], axis=2).astype(np.uint8)
    Image.fromarray(picture).save(path)
    return path


def test_color_and_noisy_equal_disentanglement_libs_formulas(squares):
    factors = squares.sample_factors(16, np.random.RandomState(0))
    binary = squares.sample_observations_from_factors(factors, np.random.RandomState(1))
    for transform in (colorize, add_noise):
        data = ProceduralDSprites(squares, transform, transform.__name__)
        ours = data.sample_observations_from_factors(factors, np.random.RandomState(1))
        state = np.random.RandomState(1)
        images = dlib_channels_last(squares.sample_observations_from_factors(factors, state))
        if transform is colorize:  # ColorDSprites.sample_observations_from_factors
            colour = np.repeat(np.repeat(state.uniform(0.5, 1, [16, 1, 1, 3]), 64, 1), 64, 2)
            expected = images * colour
        else:  # NoisyDSprites
            expected = np.minimum(images + state.uniform(0, 1, [16, 64, 64, 3]), 1.0)
        assert ours.shape == (16, 3, 64, 64) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, expected.transpose(0, 3, 1, 2), rtol=1e-6)
        sprite = np.broadcast_to(binary == 1, ours.shape)
        if transform is colorize:
            assert np.all(ours[~sprite] == 0) and np.all(ours[sprite] >= 0.5)
        else:
            assert np.all(ours[sprite] == 1) and 0.4 < ours[~sprite].mean() < 0.6


def test_scream_inverts_a_patch_under_the_sprite_as_disentanglement_lib(squares, tmp_path):
    screamer = Screamer(scream_file(tmp_path / "scream.png"))
    assert screamer.scream.shape == (250, 350, 3)  # shrunk to fit 350 x 274
    data = ProceduralDSprites(squares, screamer, "scream")
    factors = squares.sample_factors(8, np.random.RandomState(0))
    ours = data.sample_observations_from_factors(factors, np.random.RandomState(1))
    state = np.random.RandomState(1)
    images = dlib_channels_last(squares.sample_observations_from_factors(factors, state))
    for i in range(8):  # ScreamDSprites.sample_observations_from_factors, image by image
        x, y = state.randint(0, 250 - 64), state.randint(0, 350 - 64)
        background = (screamer.scream[x : x + 64, y : y + 64] + state.uniform(0, 1, size=3)) / 2
        mask = images[i] == 1
        background[mask] = 1 - background[mask]
        np.testing.assert_allclose(ours[i], background.transpose(2, 0, 1), rtol=1e-6)


def test_the_scream_image_is_checked(tmp_path):
    (tmp_path / "text.jpg").write_bytes(b"not an image")
    Image.new("RGB", (120, 60)).save(tmp_path / "small.png")
    for path, match in (
        (tmp_path / "missing.jpg", "download https://upload.wikimedia.org"),
        (tmp_path / "text.jpg", "not a readable image"),
        (tmp_path / "small.png", "it must be larger than 64 x 64"),
    ):
        with pytest.raises(DataError, match=match) as error:
            Screamer(path)
        assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="needs single-channel"):
        ProceduralDSprites(ProceduralDSprites(_Binary(), colorize, "c"), colorize, "cc")


class _Binary:
    observation_shape = (1, 64, 64)
    factor_names = ("x",)
    factor_space = None


def test_batches_apply_the_variant_reproducibly_and_training_sees_rgb(squares, tmp_path):
    data = ProceduralDSprites(squares, colorize, "color")
    observations, scale = data.observations_array()
    first = BatchSampler(observations, 8, seed=3, scale=scale, transform=colorize)
    second = BatchSampler(observations, 8, seed=3, scale=scale, transform=colorize)
    state = first.state_dict()
    batch = first.next()
    assert batch.shape == (8, 3, 64, 64) and batch.dtype.is_floating_point
    np.testing.assert_array_equal(batch.numpy(), second.next().numpy())
    first.load_state_dict(state)  # a resumed sampler draws the same colours again
    np.testing.assert_array_equal(batch.numpy(), first.next().numpy())

    config = Config.from_dict(
        {
            "model": {"z_dim": 2},
            "train": {"steps": 2, "batch_size": 4, "threads": 1, "device": "cpu", "figures": False},
        }
    )
    run = train(config, tmp_path / "run", data=data)
    assert run.model.likelihood == "gaussian" and run.step == 2


def test_registry_names(tmp_path):
    with pytest.raises(DataError, match="no dSprites file at /nowhere.npz"):
        get_dataset("color-dsprites", path="/nowhere.npz")
    with pytest.raises(DataError, match="no scream image file at"):
        get_dataset("scream-dsprites", data_root=tmp_path)
