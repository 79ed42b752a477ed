"""A run directory: what training writes and every later stage reads (design section 5)::

    run_dir/config.json        {"config", "versions", "starts", "observation_shape", "data_grid"}
    run_dir/metrics.jsonl      one row per logging step (and per evaluation)
    run_dir/checkpoints/       step-XXXXXXXX.safetensors + .json, the newest K
    run_dir/figures/           figures (the report's, and traversals after training)
    run_dir/tensorboard/       a mirror of metrics.jsonl, when TensorBoard is installed
    run_dir/eval.json          metrics with their parameters and provenance
    run_dir/report.html        one self-contained page
    run_dir/model.safetensors  the model's weights alone, in a folder exported for sharing
    run_dir/.lock              held (flock) by the process training the run

This module sits below training and evaluation: both open runs through it, neither imports
the other.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nsvae.config import Config, resumable_fields
from nsvae.data import build_data
from nsvae.data.ground_truth import GroundTruthData
from nsvae.device import resolve_device
from nsvae.errors import CheckpointError, ConfigError, one_line, warn
from nsvae.files import file_lock, read_json, read_rows, write_json, write_rows
from nsvae.models import VAE, build_model
from nsvae.precision import resolve_precision
from nsvae.provenance import TRAINED_ON, versions
from nsvae.rundir.checkpoint import (
    WEIGHTS,
    list_checkpoints,
    load_latest,
    load_module,
    load_weights,
    save_weights,
)

CONVERT_HINT = (
    "write its objective section with only the fields of its objective "
    "(see nsvae.objectives.OBJECTIVES[name].Config)"
)
LOCK = ".lock"
COLLAPSED_KL = 0.01  # nats: a latent whose KL stays below this carries no information
FINGERPRINT_POINTS = 16  # observations hashed to tell one dataset from another of its grid


@dataclass
class Run:
    """A training run on disk, with its model at the last checkpoint (or, in an exported
    folder, its exported weights).

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
        """Build the dataset named by the run's config (a new object at every call)."""
        return build_data(self.config.data)

    def metrics(self) -> list[dict]:
        """Every row of ``metrics.jsonl``: training rows, then ``{"step", "eval"}`` rows."""
        return read_rows(self.path / "metrics.jsonl")

    def record(self) -> dict:
        """The whole ``config.json``: ``config``, ``versions`` and ``observation_shape``."""
        return read_json(self.path / "config.json")

    def warn_if_collapsed(self) -> None:
        """Warn when the last logged KL of every latent is below :data:`COLLAPSED_KL`."""
        rows = [row for row in self.metrics() if isinstance(row.get("kl_per_latent"), list)]
        if rows and max(rows[-1]["kl_per_latent"], default=0.0) < COLLAPSED_KL:
            warn(
                f"every latent of {self.path} has collapsed to the prior (KL < {COLLAPSED_KL} "
                f"nats at step {rows[-1]['step']}): the model encodes nothing, and its "
                "metrics measure noise"
            )


def load_run(run_dir: str | Path, device: str = "cpu") -> Run:
    """Open a run directory: its config and its model at the last checkpoint (eval mode), or,
    in a folder written by :func:`export_run` (no checkpoints), its exported weights.

    Raises
    ------
    CheckpointError
        If the directory, its ``config.json`` or its last checkpoint is missing or corrupt.
    """
    run_dir = Path(run_dir)
    config, observation_shape = read_run_config(run_dir)
    model = build_model(config.model, num_channels=observation_shape[0])
    if not list_checkpoints(run_dir / "checkpoints") and (run_dir / WEIGHTS).is_file():
        weights, step = load_weights(run_dir / WEIGHTS)
        load_module(model, weights)
    else:
        tensors, state = load_latest(run_dir)
        load_module(model, tensors, "model")
        step = state["step"]
    return Run(run_dir, config, model.to(resolve_device(device)).eval(), step)


