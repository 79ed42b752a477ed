"""Trials on Ray Tune: Ray started embedded (no dashboard, files under ``DIR/ray``) or on a cluster.

Each Tune trial runs one nsvae trial (:func:`nsvae.sweep.trial.run_trial`) in a Ray worker; the
trial writes everything to its own directory, and the driver rewrites the results table and says
a line each time one ends. On a cluster, nsvae must be installed on every node and ``DIR`` must
be on storage that every node shares.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import ray
from ray import tune
from ray.tune.progress_reporter import TrialProgressCallback

from nsvae.errors import TrainingError, one_line
from nsvae.sweep.results import write_results
from nsvae.sweep.trial import TrialSpec, read_record, run_trial

# Ray's socket paths, ``TEMP/session_<date>_<pid>/sockets/plasma_store``, must fit in 107 bytes.
SOCKET_ROOM = 40


def fit(pending: list[TrialSpec], specs: list[TrialSpec], out: Path, resources, say) -> float:
    """Run ``pending`` with Ray Tune (``specs``: every trial, for the results table); return the
    seconds spent starting and stopping Ray."""
    trainable = tune.with_resources(
        tune_trial, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([dataclasses.asdict(s) for s in pending])},
        tune_config=tune.TuneConfig(max_concurrent_trials=resources.max_concurrent,
                                    reuse_actors=True, trial_dirname_creator=tune_dirname),
        run_config=tune.RunConfig(storage_path=str(out / "ray"), name="tune", verbose=0,
                                  callbacks=[Progress(out, specs, len(pending), say)]),
    )
    clock = {}
    with ray_session(out, resources.address, resources.cpus, clock), _quiet("ray.tune"):
        try:
            tuner.fit()
        except (tune.TuneError, ray.exceptions.RayError) as error:
            raise TrainingError(f"Ray Tune failed: {one_line(error)}") from None
    return clock["ray"]


def tune_trial(config: dict) -> None:
    """The Tune trainable: one nsvae trial, described by ``config["trial"]``."""
    run_trial(TrialSpec(**config["trial"]))


def tune_dirname(trial) -> str:
    """Tune's folder of a trial (in ``DIR/ray/tune``) is named as the nsvae trial."""
    return trial.config["trial"]["name"]


class Progress(TrialProgressCallback):
    """Rewrite the results table and say a line each time a trial ends.

    It takes the place of Tune's own trial printer (a subclass, so Tune adds none).
    """

    def __init__(self, out: Path, specs: list[TrialSpec], total: int, say):
        super().__init__()
        self.out, self.specs, self.total, self.say = out, specs, total, say
        self.by_name = {spec.name: spec for spec in specs}
        self.ended = 0

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        pass

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._ended(trial.config["trial"]["name"], None)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(trial.config["trial"]["name"], "its Ray worker died; it resumes on a rerun")

    def _ended(self, name: str, problem: str | None) -> None:
        self.ended += 1
        write_results(self.out, self.specs)
        self.say(f"[{self.ended}/{self.total}] {name}: "
                 f"{problem or describe(read_record(self.by_name[name].directory))}")


def describe(record: dict | None) -> str:
    """``done at step 2000 in 61.2 s`` or ``failed: <error>``."""
    if record is None:
        return "no record"
    if record["status"] == "failed":
        return f"failed: {record['error']}"
    resumed = ", resumed" if record["resumed"] else ""
    return f"done at step {record['step']} in {sum(record['seconds'].values()):.1f} s{resumed}"


@contextlib.contextmanager
def ray_session(out: Path, address: str | None, cpus: int | None, clock: dict) -> Iterator[None]:
    """Ray for the sweep: the session already started in this process, if any (it is left
    running); else a cluster's (``address``) or one started on this machine, stopped after.

    The seconds spent starting and stopping Ray go to ``clock["ray"]``.
    """
    clock["ray"] = 0.0
    if ray.is_initialized():
        yield
        return
    options = {"include_dashboard": False, "log_to_driver": False,
               "logging_level": logging.ERROR}
    start = time.perf_counter()
    with _socket_safe(out / "ray" / "tmp") as temp:
        if address is None:
            ray.init(num_cpus=cpus or os.cpu_count(), _temp_dir=str(temp), **options)
        else:
            ray.init(address=address, **options)
        clock["ray"] += time.perf_counter() - start
        try:
            yield
        finally:
            start = time.perf_counter()
            ray.shutdown()
            clock["ray"] += time.perf_counter() - start


@contextlib.contextmanager
def _socket_safe(folder: Path) -> Iterator[Path]:
    """``folder`` for Ray's temporary files, reached through a short link in the system's
    temporary folder when its path leaves too little room for Ray's socket names."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(str(folder)) <= SOCKET_ROOM:
        yield folder
        return
    holder = Path(tempfile.mkdtemp(prefix="nsvae-"))
    link = holder / "ray"
    link.symlink_to(folder, target_is_directory=True)
    try:
        yield link
    finally:
        shutil.rmtree(holder)


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Raise a logger's level to ERROR for the block (Tune's advice on Ctrl-C names its own
    restore API; nsvae resumes by running the same command)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
