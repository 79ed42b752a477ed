"""Objectives: KL and reconstruction conventions, the Non-Syn term and its gradient."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
import torch

from nsvae.config import ModelConfig
from nsvae.errors import ConfigError
from nsvae.models import build_model, reconstruction_loss
from nsvae.objectives import OBJECTIVES, build_objective, kl_per_latent, objective_config
from nsvae.objectives.selection import POLICIES

B, D = 4, 5


def objective(name="nonsyn", likelihood="bernoulli", z_dim=D, **fields):
    """An objective of a run with ``z_dim`` latents and 64 training observations."""
    return build_objective(
        objective_config(name, **fields), likelihood, z_dim=z_dim, dataset_size=64
    )


def outputs_of(mu, logvar, x_logits=None):
    if x_logits is None:
        x_logits = torch.zeros(len(mu), 1, 64, 64)
    return {"mu": mu, "logvar": logvar, "z": mu, "x_logits": x_logits}


def one_big_latent(scale=1.0):
    """mu, logvar (leaves) whose KL is large on latent 0 only, so A_best = {0} for omega = 0.9."""
    mu = torch.full((B, D), 0.05)
    mu[:, 0] = 3.0 * scale * torch.linspace(1.0, 1.5, B)
    mu[:, 2] = 0.2
    return mu.requires_grad_(), torch.zeros(B, D).requires_grad_()


def test_kl_per_latent_on_hand_computed_values():
    mu = torch.tensor([[1.0, 0.0, 0.0, 2.0]])
    logvar = torch.tensor([[0.0, 0.0, math.log(2.0), math.log(0.5)]])
    expected = [0.5, 0.0, 0.5 * (1 - math.log(2.0)), -0.5 * (1 + math.log(0.5) - 4.0 - 0.5)]
    torch.testing.assert_close(kl_per_latent(mu, logvar), torch.tensor([expected]))


def test_bernoulli_reconstruction_is_summed_over_pixels_and_averaged_over_the_batch():
    x = torch.ones(2, 1, 64, 64)
    x[1] = 0.0
    logits = torch.full((2, 1, 64, 64), 2.0)
    # -log sigmoid(2) for the ones, -log(1 - sigmoid(2)) = 2 - log sigmoid(2) for the zeros.
    per_pixel = math.log1p(math.exp(-2.0))
    expected = 4096 * (per_pixel + (2.0 + per_pixel)) / 2
    torch.testing.assert_close(reconstruction_loss(logits, x, "bernoulli"), torch.tensor(expected))
    zero = reconstruction_loss(torch.zeros(3, 1, 64, 64), torch.rand(3, 1, 64, 64), "bernoulli")
    torch.testing.assert_close(zero, torch.tensor(4096 * math.log(2.0)))


def test_gaussian_reconstruction_is_squared_error_of_the_sigmoid():
    x = torch.ones(2, 3, 64, 64)
    # sigmoid(0) = 0.5: (0.5 - 1)^2 = 0.25 on each of 3 * 4096 values.
    loss = reconstruction_loss(torch.zeros(2, 3, 64, 64), x, "gaussian")
    torch.testing.assert_close(loss, torch.tensor(0.25 * 3 * 4096))


def test_vae_loss_is_recon_plus_kl_and_logs_are_detached():
    mu, logvar = torch.ones(B, D, requires_grad=True), torch.zeros(B, D, requires_grad=True)
    x = torch.ones(B, 1, 64, 64)
    loss, logs = objective("vae").loss(outputs_of(mu, logvar), x, step=0)
    recon = 4096 * math.log(2.0)
    torch.testing.assert_close(loss, torch.tensor(recon + 0.5 * D))
    torch.testing.assert_close(logs["recon"], torch.tensor(recon))
    torch.testing.assert_close(logs["kl"], torch.tensor(0.5 * D))
    torch.testing.assert_close(logs["kl_per_latent"], torch.full((D,), 0.5))
    assert loss.requires_grad and not any(v.requires_grad for v in logs.values())


@pytest.mark.parametrize("beta", [0.0, 1.0, 4.0])
def test_beta_vae_weighs_the_kl(beta):
    mu, logvar = one_big_latent()
    outputs, x = outputs_of(mu, logvar), torch.ones(B, 1, 64, 64)
    loss, logs = objective("beta_vae", beta=beta).loss(outputs, x, 0)
    torch.testing.assert_close(loss, logs["recon"] + beta * logs["kl"])


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_nonsyn_with_alpha_zero_equals_vae(mode):
    mu, logvar = one_big_latent()
    outputs, x = outputs_of(mu, logvar), torch.rand(B, 1, 64, 64)
    loss, logs = objective(alpha=0.0, mode=mode).loss(outputs, x, 0)
    torch.testing.assert_close(loss, objective("vae").loss(outputs, x, 0)[0], rtol=0, atol=0)
    assert logs["synergy"] > 0


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_nonsyn_term_is_the_kl_outside_a_best(mode, policy):
    mu, logvar = one_big_latent()
    nonsyn = objective(alpha=2.0, mode=mode, policy=policy, epsilon=0.0)
    loss, logs = nonsyn.loss(outputs_of(mu, logvar), torch.zeros(B, 1, 64, 64), 0)
    k = kl_per_latent(mu, logvar).detach()
    torch.testing.assert_close(logs["a_best_freq"], torch.tensor([1.0, 0, 0, 0, 0]))
    torch.testing.assert_close(logs["a_best_size"], torch.tensor(1.0))
    torch.testing.assert_close(logs["synergy"], k[:, 1:].sum(1).mean())
    torch.testing.assert_close(loss.detach(), logs["recon"] + logs["kl"] + 2.0 * logs["synergy"])


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_synergy_gradient_reaches_only_the_kl_of_a_worst(mode):
    alpha = 3.0
    mu, logvar = one_big_latent()
    x = torch.zeros(B, 1, 64, 64)
    nonsyn_loss, logs = objective(alpha=alpha, mode=mode).loss(outputs_of(mu, logvar), x, 0)
    nonsyn = torch.autograd.grad(nonsyn_loss, (mu, logvar))
    vae = torch.autograd.grad(objective("vae").loss(outputs_of(mu, logvar), x, 0)[0], (mu, logvar))
    worst = logs["a_best_freq"] == 0
    assert worst.any() and not worst.all()
    # d(alpha * mean_b sum_{j in worst} k[b, j]) / d(mu, logvar) on A_worst, exactly zero on A_best.
    synergy = alpha * kl_per_latent(mu, logvar)[:, worst].sum() / B
    expected = torch.autograd.grad(synergy, (mu, logvar))
    for got, base, want in zip(nonsyn, vae, expected, strict=True):
        difference = got - base
        assert torch.all(difference[:, ~worst] == 0)
        torch.testing.assert_close(difference, want)


def test_sample_and_batch_modes_agree_when_every_sample_chooses_the_same_set():
    mu, logvar = one_big_latent()
    outputs, x = outputs_of(mu, logvar), torch.rand(B, 1, 64, 64)
    batch_loss, batch_logs = objective(mode="batch").loss(outputs, x, 0)
    sample_loss, sample_logs = objective(mode="sample").loss(outputs, x, 0)
    torch.testing.assert_close(sample_loss, batch_loss)
    for key in ("synergy", "a_best_freq", "a_best_size"):
        torch.testing.assert_close(sample_logs[key], batch_logs[key])


def test_sample_mode_counts_the_share_of_the_batch_in_a_best():
    mu, logvar = one_big_latent()
    mu = mu.detach().clone()
    mu[:2, 0], mu[:2, 3] = 0.05, 3.0  # the first two samples choose latent 3 instead of 0
    _, logs = objective(mode="sample").loss(outputs_of(mu, logvar), torch.zeros(B, 1, 64, 64), 0)
    torch.testing.assert_close(logs["a_best_freq"], torch.tensor([0.5, 0, 0, 0.5, 0]))
    torch.testing.assert_close(logs["a_best_size"], torch.tensor(1.0))
    k = kl_per_latent(mu, logvar)
    expected = (k[:2, [0, 1, 2, 4]].sum() + k[2:, 1:].sum()) / B
    torch.testing.assert_close(logs["synergy"], expected)


def test_independent_selection_batch_chooses_on_selection_kl():
    nonsyn = objective(selection_batch="independent")
    assert nonsyn.batches_per_step == 2
    assert objective().batches_per_step == 1
    mu, logvar = one_big_latent()
    other = torch.full((7, D), 0.01)
    other[:, 4] = 5.0
    outputs = outputs_of(mu, logvar) | {"selection_kl": other}
    _, logs = nonsyn.loss(outputs, torch.zeros(B, 1, 64, 64), 0)
    torch.testing.assert_close(logs["a_best_freq"], torch.tensor([0.0, 0, 0, 0, 1]))
    torch.testing.assert_close(logs["synergy"], kl_per_latent(mu, logvar)[:, :4].sum(1).mean())


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_one_optimiser_step_lowers_the_loss_on_a_fixed_batch(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="dlib", z_dim=6))
    x = (torch.rand(16, 1, 64, 64) > 0.7).float()
    weights = {"beta": 2.0} if "beta" in fields(OBJECTIVES[name].Config) else {}
    loss_of = objective(name, model.likelihood, z_dim=6, **weights).loss
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

    def loss_at_fixed_noise():
        torch.manual_seed(1)
        return loss_of(model(x), x, 0)[0]

    before = loss_at_fixed_noise()
    optimiser.zero_grad()
    before.backward()
    optimiser.step()
    with torch.no_grad():
        after = loss_at_fixed_noise()
    assert after < before


def test_unknown_objective_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown objective.name 'gan'"):
        objective("gan")


# ----------------------------------------------------------------------- baselines


@pytest.mark.parametrize(("step", "capacity"), [(0, 0.0), (50, 2.0), (100, 4.0), (500, 4.0)])
def test_annealed_vae_pulls_the_kl_towards_a_growing_capacity(step, capacity):
    mu, logvar = torch.ones(B, D), torch.zeros(B, D)  # KL = 0.5 * D = 2.5
    annealed = objective("annealed_vae", capacity_gamma=10.0, c_max=4.0, capacity_steps=100)
    loss, logs = annealed.loss(outputs_of(mu, logvar), torch.ones(B, 1, 64, 64), step)
    torch.testing.assert_close(logs["capacity"], torch.tensor(capacity))
    torch.testing.assert_close(loss, logs["recon"] + 10.0 * abs(2.5 - capacity))


@pytest.mark.parametrize("beta", [1.0, 6.0])
def test_beta_tcvae_adds_beta_minus_one_tc(beta):
    mu, logvar = one_big_latent()
    outputs, x = outputs_of(mu, logvar), torch.ones(B, 1, 64, 64)
    loss, logs = objective("beta_tcvae", beta=beta).loss(outputs, x, 0)
    torch.testing.assert_close(loss, logs["recon"] + logs["kl"] + (beta - 1) * logs["tc"])
    if beta == 1.0:
        torch.testing.assert_close(loss, objective("vae").loss(outputs, x, 0)[0])


@pytest.mark.parametrize(
    ("dip_type", "factor", "logvar", "expected"),
    [
        # Cov[mu] = diag(1, 4): no off-diagonal, (1 - 1)^2 + (4 - 1)^2 = 9 on the diagonal.
        ("i", 10.0, 0.0, 2.0 * 10.0 * 9.0),
        # DIP-II adds E[exp(logvar)] = 1 to the diagonal: (2 - 1)^2 + (5 - 1)^2 = 17.
        ("ii", 1.0, 0.0, 2.0 * 1.0 * 17.0),
    ],
)
def test_dip_vae_penalty_on_a_hand_computed_covariance(dip_type, factor, logvar, expected):
    mu = torch.tensor([[1.0, 2.0], [1.0, -2.0], [-1.0, 2.0], [-1.0, -2.0]])
    logvar = torch.full_like(mu, logvar)
    dip = objective("dip_vae", dip_type=dip_type, lambda_od=2.0, lambda_d_factor=factor)
    x = torch.ones(4, 1, 64, 64)
    loss, logs = dip.loss(outputs_of(mu, logvar), x, 0)
    torch.testing.assert_close(logs["dip"], torch.tensor(expected))
    torch.testing.assert_close(loss, logs["recon"] + logs["kl"] + expected)


def test_dip_vae_penalises_off_diagonal_covariance():
    from nsvae.objectives.dip_vae import dip_covariance

    mu = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = torch.from_numpy(np.cov(mu.numpy(), rowvar=False, bias=True))
    torch.testing.assert_close(dip_covariance(mu, torch.zeros_like(mu), "i"), expected)
    mu[:, 1] = mu[:, 0]  # a duplicated latent: covariance off the diagonal
    covariance = np.cov(mu.numpy(), rowvar=False, bias=True)
    off_diagonal = sum(covariance[i, j] ** 2 for i in range(3) for j in range(3) if i != j)
    dip = objective("dip_vae", lambda_od=1.0, lambda_d_factor=0.0)
    _, logs = dip.loss(outputs_of(mu.float(), torch.zeros(50, 3)), torch.ones(50, 1, 64, 64), 0)
    assert logs["dip"].item() == pytest.approx(off_diagonal, rel=1e-5)
    assert off_diagonal > 2 * covariance[0, 0] ** 2
