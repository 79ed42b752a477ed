"""The training loop: one objective, one Adam optimiser, logs and checkpoints, top to bottom.

Each step draws a batch from an in-memory sampler, runs the model, asks the objective for one
scalar loss (recomputing the selection KL on an independent batch when the objective wants it),
and takes one backward pass and one optimiser step. Nothing waits for the device between logging
steps. A run lives in one directory (design section 5)::

    run_dir/config.json        {"config", "versions", "observation_shape"}
    run_dir/metrics.jsonl      one row per logging step (and per evaluation)
    run_dir/checkpoints/       step-XXXXXXXX.safetensors + .json, the newest K
    run_dir/figures/           traversals.png, reconstructions.png

Resuming restores the parameters, the optimiser, every random generator and the log sums, so on
CPU ``N`` steps + resume + ``N`` steps gives bit-identical parameters to ``2N`` steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import nsvae
from nsvae.config import Config
from nsvae.data.ground_truth import GroundTruthData
from nsvae.data.sampler import BatchSampler
from nsvae.errors import CheckpointError, ConfigError, TrainingError, TrainingInterrupted
from nsvae.models import VAE, build_model
from nsvae.objectives import build_objective, kl_per_latent
from nsvae.train.checkpoint import (
    atomic_write,
    join_optimizer,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    split_optimizer,
)
from nsvae.train.logs import Meter, TensorBoard, append_row, read_rows

# Settings that may differ when a run is resumed: none of them changes what a step computes.
RESUMABLE = {
    "data": {"path", "data_root"},
    "train": {"steps", "device", "threads", "log_every", "checkpoint_every", "keep_checkpoints",
              "eval_every", "figures"},
}
FIGURE_IMAGES = 20


@dataclass
class Run:
    """A training run on disk, with its model at the last checkpoint.

    Attributes
    ----------
    path : Path
        The run directory.
    config : Config
        The configuration that produced it.
    model : VAE
        In eval mode, with the parameters of the last checkpoint.
    step : int
        Steps taken at that checkpoint.
    """

    path: Path
    config: Config
    model: VAE
    step: int

    def data(self) -> GroundTruthData:
        """The dataset named by the run's config."""
        return build_data(self.config.data)

    def metrics(self) -> list[dict]:
        """Every row of ``metrics.jsonl``: training rows, then ``{"step", "eval"}`` rows."""
        return read_rows(self.path / "metrics.jsonl")


def train(
    config: Config | None,
    run_dir: str | Path,
    data: GroundTruthData | None = None,
    resume: bool = False,
    progress: bool = False,
) -> Run:
    """Train a VAE as ``config`` says, in ``run_dir``; return the finished run.

    Parameters
    ----------
    config : Config or None
        The run's configuration (defaults when None). With ``resume``, None means the stored
        one; otherwise only the settings in :data:`RESUMABLE` may differ from it.
    run_dir : path-like
        A new (or empty) directory, or with ``resume`` the run to continue.
    data : GroundTruthData, optional
        Training data; by default built from ``config.data`` (:func:`nsvae.data.get_dataset`).
    resume : bool
        Continue from the run's last checkpoint, exactly where it stopped.
    progress : bool
        Show a progress bar on stderr (loss, KL, synergy term, steps/s, ETA).

    Returns
    -------
    Run

    Raises
    ------
    ConfigError
        Invalid configuration, or a change on resume that would alter training.
    CheckpointError
        ``run_dir`` already holds a run (without ``resume``) or cannot be resumed.
    TrainingError
        The loss became NaN or infinite; the last good checkpoint is kept.
    TrainingInterrupted
        SIGINT or SIGTERM arrived; a checkpoint of the current step was written first.
    """
    run_dir = Path(run_dir)
    config = _resume_config(run_dir, config) if resume else _fresh_config(run_dir, config)
    tc = config.train
    device = resolve_device(tc.device)
    torch.set_num_threads(tc.threads or physical_cores())

    data = build_data(config.data) if data is None else data
    observations, scale = data.observations_array()
    seed_everything(tc.seed)
    model = build_model(config.model, num_channels=data.observation_shape[0]).to(device)
    objective = build_objective(config.objective, likelihood=model.likelihood)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, betas=tc.betas)
    sampler = BatchSampler(observations, tc.batch_size, seed=tc.seed, scale=scale, device=device,
                           transform=data.observation_transform)
    meter = Meter(device)
    step, elapsed = 0, 0.0
    if resume:
        step, elapsed = restore(run_dir, model, optimizer, sampler, meter)
    _write_run_files(run_dir, config, data, step)
    metrics_path = run_dir / "metrics.jsonl"

    saved_step = step if resume else None
    start = last_log_time = time.perf_counter()
    last_log_step = step
    with (
        _StopSignals() as stop,
        contextlib.closing(TensorBoard(run_dir / "tensorboard")) as board,
        tqdm(total=tc.steps, initial=step, unit="step", disable=not progress) as bar,
    ):
        while step < tc.steps and not stop.signal:
            batch = sampler.next()
            outputs = model(batch)
            selection_kl = None
            if objective.selection_batch == "independent":
                with torch.no_grad():
                    selection_kl = kl_per_latent(*model.encode(sampler.next()))
            loss, logs = objective.loss(outputs, batch, step, selection_kl=selection_kl)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            meter.add(loss, logs)
            bar.update()

            log_due = step % tc.log_every == 0 or step == tc.steps
            eval_due = bool(tc.eval_every) and step % tc.eval_every == 0
            checkpoint_due = step % tc.checkpoint_every == 0 or step == tc.steps
            if log_due or eval_due or checkpoint_due:
                _check_finite(meter, step, run_dir)
            if log_due:
                now = time.perf_counter()
                row = {"step": step, "time": round(elapsed + now - start, 3), **meter.flush(),
                       "steps_per_s": (step - last_log_step) / max(now - last_log_time, 1e-9)}
                append_row(metrics_path, row)
                board.write(row)
                bar.set_postfix_str(_postfix(row), refresh=False)
                last_log_step, last_log_time = step, now
            if eval_due:
                began = time.perf_counter()
                row = {"step": step, "eval": evaluate_fast(model, data, tc.seed, device)}
                append_row(metrics_path, row)
                board.write(row)
                last_log_time += time.perf_counter() - began  # keep steps/s about training
            if checkpoint_due:
                save(run_dir, step, elapsed + time.perf_counter() - start, model, optimizer,
                     sampler, meter, device, tc.keep_checkpoints)
                saved_step = step

    if stop.signal and step < tc.steps:
        if saved_step != step:
            _check_finite(meter, step, run_dir)
            save(run_dir, step, elapsed + time.perf_counter() - start, model, optimizer, sampler,
                 meter, device, tc.keep_checkpoints)
        raise TrainingInterrupted(
            f"interrupted by {stop.signal} at step {step}; checkpoint saved, "
            f"continue with: nsvae train --resume {run_dir}"
        )
    model.eval()
    if tc.figures:
        save_figures(model, data, run_dir / "figures", tc.seed, _last_kl(metrics_path))
    return Run(run_dir, config, model, step)


