"""The training loop: the objective's step, logs and checkpoints, top to bottom.

Each step draws the batches the objective asks for, runs :func:`nsvae.training.step.train_step`
and adds the step's logs to device-side sums; nothing waits for the device between logging
steps. Every ``log_every`` steps a row goes to ``metrics.jsonl``, every ``eval_every`` steps the
``on_eval`` callback scores the model, and every ``checkpoint_every`` steps a checkpoint is
written (:mod:`nsvae.rundir` describes the run directory). The trainer neither evaluates nor
draws: :mod:`nsvae.experiment` passes it the evaluation and draws the figures afterwards.

``train.precision`` sets the autocast of every step (:mod:`nsvae.precision`); with
``train.compile`` the model's forward pass is compiled (:meth:`torch.nn.Module.compile`, which
keeps the parameter names of checkpoints) and the first step, which pays the compilation, is
timed: its seconds go into the first ``metrics.jsonl`` row as ``compile_s`` and, with
``progress``, onto stderr.

Resuming restores the parameters, every optimiser, every random generator and the log sums, so
on CPU ``N`` steps + resume + ``N`` steps gives bit-identical parameters to ``2N`` steps.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from nsvae.config import Config
from nsvae.data import build_data
from nsvae.data.ground_truth import GroundTruthData
from nsvae.data.sampler import BatchSampler
from nsvae.device import physical_cores, resolve_device, seed_everything
from nsvae.errors import (
    ConfigError,
    Terminated,
    TrainingError,
    TrainingInterrupted,
    handling_signals,
)
from nsvae.files import append_row
from nsvae.models import build_model
from nsvae.objectives import Objective, build_objective
from nsvae.rundir.checkpoint import list_checkpoints, rng_state, set_rng_state
from nsvae.rundir.run import (
    Run,
    check_same_data,
    resumes,
    run_lock,
    training_config,
    write_run_files,
)
from nsvae.training.logs import Meter, TensorBoard
from nsvae.training.state import TrainingState
from nsvae.training.step import train_step

OnEval = Callable[[torch.nn.Module, int], dict]
LINE_SECONDS = 10.0  # without a terminal, a progress line at most this often


def train(
    config: Config | None,
    run_dir: str | Path,
    data: GroundTruthData | None = None,
    resume: bool = False,
    progress: bool = False,
    on_eval: OnEval | None = None,
    stop_file: str | Path | None = None,
) -> Run:
    """Train a VAE as ``config`` says, in ``run_dir``; return the finished run.

    Parameters
    ----------
    config : Config or None
        The run's configuration (defaults when None). With ``resume``, None means the stored
        one; otherwise only fields marked resumable may differ from it.
    run_dir : path-like
        A new (or empty) directory, or with ``resume`` the run to continue. A run that stopped
        before its first checkpoint starts over either way, with a warning. The directory is
        locked while training (:func:`nsvae.rundir.run.run_lock`).
    data : GroundTruthData, optional
        Training data; by default built from ``config.data`` (:func:`nsvae.data.build_data`).
    resume : bool
        Continue from the run's last checkpoint, exactly where it stopped.
    progress : bool
        Show a progress bar on stderr (loss, KL, the objective's own terms, steps/s, ETA); when
        stderr is not a terminal, a plain line every ten seconds instead.
    on_eval : callable, optional
        ``on_eval(model, step) -> dict``, called every ``train.eval_every`` steps with the model
        in eval mode; its result is logged as ``{"step", "eval"}``. Whatever random numbers it
        draws, training continues as without it.
    stop_file : path-like, optional
        A file whose appearance asks training to stop as SIGINT does (checked about once a
        second): how a sweep stops trials that run where its signals do not reach.

    Returns
    -------
    Run
        With the model in eval mode.

    Raises
    ------
    ConfigError
        Invalid configuration, a change on resume that would alter training (other data, or
        fewer steps than taken).
    CheckpointError
        ``run_dir`` already holds a run (without ``resume``) or cannot be resumed.
    RunLockedError
        Another process is training in ``run_dir``.
    TrainingError
        The loss became NaN or infinite; the last good checkpoint is kept.
    TrainingInterrupted
        SIGINT or SIGTERM arrived, or ``stop_file`` appeared; a checkpoint of the current step
        was written first.
    """
    run_dir = Path(run_dir)
    config = training_config(run_dir, config, resume)
    settings = config.train
    device = resolve_device(settings.device)
    torch.set_num_threads(settings.threads or physical_cores())
    data = build_data(config.data) if data is None else data
    state = _training_state(config, data, device)
    with run_lock(run_dir):
        step, elapsed = _start(run_dir, config, data, state, resume)
        log = _Log(run_dir, state.meter, step, elapsed, progress, settings.steps, state.objective)
        log.timing_first_step = settings.compile
        with _StopRequests(stop_file) as stop, log:
            step = _loop(state, log, stop, run_dir, step, device, settings, on_eval)
        if stop.cause and step < settings.steps:
            _save_on_stop(state, log, run_dir, step, device, settings.keep_checkpoints)
            raise TrainingInterrupted(
                f"interrupted by {stop.cause} at step {step}; checkpoint saved, "
                f"continue with: nsvae train --resume {run_dir}",
                stop.signal,
                step,
            )
    run = Run(run_dir, config, state.model.eval(), step)
    run.warn_if_collapsed()
    return run


def _start(
    run_dir: Path, config: Config, data: GroundTruthData, state: TrainingState, resume: bool
) -> tuple[int, float]:
    """Restore the last checkpoint (or start at step 0) and write the run's files.

    Raises
    ------
    ConfigError
        Resuming on data of another factor grid, or with ``train.steps`` below the run's step
        (``config.json`` is left as it was).
    """
    if not resumes(run_dir, resume):
        write_run_files(run_dir, config, data, 0)
        return 0, 0.0
    check_same_data(run_dir, data)
    step, elapsed = state.restore(run_dir)
    if config.train.steps < step:
        raise ConfigError(
            f"train.steps {config.train.steps} is below the step {step} that "
            f"{run_dir} has reached; give --steps {step} or more"
        )
    write_run_files(run_dir, config, data, step, resumed=True)
    return step, elapsed


def _loop(
    state: TrainingState,
    log: _Log,
    stop: _StopRequests,
    run_dir: Path,
    step: int,
    device: torch.device,
    settings,
    on_eval: OnEval | None,
) -> int:
    """Train until ``settings.steps`` or a stop request; return the step reached."""
    while step < settings.steps and not stop.requested():
        loss, logs = train_step(
            state.model, state.objective, state.optimizers, state.sampler, step, settings.precision
        )
        step += 1
        log.add(loss, logs)
        log_due = step % settings.log_every == 0 or step == settings.steps
        eval_due = bool(settings.eval_every) and step % settings.eval_every == 0
        checkpoint_due = step % settings.checkpoint_every == 0 or step == settings.steps
        if log_due or eval_due or checkpoint_due:
            _check_finite(state.meter, step, run_dir)
        if log_due:
            log.row(step)
        if eval_due and on_eval is not None:
            log.evaluation(step, partial(_isolated, on_eval, state.model, step, device))
        if checkpoint_due:
            state.save(run_dir, step, log.elapsed(), device, settings.keep_checkpoints)
            log.saved_step = step
    return step


def _training_state(config: Config, data: GroundTruthData, device: torch.device) -> TrainingState:
    """Seeded model, objective (and its modules), optimisers, sampler and meter, on ``device``."""
    settings = config.train
    observations, scale = data.observations_array()
    seed_everything(settings.seed)
    model = build_model(config.model, num_channels=data.observation_shape[0]).to(device)
    if settings.compile:
        model.compile()
    objective = build_objective(
        config.objective,
        likelihood=model.likelihood,
        z_dim=config.model.z_dim,
        dataset_size=len(observations),
    )
    for module in objective.modules().values():
        module.to(device)
    return TrainingState(
        model=model,
        objective=objective,
        optimizers=objective.optimizers(model, lr=settings.lr, betas=settings.betas),
        sampler=BatchSampler(
            observations,
            settings.batch_size,
            seed=settings.seed,
            scale=scale,
            device=device,
            transform=data.observation_transform,
        ),
        meter=Meter(device),
    )


def _save_on_stop(state, log, run_dir, step, device, keep) -> None:
    """Checkpoint the current step on a stop request, unless it was just saved."""
    if log.saved_step != step:
        _check_finite(state.meter, step, run_dir)
        state.save(run_dir, step, log.elapsed(), device, keep)


def _isolated(on_eval: OnEval, model: torch.nn.Module, step: int, device: torch.device) -> dict:
    """``on_eval(model, step)`` in eval mode, leaving the training's RNG streams untouched."""
    state = rng_state(device)
    model.eval()
    try:
        return on_eval(model, step)
    finally:
        model.train()
        set_rng_state(state)


def _check_finite(meter: Meter, step: int, run_dir: Path) -> None:
    """Raise :class:`TrainingError` if a loss since the last check was NaN or infinite."""
    bad = meter.first_nonfinite_step(step)
    if bad is not None:
        found = list_checkpoints(run_dir / "checkpoints")
        kept = f"last good checkpoint: {found[-1].with_suffix('')}" if found else "no checkpoint"
        raise TrainingError(
            f"loss became NaN or infinite at step {bad} (checked at step {step}); {kept}"
        )


class _Log:
    """``metrics.jsonl`` rows, their TensorBoard mirror, the progress bar and the clock."""

    def __init__(
        self,
        run_dir: Path,
        meter: Meter,
        step: int,
        elapsed: float,
        progress: bool,
        total: int,
        objective: Objective,
    ):
        self.path, self.meter, self.before = run_dir / "metrics.jsonl", meter, elapsed
        self.saved_step = step if step else None
        self.start = self.last_time = time.perf_counter()
        self.last_step = step
        self.timing_first_step, self.first_step_s = False, None
        self.shown = [
            "loss",
            "kl",
            *(
                key
                for key, logged in objective.logged.items()
                if logged.kind == "scalar" and key not in ("recon", "kl")
            ),
        ]
        self.stack = contextlib.ExitStack()
        self.board = self.stack.enter_context(
            contextlib.closing(TensorBoard(run_dir / "tensorboard"))
        )
        self.lines = progress and not sys.stderr.isatty()  # a log gets lines, not a bar
        self.bar = self.stack.enter_context(
            tqdm(total=total, initial=step, unit="step", disable=not progress or self.lines)
        )
        self.total, self.last_line = total, 0.0

    def __enter__(self) -> _Log:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stack.close()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.start

    def add(self, loss: torch.Tensor, logs: dict) -> None:
        if self.timing_first_step:
            self._time_first_step()
        self.meter.add(loss, logs)
        self.bar.update()

    def _time_first_step(self) -> None:
        """Note how long the first step took (a compiled model compiles during it)."""
        self.timing_first_step = False
        self.first_step_s = round(time.perf_counter() - self.start, 3)
        if not self.bar.disable:
            self.bar.write(
                f"torch.compile: first step took {self.first_step_s:.1f} s", file=sys.stderr
            )

    def row(self, step: int) -> None:
        now = time.perf_counter()
        row = {
            "step": step,
            "time": round(self.elapsed(), 3),
            **self.meter.flush(),
            "steps_per_s": (step - self.last_step) / max(now - self.last_time, 1e-9),
        }
        if self.first_step_s is not None:
            row["compile_s"], self.first_step_s = self.first_step_s, None
        self._write(row)
        shown = " ".join(f"{key}={row[key]:.4g}" for key in self.shown if key in row)
        self.bar.set_postfix_str(shown, refresh=False)
        if self.lines and (now - self.last_line >= LINE_SECONDS or step == self.total):
            print(f"step {step}/{self.total} {shown}", file=sys.stderr, flush=True)
            self.last_line = now
        self.last_step, self.last_time = step, now

    def evaluation(self, step: int, evaluate: Callable[[], dict]) -> None:
        began = time.perf_counter()
        self._write({"step": step, "eval": evaluate()})
        self.last_time += time.perf_counter() - began  # keep steps/s about training

    def _write(self, row: dict) -> None:
        append_row(self.path, row)
        self.board.write(row)


class _StopRequests:
    """Turn the first SIGINT or SIGTERM, or ``stop_file`` appearing, into a request to stop
    after the current step.

    A second signal interrupts at once (``KeyboardInterrupt``, or
    :class:`~nsvae.errors.Terminated` for SIGTERM). Handlers are installed only in the main
    thread (:func:`~nsvae.errors.handling_signals`) and restored on exit; elsewhere (a Ray
    worker's training thread) only the file stops training. The file is looked for at most once
    a second.

    Attributes
    ----------
    signal : str or None
        The signal's name once a stop is requested (``"SIGINT"`` for the file).
    cause : str or None
        What asked: the signal's name or ``"a stop request (FILE)"``.
    """

    FILE_CHECK_SECONDS = 1.0

    def __init__(self, stop_file: str | Path | None = None):
        self.stop_file = None if stop_file is None else Path(stop_file)
        self.signal = self.cause = None
        self.checked = -float("inf")
        self.handlers = contextlib.ExitStack()

    def __enter__(self):
        self.handlers.enter_context(
            handling_signals(dict.fromkeys((signal.SIGINT, signal.SIGTERM), self._handle))
        )
        return self

    def requested(self) -> bool:
        """Whether to stop now."""
        if (
            self.cause is None
            and self.stop_file is not None
            and time.monotonic() - self.checked >= self.FILE_CHECK_SECONDS
        ):
            self.checked = time.monotonic()
            if self.stop_file.exists():
                self.signal, self.cause = "SIGINT", f"a stop request ({self.stop_file})"
        return self.cause is not None

    def _handle(self, number, frame):
        if self.cause is not None:
            raise Terminated if number == signal.SIGTERM else KeyboardInterrupt
        self.signal = self.cause = signal.Signals(number).name

    def __exit__(self, *exc_info):
        self.handlers.close()
