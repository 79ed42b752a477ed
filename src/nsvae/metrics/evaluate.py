"""Run a suite of metrics on a run, a model or given codes, with provenance (``eval.json``).

Each metric gets its own ``numpy.random.RandomState(seed)``, as disentanglement_lib evaluates
every metric in a separate run with ``evaluation.random_seed``. The metrics of one evaluation
share the encoding of the observations they draw (:mod:`nsvae.metrics.codes`): each grid point
is encoded at most once, and the values are those of encoding metric by metric. A metric that
fails does not stop the others: its one-line message goes to the result's ``failed`` and every
metric that succeeded is kept (and saved, :mod:`nsvae.metrics.results`).
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from nsvae.checks import check_seed
from nsvae.data.npz import read_npz
from nsvae.errors import ConfigError, DataError, MetricError, NsvaeError, one_line
from nsvae.files import to_json
from nsvae.metrics import CODE_METRICS, METRICS
from nsvae.metrics.codes import MetricInputs
from nsvae.metrics.results import save_evaluation
from nsvae.provenance import versions
from nsvae.rundir import Run, load_run

REPRESENTATIONS = ("mean", "sampled")
# progress(name, index, total): called before each metric of a suite runs (index from 1)
Progress = Callable[[str, int, int], None]


def evaluate_run(
    run: str | Path | Run,
    data=None,
    metrics=None,
    representation: str = "mean",
    seed: int = 0,
    fast: bool = False,
    params: dict | None = None,
    cache: bool = True,
    bar: bool | None = None,
    progress: Progress | None = None,
    save: bool = True,
) -> dict:
    """Evaluate a run at its last checkpoint and merge the results into its ``eval.json``.

    The model encodes at the run's ``train.precision``.

    Parameters
    ----------
    run : str, Path or Run
        A run directory or a loaded run.
    data : GroundTruthData, optional
        Dataset to evaluate on (default: the run's, rebuilt from its config).
    metrics, representation, seed, fast, cache, bar, progress
        As :func:`evaluate_model`.
    params : dict, optional
        Per-metric parameter overrides, ``{name: {param: value}}``, applied last. The run's
        objective supplies its own first
        (:meth:`nsvae.objectives.ObjectiveConfig.evaluation_params`: a Non-Syn run's
        ``latent_synergy`` chooses its subsets with the run's omega, policy and epsilon).
    save : bool
        Merge the results into ``eval.json`` (:func:`nsvae.metrics.results.save_evaluation`);
        the command line saves them itself, after printing them.

    Returns
    -------
    dict
        As :func:`evaluate_model`, with the run's ``step`` and ``config``.

    Raises
    ------
    CheckpointError
        The run cannot be loaded, or ``eval.json`` cannot be written.
    """
    run = load_run(run) if isinstance(run, str | Path) else run
    run.warn_if_collapsed()
    params = merge_params(run.config.objective.evaluation_params(), params)
    result = evaluate_model(
        run.model,
        run.data() if data is None else data,
        metrics,
        representation,
        seed,
        fast,
        params,
        precision=run.config.train.precision,
        cache=cache,
        bar=bar,
        progress=progress,
    )
    result.update(step=run.step, config=run.config.to_dict())
    if save:
        save_evaluation(run.path, result)
    return result


def evaluate_model(
    model,
    data,
    metrics=None,
    representation: str = "mean",
    seed: int = 0,
    fast: bool = False,
    params: dict | None = None,
    precision: str = "fp32",
    cache: bool = True,
    bar: bool | None = None,
    progress: Progress | None = None,
) -> dict:
    """Evaluate a model on its ground-truth data (writes nothing).

    Parameters
    ----------
    model : nsvae.models.VAE
        Anything with ``encode(x) -> (mu, logvar)`` (run as it is: put it in eval mode).
    data : GroundTruthData
        Dataset to evaluate on.
    metrics : list of str or str, optional
        Names (or one comma-separated string) from :data:`nsvae.metrics.METRICS`; default all,
        or on data without ground-truth factors (an image collection) all those declared
        ``factors=False`` (:func:`nsvae.metrics.utils.metric`).
    representation : {"mean", "sampled"}
        Posterior means (headline numbers) or one posterior sample per observation, for the
        metrics whose input is a representation.
    seed : int
        Seed of every metric's random state.
    fast : bool
        Use the smaller sample counts each metric declares (``fast_params``).
    params : dict, optional
        Per-metric parameter overrides, ``{name: {param: value}}``, applied last.
    precision : {"fp32", "bf16"}
        Autocast of the encoder (:mod:`nsvae.precision`); codes and metrics are fp32 or wider.
    cache : bool
        Encode each grid point at most once for all the metrics (where the data allows it,
        :func:`nsvae.metrics.codes.cacheable`); False encodes metric by metric, as
        disentanglement_lib does. Both give the same values.
    bar : bool or None
        A bar of the observations encoded; None: only on a terminal.
    progress : callable, optional
        ``progress(name, index, total)``, called before each metric runs.

    Returns
    -------
    dict
        ``metrics`` ({name: {key: value}} of the metrics that succeeded), ``failed``
        ({name: one-line message} of those that did not), ``params`` (every parameter each
        metric ran with), ``seconds``, ``representation``, ``seed``, ``fast``, ``versions``,
        and ``step`` and ``config`` (None: see :func:`evaluate_run`).

    Raises
    ------
    MetricError
        Before any metric runs: no data, no encoder, an unknown parameter.
    ConfigError
        An unknown metric or representation, or a seed outside [0, 2**32).
    """
    if data is None:
        raise MetricError("evaluating a model needs its ground-truth data")
    if not hasattr(model, "encode"):
        kind = type(model).__name__
        raise MetricError(f"cannot evaluate a {kind}: expected a model with encode()")
    if representation not in REPRESENTATIONS:
        raise ConfigError(f"unknown representation {representation!r} (choose from: mean, sampled)")
    names = resolve_metric_names(metrics, data)
    with MetricInputs(model, data, representation, seed, precision, cache, bar) as inputs:
        result = _run_suite(
            METRICS, names, lambda name: inputs(METRICS[name]), seed, fast, params, progress
        )
    result.update(representation=representation, step=None, config=None)
    return result


def evaluate_functions(
    data,
    representation: Callable | None = None,
    encoder: Callable | None = None,
    metrics=None,
    seed: int = 0,
    fast: bool = False,
    params: dict | None = None,
    progress: Progress | None = None,
) -> dict:
    """Evaluate plain functions of observations, numpy in and out (writes nothing).

    The contract of disentanglement_lib: ``representation(observations [n, ...]) -> codes
    [n, d]`` for most metrics, and ``encoder(observations) -> (mu, logvar)`` for those that need
    a Gaussian posterior (``input="encoder"``). Given an encoder alone, the representation is its
    means. Given a representation alone, the encoder metrics are skipped, each with the reason.

    Parameters
    ----------
    data : GroundTruthData
        Dataset to evaluate on.
    representation, encoder : callable, optional
        At least one of them.
    metrics, seed, fast, params, progress
        As :func:`evaluate_model`.

    Returns
    -------
    dict
        As :func:`evaluate_model`, with ``skipped`` ({name: reason}).

    Raises
    ------
    MetricError
        Neither function given, no data, or an unknown parameter.
    ConfigError
        An unknown metric or a seed outside [0, 2**32).
    """
    if data is None:
        raise MetricError("evaluating a representation needs its ground-truth data")
    if representation is None and encoder is None:
        raise MetricError("give a representation function, an encoder, or both")
    if representation is None:

        def representation(observations):
            return encoder(observations)[0]

    names = resolve_metric_names(metrics, data)
    skipped = {
        name: f"{name} needs an encoder's posterior (mu, logvar), not codes alone"
        for name in names
        if METRICS[name].input_kind == "encoder" and encoder is None
    }
    names = [name for name in names if name not in skipped]

    def arguments(name):
        return data, encoder if METRICS[name].input_kind == "encoder" else representation

    result = _run_suite(METRICS, names, arguments, seed, fast, params, progress)
    result.update(skipped=skipped, representation="given", step=None, config=None)
    return result


def merge_params(first: Mapping | None, then: Mapping | None) -> dict:
    """Per-metric parameters of ``first`` updated, metric by metric, with those of ``then``."""
    merged = {name: dict(values) for name, values in (first or {}).items()}
    for name, values in (then or {}).items():
        merged[name] = {**merged.get(name, {}), **values}
    return merged


def evaluate_codes(
    factors,
    codes,
    factor_sizes=None,
    metrics=None,
    seed: int = 0,
    params: dict | None = None,
    progress: Progress | None = None,
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
    progress : callable, optional
        As :func:`evaluate_model`.

    Returns
    -------
    dict
        ``metrics``, ``failed``, ``params``, ``seconds``, ``seed``, ``fast`` (False),
        ``versions``, ``num_points`` and ``factor_sizes``.

    Raises
    ------
    MetricError
        Malformed arrays (empty, NaN, or beyond +-1e6: rescale them), labels out of range, an
        unknown parameter.
    ConfigError
        An unknown metric.
    """
    from nsvae.metrics.utils import check_pairs

    factors, codes = check_pairs(factors, codes)
    if factor_sizes is not None:
        sizes = np.asarray(factor_sizes).ravel()
        if not np.issubdtype(sizes.dtype, np.integer) or np.any(sizes < 1):
            raise MetricError(
                f"factor_sizes must be positive integers, got {sizes.dtype} {sizes.tolist()[:8]}"
            )
        factor_sizes = [int(s) for s in sizes]
        if len(factor_sizes) != factors.shape[1]:
            raise MetricError(f"{len(factor_sizes)} factor sizes for {factors.shape[1]} factors")
        if np.any(factors < 0) or np.any(factors >= np.asarray(factor_sizes)):
            raise MetricError(f"factor labels out of range for factor sizes {factor_sizes}")
    names = metric_names(metrics, CODE_METRICS)
    result = _run_suite(
        CODE_METRICS, names, lambda name: (factors, codes), seed, False, params, progress
    )
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


def resolve_metric_names(metrics, data) -> list[str]:
    """The metric names that :func:`evaluate_model` would run on ``data``.

    Parameters
    ----------
    metrics : list of str, str or None
        Names, or one comma-separated string; None: every metric (those without factors on
        data that has none).
    data : GroundTruthData
        The data to score.

    Returns
    -------
    list of str

    Raises
    ------
    ConfigError
        An unknown name.
    MetricError
        A name that needs ground-truth factors ``data`` does not have.
    """
    names = metric_names(metrics)
    return names if data.has_factors else _factor_free(names, metrics is None)


def _factor_free(names: list[str], default: bool) -> list[str]:
    """The metrics of ``names`` that need no ground-truth factors (all of the default suite's);
    a requested metric that needs them is a :class:`MetricError`."""
    needing = [name for name in names if METRICS[name].needs_factors]
    if needing and not default:
        free = [name for name, function in METRICS.items() if not function.needs_factors]
        raise MetricError(
            f"{', '.join(needing)} need ground-truth factors and this dataset has "
            f"none (metrics without factors: {', '.join(free)})"
        )
    return [name for name in names if name not in needing]


def metric_names(metrics, suite: dict = METRICS) -> list[str]:
    """The names of ``metrics`` (a list, a comma-separated string, or None for all of
    ``suite``).

    Raises
    ------
    ConfigError
        An empty list, or a name that ``suite`` does not hold.
    """
    if metrics is None:
        return list(suite)
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    unknown = [name for name in names if name not in suite]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        raise ConfigError(f"unknown metric {given} (choose from: {', '.join(suite)})")
    return names


def _run_suite(suite, names, arguments, seed, fast, overrides, progress=None) -> dict:
    """Run ``names`` of ``suite`` on ``*arguments(name)``, each with ``RandomState(seed)``.

    Every metric's parameters are checked before the first runs; a metric that then fails is
    recorded in ``failed`` and the others still run.
    """
    check_seed("seed", seed)
    given, used = _params(names, fast, overrides, suite)
    results, failed, seconds = {}, {}, {}
    for index, name in enumerate(names, 1):
        if progress is not None:
            progress(name, index, len(names))
        start = time.perf_counter()
        try:
            results[name] = suite[name](
                *arguments(name), np.random.RandomState(seed), **given[name]
            )
        except NsvaeError as error:
            failed[name] = one_line(error)
        except Exception as error:  # a metric's estimator failing stays that metric's failure
            failed[name] = f"{type(error).__name__}: {one_line(error)}"
        seconds[name] = round(time.perf_counter() - start, 3)
    return {
        "metrics": json.loads(json.dumps(results, default=to_json)),
        "failed": failed,
        "params": used,
        "seconds": seconds,
        "seed": seed,
        "fast": fast,
        "versions": versions(),
    }


def metric_params(
    names, fast: bool = False, overrides: Mapping | None = None, suite: dict = METRICS
) -> dict[str, dict]:
    """Every parameter each metric of ``names`` runs with, as ``eval.json`` records it.

    Parameters
    ----------
    names : list of str
        Metric names (:func:`metric_names`).
    fast : bool
        With each metric's ``fast_params``.
    overrides : dict of str to dict, optional
        Per-metric parameters given on top (a run's ``objective.evaluation_params()``).
    suite : dict
        The metric functions by name.

    Raises
    ------
    MetricError
        An override names a parameter its metric does not have.
    """
    return _params(names, fast, overrides, suite)[1]


def _params(names, fast, overrides, suite) -> tuple[dict[str, dict], dict[str, dict]]:
    """Per metric, the parameters it is called with (its ``fast_params`` if ``fast``, then the
    overrides) and every parameter it runs with (:func:`_resolve`)."""
    overrides = overrides or {}
    given = {
        name: {
            **(getattr(suite[name], "fast_params", {}) if fast else {}),
            **overrides.get(name, {}),
        }
        for name in names
    }
    return given, {name: _resolve(name, suite[name], given[name]) for name in names}


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
