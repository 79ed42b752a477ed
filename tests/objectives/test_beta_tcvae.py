"""beta-TCVAE's minibatch estimators of q(z) (Chen et al., 2018): loop twins, bias, decomposition.

On a tiny dataset of N Gaussian posteriors the aggregate posterior q(z) = 1/N sum_n q(z|x_n) is
computed exactly, and every ordered minibatch of B distinct points is enumerated, so the
estimators' expectations over random minibatches are exact numbers, not Monte Carlo means.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from nsvae.errors import ConfigError
from nsvae.gaussian import log_density
from nsvae.objectives import build_objective, objective_config
from nsvae.objectives.beta_tcvae import estimator_weights, kl_decomposition, total_correlation

N, B, D = 8, 4, 2


def posteriors(seed=0):
    """N posteriors (mu, logvar) [N, D] and one sample z_n ~ q(z|x_n) per point, float64."""
    generator = torch.Generator().manual_seed(seed)
    mu = torch.randn(N, D, generator=generator, dtype=torch.float64)
    logvar = torch.randn(N, D, generator=generator, dtype=torch.float64) * 0.5 - 1.0
    z = mu + (0.5 * logvar).exp() * torch.randn(N, D, generator=generator, dtype=torch.float64)
    return z, mu, logvar


def loop_weight(b, m, size, dataset_size, estimator):
    """The weight of point m in the estimate of q(z_b), one entry at a time (module docstring)."""
    if estimator == "mws":
        return 1 / (dataset_size * size)
    others = size - 1
    if m == b:
        return 1 / dataset_size
    if m == (b + 1) % size:
        return (dataset_size - others) / (dataset_size * others)
    return 1 / others


def loop_total_correlation(z, mu, logvar, dataset_size, estimator):
    """Twin of the TC estimate, one sample, point and latent at a time."""
    size, d = z.shape

    def density(b, i, j):  # q(z[b, j] | x_i)
        variance = math.exp(logvar[i, j])
        return math.exp(-0.5 * (z[b, j] - mu[i, j]) ** 2 / variance) / math.sqrt(
            2 * math.pi * variance
        )

    total = 0.0
    for b in range(size):
        weights = [loop_weight(b, i, size, dataset_size, estimator) for i in range(size)]
        joint = sum(
            w * math.prod(density(b, i, j) for j in range(d)) for i, w in enumerate(weights)
        )
        marginals = [sum(w * density(b, i, j) for i, w in enumerate(weights)) for j in range(d)]
        total += math.log(joint) - sum(math.log(m) for m in marginals)
    return total / size


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_total_correlation_equals_its_loop_twin(estimator):
    z, mu, logvar = posteriors()
    expected = loop_total_correlation(z.numpy(), mu.numpy(), logvar.numpy(), 100, estimator)
    got = total_correlation(z, mu, logvar, dataset_size=100, estimator=estimator)
    assert got.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_dependent_codes_have_a_larger_total_correlation(estimator):
    generator = torch.Generator().manual_seed(1)
    independent = torch.randn(256, 2, generator=generator)
    dependent = independent[:, :1].repeat(1, 2)
    small = torch.full((256, 2), math.log(0.01))

    def tc(codes):
        return total_correlation(codes, codes, small, 10_000, estimator).item()

    assert tc(dependent) > tc(independent) + 1.0


def expected_estimates(estimator):
    """Exact q(z_a) and the mean estimate of it over every ordered minibatch holding point a."""
    z, mu, logvar = posteriors()
    densities = log_density(z[:, None, :], mu[None], logvar[None]).sum(2).exp()  # [a, n]
    exact = densities.mean(1)
    weights = estimator_weights(B, N, estimator, dtype=torch.float64).exp()
    sums, counts = torch.zeros(N, dtype=torch.float64), torch.zeros(N)
    for batch in itertools.permutations(range(N), B):
        rows = torch.tensor(batch)
        estimates = (weights * densities[rows][:, rows]).sum(1)  # one per position b
        sums.index_add_(0, rows, estimates)
        counts.index_add_(0, rows, torch.ones(B))
    return exact, sums / counts, densities


def test_mss_is_unbiased_for_q_of_z():
    exact, mean_estimate, _ = expected_estimates("mss")
    torch.testing.assert_close(mean_estimate, exact, rtol=1e-12, atol=0)


def test_mss_monte_carlo_mean_matches_the_exact_aggregate_posterior():
    """The same claim as a user would check it: 20,000 random minibatches, 4 standard errors."""
    z, mu, logvar = posteriors()
    densities = log_density(z[:, None, :], mu[None], logvar[None]).sum(2).exp()
    weights = estimator_weights(B, N, "mss", dtype=torch.float64).exp()
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(20_000):
        rows = torch.from_numpy(rng.permutation(N)[:B])
        if rows[0] == 0:  # point 0 at position 0, its neighbour and the rest at random
            draws.append((weights[0] * densities[0, rows]).sum().item())
    draws = np.array(draws)
    error = draws.std(ddof=1) / math.sqrt(len(draws))
    assert abs(draws.mean() - densities[0].mean().item()) < 4 * error


def test_mws_underestimates_q_of_z_by_at_least_the_batch_size():
    """E q_mws(z_a) = (q(z_a|x_a) + (B - 1) mean_{n != a} q(z_a|x_n)) / (N B) <= q(z_a) / B."""
    exact, mean_estimate, densities = expected_estimates("mws")
    own = densities.diagonal()
    others = (densities.sum(1) - own) / (N - 1)
    torch.testing.assert_close(
        mean_estimate, (own + (B - 1) * others) / (N * B), rtol=1e-12, atol=0
    )
    assert torch.all(mean_estimate <= exact / B)
    assert torch.all(mean_estimate < exact)  # the sign: q(z) and log q(z) come out too low


def test_the_decomposition_adds_up_to_the_sampled_kl():
    """index-code MI + TC + dimension-wise KL = E[log q(z|x) - log p(z)] on the same samples."""
    z, mu, logvar = posteriors()
    for estimator in ("mws", "mss"):
        terms = kl_decomposition(z, mu, logvar, dataset_size=1000, estimator=estimator)
        own = log_density(z, mu, logvar).sum(1)
        prior = log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
        total = terms["mi"] + terms["tc"] + terms["dwkl"]
        torch.testing.assert_close(total, (own - prior).mean(), rtol=1e-12, atol=1e-12)


def test_mss_estimates_log_q_of_z_closer_than_mws_on_narrow_posteriors():
    """With well-separated posteriors q(z_b) ~ q(z_b|x_b) / N: MSS is close, MWS about log B low."""
    mu = torch.arange(B * D, dtype=torch.float64).reshape(B, D) * 10
    logvar = torch.full((B, D), math.log(0.01), dtype=torch.float64)
    z = mu.clone()
    own = log_density(z, mu, logvar).sum(1).mean().item()
    for estimator, gap in (("mss", 0.0), ("mws", math.log(B))):
        log_qz = kl_decomposition(z, mu, logvar, dataset_size=N, estimator=estimator)["log_qz"]
        assert log_qz.item() == pytest.approx(own - math.log(N) - gap, abs=1e-9)


def test_the_objective_logs_the_decomposition_and_checks_its_settings():
    config = objective_config("beta_tcvae", beta=6.0, estimator="mss")
    objective = build_objective(config, dataset_size=737_280)
    z, mu, logvar = (t.float() for t in posteriors())
    outputs = {"z": z, "mu": mu, "logvar": logvar, "x_logits": torch.zeros(N, 1, 64, 64)}
    loss, logs = objective.loss(outputs, torch.ones(N, 1, 64, 64), 0)
    assert {"tc", "mi", "dwkl", "log_qz"} <= logs.keys()
    torch.testing.assert_close(loss, logs["recon"] + logs["kl"] + 5.0 * logs["tc"])
    with pytest.raises(ConfigError, match="unknown objective.estimator 'iwae'"):
        build_objective(objective_config("beta_tcvae", estimator="iwae"), dataset_size=10)
    with pytest.raises(ConfigError, match="needs the dataset size"):
        build_objective(objective_config("beta_tcvae"))
    with pytest.raises(ConfigError, match="N = 2 < B = 8"):
        total_correlation(z, mu, logvar, dataset_size=2, estimator="mss")
