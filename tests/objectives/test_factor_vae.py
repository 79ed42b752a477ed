"""FactorVAE (Kim & Mnih, 2018): gradient isolation, the permutation, the TC estimate, resume."""

from __future__ import annotations

import pytest
import torch

from nsvae.cli import main
from nsvae.config import Config, ModelConfig
from nsvae.errors import ConfigError
from nsvae.models import build_model
from nsvae.objectives import build_objective, objective_config
from nsvae.objectives.factor_vae import permute_dims
from nsvae.rundir.checkpoint import load_latest
from nsvae.training import train
from nsvae.training.step import optimizer_steps


def factor_vae(z_dim=4, **fields):
    config = objective_config("factor_vae", **{"disc_width": 32, "disc_layers": 2, **fields})
    return build_objective(config, z_dim=z_dim)


def step_terms(squares, permute="same"):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="dlib", z_dim=4))
    objective = factor_vae(gamma=30.0, permute=permute)
    batch = torch.from_numpy(squares.observations_array()[0][:16]).float()
    batches = [batch] * objective.batches_per_step
    terms, logs = objective.terms(model, batches, 0)
    return model, objective, terms, logs


def grads(module):
    return [p.grad for p in module.parameters()]


def test_the_vae_loss_leaves_no_gradient_on_the_discriminator(squares):
    model, objective, terms, _ = step_terms(squares)
    assert [term.optimizer for term in terms] == ["model", "discriminator"]
    terms[0].loss.backward(retain_graph=True)
    assert all(g is None for g in grads(objective.discriminator))
    assert all(g is not None and g.abs().sum() > 0 for g in grads(model.encoder))


def test_the_discriminator_loss_leaves_no_gradient_on_the_encoder(squares):
    model, objective, terms, _ = step_terms(squares)
    terms[1].loss.backward()
    assert all(g is None for g in grads(model))
    assert all(g is not None for g in grads(objective.discriminator))


def test_the_gamma_term_moves_the_encoder_through_the_discriminator(squares):
    """gamma * TC has a gradient on the encoder (through z): the only link between the two."""
    model, objective, _, _ = step_terms(squares)
    outputs = model(torch.from_numpy(squares.observations_array()[0][:16]).float())
    objective.total_correlation(outputs["z"]).backward()
    assert all(g is None for g in grads(objective.discriminator))
    assert any(g.abs().sum() > 0 for g in grads(model.encoder))


@pytest.mark.parametrize("permute", ["same", "independent"])
def test_one_step_of_both_optimisers_raises_no_in_place_error(squares, permute):
    model, objective, terms, logs = step_terms(squares, permute)
    before = [p.detach().clone() for p in objective.discriminator.parameters()]
    optimizers = objective.optimizers(model, lr=1e-4, betas=(0.9, 0.999))
    optimizer_steps(optimizers, terms)
    after = list(objective.discriminator.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert {"tc", "disc_loss", "disc_accuracy"} <= logs.keys()
    assert 0.0 <= logs["disc_accuracy"].item() <= 1.0


def test_each_latent_is_permuted_independently_across_the_batch():
    torch.manual_seed(0)
    size, d = 512, 4
    z = torch.arange(size * d, dtype=torch.float32).reshape(size, d)
    permuted = permute_dims(z)
    rows_of = (permuted - torch.arange(d)) / d  # the original row of every entry
    for j in range(d):  # each column holds exactly its own values, reordered
        assert torch.equal(permuted[:, j].sort().values, z[:, j])
        assert not torch.equal(permuted[:, j], z[:, j])
    # independent permutations: rows almost never keep their latents together
    assert (rows_of[:, 0] == rows_of[:, 1]).float().mean() < 0.02
    assert (rows_of == rows_of[:, :1]).all(1).sum() <= 2


def test_the_discriminator_estimate_sees_total_correlation():
    """Trained on tied codes (z_1 = z_0) the TC estimate is large; on independent codes, ~0."""

    def trained_estimate(tied):
        torch.manual_seed(0)
        objective = factor_vae(z_dim=2, disc_width=64, disc_layers=2, disc_lr=3e-3)
        optimizer = torch.optim.Adam(objective.discriminator.parameters(), lr=3e-3)
        for _ in range(300):
            z = torch.randn(256, 2)
            if tied:
                z[:, 1] = z[:, 0]
            loss, _ = objective.discriminator_loss(z, permute_dims(z))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        z = torch.randn(4096, 2)
        if tied:
            z[:, 1] = z[:, 0]
        with torch.no_grad():
            _, accuracy = objective.discriminator_loss(z, permute_dims(z))
            return objective.total_correlation(z).item(), accuracy.item()

    tied_tc, tied_accuracy = trained_estimate(tied=True)
    free_tc, free_accuracy = trained_estimate(tied=False)
    assert tied_tc > 1.5 and tied_accuracy > 0.9
    assert abs(free_tc) < 0.2 and abs(free_accuracy - 0.5) < 0.05


def factor_config(**train_settings) -> Config:
    settings = {
        "steps": 6,
        "batch_size": 8,
        "log_every": 2,
        "checkpoint_every": 2,
        "threads": 1,
        "device": "cpu",
        "figures": False,
        **train_settings,
    }
    return Config().updated(
        {
            "model": {"z_dim": 4},
            "objective": {
                "name": "factor_vae",
                "gamma": 30.0,
                "permute": "independent",
                "disc_width": 32,
                "disc_layers": 2,
            },
            "train": settings,
        }
    )


def test_a_factor_vae_run_resumes_bit_exactly(tmp_path, squares):
    whole = train(factor_config(), tmp_path / "whole", data=squares)
    train(factor_config(steps=4), tmp_path / "split", data=squares)
    resumed = train(factor_config(), tmp_path / "split", data=squares, resume=True)
    a = load_latest(whole.path)[0]
    b = load_latest(resumed.path)[0]
    assert {"objective.discriminator.0.weight", "optimizer.discriminator.state.0.exp_avg"} & set(a)
    assert a.keys() == b.keys()
    for key in a:
        if not key.startswith("meter."):
            assert torch.equal(a[key], b[key]), key
    rows = [
        {k: v for k, v in row.items() if k not in ("time", "steps_per_s")}
        for row in whole.metrics()
    ]
    assert rows == [
        {k: v for k, v in row.items() if k not in ("time", "steps_per_s")}
        for row in resumed.metrics()
    ]
    assert all("tc" in row and "disc_accuracy" in row for row in rows)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"gamma": -1.0}, "objective.gamma must be >= 0"),
        ({"permute": "shuffled"}, "unknown objective.permute 'shuffled'"),
        ({"disc_betas": (0.5, 1.0)}, "objective.disc_betas must be in"),
    ],
)
def test_bad_factor_vae_settings_are_config_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        Config().updated({"objective": {"name": "factor_vae", **fields}}).validate()


def test_cli_rejects_a_negative_gamma_in_one_line(capsys):
    code = main(["train", "--model", "factor_vae", "--gamma", "-3", "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "objective.gamma must be >= 0" in err
