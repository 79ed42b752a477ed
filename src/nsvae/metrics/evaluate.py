"""Run a suite of metrics on a trained model or on given codes, with provenance (``eval.json``).

Each metric gets its own ``numpy.random.RandomState(seed)``, as disentanglement_lib evaluates
every metric in a separate run with ``evaluation.random_seed``.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
from pathlib import Path

import numpy as np

import nsvae
from nsvae.data.npz import read_npz
from nsvae.errors import DataError, MetricError
from nsvae.metrics import CODE_METRICS, METRICS
from nsvae.train.logs import to_json

# Smaller sample counts of ``fast=True`` (``nsvae evaluate --fast``, ``nsvae train --eval-every``).
FAST_PARAMS = {
    "beta_vae": {"num_train": 500, "num_eval": 250},
    "factor_vae": {"num_train": 500, "num_eval": 250, "num_variance_estimate": 1_000},
    "mig": {"num_train": 3_000},
    "mig_chen": {"num_points": 2_000, "num_samples": 2_000},
    "dci": {"num_train": 1_000, "num_test": 500},
    "sap": {"num_train": 2_000, "num_test": 1_000},
    "modularity_explicitness": {"num_train": 2_000, "num_test": 1_000},
    "unsupervised": {"num_train": 3_000},
    "latent_synergy": {"fast": True},
    "factor_synergy": {"fast": True},
}
SYNERGY_METRICS = ("latent_synergy", "factor_synergy")
REPRESENTATIONS = ("mean", "sampled")
FACTOR_FREE = ("unsupervised", "latent_synergy")  # what data without ground truth can be scored by


def available_metrics() -> dict:
    """The default suite: :data:`METRICS` and the synergy measures."""
    from nsvae.synergy import measures

    return METRICS | {name: getattr(measures, name) for name in SYNERGY_METRICS}


def evaluate(
    run_or_model,
    data=None,
    metrics=None,
    representation: str = "mean",
    seed: int = 0,
    fast: bool = False,
    params: dict | None = None,
) -> dict:
    """Evaluate a run or a model on its ground-truth data; for a run, also write ``eval.json``.

    Parameters
    ----------
    run_or_model : str, Path, nsvae.train.Run or nsvae.models.VAE
        A run directory (its last checkpoint and the dataset of its config), a loaded run, or a
        model (then ``data`` is required).
    data : GroundTruthData, optional
        Dataset to evaluate on (default: the run's).
    metrics : list of str or str, optional
        Names (or one comma-separated string) from :func:`available_metrics`; default all, or
        on data without ground-truth factors (an image collection) those of :data:`FACTOR_FREE`.
    representation : {"mean", "sampled"}
        Posterior means (headline numbers) or one posterior sample per observation.
    seed : int
        Seed of every metric's random state.
    fast : bool
        Use the smaller sample counts of :data:`FAST_PARAMS`.
    params : dict, optional
        Per-metric parameter overrides, ``{name: {param: value}}``, applied last. For a Non-Syn
        run, ``latent_synergy`` chooses its subsets with the run's omega, policy and epsilon.

    Returns
    -------
    dict
        ``metrics`` ({name: {key: value}}), ``params`` (every parameter each metric ran with),
        ``seconds``, ``representation``, ``seed``, ``fast``, ``versions``, ``step`` and
        ``config`` (None for a bare model).
    """
    from nsvae.models import encode_observations, representation_function

    run, model = _open(run_or_model)
    if data is None:
        if run is None:
            raise MetricError("evaluating a model needs its ground-truth data")
        data = run.data()
    if representation not in REPRESENTATIONS:
        raise MetricError(f"unknown representation {representation!r} (choose from: mean, sampled)")
    suite = available_metrics()
    names = _names(metrics, suite)
    if not data.has_factors:
        names = _factor_free(names, metrics is None)

    def arguments(name):  # a fresh representation per metric: its sampling noise restarts too
        if name == "mig_chen":
            return data, functools.partial(encode_observations, model)
        if name == "latent_synergy":
            return model, data
        return data, representation_function(model, kind=representation, seed=seed)

    if run is not None and run.config.objective.name == "nonsyn":  # subsets as in training
        objective = run.config.objective
        selection = {"omega": objective.omega, "policy": objective.policy,
                     "epsilon": objective.epsilon}
        params = {**(params or {}),
                  "latent_synergy": selection | (params or {}).get("latent_synergy", {})}
    result = _run_suite(suite, names, arguments, seed, fast, params)
    result.update(
        representation=representation,
        step=None if run is None else run.step,
        config=None if run is None else run.config.to_dict(),
    )
    if run is not None:
        from nsvae.train.checkpoint import atomic_write

        text = json.dumps(result, indent=2, default=to_json) + "\n"
        atomic_write(Path(run.path) / "eval.json", text.encode("utf-8"))
    return result


def evaluate_codes(
    factors, codes, factor_sizes=None, metrics=None, seed: int = 0, params: dict | None = None
) -> dict:
    """Evaluate given (factor, code) pairs with the metrics that need nothing else.

    Parameters
    ----------
    factors : array [N, K] of int
        Ground-truth factor labels of each row.
    codes : array [N, D] of float
        The representation of each row, from any model or framework.
    factor_sizes : sequence of int, optional
        Number of values of each factor; when given, labels must lie in ``[0, size)``.
    metrics : list of str or str, optional
        Names from :data:`CODE_METRICS` (mig, dci, sap, modularity_explicitness, unsupervised);
        default all. Metrics with a test set split the rows at random, 2:1.
    seed : int
        Seed of every metric's random state.
    params : dict, optional
        Per-metric parameter overrides, ``{name: {param: value}}``.

    Returns
    -------
    dict
        ``metrics``, ``params``, ``seconds``, ``seed``, ``fast`` (False), ``versions``,
        ``num_points`` and ``factor_sizes``.
    """
    from nsvae.metrics.utils import check_pairs

    factors, codes = check_pairs(factors, codes)
    if factor_sizes is not None:
        factor_sizes = [int(s) for s in np.asarray(factor_sizes).ravel()]
        if len(factor_sizes) != factors.shape[1]:
            raise MetricError(f"{len(factor_sizes)} factor sizes for {factors.shape[1]} factors")
        if np.any(factors < 0) or np.any(factors >= np.asarray(factor_sizes)):
            raise MetricError(f"factor labels out of range for factor sizes {factor_sizes}")
    names = _names(metrics, CODE_METRICS)
    result = _run_suite(CODE_METRICS, names, lambda name: (factors, codes), seed, False, params)
    result.update(num_points=len(codes), factor_sizes=factor_sizes)
    return result


def load_codes(path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read ``factors``, ``codes`` and optional ``factor_sizes`` from an ``.npz`` (no pickle).

    Raises
    ------
    DataError
        If the file is missing, not an npz, holds object arrays, or lacks a key.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such codes file: {path}")
    arrays = read_npz(path, ("factors", "codes"), ("factor_sizes",))
    return arrays["factors"], arrays["codes"], arrays.get("factor_sizes")


def _open(run_or_model):
    """(run or None, model) of a run directory, a Run, or a model."""
    from nsvae.train import Run, load_run

    if isinstance(run_or_model, str | Path):
        run_or_model = load_run(run_or_model)
    if isinstance(run_or_model, Run):
        return run_or_model, run_or_model.model
    if not hasattr(run_or_model, "encode"):
        kind = type(run_or_model).__name__
        raise MetricError(f"cannot evaluate a {kind}: expected a run directory, a Run or a model")
    return None, run_or_model


def _factor_free(names: list[str], default: bool) -> list[str]:
    """The metrics of ``names`` that need no ground-truth factors (all of the default suite's);
    a requested metric that needs them is a :class:`MetricError`."""
    needing = [name for name in names if name not in FACTOR_FREE]
    if needing and not default:
        raise MetricError(f"{', '.join(needing)} need ground-truth factors and this dataset has "
                          f"none (metrics without factors: {', '.join(FACTOR_FREE)})")
    return [name for name in names if name in FACTOR_FREE]


def _names(metrics, suite: dict) -> list[str]:
    if metrics is None:
        return list(suite)
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    unknown = [name for name in names if name not in suite]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        raise MetricError(f"unknown metric {given} (choose from: {', '.join(suite)})")
    return names


def _run_suite(suite, names, arguments, seed, fast, overrides) -> dict:
    """Run ``names`` of ``suite`` on ``*arguments(name)``, each with ``RandomState(seed)``."""
    overrides = overrides or {}
    results, used, seconds = {}, {}, {}
    for name in names:
        function = suite[name]
        params = {**(FAST_PARAMS.get(name, {}) if fast else {}), **overrides.get(name, {})}
        used[name] = _resolve(name, function, params)
        args = arguments(name)
        start = time.perf_counter()
        results[name] = function(*args, np.random.RandomState(seed), **params)
        seconds[name] = round(time.perf_counter() - start, 3)
    return {
        "metrics": json.loads(json.dumps(results, default=to_json)),
        "params": used,
        "seconds": seconds,
        "seed": seed,
        "fast": fast,
        "versions": nsvae.versions(),
    }


def _resolve(name, function, params) -> dict:
    """Every keyword parameter of ``function`` with its value; unknown names -> MetricError."""
    keywords = {
        key: p.default
        for key, p in list(inspect.signature(function).parameters.items())[3:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    unknown = sorted(set(params) - set(keywords))
    if unknown and not any(
        p.kind is p.VAR_KEYWORD for p in inspect.signature(function).parameters.values()
    ):
        raise MetricError(f"{name} has no parameter {', '.join(unknown)}")
    return json.loads(json.dumps({**keywords, **params}, default=to_json))
