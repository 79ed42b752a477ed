"""Synergy measures against analytic answers and brute-force integration."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import logsumexp

from nsvae.data.ground_truth import ArrayGroundTruthData
from nsvae.errors import MetricError
from nsvae.metrics.synergy import factor_synergy, latent_synergy
from nsvae.models import encode_observations
from nsvae.objectives.selection import select_best


def encoder_of(model):
    """The encoder of a model-like object (``encode(x) -> (mu, logvar)``), as metrics take it."""
    return functools.partial(encode_observations, model)


def grid_data(*sizes: int) -> ArrayGroundTruthData:
    """Factor grid whose observations are the factor vectors themselves (float32)."""
    axes = np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")
    return ArrayGroundTruthData(
        np.stack(axes, -1).reshape(-1, len(sizes)).astype(np.float32), sizes
    )


class GaussianEncoder:
    """q(z|x) = N(x W + b, diag exp(tanh(x V) * spread + shift)): varied means and widths."""

    def __init__(self, num_inputs: int, num_latents: int, seed: int, spread=1.5, shift=-2.0):
        rs = np.random.RandomState(seed)
        self.w = torch.as_tensor(rs.randn(num_inputs, num_latents))
        self.v = torch.as_tensor(rs.randn(num_inputs, num_latents))
        self.b = torch.as_tensor(rs.randn(num_latents))
        self.spread, self.shift = spread, shift

    def encode(self, x):
        x = x.double()
        return x @ self.w + self.b, torch.tanh(x @ self.v) * self.spread + self.shift


class FixedEncoder:
    """Posterior mean x itself and a fixed standard deviation."""

    def __init__(self, std: float):
        self.logvar = 2 * math.log(std)

    def encode(self, x):
        return x, torch.full_like(x, self.logvar)


# ---------------------------------------------------------------------------------------------
# latent_synergy


def brute_force_latent(mu, logvar, population, omega=0.9, num_mc=20_000, seed=1):
    """Synergy terms per query by adaptive quadrature (1-D KLs) and plain Monte Carlo (joint).

    The aggregate posterior of query q weighs its own component 1 / population and each of the
    other n - 1 components (1 - 1 / population) / (n - 1): the exact mixture when n = population.
    """
    mu, std = np.asarray(mu, dtype=np.float64), np.exp(0.5 * np.asarray(logvar, dtype=np.float64))
    n, d = mu.shape
    log_w = np.full((n, n), math.log1p(-1 / population) - math.log(n - 1))
    np.fill_diagonal(log_w, -math.log(population))

    def log_normal(z, m, s):
        return -0.5 * ((z - m) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)

    kl = np.zeros((n, d))
    for q in range(n):
        for i in range(d):

            def integrand(z, q=q, i=i):
                own = log_normal(z, mu[q, i], std[q, i])
                return math.exp(own) * (
                    own - logsumexp(log_normal(z, mu[:, i], std[:, i]) + log_w[q])
                )

            lo, hi = mu[q, i] - 12 * std[q, i], mu[q, i] + 12 * std[q, i]
            kl[q, i] = integrate.quad(integrand, lo, hi, limit=200, epsabs=1e-10)[0]
    best = select_best(torch.as_tensor(kl), omega).numpy()
    rs = np.random.RandomState(seed)
    joint, subset = np.zeros(n), np.zeros(n)
    for q in range(n):
        z = mu[q] + std[q] * rs.randn(num_mc, d)
        per = log_normal(z[:, None, :], mu[None], std[None])  # [s, m, d]
        own, a = per[:, q, :], best[q]
        joint[q] = np.mean(own.sum(1) - logsumexp(per.sum(2) + log_w[q], axis=1))
        subset[q] = np.mean(own[:, a].sum(1) - logsumexp(per[:, :, a].sum(2) + log_w[q], axis=1))
    return kl, joint, subset


@pytest.fixture(scope="module")
def small_encoder_case():
    data = grid_data(4, 3, 3)  # 36 observations: the aggregate posterior is an exact mixture
    encoder = GaussianEncoder(3, 3, seed=0)
    mu, logvar = encoder.encode(torch.as_tensor(data.observations))
    return data, encoder, brute_force_latent(mu, logvar, len(data))


def test_latent_synergy_matches_brute_force(small_encoder_case):
    data, encoder, (kl, joint, subset) = small_encoder_case
    out = latent_synergy(data, encoder_of(encoder), 0, num_z=1024)
    # 1-D KLs: Gauss-Hermite (16 nodes) vs adaptive quadrature, both deterministic: 1e-3 nats.
    np.testing.assert_allclose(out["mutual_info_per_latent"], kl.mean(0), atol=1e-3)
    assert out["i_max"] == pytest.approx(kl.max(1).mean(), abs=1e-3)
    # Joint KLs: quasi-MC (36 x 1024 points) vs plain MC (36 x 20,000 samples), whose spreads
    # over seeds are about 5e-4 and 1e-3 nats: 0.01 nats is over 7 standard deviations.
    assert out["mutual_info_xz"] == pytest.approx(joint.mean(), abs=0.01)
    assert out["synergy_latent"] == pytest.approx(joint.mean() - kl.max(1).mean(), abs=0.01)
    assert out["synergy_latent_subsets"] == pytest.approx(joint.mean() - subset.mean(), abs=0.01)
    assert out["synergy_latent_fraction"] == pytest.approx(
        out["synergy_latent"] / out["mutual_info_xz"]
    )
    assert out["mutual_info_xz_bound"] == pytest.approx(math.log(36))
    assert 0 < out["synergy_latent_subsets"] < out["synergy_latent"] < out["mutual_info_xz"]


def test_subsampled_mixture_matches_brute_force():
    """12 sampled observations of 36: the query's own component weighs 1/36, the others 35/396."""
    data, encoder = grid_data(4, 3, 3), GaussianEncoder(3, 3, seed=0)
    factors = data.sample_factors(12, np.random.RandomState(7))  # what latent_synergy draws
    x = torch.as_tensor(data.sample_observations_from_factors(factors, None))
    kl, joint, subset = brute_force_latent(*encoder.encode(x), len(data))
    out = latent_synergy(
        data, encoder_of(encoder), np.random.RandomState(7), num_samples=12, num_z=1024
    )
    np.testing.assert_allclose(out["mutual_info_per_latent"], kl.mean(0), atol=1e-3)
    assert out["i_max"] == pytest.approx(kl.max(1).mean(), abs=1e-3)
    assert out["mutual_info_xz"] == pytest.approx(joint.mean(), abs=0.01)
    assert out["synergy_latent_subsets"] == pytest.approx(joint.mean() - subset.mean(), abs=0.01)


