"""The verbs of a notebook, re-exported by ``import nsvae`` (loaded on first use, with torch).

    import nsvae

    run = nsvae.train({"objective.name": "nonsyn", "objective.alpha": 5.0,
                       "train.steps": 1000}, "runs/quick")
    scores = nsvae.evaluate(run, metrics=["mig", "unibound"], fast=True)
    again = nsvae.load("runs/quick")                 # a run, an exported model, a zoo trial
    nsvae.evaluate(my_encoder, nsvae.dataset("dsprites"), metrics="mig")

Each verb is the command line's stage of the same name, called with Python values: the same
run directories, the same errors (:mod:`nsvae.errors`, raised here instead of printed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nsvae.config import Config, load_config
from nsvae.data import build_data
from nsvae.data.ground_truth import GroundTruthData
from nsvae.errors import ConfigError, MetricError
from nsvae.experiment import train_run
from nsvae.metrics import METRICS
from nsvae.metrics.evaluate import evaluate_functions, evaluate_model, evaluate_run
from nsvae.objectives import OBJECTIVES
from nsvae.rundir import Run, load_run

__all__ = ["METRICS", "OBJECTIVES", "dataset", "evaluate", "load", "train"]


def train(
    config: Config | Mapping[str, Any] | str | Path | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = False,
) -> Run:
    """Train a model into ``run_dir`` (as ``nsvae train``) and return the run.

    Parameters
    ----------
    config : Config, dict, path or None
        A :class:`nsvae.config.Config`; a dict by section (``{"objective": {"alpha": 5.0}}``) or
        by dotted key (``{"objective.alpha": 5.0}``) over the defaults; a TOML file; or None for
        the defaults (or, with ``resume``, the run's own config).
    run_dir : path
        The run directory (:mod:`nsvae.rundir`).
    resume : bool
        Continue the run in ``run_dir`` from its last checkpoint.
    progress : bool
        Show a progress bar.

    Raises
    ------
    ConfigError
        A bad key or value (one line, naming it).
    """
    if isinstance(config, str | Path):
        config = load_config(config)
    elif isinstance(config, Mapping):
        config = Config().updated(config)
    elif config is not None and not isinstance(config, Config):
        raise ConfigError(
            f"config must be a Config, a dict, a TOML path or None, got {type(config).__name__}"
        )
    if config is not None:
        config = config.validate()
    return train_run(config, run_dir, resume=resume, progress=progress)


def evaluate(
    subject,
    data: GroundTruthData | str | None = None,
    *,
    metrics=None,
    fast: bool = False,
    seed: int = 0,
    representation: str = "mean",
    params: dict | None = None,
    save: bool = False,
) -> dict:
    """Score a run, a model, an encoder or a representation function with registered metrics.

    Parameters
    ----------
    subject
        A :class:`nsvae.rundir.Run` or the path of a run or exported model (its data is its
        config's unless ``data`` is given); a module with ``encode(x) -> (mu, logvar)``; or a
        plain function of numpy observations [n, ...] returning either codes [n, d] (a
        representation: metrics that need an encoder's posterior are skipped, each with its
        reason in ``skipped``) or ``(mu, logvar)`` (an encoder; told apart on the first
        observation).
    data : GroundTruthData or str, optional
        The dataset, or its registered name (:func:`dataset`); needed for all but runs.
    metrics : list of str or str, optional
        Names of :data:`METRICS` (default: all).
    fast : bool
        The metrics' smaller sample counts.
    seed : int
        Seed of every metric.
    representation : {"mean", "sampled"}
        For runs and modules: posterior means or one sample per observation.
    params : dict, optional
        Per-metric parameters, ``{name: {param: value}}``.
    save : bool
        For a run: merge the results into its ``eval.json``.

    Returns
    -------
    dict
        ``metrics`` ({name: {key: value}}), ``failed`` ({name: message}), ``params``,
        ``seconds`` and provenance, as :func:`nsvae.metrics.evaluate.evaluate_model`.
    """
    if isinstance(data, str):
        data = dataset(data)
    if isinstance(subject, Run | str | Path):
        return evaluate_run(subject, data, metrics, representation, seed, fast, params, save=save)
    if data is None:
        raise MetricError(
            "evaluating a model or a function needs its data: pass data= (a dataset or its name)"
        )
    if hasattr(subject, "encode"):
        return evaluate_model(subject, data, metrics, representation, seed, fast, params)
    if not callable(subject):
        raise MetricError(
            f"cannot evaluate a {type(subject).__name__}: give a run, a path, a "
            "module with encode(), or a function of observations"
        )
    if _is_encoder(subject, data):
        return evaluate_functions(
            data, encoder=subject, metrics=metrics, seed=seed, fast=fast, params=params
        )
    return evaluate_functions(
        data, representation=subject, metrics=metrics, seed=seed, fast=fast, params=params
    )


def _is_encoder(function: Callable, data: GroundTruthData) -> bool:
    """Whether ``function`` returns ``(mu, logvar)`` (else codes) for one observation."""
    first = data.sample_observations_from_factors(
        data.index_to_factors(np.zeros(1, int)), np.random.RandomState(0)
    )
    output = function(first)
    return isinstance(output, tuple) and len(output) == 2


def load(path: str | Path, device: str = "cpu") -> Run:
    """Open a run directory, an exported model or a study trial: its config and its model (in
    eval mode) at the last checkpoint or its exported weights (:func:`nsvae.rundir.load_run`).
    """
    return load_run(path, device)


def dataset(
    name: str = "dsprites", *, path: str | Path | None = None, data_root: str | Path | None = None
) -> GroundTruthData:
    """A registered dataset by name (``nsvae.data.DATASETS``), with its file or cache folder."""
    from nsvae.config import DataConfig

    config = DataConfig(
        name=name,
        path=None if path is None else str(path),
        data_root=None if data_root is None else str(data_root),
    )
    return build_data(config.validate())
