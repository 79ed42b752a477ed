"""``nsvae sweep``: run every unfinished trial of a study, then keep the results table current.

What to run is decided here, from the trial directories (:mod:`nsvae.sweep.trial`); how it runs
is Ray Tune's (:mod:`nsvae.sweep.ray_tune`, imported only when there is something to run, so
everything else works without Ray). Trials run seed by seed (every setting
at the first seed, then at the next), so a study stopped part way compares its settings at
equal numbers of seeds. Rerunning the same command skips finished trials and resumes the others;
a changed study file adds its new trials and keeps the old ones.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nsvae.config import Config
from nsvae.errors import ConfigError, DependencyError, TrainingError, TrainingInterrupted
from nsvae.files import atomic_write, file_lock
from nsvae.sweep.results import trial_row, write_results
from nsvae.sweep.study import Study
from nsvae.sweep.trial import (
    TrialSpec,
    is_finished,
    new_record,
    read_record,
    run_trial,
    trial_directory,
)

INSTALL_HINT = (
    "nsvae sweep needs Ray Tune, which is not installed: "
    "pip install 'nsvae[sweep]' (or pip install 'ray[tune]')"
)


@dataclass
class Resources:
    """Where and how wide trials run.

    Attributes
    ----------
    address : str or None
        A Ray cluster (``auto``, ``ray://HOST:PORT``); None starts Ray on this machine.
    cpus : int or None
        CPUs of the embedded Ray (default: every CPU of this machine).
    cpus_per_trial, gpus_per_trial : float
        What each trial reserves; a trial's torch threads follow its CPU share.
    max_concurrent : int or None
        At most this many trials at once (default: as many as the resources allow).
    """

    address: str | None = None
    cpus: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None


@dataclass
class SweepSummary:
    """What one ``nsvae sweep`` did.

    Attributes
    ----------
    trials, skipped, done, failed : int
        Trials of the study; already finished before this call; finished and failed in it.
    seconds : float
        Wall time of the call.
    ray_seconds : float
        Of which starting and stopping Ray.
    results : Path
        ``results.csv``.
    """

    trials: int
    skipped: int
    done: int
    failed: int
    seconds: float
    ray_seconds: float
    results: Path


def run_sweep(
    study: Study,
    out: str | Path,
    resources: Resources | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> SweepSummary:
    """Run the unfinished trials of ``study`` in ``out/trials/`` and write ``out/results.csv``.

    Parameters
    ----------
    study : Study
        From :func:`nsvae.sweep.load_study`.
    out : path-like
        The study directory: ``study.toml`` (the file last run), ``trials/``,
        ``results.csv``, and Ray's own files and logs in ``ray/``.
    resources : Resources, optional
        Embedded Ray on every CPU, one CPU per trial, by default.
    say : callable, optional
        Receives a line before starting, one per trial that ends, and one when a signal starts
        stopping the sweep.

    Raises
    ------
    RunLockedError
        Another process is running a sweep in ``out`` (the lock dies with its holder).
    ConfigError
        A trial directory holds a run trained with a config that the study no longer gives.
    DependencyError
        Ray Tune is not installed (and some trial has to run).
    TrainingInterrupted
        The sweep was stopped (Ctrl-C: exit code 130, or SIGTERM: 143) before every trial
        ended; running trials saved a checkpoint first, and rerunning resumes them.
    TrainingError
        Some trials failed (each one's error is in the table's ``error`` column), or ended
        without a record, no signal having stopped the sweep (a Ray worker killed, a node lost):
        rerunning resumes those.
    """
    out = Path(out).absolute()
    with file_lock(
        out / ".lock",
        wait=False,
        busy=lambda pid: (
            f"{out} is in use by another nsvae sweep (pid {pid}); wait for it to finish or "
            "choose another --out"
        ),
    ):
        return _run_locked(study, out, resources or Resources(), say)


def _run_locked(
    study: Study, out: Path, resources: Resources, say: Callable[[str], None]
) -> SweepSummary:
    """:func:`run_sweep` holding the study directory's lock."""
    began = time.perf_counter()
    specs = trial_specs(study, out, resources)
    pending = seed_by_seed([spec for spec in specs if not is_finished(spec)])
    atomic_write(out / "study.toml", study.text.encode("utf-8"))
    results = write_results(out, specs)
    say(
        f"study {study.name}: {len(specs)} trials, {len(specs) - len(pending)} finished, "
        f"{len(pending)} to run; results: {results}"
    )
    before = {spec.name: read_record(spec.directory) for spec in pending}  # older runs' records
    ray_seconds, stopped_by = (
        _run_on_ray(pending, specs, out, resources, say, before) if pending else (0.0, None)
    )
    write_results(out, specs)
    records = [new_record(spec.directory, before[spec.name]) for spec in pending]
    ended = [record for record in records if record is not None]
    failed = sum(record["status"] == "failed" for record in ended)
    if len(ended) < len(pending) and stopped_by is None:  # no signal: trials were lost
        raise TrainingError(
            f"{len(pending) - len(ended)} of {len(pending)} trials ended without a record (their "
            "Ray worker died or was killed, or its node was lost); run the same command again to "
            "resume them"
        )
    if len(ended) < len(pending):
        raise TrainingInterrupted(
            f"sweep stopped with {len(pending) - len(ended)} of {len(pending)} trials unfinished; "
            "run the same command again to resume them",
            stopped_by or "SIGINT",
        )
    if failed:
        raise TrainingError(
            f"{failed} of {len(pending)} trials failed; see the error column of {results}"
        )
    return SweepSummary(
        len(specs),
        len(specs) - len(pending),
        len(ended) - failed,
        failed,
        time.perf_counter() - began,
        ray_seconds,
        results,
    )


def run_one_trial(
    study: Study, out: str | Path, name: str, resources: Resources | None = None
) -> dict:
    """Run the trial ``name`` of ``study`` in this process, without Ray; rewrite ``results.csv``.

    For a scheduler of your own, one job per trial (a SLURM array, a GPU machine without Ray):
    any number of them may work in one study directory at once, each trial guarded by its run
    directory's lock. A finished trial is not run again.

    Returns
    -------
    dict
        The trial's record (``trial.json``).

    Raises
    ------
    ConfigError
        The study has no trial ``name``, or its directory holds a run with another config.
    RunLockedError
        A Ray sweep is running in ``out``, or this trial is running in another process.
    TrainingInterrupted
        SIGINT or SIGTERM stopped its training after a checkpoint (exit code 130 or 143, as a
        scheduler's requeue expects); the trial is left unfinished, to resume.
    """
    out = Path(out).absolute()
    specs = trial_specs(study, out, resources or Resources())
    spec = next((spec for spec in specs if spec.name == name), None)
    if spec is None:
        raise ConfigError(
            f"study {study.name} has no trial {name!r} (nsvae sweep FILE --out DIR "
            "--list names them)"
        )
    (out / "trials").mkdir(parents=True, exist_ok=True)

    def sweep_busy(pid: str) -> str:
        return f"{out} is in use by a Ray sweep (pid {pid}); wait for it or use another --out"

    def trial_busy(pid: str) -> str:
        return f"trial {name} is running in another process (pid {pid})"

    with (
        file_lock(out / ".lock", exclusive=False, wait=False, busy=sweep_busy),
        file_lock(out / "trials" / f".{name}.lock", wait=False, busy=trial_busy),
    ):
        atomic_write(out / "study.toml", study.text.encode("utf-8"))
        try:
            record = read_record(spec.directory) if is_finished(spec) else run_trial(spec)
        except TrainingInterrupted as stop:
            raise TrainingInterrupted(
                f"trial {name} interrupted by {stop.signal_name} at step {stop.step}; checkpoint "
                "saved, run the same command again to resume it",
                stop.signal_name,
                stop.step,
            ) from None
        finally:
            write_results(out, specs)
    return record


def trial_states(study: Study, out: str | Path) -> list[tuple[str, str]]:
    """Each trial's name and state in ``out``, in the order trials run: ``finished``, or its
    ``results.csv`` status (``pending``, ``unfinished`` with a checkpoint, ``failed``), or
    ``to extend`` (done, but with fewer steps or other metrics than the study now asks)."""
    states = []
    for spec in seed_by_seed(trial_specs(study, Path(out).absolute(), Resources())):
        status = "finished" if is_finished(spec) else trial_row(spec)["status"]
        states.append((spec.name, "to extend" if status == "done" else status))
    return states


def seed_by_seed(specs: list[TrialSpec]) -> list[TrialSpec]:
    """``specs`` in the order they run: every setting at the first seed, then every setting at
    the next, so a study stopped part way has its settings at equal numbers of seeds."""
    seeds = list(dict.fromkeys(spec.seed for spec in specs))
    return sorted(specs, key=lambda spec: seeds.index(spec.seed))


def trial_config(config: Config, resources: Resources) -> Config:
    """A trial's config on its resources: torch threads follow its CPU share (unless the study
    sets ``train.threads``), and ``device = "auto"`` means the CPU when it has no GPU."""
    train = {}
    if config.train.threads == 0:
        train["threads"] = max(1, int(resources.cpus_per_trial))
    if config.train.device == "auto" and not resources.gpus_per_trial:
        train["device"] = "cpu"
    return config.updated({"train": train})


def trial_specs(study: Study, out: Path, resources: Resources) -> list[TrialSpec]:
    """The spec of every trial of ``study`` in ``out/trials/``, on ``resources``."""
    return [
        TrialSpec.of(
            study, trial, trial_directory(out, trial.name), trial_config(trial.config, resources)
        )
        for trial in study.trials
    ]


def _run_on_ray(pending, specs, out, resources, say, before) -> tuple[float, str | None]:
    """Run ``pending`` on Ray Tune (``before``: their records before the sweep); return the
    seconds spent starting and stopping Ray, and the signal that stopped the sweep (or None)."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # nsvae writes the logs
    try:
        import nsvae.sweep.ray_tune as ray_tune
    except ImportError as error:  # Ray, or a package that ray.tune needs
        if (error.name or "").startswith("nsvae"):
            raise
        raise DependencyError(INSTALL_HINT) from None
    return ray_tune.fit(pending, specs, out, resources, say, before)