#: What :func:`export_run` copies besides the weights (those that exist).
EXPORTED = ("config.json", "metrics.jsonl", "eval.json", "report.html", "figures")


def export_run(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Copy a run's results and its model's weights (no optimiser state, no checkpoints, no
    TensorBoard files) into ``out_dir``, which :func:`load_run` then opens for evaluation and
    reports: a few MB to commit or share. Returns the weights file's path.

    Raises
    ------
    CheckpointError
        If the run cannot be loaded or holds a symbolic link among the exported files, or
        ``out_dir`` is the run itself or inside it, is not empty, or cannot be written.
    """
    run = load_run(run_dir)
    out_dir = Path(out_dir)
    if out_dir.resolve() == run.path.resolve():
        raise CheckpointError(f"export {run.path} into another folder, not into itself")
    if out_dir.resolve().is_relative_to(run.path.resolve()):
        raise CheckpointError(f"export {run.path} into a folder outside it, not {out_dir}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise CheckpointError(f"{out_dir} exists and is not empty; export into a new folder")
    for name in EXPORTED:
        link = _first_link(run.path / name)
        if link is not None:
            raise CheckpointError(
                f"{link} is a symbolic link; nsvae exports files, not links "
                "(a link in a shared folder points at the sharer's files)"
            )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in EXPORTED:
            source, target = run.path / name, out_dir / name
            if source.is_dir():
                shutil.copytree(source, target)
            elif source.is_file():
                shutil.copy2(source, target)
    except OSError as error:
        raise CheckpointError(f"cannot export to {out_dir}: {one_line(error)}") from None
    save_weights(out_dir / WEIGHTS, run.model, run.step)
    return out_dir / WEIGHTS


def _first_link(path: Path) -> Path | None:
    """``path`` or the first symbolic link under it (None: no link)."""
    if path.is_symlink():
        return path
    if path.is_dir():
        for folder, names, files in os.walk(path):
            for name in sorted(names + files):
                if (Path(folder) / name).is_symlink():
                    return Path(folder) / name
    return None


def read_run_config(run_dir: str | Path) -> tuple[Config, tuple[int, ...]]:
    """The config and observation shape stored in ``run_dir/config.json``.

    Files written before each objective had its own config section load too
    (:meth:`Config.from_stored`).

    Raises
    ------
    CheckpointError
        If the file is missing or corrupt.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"not a run directory (no config.json): {run_dir}")
    stored = read_json(path)
    try:
        config = Config.from_stored(stored["config"])
        shape = tuple(stored["observation_shape"])
    except KeyError as error:
        raise CheckpointError(f"corrupt {path}: no {one_line(error)} field") from None
    except TypeError as error:
        raise CheckpointError(
            f"corrupt {path}: not laid out as nsvae writes it ({one_line(error)})"
        ) from None
    except ConfigError as error:
        raise CheckpointError(f"corrupt {path}: {error}; {CONVERT_HINT}") from None
    if not shape or not all(
        isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape
    ):
        raise CheckpointError(
            f"corrupt {path}: observation_shape {list(shape)} is not a list of positive ints"
        )
    try:
        return config.validate(), shape
    except ConfigError as error:
        raise CheckpointError(f"corrupt {path}: {error}") from None


def run_lock(run_dir: Path):
    """The lock of the process that trains ``run_dir`` (a context manager; never waits).

    Raises
    ------
    RunLockedError
        Another process trains there (the lock dies with its holder, however it ends).
    """
    return file_lock(
        Path(run_dir) / LOCK,
        wait=False,
        busy=lambda pid: (
            f"{run_dir} is in use by another nsvae process (pid {pid}); wait for it to finish "
            "or choose another run directory"
        ),
    )


