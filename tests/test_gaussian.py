"""The shared Gaussian maths against scipy, and the estimators' fast forms against it."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from scipy.special import logsumexp

from nsvae.gaussian import (
    kl_per_latent,
    log_density,
    mixture_entropy,
    mixture_log_density,
)
from nsvae.metrics.synergy import _Mixture
from nsvae.objectives.beta_tcvae import total_correlation

RNG = np.random.default_rng(0)
MU, LOGVAR = RNG.normal(size=(7, 3)), RNG.normal(scale=0.7, size=(7, 3))
Z = RNG.normal(scale=2.0, size=(5, 3))


def t(array):
    return torch.from_numpy(array)


def test_log_density_is_scipy_norm_logpdf():
    expected = stats.norm.logpdf(Z[:, None], MU[None], np.exp(0.5 * LOGVAR)[None])
    np.testing.assert_allclose(
        log_density(t(Z)[:, None], t(MU)[None], t(LOGVAR)[None]).numpy(), expected, rtol=1e-12
    )


def test_kl_per_latent_is_the_integral_of_the_log_ratio():
    sd = np.exp(0.5 * LOGVAR[0, 0])
    grid = np.linspace(MU[0, 0] - 12 * sd, MU[0, 0] + 12 * sd, 200_001)
    q = stats.norm(MU[0, 0], sd)
    integrand = q.pdf(grid) * (q.logpdf(grid) - stats.norm.logpdf(grid))
    expected = np.trapezoid(integrand, grid)
    assert abs(kl_per_latent(t(MU), t(LOGVAR))[0, 0].item() - expected) < 1e-7


def test_mixture_densities_and_entropy():
    per_component = stats.norm.logpdf(Z[:, None], MU[None], np.exp(0.5 * LOGVAR)[None])  # [S,N,d]
    marginal = logsumexp(per_component, axis=1) - np.log(len(MU))
    np.testing.assert_allclose(
        mixture_log_density(t(Z), t(MU), t(LOGVAR)).numpy(), marginal, rtol=1e-12
    )
    np.testing.assert_allclose(
        mixture_entropy(t(Z), t(MU), t(LOGVAR)).numpy(), -marginal.mean(0), rtol=1e-12
    )


def test_synergy_mixture_matmul_form_matches_the_plain_density():
    """_Mixture scores points with one matmul over (z^2, z, 1) features; same numbers."""
    log_other = -np.log(len(MU))
    mixture = _Mixture(t(MU), t(LOGVAR), 0.0, log_other)
    rows = slice(0, len(MU))
    z = t(Z[None].repeat(len(MU), 0))  # [q, p, d]
    features = torch.stack([z**2, z, torch.ones_like(z)], dim=-1)
    exponents = torch.einsum("qpdf,fmd->dqpm", features, mixture.coef)
    got = mixture._log_mixture(rows, exponents).permute(1, 2, 0)[0]
    np.testing.assert_allclose(
        got.numpy(), mixture_log_density(t(Z), t(MU), t(LOGVAR)).numpy(), rtol=1e-10
    )


def test_total_correlation_of_independent_codes_is_the_density_gap():
    """The minibatch-weighted TC from log_density, written out with scipy (N = 100, B = 4)."""
    z, mu, logvar = t(Z[:4]), t(MU[:4]), t(LOGVAR[:4])
    log_q = stats.norm.logpdf(Z[:4, None], MU[None, :4], np.exp(0.5 * LOGVAR[:4])[None])
    log_w = -np.log(100 * 4)
    expected = np.mean(
        logsumexp(log_q.sum(2) + log_w, axis=1) - (logsumexp(log_q, axis=1) + log_w).sum(1)
    )
    assert abs(total_correlation(z, mu, logvar, dataset_size=100).item() - expected) < 1e-10
