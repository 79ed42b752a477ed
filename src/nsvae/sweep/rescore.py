"""``nsvae study rescore``: score a study's finished trials with metrics they were not trained with.

A trial keeps its model (its last checkpoint while the study runs; ``model.safetensors`` in a
folder kept for sharing, such as ``results/studies/``), so a metric added later scores the whole
study without training it again, as disentanglement_lib's released models allow. Each trial's
new scores are merged into its ``eval.json`` (its other entries are left as they were) and the
results table is rewritten: the new ``metric.key`` columns join the old ones, which keep their
values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from nsvae.errors import CheckpointError, MetricError
from nsvae.files import file_lock
from nsvae.metrics.evaluate import evaluate_run, metric_names, metric_params
from nsvae.metrics.results import OtherFormatError, entry_key, read_evaluation
from nsvae.rundir import load_run
from nsvae.sweep.results import write_results
from nsvae.sweep.runner import Resources, trial_specs
from nsvae.sweep.study import load_study
from nsvae.sweep.trial import TrialSpec, read_record


def rescore_study(
    out: str | Path,
    metrics,
    fast: bool = False,
    *,
    again: bool = False,
    say: Callable[[str], None] = lambda line: None,
) -> Path:
    """Score every done trial of the study in ``out`` with ``metrics``; rewrite its table.

    Each trial is scored as the sweep scores it: the mean representation, the evaluation seed
    equal to the trial's seed, at the precision it trained with. A metric whose score the
    trial's ``eval.json`` already holds from that protocol (representation, seed and every
    parameter) is skipped unless ``again``, so a study that grows is scored once per trial.

    Parameters
    ----------
    out : path-like
        A study directory (``nsvae sweep --out``, or a copy of its results with each trial's
        ``model.safetensors``).
    metrics : list of str or str
        Metric names (or one comma-separated string).
    fast : bool
        The metrics' smaller sample counts (default: their full ones, as ``metrics = "full"``).
    again : bool
        Score the metrics a trial already holds too (after a metric's code changed).
    say : callable, optional
        Receives one line per trial: what was scored, or that it already was.

    Returns
    -------
    Path
        The rewritten ``results.csv``.

    Raises
    ------
    ConfigError
        An unknown metric name.
    CheckpointError
        ``out`` holds no trials, or a trial's model cannot be loaded.
    RunLockedError
        A sweep is running in ``out``, or ``results/studies/collect.py`` is copying into it.
    MetricError
        Some metric failed on some trial (named, one line); the scores that succeeded are saved.
    """
    out = Path(out).absolute()
    names = metric_names(metrics)
    directories = sorted(path.parent for path in (out / "trials").glob("*/trial.json"))
    if not directories:
        raise CheckpointError(f"no trials in {out}: give a study directory (nsvae sweep --out)")
    with file_lock(
        out / ".lock",
        exclusive=False,
        wait=False,
        busy=lambda pid: (
            f"{out} is in use by a sweep or a collect (pid {pid}); rescore it once that has ended"
        ),
    ):
        failures, datasets = [], {}
        done = [d for d in directories if (read_record(d) or {}).get("status") == "done"]
        for number, directory in enumerate(done, 1):
            run = load_run(directory)
            held = [] if again else _scored(run, names, fast)
            wanted = [name for name in names if name not in held]
            if not wanted:
                say(f"[{number}/{len(done)}] {directory.name}: already scored")
                continue
            key = json.dumps(run.config.to_dict()["data"], sort_keys=True)
            if key not in datasets:  # built once per dataset, shared by its trials
                datasets[key] = run.data()
            data = datasets[key]
            result = evaluate_run(
                run, data=data, metrics=wanted, seed=run.config.train.seed, fast=fast
            )
            failures += [
                f"{directory.name}: {name}: {message}" for name, message in result["failed"].items()
            ]
            skipped = f"; {', '.join(held)} already scored" if held else ""
            say(
                f"[{number}/{len(done)}] {directory.name}: scored "
                f"{len(wanted) - len(result['failed'])} of {len(wanted)} metrics{skipped}"
            )
        results = write_results(out, _study_specs(out))
    if failures:
        raise MetricError(
            f"{len(failures)} scores failed (the others are saved): " + "; ".join(failures)
        )
    return results


def _scored(run, names: list[str], fast: bool) -> list[str]:
    """The metrics of ``names`` whose score by the sweep's protocol (the mean representation,
    the trial's seed, the parameters :func:`evaluate_run` would use) the run's ``eval.json``
    holds. An unreadable file holds none: scoring it replaces it, as the sweep would."""
    try:
        entries = read_evaluation(run.path / "eval.json")
    except OtherFormatError:
        raise
    except CheckpointError:
        return []
    seed = run.config.train.seed
    held = {entry_key(e) for e in entries if e.get("seed") == seed and e.get("fast") == fast}
    params = metric_params(names, fast, run.config.objective.evaluation_params())
    return [
        name
        for name in names
        if entry_key({"metric": name, "representation": "mean", "params": params[name]}) in held
    ]


def _study_specs(out: Path) -> list[TrialSpec]:
    """The specs of the study last run in ``out`` (its ``study.toml``), for the table's order and
    its pending trials; none without the file (the table then lists the recorded trials)."""
    path = out / "study.toml"
    return trial_specs(load_study(path), out, Resources()) if path.is_file() else []