def load_run(run_dir: str | Path, device: str = "cpu") -> Run:
    """Open a run directory: its config and its model at the last checkpoint (eval mode).

    Raises
    ------
    CheckpointError
        If the directory, its ``config.json`` or its last checkpoint is missing or corrupt.
    """
    run_dir = Path(run_dir)
    config, observation_shape = read_run_config(run_dir)
    model = build_model(config.model, num_channels=observation_shape[0])
    tensors, state = load_checkpoint(_last_checkpoint(run_dir))
    _load_model(model, tensors)
    return Run(run_dir, config, model.to(resolve_device(device)).eval(), state["step"])


# ----------------------------------------------------------------------------- run directory


def read_run_config(run_dir: Path) -> tuple[Config, tuple[int, ...]]:
    """The config and observation shape stored in ``run_dir/config.json``.

    Raises
    ------
    CheckpointError
        If the file is missing or corrupt.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"not a run directory (no config.json): {run_dir}")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return Config.from_dict(stored["config"]), tuple(stored["observation_shape"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
            ConfigError) as error:
        raise CheckpointError(f"corrupt {path}: {error}") from None


def _fresh_config(run_dir: Path, config: Config | None) -> Config:
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise CheckpointError(
            f"{run_dir} already exists and is not empty; resume it or choose another run directory"
        )
    return (Config() if config is None else config).validate()


def _resume_config(run_dir: Path, config: Config | None) -> Config:
    stored, _ = read_run_config(run_dir)
    if config is None:
        return stored.validate()
    old, new = stored.to_dict(), config.to_dict()
    for section, values in new.items():
        for key, value in values.items():
            if value != old[section][key] and key not in RESUMABLE.get(section, ()):
                raise ConfigError(
                    f"cannot change {section}.{key} when resuming {run_dir} "
                    f"(run has {old[section][key]!r}, got {value!r})"
                )
    return config.validate()


def _write_run_files(run_dir: Path, config: Config, data: GroundTruthData, step: int) -> None:
    """Create the run's folders, write ``config.json`` and drop metrics rows after ``step``."""
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "figures").mkdir(exist_ok=True)
    record = {"config": config.to_dict(), "versions": nsvae.versions(),
              "observation_shape": list(data.observation_shape)}
    atomic_write(run_dir / "config.json", (json.dumps(record, indent=2) + "\n").encode())
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():  # rows logged after the checkpoint we resume from will be logged again
        rows = [row for row in read_rows(metrics) if row["step"] <= step]
        atomic_write(metrics, "".join(json.dumps(row) + "\n" for row in rows).encode())