def resumes(run_dir: Path, resume: bool) -> bool:
    """Whether training in ``run_dir`` continues from a checkpoint; call it holding the lock.

    A run stopped before its first checkpoint (killed, or a NaN loss) starts over, with a
    warning, whether it is trained afresh or resumed.

    Raises
    ------
    CheckpointError
        A fresh run in a directory that holds anything else.
    """
    used = CheckpointError(
        f"{run_dir} already exists and is not empty; resume it or choose another run directory"
    )
    if list_checkpoints(run_dir / "checkpoints"):
        if resume:
            return True
        raise used
    entries = {path.name for path in run_dir.iterdir()} - {LOCK} if run_dir.is_dir() else set()
    if WEIGHTS in entries:
        raise CheckpointError(
            f"{run_dir} is an exported model (weights only, no optimiser "
            "state): it cannot be trained further; train a new run"
        )
    if "config.json" in entries:
        warn(f"{run_dir} has no checkpoint (it stopped before its first one); starting it over")
        shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
        return False
    if resume:
        raise CheckpointError(f"not a run directory (no config.json): {run_dir}")
    if entries:
        raise used
    return False


def check_same_data(run_dir: Path, data: GroundTruthData) -> None:
    """Refuse to resume ``run_dir`` on data with another factor grid than it was trained on;
    warn when the grid is the same but the observations differ (another file of the same
    layout, or images rendered anew).

    Raises
    ------
    ConfigError
        The factor sizes or names differ from those stored in ``config.json``.
    """
    stored = read_json(run_dir / "config.json").get("data_grid")
    if stored is None:
        return
    grid = data_grid(data)
    if {k: v for k, v in stored.items() if k != "fingerprint"} != {
        k: v for k, v in grid.items() if k != "fingerprint"
    }:
        raise ConfigError(
            f"cannot resume {run_dir} on other data: it was trained on factor grid "
            f"{stored}, the data given has {grid}"
        )
    if stored.get("fingerprint", grid["fingerprint"]) != grid["fingerprint"]:
        warn(
            f"resuming {run_dir} on other observations than it was trained on: the factor grid "
            f"is the same, but {FINGERPRINT_POINTS} sample observations differ (fingerprint "
            f"{grid['fingerprint']}, trained on {stored['fingerprint']})"
        )


def data_grid(data: GroundTruthData) -> dict:
    """The factor grid of ``data`` as ``config.json`` stores it, with a fingerprint of its
    observations (:func:`data_fingerprint`)."""
    return {
        "factor_sizes": list(data.factor_sizes),
        "factor_names": list(data.factor_names),
        "fingerprint": data_fingerprint(data),
    }


