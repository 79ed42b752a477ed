"""One trial on disk: its run directory ``DIR/trials/<name>/``, its record and how it runs.

A trial's directory is an ordinary run directory (:mod:`nsvae.rundir`) plus, when it ends,
its model's weights alone (``model.safetensors``, unless the study sets ``keep_models = false``)
and ``trial.json``::

    {"name", "setting", "status": "done" | "failed", "step", "seed", "swept", "resumed",
     "evaluation": {"metrics", "fast"}, "seconds": {"train", "evaluate", "report"}, "error",
     "exit_code" (a failed trial's: the command line's code for its error)}

A trial is finished when its record says done at the study's step count with the study's
metrics; otherwise it resumes from its last checkpoint (nsvae's own resume, so a resumed trial
equals an uninterrupted one) or, without one, starts afresh. A trial stopped while training
(a signal, or the sweep's stop file) leaves its checkpoint and no record: it is unfinished.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsvae.checks import is_number
from nsvae.config import Config
from nsvae.errors import (
    CheckpointError,
    ConfigError,
    MetricError,
    NsvaeError,
    TrainingInterrupted,
    is_out_of_memory,
    one_line,
)
from nsvae.experiment import run_experiment
from nsvae.files import read_json, write_json
from nsvae.rundir.checkpoint import WEIGHTS, list_checkpoints, save_weights
from nsvae.rundir.run import training_config
from nsvae.sweep.study import Study, Trial

RECORD = "trial.json"
INTERNAL_ERROR = 70  # the exit code of an unexpected error, as the command line's


@dataclass
class TrialSpec:
    """What a worker needs to run one trial: plain values, so it travels to any machine.

    Attributes
    ----------
    name, setting : str
        The trial's name and setting.
    directory : str
        Its run directory.
    config : dict
        Its run config (:meth:`nsvae.config.Config.to_dict`).
    swept, seed
        As :class:`nsvae.sweep.study.Trial`.
    metrics : list of str or None
        Metrics to evaluate (None: all).
    fast, report, keep_model : bool
        As :class:`nsvae.sweep.study.Study` (``keep_model``: its ``keep_models``).
    stop_file : str or None
        A file whose appearance stops training at its next step, with a checkpoint
        (:func:`nsvae.training.train`): the sweep's way to stop trials its signals do not reach.
    """

    name: str
    setting: str
    directory: str
    config: dict
    swept: dict[str, Any]
    seed: int
    metrics: list[str] | None = None
    fast: bool = True
    report: bool = True
    keep_model: bool = True
    stop_file: str | None = None

    @classmethod
    def of(cls, study: Study, trial: Trial, directory: Path, config: Config) -> TrialSpec:
        """The spec of ``trial`` of ``study`` in ``directory``, trained with ``config``."""
        metrics = None if study.metrics is None else list(study.metrics)
        return cls(
            trial.name,
            trial.setting,
            str(directory),
            config.to_dict(),
            dict(trial.swept),
            trial.seed,
            metrics,
            study.fast,
            study.report,
            study.keep_models,
        )

    def evaluation(self) -> dict:
        """What ``trial.json`` records of the evaluation asked for."""
        return {"metrics": self.metrics, "fast": self.fast}


def trial_directory(out: str | Path, name: str) -> Path:
    """``out/trials/name``."""
    return Path(out) / "trials" / name


def read_record(directory: str | Path) -> dict | None:
    """The trial's ``trial.json``, or None when it has not ended yet.

    Raises
    ------
    CheckpointError
        If the file is unreadable or is not a record as this module writes it.
    """
    path = Path(directory) / RECORD
    if not path.is_file():
        return None
    record = read_json(path)
    if not _is_record(record):
        raise CheckpointError(
            f"{path} is not a trial record (its name, setting, seed, swept "
            "values, status, step, error and seconds): delete it to run the "
            "trial again"
        )
    return record


def _is_record(record: Any) -> bool:
    """Whether ``record`` has the fields a reader relies on, of the types :func:`run_trial`
    writes: a done trial's step is a number, a failed one's None."""
    if not isinstance(record, dict) or record.get("status") not in ("done", "failed"):
        return False
    step, seconds = record.get("step"), record.get("seconds")
    return (
        isinstance(record.get("name"), str)
        and isinstance(record.get("setting"), str)
        and isinstance(record.get("seed"), int)
        and isinstance(record.get("swept"), dict)
        and "error" in record
        and isinstance(seconds, dict)
        and all(is_number(value) for value in seconds.values())
        and (step is None if record["status"] == "failed" else is_number(step))
    )


def new_record(directory: str | Path, before: dict | None) -> dict | None:
    """The trial's record if it is not ``before`` (read earlier), else None: a run of the trial
    since then wrote it (a rerun's record always differs, if only in its timings)."""
    record = read_record(directory)
    return None if record == before else record


def is_finished(spec: TrialSpec) -> bool:
    """Done at the spec's step count, evaluated as the spec asks.

    Raises
    ------
    ConfigError
        The directory holds a run whose config differs from the spec's in a field that
        resuming cannot change (the study file changed under an existing trial).
    """
    directory = Path(spec.directory)
    if (directory / "config.json").is_file():
        try:
            training_config(directory, Config.from_dict(spec.config), resume=True)
        except ConfigError as error:
            raise ConfigError(f"trial {spec.name} exists with another config: {error}") from None
    record = read_record(directory)
    return (
        bool(record)
        and record["status"] == "done"
        and record["step"] >= spec.config["train"]["steps"]
        and record.get("evaluation") == spec.evaluation()
    )


def has_checkpoint(directory: str | Path) -> bool:
    """Whether the run in ``directory`` can be resumed."""
    return bool(list_checkpoints(Path(directory) / "checkpoints"))


def run_trial(spec: TrialSpec) -> dict:
    """Train (or resume), evaluate and (if asked) report one trial; write and return its record.

    Any error of the trial is recorded as its status ``failed`` with a one-line message, so one
    failing trial never stops the others.

    Raises
    ------
    TrainingInterrupted
        Training was stopped (a signal, or ``spec.stop_file``) after writing a checkpoint; no
        record is left, so the trial reads as unfinished and resumes on the next run.
    """
    directory = Path(spec.directory)
    resume = has_checkpoint(directory)
    if not resume and directory.exists():  # stopped before its first checkpoint: start again
        shutil.rmtree(directory)
    record = {
        "name": spec.name,
        "setting": spec.setting,
        "seed": spec.seed,
        "swept": spec.swept,
        "evaluation": spec.evaluation(),
        "resumed": resume,
    }
    try:
        experiment = run_experiment(
            Config.from_dict(spec.config),
            directory,
            resume=resume,
            fast=spec.fast,
            metrics=spec.metrics,
            report=spec.report,
            stop_file=spec.stop_file,
        )
        if spec.keep_model:
            save_weights(directory / WEIGHTS, experiment.run.model, experiment.run.step)
    except TrainingInterrupted:
        (directory / RECORD).unlink(missing_ok=True)  # an older record no longer says its state
        raise
    except NsvaeError as error:
        record.update(
            status="failed", error=one_line(error), exit_code=error.exit_code, step=None, seconds={}
        )
    except Exception as error:  # a trial's bug must not stop the study: record it
        code = ConfigError.exit_code if is_out_of_memory(error) else INTERNAL_ERROR
        record.update(
            status="failed",
            error=f"{type(error).__name__}: {one_line(error)}",
            exit_code=code,
            step=None,
            seconds={},
        )
    else:
        record.update(
            status="done", error=None, step=experiment.run.step, seconds=experiment.seconds
        )
        record.update(_metric_failures(experiment.evaluation))
    write_json(directory / RECORD, record)
    return record


def _metric_failures(evaluation: dict) -> dict:
    """The record fields a trial's failed metrics change: none when every metric succeeded; the
    error (one line naming each) when some failed; a failed trial, rerun by the next sweep,
    when all failed."""
    failed = evaluation.get("failed") or {}
    if not failed:
        return {}
    error = "; ".join(f"{name}: {message}" for name, message in failed.items())
    if evaluation.get("metrics"):
        return {"error": f"metrics failed: {error}"}
    return {
        "status": "failed",
        "step": None,
        "exit_code": MetricError.exit_code,
        "error": f"every metric failed: {error}",
    }