def build_data(data_config) -> GroundTruthData:
    """The dataset of a :class:`nsvae.config.DataConfig` from the registry."""
    from nsvae.data import get_dataset

    options = {"path": data_config.path, "data_root": data_config.data_root}
    return get_dataset(data_config.name, **{k: v for k, v in options.items() if v is not None})


# ----------------------------------------------------------------------------- checkpoints


def save(run_dir, step, elapsed, model, optimizer, sampler, meter, device, keep) -> Path:
    """Write a checkpoint of everything the next step depends on."""
    optimizer_tensors, optimizer_layout = split_optimizer(optimizer)
    meter_tensors, meter_state = meter.state()
    tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()},
               **optimizer_tensors, **meter_tensors}
    state = {"elapsed": elapsed, "optimizer": optimizer_layout, "rng": rng_state(device),
             "sampler": sampler.state_dict(), "meter": meter_state}
    return save_checkpoint(run_dir / "checkpoints", step, tensors, state, keep)


def restore(run_dir, model, optimizer, sampler, meter) -> tuple[int, float]:
    """Load the last checkpoint of ``run_dir`` into the training objects; return (step, elapsed)."""
    tensors, state = load_checkpoint(_last_checkpoint(run_dir))
    _load_model(model, tensors)
    join_optimizer(optimizer, tensors, state.get("optimizer", {}))
    try:
        sampler.load_state_dict(state["sampler"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint sampler state is corrupt: {error}") from None
    meter.load_state(tensors, state.get("meter", {}), state["step"])
    set_rng_state(state.get("rng", {}))
    return state["step"], float(state.get("elapsed", 0.0))


def _last_checkpoint(run_dir: Path) -> Path:
    found = list_checkpoints(Path(run_dir) / "checkpoints")
    if not found:
        raise CheckpointError(f"no checkpoint in {run_dir}")
    return found[-1]


def _load_model(model: VAE, tensors: dict[str, torch.Tensor]) -> None:
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise CheckpointError(f"checkpoint does not fit the model of the config: {first}") from None


def _check_finite(meter: Meter, step: int, run_dir: Path) -> None:
    """Raise :class:`TrainingError` if a loss since the last check was NaN or infinite."""
    bad = meter.first_nonfinite_step(step)
    if bad is not None:
        found = list_checkpoints(run_dir / "checkpoints")
        kept = f"last good checkpoint: {found[-1].with_suffix('')}" if found else "no checkpoint"
        raise TrainingError(
            f"loss became NaN or infinite at step {bad} (checked at step {step}); {kept}"
        )


# ----------------------------------------------------------------------------- environment


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unavailable CUDA device is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device is cuda but CUDA is not available (use cpu or auto)")
        if (device.index or 0) >= torch.cuda.device_count():
            raise ConfigError(f"no CUDA device {device.index} ({torch.cuda.device_count()} found)")
    return device


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads of one core count once)."""
    if hasattr(os, "sched_getaffinity"):
        cpus = os.sched_getaffinity(0)
    else:
        cpus = range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's and Python's global generators."""
    import random

    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the global generator, for code that uses it)
    random.seed(seed)


class _StopSignals:
    """Turn the first SIGINT or SIGTERM into a request to stop after the current step.

    A second signal interrupts at once (KeyboardInterrupt). Handlers are installed only in the
    main thread (Python's rule) and restored on exit.
    """

    def __enter__(self):
        self.signal = None
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self.previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number, frame):
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(number).name

    def __exit__(self, *exc_info):
        for number, handler in self.previous.items():
            signal.signal(number, handler)


# ----------------------------------------------------------------------------- evaluation, figures


def evaluate_fast(model: VAE, data: GroundTruthData, seed: int, device: torch.device) -> dict:
    """The fast metric suite on the current model, leaving the training's RNG streams untouched."""
    from nsvae.metrics.evaluate import evaluate

    state = rng_state(device)
    model.eval()
    try:
        return evaluate(model, data, fast=True, seed=seed)["metrics"]
    finally:
        model.train()
        set_rng_state(state)


def save_figures(model: VAE, data: GroundTruthData, folder: Path, seed: int, kl) -> None:
    """``traversals.png`` and ``reconstructions.png`` of a fixed sample of observations."""
    from nsvae.viz.traversals import save_reconstructions, save_traversals

    observations = data.sample_observations(FIGURE_IMAGES, np.random.RandomState(seed))
    save_traversals(model, observations, folder / "traversals.png", kl_per_latent=kl)
    save_reconstructions(model, observations, folder / "reconstructions.png")


def _last_kl(metrics_path: Path) -> list[float] | None:
    rows = [row for row in read_rows(metrics_path) if "kl_per_latent" in row]
    return rows[-1]["kl_per_latent"] if rows else None


def _postfix(row: dict) -> str:
    text = f"loss={row['loss']:.4g} kl={row['kl']:.4g}"
    return text + (f" syn={row['synergy']:.4g}" if "synergy" in row else "")

