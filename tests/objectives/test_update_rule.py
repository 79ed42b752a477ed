"""The seed's two-step Non-Syn update (``objective.update = "seed"``) against a hand-written Adam.

The seed author's trainer took, per batch, one Adam step on ``recon + KL`` and a second step of the
same optimiser on ``alpha * KL(A_worst)``, both gradients at the parameters before the first step.
Here Adam is written out by hand (Kingma & Ba, 2015, algorithm 1) so the check does not lean on
``torch.optim``.
"""

from __future__ import annotations

import copy

import pytest
import torch

from nsvae.cli import main
from nsvae.config import Config, ModelConfig
from nsvae.errors import ConfigError
from nsvae.models import build_model
from nsvae.objectives import build_objective, objective_config
from nsvae.training import train
from nsvae.training.step import optimizer_steps

LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8


def tiny_setup(update: str, squares):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="seed", z_dim=4))
    objective = build_objective(objective_config("nonsyn", alpha=5.0, update=update))
    batch = torch.from_numpy(squares.observations_array()[0][:8]).float()
    return model, objective, batch


def gradient_at(model, loss_of) -> list[torch.Tensor]:
    """The gradient of ``loss_of(model)`` for every parameter (zero where it does not reach)."""
    params = list(model.parameters())
    grads = torch.autograd.grad(loss_of(model), params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def hand_adam(params, gradient_steps):
    """Plain Adam, one update per gradient list, with bias correction; returns new tensors."""
    params = [p.detach().clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t, grads in enumerate(gradient_steps, start=1):
        for i, g in enumerate(grads):
            m[i] = BETAS[0] * m[i] + (1 - BETAS[0]) * g
            v[i] = BETAS[1] * v[i] + (1 - BETAS[1]) * g * g
            m_hat = m[i] / (1 - BETAS[0] ** t)
            v_hat = v[i] / (1 - BETAS[1] ** t)
            params[i] = params[i] - LR * m_hat / (v_hat.sqrt() + EPS)
    return params


def test_seed_update_is_two_adam_steps_with_gradients_at_the_pre_update_parameters(squares):
    model, objective, batch = tiny_setup("seed", squares)
    before = copy.deepcopy(model)

    def forward(m):  # the same reparameterisation noise in every forward pass
        torch.manual_seed(1)
        return m(batch)

    def elbo(m):
        return objective.loss_terms(forward(m), batch, 0)[0][0]

    def synergy(m):
        return objective.loss_terms(forward(m), batch, 0)[0][1]

    g_elbo, g_synergy = gradient_at(before, elbo), gradient_at(before, synergy)
    expected = hand_adam(before.parameters(), [g_elbo, g_synergy])

    optimizer = torch.optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)
    terms, _ = objective.loss_terms(forward(model), batch, 0)
    assert len(terms) == 2
    optimizer_steps(optimizer, terms)

    for got, want in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-7)
    # The decoder never sees the synergy term, yet the second step moves it by Adam's momentum.
    assert all(g.abs().sum() == 0 for g in gradient_at(before, synergy)[-2:])


def test_seed_terms_sum_to_the_joint_loss_and_the_steps_differ(squares):
    seed_model, seed_objective, batch = tiny_setup("seed", squares)
    joint_model, joint_objective, _ = tiny_setup("joint", squares)
    torch.manual_seed(1)
    seed_terms, seed_logs = seed_objective.loss_terms(seed_model(batch), batch, 0)
    torch.manual_seed(1)
    joint_terms, joint_logs = joint_objective.loss_terms(joint_model(batch), batch, 0)
    assert len(joint_terms) == 1
    torch.testing.assert_close(sum(seed_terms), joint_terms[0])
    assert seed_logs.keys() == joint_logs.keys()

    for model, terms in ((seed_model, seed_terms), (joint_model, joint_terms)):
        optimizer_steps(torch.optim.Adam(model.parameters(), lr=LR), terms)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(seed_model.parameters(), joint_model.parameters(), strict=True)
    ]
    assert all(moved)


def seed_config(**train_settings) -> Config:
    settings = {
        "steps": 6,
        "batch_size": 8,
        "log_every": 2,
        "checkpoint_every": 3,
        "threads": 1,
        "device": "cpu",
        "figures": False,
        **train_settings,
    }
    return Config().updated(
        {"model": {"arch": "seed", "z_dim": 4}, "objective": {"update": "seed"}, "train": settings}
    )


def test_a_seed_update_run_resumes_bit_exactly(tmp_path, squares):
    whole = train(seed_config(), tmp_path / "whole", data=squares)
    train(seed_config(steps=3), tmp_path / "split", data=squares)
    resumed = train(seed_config(), tmp_path / "split", data=squares, resume=True)
    for a, b in zip(
        whole.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert resumed.config.objective.update == "seed"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"update": "twice"}, "unknown objective.update 'twice'"),
        ({"name": "beta_vae", "update": "seed"}, "needs objective.name 'nonsyn'"),
    ],
)
def test_bad_update_rules_are_config_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        Config().updated({"objective": fields}).validate()


def test_cli_rejects_seed_update_for_another_model_in_one_line(capsys):
    code = main(["train", "--model", "vae", "--update", "seed", "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "objective.update 'seed' needs objective.name 'nonsyn'" in err
