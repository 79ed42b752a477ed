"""``evaluate``, ``evaluate_codes`` and ``nsvae evaluate`` (run directory and ``--codes``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nsvae.cli import main
from nsvae.config import Config, ModelConfig
from nsvae.data.ground_truth import ArrayGroundTruthData, FactorSpace
from nsvae.errors import ConfigError, MetricError
from nsvae.metrics import CODE_METRICS
from nsvae.metrics.evaluate import evaluate_codes, evaluate_model, evaluate_run
from nsvae.models import build_model
from nsvae.rundir import Run


def identity_codes(n=1500, sizes=(3, 4, 5), seed=0):
    space = FactorSpace(sizes)
    factors = space.sample_factors(n, np.random.RandomState(seed))
    return factors, factors + 0.01 * np.random.RandomState(seed + 1).standard_normal(factors.shape)


@pytest.fixture
def npz(tmp_path):
    factors, codes = identity_codes()
    path = tmp_path / "codes.npz"
    np.savez(path, factors=factors, codes=codes, factor_sizes=np.array([3, 4, 5]))
    return path


def test_evaluate_codes_scores_given_arrays():
    factors, codes = identity_codes()
    result = evaluate_codes(factors, codes, factor_sizes=[3, 4, 5])
    assert set(result["metrics"]) == set(CODE_METRICS)
    assert result["metrics"]["mig"]["discrete_mig"] > 0.9
    assert result["metrics"]["dci"]["disentanglement"] > 0.95
    assert result["params"]["dci"]["estimator"] == "gbt"
    assert result["num_points"] == 1500 and result["factor_sizes"] == [3, 4, 5]
    by_string = evaluate_codes(factors, codes, metrics="mig,sap")["metrics"]
    assert by_string == evaluate_codes(factors, codes, metrics=["mig", "sap"])["metrics"]


def test_evaluate_codes_rejects_bad_arrays():
    factors, codes = identity_codes(100)
    with pytest.raises(MetricError, match="codes"):
        evaluate_codes(factors, codes[:-1])
    with pytest.raises(MetricError, match="out of range"):
        evaluate_codes(factors, codes, factor_sizes=[3, 4, 4])
    with pytest.raises(ConfigError, match="unknown metric"):
        evaluate_codes(factors, codes, metrics="beta_vae")
    with pytest.raises(MetricError, match="no parameter"):
        evaluate_codes(factors, codes, metrics="mig", params={"mig": {"bins": 3}})


def test_cli_evaluate_codes_prints_a_table_and_writes_json(npz, tmp_path, capsys):
    out = tmp_path / "result.json"
    assert (
        main(["evaluate", "--codes", str(npz), "--metrics", "mig,sap", "--output", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "discrete_mig" in printed and "SAP_score" in printed
    assert json.loads(out.read_text())["metrics"]["mig"]["discrete_mig"] > 0.9


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (None, 3, "no such codes file"),
        (b"not an npz", 3, "not an npz archive"),
        (b"PK\x03\x04 a truncated zip", 3, "unreadable npz file"),
        ({"factors": np.zeros((5, 2), int)}, 3, "missing keys ['codes']"),
        ({"factors": np.zeros((5, 2), int), "codes": np.array([None] * 5)}, 3, "unreadable npz"),
        ({"factors": np.zeros((5, 2), int), "codes": np.full((5, 2), np.nan)}, 6, "NaN"),
        ({"factors": np.zeros((5, 2), int), "codes": np.zeros((4, 2))}, 6, "4 codes"),
        ({"factors": np.zeros((5, 2)), "codes": np.zeros((5, 2))}, 6, "integer"),
    ],
)
def test_cli_evaluate_codes_bad_files_are_one_line_errors(tmp_path, capsys, content, code, message):
    path = tmp_path / "bad.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.savez(path, **content)  # object arrays are pickled by numpy, which we refuse to load
    assert main(["evaluate", "--codes", str(path)]) == code
    error = capsys.readouterr().err
    assert error.startswith("nsvae: error:") and message in error and error.count("\n") == 1


def test_cli_evaluate_needs_a_run_or_codes(npz, capsys):
    assert main(["evaluate"]) == 2
    assert main(["evaluate", "runs/x", "--codes", str(npz)]) == 2
    assert "either a run directory or --codes" in capsys.readouterr().err


def square_data() -> ArrayGroundTruthData:
    images = np.zeros((2, 6, 6, 1, 64, 64), np.float32)
    for s in range(2):
        for i in range(6):
            for j in range(6):
                images[s, i, j, 0, 8 * i : 8 * i + 8 + 4 * s, 8 * j : 8 * j + 8 + 4 * s] = 1
    return ArrayGroundTruthData(images.reshape(-1, 1, 64, 64), (2, 6, 6))


def test_evaluate_a_run_writes_eval_json_with_provenance(tmp_path):
    torch.manual_seed(0)
    config = Config()
    model = build_model(config.model).eval()
    run = Run(tmp_path, config, model, 7)
    params = {"mig": {"num_train": 300}, "mig_chen": {"num_points": 200, "num_samples": 100}}
    result = evaluate_run(
        run, square_data(), metrics=["mig", "mig_chen"], seed=3, fast=True, params=params
    )
    stored = json.loads((tmp_path / "eval.json").read_text())
    assert stored["metrics"] == result["metrics"] and result["failed"] == {}
    entry = {entry["metric"]: entry for entry in stored["entries"]}["mig"]
    assert entry["values"] == result["metrics"]["mig"]
    assert entry["params"] == result["params"]["mig"]
    provenance = (entry["step"], entry["seed"], entry["representation"], entry["fast"])
    assert provenance == (7, 3, "mean", True)
    assert set(result["metrics"]) == {"mig", "mig_chen"}
    assert result["params"]["mig"] == {"num_train": 300, "batch_size": 16, "num_bins": 20}
    assert result["step"] == 7 and result["seed"] == 3 and result["representation"] == "mean"
    assert result["config"] == config.to_dict()
    assert {"numpy", "scikit-learn", "torch"} <= set(result["versions"])
    again = evaluate_model(model, square_data(), metrics="mig", seed=3, params=params)
    assert again["metrics"]["mig"] == result["metrics"]["mig"] and again["step"] is None


def test_evaluate_rejects_unknown_metrics_and_missing_data():
    model = build_model(Config().model).eval()
    with pytest.raises(ConfigError, match="unknown metric"):
        evaluate_model(model, square_data(), metrics="nope")
    with pytest.raises(MetricError, match="needs its ground-truth data"):
        evaluate_model(model, None)


def test_latent_synergy_of_a_nonsyn_run_uses_its_selection_settings(tmp_path):
    selection = {"name": "nonsyn", "omega": 0.5, "policy": "reference"}
    config = Config().updated({"objective": selection})
    run = Run(tmp_path, config, build_model(config.model).eval(), 1)
    params = {"latent_synergy": {"num_samples": 72, "num_queries": 8}}
    result = evaluate_run(run, square_data(), metrics="latent_synergy", params=params)
    used = result["params"]["latent_synergy"]
    assert (used["omega"], used["policy"], used["num_samples"]) == (0.5, "reference", 72)


# Every metric, at sample counts small enough for a test (the mixture metrics on the whole grid).
SMALL = {
    "beta_vae": {"batch_size": 8, "num_train": 60, "num_eval": 30},
    "factor_vae": {"batch_size": 8, "num_train": 60, "num_eval": 30, "num_variance_estimate": 100},
    "mig": {"num_train": 300},
    "mig_chen": {"num_points": 64, "num_samples": 64},
    "dci": {"num_train": 200, "num_test": 100, "estimator": "forest", "n_jobs": 1},
    "sap": {"num_train": 200, "num_test": 100},
    "modularity_explicitness": {"num_train": 200, "num_test": 100},
    "unsupervised": {"num_train": 300},
    "latent_synergy": {"num_samples": 64, "num_queries": 16},
    "factor_synergy": {"num_samples": 300},
}


def counted_model(monkeypatch):
    """A small model in eval mode, and the list of the batch sizes it encodes."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(z_dim=4)).eval()
    encoded, encode = [], model.encode

    def counting_encode(x):
        encoded.append(len(x))
        return encode(x)

    monkeypatch.setattr(model, "encode", counting_encode)
    return model, encoded


@pytest.mark.parametrize("representation", ["mean", "sampled"])
def test_the_cached_evaluation_equals_encoding_metric_by_metric(
    squares, representation, monkeypatch
):
    model, encoded = counted_model(monkeypatch)

    def evaluate(cache):
        encoded.clear()
        return evaluate_model(
            model, squares, representation=representation, params=SMALL, cache=cache, bar=False
        )["metrics"]

    cached = evaluate(cache=True)
    assert sum(encoded) == 256  # the 64 grid points once, in one padded batch
    uncached = evaluate(cache=False)
    assert sum(encoded) > 10 * len(squares)
    assert cached == uncached


def test_data_whose_observations_are_random_is_encoded_metric_by_metric(squares, monkeypatch):
    noisy = ArrayGroundTruthData(squares.observations, [8, 8])
    noisy.deterministic = False
    model, encoded = counted_model(monkeypatch)
    evaluate_model(model, noisy, metrics="mig,unsupervised", params=SMALL, bar=False)
    assert sum(encoded) >= 2 * 300
