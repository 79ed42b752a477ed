"""Trials on Ray Tune: Ray started embedded (no dashboard, files under ``DIR/ray``) or on a cluster.

Each Tune trial runs one nsvae trial (:func:`nsvae.sweep.trial.run_trial`) in a Ray worker; the
trial writes everything to its own directory, and the driver rewrites the results table and says
a line each time one ends. On a cluster, nsvae must be installed on every node and ``DIR`` must
be on storage that every node shares.

Ctrl-C (SIGINT) or SIGTERM does not reach a trial: Ray's workers block SIGINT, and training runs
in a worker's thread, where Python installs no handlers. So the driver's first signal writes
``DIR/.stop`` (:class:`StopRequest`); every running trial sees it within a second, checkpoints
its current step and ends, and no new trial starts. A second signal (more than a second later)
stops at once, losing the steps since each trial's last checkpoint. A SIGTERM sent to the whole
process group also reaches Ray's own processes, which end at once: send it to the driver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import ray
from ray import tune

from nsvae.errors import TrainingError, TrainingInterrupted, handling_signals, one_line
from nsvae.files import atomic_write
from nsvae.sweep.results import write_results
from nsvae.sweep.trial import TrialSpec, has_checkpoint, new_record, run_trial

# Ray's socket paths, ``TEMP/session_<date>_<pid>/sockets/plasma_store``, must fit in 107 bytes.
SOCKET_ROOM = 40
STOP_FILE = ".stop"  # written in DIR by the first Ctrl-C: running trials checkpoint and end
# Times Tune restarts a trial whose worker died (a lost node, the OOM killer): the trial resumes
# from its last checkpoint in its directory. A trial's own errors never reach Tune (they are
# recorded in its trial.json), so only a lost worker is retried.
WORKER_RETRIES = 3


def fit(
    pending: list[TrialSpec],
    specs: list[TrialSpec],
    out: Path,
    resources,
    say,
    before: dict[str, dict | None],
) -> tuple[float, str | None]:
    """Run ``pending`` with Ray Tune (``specs``: every trial, for the results table; ``before``:
    each pending trial's record before the sweep); return the seconds spent starting and
    stopping Ray, and the signal that stopped the sweep (or None)."""
    request = StopRequest(out / STOP_FILE)
    pending = [dataclasses.replace(spec, stop_file=str(request.file)) for spec in pending]
    trainable = tune.with_resources(
        tune_trial, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial}
    )
    progress = Progress(out, specs, before, say, request)
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([dataclasses.asdict(s) for s in pending])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=resources.max_concurrent,
            reuse_actors=True,
            trial_dirname_creator=tune_dirname,
        ),
        run_config=tune.RunConfig(
            storage_path=str(out / "ray"),
            name="tune",
            verbose=0,
            stop=StopWhenAsked(progress),
            callbacks=[progress],
            failure_config=tune.FailureConfig(max_failures=WORKER_RETRIES),
        ),
    )
    clock = {}
    with (
        ray_session(out, resources.address, resources.cpus, clock),
        _quiet("ray.tune"),
        _stopping_on_signals(request),
    ):
        try:
            tuner.fit()
        except (tune.TuneError, ray.exceptions.RayError) as error:
            raise TrainingError(f"Ray Tune failed: {one_line(error)}") from None
    return clock["ray"], request.signal


def tune_trial(config: dict) -> None:
    """The Tune trainable: one nsvae trial, described by ``config["trial"]``; none once the
    sweep is stopping."""
    spec = TrialSpec(**config["trial"])
    if spec.stop_file and Path(spec.stop_file).exists():
        return
    with contextlib.suppress(TrainingInterrupted):  # checkpointed, unfinished: a rerun resumes
        run_trial(spec)


def tune_dirname(trial) -> str:
    """Tune's folder of a trial (in ``DIR/ray/tune``) is named as the nsvae trial."""
    return trial.config["trial"]["name"]


class Progress(tune.Callback):
    """Rewrite the results table and say a line each time a trial ends; keep the names of the
    trials running.

    A public Tune callback, kept whichever output engine Ray uses (``RAY_AIR_NEW_OUTPUT``);
    Tune's own printer runs at verbosity 0 beside it, which prints only, at the start, its
    configuration table and its results folder (Ray 2.60's new engine prints these at any
    verbosity). It also says
    when the sweep starts stopping (not the signal handler: printing there could re-enter a
    print). A trial that Tune starts once the stop is asked returns at once and is not counted.
    """

    def __init__(
        self,
        out: Path,
        specs: list[TrialSpec],
        before: dict[str, dict | None],
        say,
        request: StopRequest,
    ):
        super().__init__()
        self.out, self.specs, self.before, self.say = out, specs, before, say
        self.request = request
        self.by_name = {spec.name: spec for spec in specs}
        self.ended = 0
        self.running: set[str] = set()
        self.announced = False

    def on_step_begin(self, iteration, trials, **info) -> None:
        if self.request.signal and not self.announced:
            self.announced = True
            self.say(
                f"{self.request.signal}: stopping; each running trial saves a checkpoint at "
                "its next step (one being evaluated finishes first). Press Ctrl-C again to "
                "stop at once, losing their steps since their last checkpoint."
            )

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if self.request.signal is None:
            self.running.add(trial.config["trial"]["name"])

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        pass

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._ended(trial.config["trial"]["name"], None)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.say(
            f"{trial.config['trial']['name']}: its Ray worker died or its node was lost; it "
            f"starts again from its last checkpoint (retry {trial.num_failures} of "
            f"{WORKER_RETRIES})"
        )

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(
            trial.config["trial"]["name"],
            f"its Ray worker died {WORKER_RETRIES + 1} times; it resumes on a rerun",
        )

    def _ended(self, name: str, problem: str | None) -> None:
        if name not in self.running:
            return  # started after the stop request: it did nothing
        self.running.remove(name)
        self.ended += 1
        write_results(self.out, self.specs)
        directory = self.by_name[name].directory
        record = new_record(directory, self.before[name])
        self.say(
            f"[{self.ended}/{len(self.before)}] {name}: "
            f"{problem or describe(record, has_checkpoint(directory))}"
        )


class StopRequest:
    """The sweep's stop: the first SIGINT or SIGTERM writes ``file`` (which tells the trials)
    and keeps the signal's name; another, more than :attr:`REPEAT_SECONDS` later, raises
    ``KeyboardInterrupt`` (a terminal and a wrapper may deliver one Ctrl-C twice)."""

    REPEAT_SECONDS = 1.0

    def __init__(self, file: Path):
        self.file = file
        self.signal: str | None = None
        self.asked_at = 0.0
        file.unlink(missing_ok=True)  # left by a sweep killed while stopping

    def handle(self, number, frame) -> None:
        if self.signal is None:
            self.signal, self.asked_at = signal.Signals(number).name, time.monotonic()
            atomic_write(self.file, self.signal.encode())
        elif time.monotonic() - self.asked_at > self.REPEAT_SECONDS:
            raise KeyboardInterrupt


class StopWhenAsked(tune.Stopper):
    """End the experiment once the stop is asked and no trial is running any more (pending
    trials never start): Tune's own stop would kill the running trials' workers before they
    checkpoint."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.progress.request.signal is not None and not self.progress.running


def describe(record: dict | None, checkpointed: bool) -> str:
    """``done at step 2000 in 61.2 s``, ``failed: <error>``, or (no record: stopped) whether it
    resumes from a checkpoint."""
    if record is None:
        return (
            "stopped with a checkpoint; a rerun resumes it"
            if checkpointed
            else "stopped before its first checkpoint; a rerun starts it again"
        )
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
    options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
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
def _stopping_on_signals(request: StopRequest) -> Iterator[None]:
    """For the block, SIGINT and SIGTERM go to ``request`` (Tune's own SIGINT handler is turned
    off); its file is removed after."""
    tune_handler = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        with handling_signals(dict.fromkeys((signal.SIGINT, signal.SIGTERM), request.handle)):
            yield
    finally:
        if tune_handler is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER")
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = tune_handler
        request.file.unlink(missing_ok=True)


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
    """Raise a logger's level to CRITICAL for the block: Tune's advice on Ctrl-C names its own
    restore API (nsvae resumes by running the same command), and its traceback of a lost worker
    says less than nsvae's line about the trial (the error file stays under ``DIR/ray``)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
