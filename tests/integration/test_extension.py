"""Adding an objective or a metric is one definition plus one registry line.

The toy objective below has its own config class, a term of its own in the logs, a second batch
per step and a network with its own Adam optimiser (the shape of FactorVAE's discriminator). It
trains, logs, plots and resumes bit for bit with no change anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from nsvae.checks import non_negative
from nsvae.config import Config
from nsvae.data import ImageCollection
from nsvae.errors import ConfigError, MetricError
from nsvae.metrics import METRICS
from nsvae.metrics.evaluate import evaluate_model
from nsvae.metrics.utils import metric
from nsvae.objectives import OBJECTIVES, Logged, Objective, ObjectiveConfig, Term
from nsvae.rundir.checkpoint import load_latest
from nsvae.training import train
from nsvae.viz.curves import training_panels


class ToyObjective(Objective):
    """``recon + KL + weight * critic(z)``; the critic learns, on a second batch's detached codes,
    to tell them from prior samples."""

    @dataclass
    class Config(ObjectiveConfig):
        name: str = "toy"
        weight: float = field(default=0.5, metadata={"check": non_negative})

    batches_per_step = 2
    logged = Objective.logged | {"critic": Logged("critic score of the codes")}

    def __init__(self, config, likelihood="bernoulli", **context):
        super().__init__(config, likelihood, **context)
        self.critic = torch.nn.Linear(self.z_dim, 1)

    def modules(self):
        return {"critic": self.critic}

    def optimizers(self, model, lr, betas):
        critic = torch.optim.Adam(self.critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
        return super().optimizers(model, lr, betas) | {"critic": critic}

    def terms(self, model, batches, step):
        outputs = model(batches[0])
        (vae,), logs = self.loss_terms(outputs, batches[0], step)
        score = self.critic(outputs["z"]).mean()
        other = model(batches[1])["z"].detach()
        critic_loss = self.critic(other).mean() - self.critic(torch.randn_like(other)).mean()
        logs["critic"] = score.detach()
        return [Term(vae + self.config.weight * score), Term(critic_loss, "critic")], logs


def toy_config(**train_settings) -> Config:
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
        {"model": {"z_dim": 4}, "objective": {"name": "toy", "weight": 0.25}, "train": settings}
    )


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(OBJECTIVES, "toy", ToyObjective)


def test_a_registered_objective_trains_logs_and_plots(toy, tmp_path, squares):
    config = toy_config()
    assert config.to_dict()["objective"] == {"name": "toy", "weight": 0.25}
    run = train(config, tmp_path / "run", data=squares)
    rows = run.metrics()
    assert [row["step"] for row in rows] == [2, 4, 6]
    assert all(isinstance(row["critic"], float) for row in rows)
    assert ("critic", ToyObjective.logged["critic"]) in training_panels(rows, ToyObjective.logged)
    tensors, state = load_latest(run.path)
    assert {"objective.critic.weight", "objective.critic.bias"} <= tensors.keys()
    assert any(k.startswith("optimizer.critic.") for k in tensors)
    assert state["optimizers"]["critic"]["param_groups"][0]["betas"] == [0.5, 0.9]


def test_its_config_is_validated_by_its_own_rule(toy):
    with pytest.raises(ConfigError, match="objective.weight must be >= 0"):
        Config().updated({"objective": {"name": "toy", "weight": -1.0}}).validate()


def test_its_own_network_and_optimiser_resume_bit_exactly(toy, tmp_path, squares):
    whole = train(toy_config(), tmp_path / "whole", data=squares)
    train(toy_config(steps=4), tmp_path / "split", data=squares)
    resumed = train(toy_config(), tmp_path / "split", data=squares, resume=True)
    for path in ("whole", "split"):
        assert load_latest(tmp_path / path)[1]["step"] == 6
    a = load_latest(tmp_path / "whole")[0]
    b = load_latest(tmp_path / "split")[0]
    assert a.keys() == b.keys()
    for key in a:
        if not key.startswith("meter."):
            assert torch.equal(a[key], b[key]), key

    def logged(run):
        return [
            {k: v for k, v in row.items() if k not in ("time", "steps_per_s")}
            for row in run.metrics()
        ]

    assert logged(whole) == logged(resumed)


@metric(fast={"num_points": 20})
def mean_code(data, representation, random_state, num_points=100):
    """The mean absolute code of ``num_points`` observations: a toy metric."""
    observations = data.sample_observations(num_points, random_state)
    return {
        "mean_abs_code": float(np.abs(representation(observations)).mean()),
        "num_points": num_points,
    }


def test_a_registered_metric_runs_in_the_suite_with_its_fast_parameters(monkeypatch, squares):
    monkeypatch.setitem(METRICS, "mean_code", mean_code)
    torch.manual_seed(0)
    from nsvae.models import build_model

    model = build_model(Config().model).eval()
    result = evaluate_model(model, squares, metrics="mean_code", fast=True)
    assert result["metrics"]["mean_code"]["num_points"] == 20
    assert result["params"]["mean_code"] == {"num_points": 20}


@metric(fast={"num_points": 20}, factors=False)
def mean_code_of_any_data(data, representation, random_state, num_points=100):
    """:func:`mean_code` declared as reading observations only (no ground-truth factors)."""
    return mean_code(data, representation, random_state, num_points)


def test_a_metric_declared_without_factors_scores_images_that_have_none(monkeypatch):
    assert {name for name, f in METRICS.items() if not f.needs_factors} == {
        "unsupervised",
        "latent_synergy",
    }
    monkeypatch.setitem(METRICS, "mean_code", mean_code)
    monkeypatch.setitem(METRICS, "mean_code_of_any_data", mean_code_of_any_data)
    images = np.random.RandomState(0).randint(0, 256, (12, 3, 64, 64), dtype=np.uint8)
    photos = ImageCollection(images, [f"{i}.png" for i in range(12)], "generated")
    torch.manual_seed(0)
    from nsvae.models import build_model

    model = build_model(Config().model, num_channels=3).eval()
    result = evaluate_model(model, photos, metrics="mean_code_of_any_data", fast=True)
    assert result["metrics"]["mean_code_of_any_data"]["num_points"] == 20
    with pytest.raises(
        MetricError,
        match=r"^mean_code need ground-truth factors .*none \(metrics "
        r"without factors: unsupervised, latent_synergy, mean_code_of_any_data\)$",
    ):
        evaluate_model(model, photos, metrics="mean_code_of_any_data,mean_code")
