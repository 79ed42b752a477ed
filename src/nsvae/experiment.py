"""One run end to end: train -> evaluate -> report. What the CLI, ``make demo`` and sweeps call.

The stages know nothing of each other: the trainer takes the fast evaluation as a callback, and
evaluation and the report open the run directory that training wrote (:mod:`nsvae.rundir`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nsvae.config import Config
from nsvae.data import build_data
from nsvae.data.ground_truth import GroundTruthData
from nsvae.metrics.evaluate import evaluate_model, evaluate_run, resolve_metric_names
from nsvae.rundir import Run
from nsvae.rundir.run import training_config
from nsvae.training import train
from nsvae.viz.report import write_report
from nsvae.viz.traversals import FIGURE_IMAGES, save_reconstructions, save_traversals


def train_run(
    config: Config | None,
    run_dir: str | Path,
    data: GroundTruthData | None = None,
    resume: bool = False,
    progress: bool = False,
    stop_file: str | Path | None = None,
) -> Run:
    """:func:`nsvae.training.train` with the fast metric suite every ``train.eval_every`` steps and,
    when ``train.figures``, ``figures/traversals.png`` and ``reconstructions.png`` at the end.

    Parameters are those of :func:`nsvae.training.train`.
    """
    run_dir = Path(run_dir)
    config = training_config(run_dir, config, resume)
    data = build_data(config.data) if data is None else data
    run = train(
        config,
        run_dir,
        data=data,
        resume=resume,
        progress=progress,
        on_eval=fast_evaluation(data, config),
        stop_file=stop_file,
    )
    if run.config.train.figures:
        save_figures(run, data)
    return run


@dataclass
class Experiment:
    """What :func:`run_experiment` produced.

    Attributes
    ----------
    run : Run
        The trained run.
    evaluation : dict
        Its ``eval.json``.
    report : Path or None
        Its ``report.html``, unless the report was not asked for.
    seconds : dict
        Wall seconds of each stage of this call: ``train``, ``evaluate`` and ``report``.
    """

    run: Run
    evaluation: dict
    report: Path | None
    seconds: dict[str, float]


def run_experiment(
    config: Config | None,
    run_dir: str | Path,
    data: GroundTruthData | None = None,
    resume: bool = False,
    progress: bool = False,
    fast: bool = True,
    metrics=None,
    report: bool = True,
    stop_file: str | Path | None = None,
) -> Experiment:
    """Train (or resume), evaluate (``eval.json``) and report (``report.html``) one run.

    Parameters
    ----------
    config, run_dir, data, resume, progress, stop_file
        As :func:`train_run`; the data is built once and shared by the three stages.
    fast, metrics
        As :func:`nsvae.metrics.evaluate.evaluate_model` (default: every metric, fast).
    report : bool
        Draw every figure and write ``report.html``.
    """
    run_dir = Path(run_dir)
    config = training_config(run_dir, config, resume)
    data = build_data(config.data) if data is None else data
    seconds = {}
    with _timed(seconds, "train"):
        run = train_run(
            config, run_dir, data=data, resume=resume, progress=progress, stop_file=stop_file
        )
    with _timed(seconds, "evaluate"):
        evaluation = evaluate_run(
            run, data=data, metrics=metrics, seed=run.config.train.seed, fast=fast
        )
    page = None
    if report:
        with _timed(seconds, "report"):
            page = write_report(run.path, data=data, seed=run.config.train.seed)
    return Experiment(run, evaluation, page, seconds)


@contextlib.contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    seconds[stage] = round(time.perf_counter() - start, 3)


def fast_evaluation(data: GroundTruthData, config: Config):
    """``on_eval(model, step)``: ``train.eval_metrics`` (default: the whole suite) at their fast
    sample counts, with the objective's evaluation settings (so ``eval_curves.png`` measures what
    ``eval.json`` measures).

    Raises
    ------
    ConfigError
        When ``train.eval_every`` is set and ``train.eval_metrics`` names an unknown metric:
        before training starts, not at the first evaluation.
    MetricError
        The same for a metric this data cannot score.
    """
    params = config.objective.evaluation_params()
    names = (
        resolve_metric_names(config.train.eval_metrics or None, data)
        if config.train.eval_every
        else None
    )

    def on_eval(model: torch.nn.Module, step: int) -> dict:
        return evaluate_model(
            model,
            data,
            names,
            fast=True,
            seed=config.train.seed,
            params=params,
            precision=config.train.precision,
            bar=False,
        )["metrics"]

    return on_eval


def save_figures(run: Run, data: GroundTruthData) -> None:
    """``traversals.png`` and ``reconstructions.png`` of a fixed sample of observations, latents
    ordered by the last logged KL."""
    observations = data.sample_observations(
        FIGURE_IMAGES, np.random.RandomState(run.config.train.seed)
    )
    rows = [row for row in run.metrics() if "kl_per_latent" in row]
    kl = rows[-1]["kl_per_latent"] if rows else None
    folder = run.path / "figures"
    save_traversals(run.model, observations, folder / "traversals.png", kl_per_latent=kl)
    save_reconstructions(run.model, observations, folder / "reconstructions.png")