def data_fingerprint(data: GroundTruthData) -> str:
    """A short hash of :data:`FINGERPRINT_POINTS` observations spread over the grid (drawn with
    a fixed random state): the same for the same data wherever it is stored."""
    index = np.unique(np.linspace(0, len(data) - 1, FINGERPRINT_POINTS).astype(np.int64))
    observations = data.sample_observations_from_factors(
        data.index_to_factors(index), np.random.RandomState(0)
    )
    digest = hashlib.sha256(np.ascontiguousarray(observations, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def training_config(run_dir: Path, config: Config | None, resume: bool) -> Config:
    """The validated config to train ``run_dir`` with.

    A fresh run takes ``config`` (None means the defaults); :func:`resumes` checks its
    directory. A resumed run takes the stored config when ``config`` is None; otherwise
    ``config`` may differ from it only in fields marked resumable
    (:func:`nsvae.config.resumable_fields`). ``train.precision = "auto"`` comes back resolved:
    to the resumed run's own precision, or for a fresh run to the one its device runs fastest
    (:func:`nsvae.precision.resolve_precision`), so ``config.json`` records what trained.

    Raises
    ------
    CheckpointError
        A resumed run that is not a run.
    ConfigError
        Invalid values, or a change on resume that would alter training.
    """
    if not resume:
        if run_dir.exists() and not run_dir.is_dir():
            raise CheckpointError(f"{run_dir} exists and is not a directory")
        return _with_precision((Config() if config is None else config).validate())
    stored, _ = read_run_config(run_dir)
    if config is None:
        return stored.validate()
    config = _with_precision(config.validate(), stored)
    old, new, free = stored.to_dict(), config.to_dict(), resumable_fields(config)
    for section, values in new.items():
        for key, value in values.items():
            before = old[section].get(key)
            if value != before and key not in free[section]:
                raise ConfigError(
                    f"cannot change {section}.{key} when resuming {run_dir} "
                    f"(run has {before!r}, got {value!r})"
                )
    return config.validate()


def _with_precision(config: Config, stored: Config | None = None) -> Config:
    """``config`` with ``train.precision = "auto"`` replaced by the ``stored`` run's precision,
    or without one by the precision ``"auto"`` means on the config's device."""
    if config.train.precision != "auto":
        return config
    if stored is not None:
        precision = stored.train.precision
    else:
        precision = resolve_precision("auto", resolve_device(config.train.device))
    return replace(config, train=replace(config.train, precision=precision))


PROVENANCE = (*TRAINED_ON, "torch")
"""The versions whose change makes a resumed run continue on another trajectory."""


def _starts(run_dir: Path) -> list[dict]:
    """The starts recorded in ``run_dir``'s ``config.json``, oldest first; one of unknown step
    with its ``versions`` for a run written before starts were recorded."""
    stored = read_json(Path(run_dir) / "config.json")
    return stored.get("starts") or [{"step": None, "versions": stored.get("versions") or {}}]


def _earlier_starts(run_dir: Path, now: dict) -> list[dict]:
    """:func:`_starts`; warn if the last one ran on another CPU or code than ``now``."""
    starts = _starts(run_dir)
    before = starts[-1]["versions"]
    changed = [key for key in PROVENANCE if key in before and before[key] != now.get(key)]
    if changed:
        differences = "; ".join(f"{key} {before[key]} -> {now.get(key)}" for key in changed)
        warn(
            f"{run_dir} resumes with another {', '.join(changed)} ({differences}): kernels "
            "round differently, so it continues on another trajectory of its recipe"
        )
    return starts


def trained_on(run_dir: str | Path) -> dict[str, str | None]:
    """The CPUs and code commits (``cpu``, ``nsvae_commit``) that ``run_dir`` trained on.

    Read from the starts its ``config.json`` records (:func:`write_run_files`): each distinct
    value once, oldest first, joined by ``" + "`` (a run resumed on another machine names both);
    None where nothing was recorded (runs of earlier versions, or no source checkout).

    Raises
    ------
    CheckpointError
        If ``config.json`` is missing or not JSON.
    """
    starts = _starts(run_dir)
    found = {}
    for key in TRAINED_ON:
        values = dict.fromkeys(start["versions"].get(key) for start in starts)
        found[key] = " + ".join(value for value in values if value) or None
    return found


def write_run_files(
    run_dir: Path, config: Config, data: GroundTruthData, step: int, resumed: bool = False
) -> None:
    """Create the run's folders, write ``config.json`` and drop metrics rows after ``step``.

    ``config.json`` records the versions of this start (:func:`nsvae.provenance.versions`) and,
    under ``starts``, the step and versions of every start of the run, oldest first: a run
    resumed on another CPU or commit says so (with a warning: it continues on another
    trajectory of its recipe, since kernels round differently).

    Raises
    ------
    CheckpointError
        The run directory cannot be written.
    """
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "figures").mkdir(exist_ok=True)
    except OSError as failure:
        raise CheckpointError(
            f"cannot write {run_dir}: {one_line(failure.strerror or failure)}"
        ) from None
    now = versions()
    starts = _earlier_starts(run_dir, now) if resumed else []
    write_json(
        run_dir / "config.json",
        {
            "config": config.to_dict(),
            "versions": now,
            "starts": [*starts, {"step": step, "versions": now}],
            "observation_shape": list(data.observation_shape),
            "data_grid": data_grid(data),
        },
    )
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():  # rows logged after the checkpoint we resume from will be logged again
        write_rows(metrics, [row for row in read_rows(metrics) if row["step"] <= step])
