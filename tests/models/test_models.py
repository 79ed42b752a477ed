"""Models: shapes of every architecture, the seed-linear head, the representation function."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nsvae.config import ModelConfig
from nsvae.errors import ConfigError, DataError
from nsvae.models import ARCHS, VAE, build_model, representation_function


def model_of(arch="dlib", z_dim=5, num_channels=1, likelihood="auto", seed=0) -> VAE:
    torch.manual_seed(seed)
    return build_model(ModelConfig(arch=arch, z_dim=z_dim, likelihood=likelihood), num_channels)


def images(n=6, channels=1, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, channels, 64, 64), dtype=np.float32)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("channels", "likelihood"), [(1, "bernoulli"), (3, "gaussian")])
def test_shapes_and_auto_likelihood(arch, channels, likelihood):
    model = model_of(arch, z_dim=7, num_channels=channels)
    assert (model.z_dim, model.num_channels, model.likelihood) == (7, channels, likelihood)
    out = model(torch.from_numpy(images(4, channels)))
    assert set(out) == {"mu", "logvar", "z", "x_logits"}
    for key in ("mu", "logvar", "z"):
        assert out[key].shape == (4, 7)
    assert out["x_logits"].shape == (4, channels, 64, 64)
    assert model.decode(out["mu"]).shape == (4, channels, 64, 64)


def test_explicit_likelihood_overrides_auto():
    assert model_of(num_channels=3, likelihood="bernoulli").likelihood == "bernoulli"


def test_dlib_architecture_matches_disentanglement_lib():
    model = model_of("dlib", z_dim=10)
    convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (32, 4, 2),
        (32, 4, 2),
        (64, 2, 2),
        (64, 2, 2),
    ]
    linears = [m.out_features for m in model.encoder if isinstance(m, nn.Linear)]
    assert linears == [256, 20]
    assert [m.out_features for m in model.decoder if isinstance(m, nn.Linear)] == [256, 1024]
    deconvs = [m.out_channels for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert deconvs == [64, 32, 32, 1]


def split_encoder(model: VAE) -> tuple[nn.Module, nn.Module]:
    """(convolutional features, fully-connected head) of the encoder."""
    cut = next(i for i, m in enumerate(model.encoder) if isinstance(m, nn.Flatten)) + 1
    return model.encoder[:cut], model.encoder[cut:]


@pytest.mark.parametrize(("arch", "affine"), [("seed-linear", True), ("seed", False)])
def test_seed_linear_head_is_affine_in_the_features(arch, affine):
    model = model_of(arch)
    _, head = split_encoder(model)
    assert [m.out_features for m in head if isinstance(m, nn.Linear)] == [128, 10]
    h1, h2, h3 = torch.randn(3, 8, 1024, dtype=torch.float64)
    head = head.double()
    with torch.no_grad():
        combination = head(h1 + h2 - h3)
        separate = head(h1) + head(h2) - head(h3)
    assert torch.allclose(combination, separate, atol=1e-10) == affine


def test_sampling_uses_torch_global_generator():
    model = model_of()
    x = torch.from_numpy(images(3))
    torch.manual_seed(5)
    first = model(x)["z"]
    torch.manual_seed(5)
    assert torch.equal(model(x)["z"], first)


def test_mean_representation_is_deterministic_and_batching_does_not_matter():
    model = model_of()
    x = images(13)
    whole = representation_function(model, batch_size=256)(x)
    assert whole.shape == (13, 5) and whole.dtype == np.float32
    np.testing.assert_array_equal(representation_function(model)(x), whole)
    np.testing.assert_allclose(representation_function(model, batch_size=4)(x), whole, atol=1e-5)
    one_by_one = np.concatenate([representation_function(model)(x[i : i + 1]) for i in range(13)])
    np.testing.assert_allclose(one_by_one, whole, atol=1e-5)
    with torch.no_grad():
        mu, _ = model.encode(torch.from_numpy(x))
    np.testing.assert_allclose(whole, mu.numpy(), atol=1e-5)


def test_sampled_representation_is_seeded_and_noisy():
    model = model_of()
    x = images(8)
    mean = representation_function(model, "mean")(x)
    sampled = representation_function(model, "sampled", seed=1)(x)
    np.testing.assert_array_equal(representation_function(model, "sampled", seed=1)(x), sampled)
    assert not np.allclose(sampled, mean)
    assert not np.allclose(representation_function(model, "sampled", seed=2)(x), sampled)


def test_representation_of_nothing_and_bad_inputs():
    model = model_of()
    assert representation_function(model)(np.zeros((0, 1, 64, 64))).shape == (0, 5)
    with pytest.raises(DataError, match="shape"):
        representation_function(model)(np.zeros((2, 64, 64, 1)))
    with pytest.raises(ConfigError, match="representation"):
        representation_function(model, "median")


@pytest.mark.parametrize(
    ("fields", "channels", "match"),
    [
        ({"arch": "resnet"}, 1, "model.arch"),
        ({"z_dim": 0}, 1, "model.z_dim"),
        ({"likelihood": "poisson"}, 1, "model.likelihood"),
        ({}, 0, "num_channels"),
    ],
)
def test_build_model_rejects_bad_values(fields, channels, match):
    with pytest.raises(ConfigError, match=match):
        build_model(ModelConfig(**fields), channels)