def test_factorised_code_has_copy_synergy():
    """Two sharp latents copying independent factors of 4 and 8 values: S = log 4 (I_max's copy
    gate), and the subset the policy picks holds both, so S_A = 0."""
    out = latent_synergy(grid_data(4, 8), encoder_of(FixedEncoder(0.01)), 0)
    assert out["mutual_info_xz"] == pytest.approx(math.log(32), abs=1e-6)
    np.testing.assert_allclose(out["mutual_info_per_latent"], [math.log(4), math.log(8)], atol=1e-6)
    assert out["i_max"] == pytest.approx(math.log(8), abs=1e-6)
    assert out["synergy_latent"] == pytest.approx(math.log(4), abs=1e-6)
    assert out["synergy_latent_fraction"] == pytest.approx(0.4, abs=1e-6)
    assert out["synergy_latent_subsets"] == pytest.approx(0.0, abs=1e-6)
    assert out["a_best_size"] == 2.0


def test_subsampled_mixture_does_not_saturate_at_log_m():
    """With 8 of 32 observations as components, I(x; z) still reaches log 32, not log 8."""
    out = latent_synergy(grid_data(4, 8), encoder_of(FixedEncoder(0.01)), 0, num_samples=8)
    assert out["mutual_info_xz"] == pytest.approx(math.log(32), abs=1e-6)


def test_uninformative_encoder_has_no_information():
    out = latent_synergy(grid_data(4, 8), encoder_of(FixedEncoder(1e3)), 0)
    for key in ("mutual_info_xz", "i_max", "synergy_latent", "synergy_latent_subsets"):
        assert abs(out[key]) < 1e-5


def test_latent_synergy_is_deterministic():
    data, encoder = grid_data(10, 10), GaussianEncoder(2, 3, seed=2)
    runs = [
        latent_synergy(data, encoder_of(encoder), np.random.RandomState(5), num_samples=40)
        for _ in "ab"
    ]
    assert runs[0] == runs[1]


def test_latent_synergy_rejects_bad_counts():
    with pytest.raises(MetricError):
        latent_synergy(grid_data(4, 8), encoder_of(FixedEncoder(1.0)), 0, num_samples=1)
    with pytest.raises(MetricError):
        latent_synergy(grid_data(4, 8), encoder_of(FixedEncoder(1.0)), 0, num_queries=0)


# ---------------------------------------------------------------------------------------------
# factor_synergy


def xor(observations):
    """z_1 = u, z_2 = (u + v) mod 5: each latent alone says nothing about v."""
    u, v = observations[:, 0], observations[:, 1]
    return np.stack([u, (u + v) % 5], axis=1)


def test_identity_representation_has_no_factor_synergy():
    out = factor_synergy(grid_data(3, 5, 4), lambda x: x, 0, num_samples=5000)
    np.testing.assert_allclose(out["synergy_factor_per_factor"], 0.0, atol=0.01)
    np.testing.assert_allclose(out["i_max_factor"], out["entropy_factor"], rtol=1e-9)


def test_xor_representation_is_all_synergy():
    out = factor_synergy(grid_data(5, 5), xor, 0, num_samples=5000)
    h_v = out["entropy_factor"][1]
    assert h_v == pytest.approx(math.log(5), abs=0.01)
    assert out["i_max_factor"][1] < 0.01  # no single latent informs about v
    assert out["synergy_factor_per_factor"][1] == pytest.approx(1.0, abs=0.01)
    assert out["synergy_factor_per_factor"][0] == pytest.approx(0.0, abs=0.01)  # z_1 copies u
    assert out["synergy_factor_mean"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("representation", [lambda x: x, xor])
def test_duplicated_latent_changes_no_synergy(representation):
    data = grid_data(5, 5)
    plain = factor_synergy(data, representation, 3, num_samples=3000)
    doubled = factor_synergy(
        data,
        lambda x: np.concatenate([representation(x), representation(x)[:, :1]], 1),
        3,
        num_samples=3000,
    )
    np.testing.assert_allclose(
        doubled["synergy_factor_per_factor"], plain["synergy_factor_per_factor"], atol=1e-3
    )


def test_noise_latents_do_not_hide_a_clean_latent():
    """A latent that copies the factor, next to four noise latents: synergy stays about 0."""

    def representation(x):
        noise = np.random.RandomState(int(x.sum()) % 1000).randn(len(x), 4)
        return np.concatenate([x[:, :1], noise], axis=1)

    out = factor_synergy(grid_data(16, 2), representation, 0, num_samples=5000)
    assert out["synergy_factor_per_factor"][0] == pytest.approx(0.0, abs=0.02)


def test_factor_synergy_rejects_constant_factor():
    with pytest.raises(MetricError):
        factor_synergy(grid_data(1, 4), lambda x: x, 0, num_samples=100)
