"""``nsvae train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nsvae.cli.app import (
    HELP_FROM_LIBRARY,
    SEED,
    LibraryHelp,
    app,
    flag,
)
from nsvae.errors import ConfigError, warn


@app.command("train", cls=LibraryHelp)
def train_command(
    model: Annotated[str | None, flag(
        "--model", "Objective (its other settings: --set or --config).")] = None,
    alpha: Annotated[float | None, flag("--alpha", "Non-Syn weight of KL(A_worst).")] = None,
    omega: Annotated[float | None, flag("--omega", "Greedy discount, in (0, 1].")] = None,
    policy: Annotated[
        str | None, flag("--policy", "Selection: reference, sorted, epsilon-greedy.")
    ] = None,
    mode: Annotated[str | None, flag("--mode", "One subset per batch or per sample.")] = None,
    selection_batch: Annotated[
        str | None, flag("--selection-batch", "Select on the same or an independent batch.")
    ] = None,
    epsilon: Annotated[float | None, flag("--epsilon", "Exploration of epsilon-greedy.")] = None,
    update: Annotated[str | None, flag(
        "--update", "Non-Syn update: joint (one Adam step on the whole loss) or seed (the "
        "seed's two steps: ELBO, then alpha * KL(A_worst)).")] = None,
    beta: Annotated[float | None, flag(
        "--beta", "Weight of the KL (beta_vae, nonsyn) or of the TC (beta_tcvae).")] = None,
    gamma: Annotated[float | None, flag("--gamma", "FactorVAE weight of the TC.")] = None,
    z_dim: Annotated[int | None, flag("--z-dim", "Number of latents.")] = None,
    arch: Annotated[str | None, flag("--arch", "Architecture.")] = None,
    likelihood: Annotated[
        str | None, flag("--likelihood", "auto, bernoulli or gaussian.")
    ] = None,
    steps: Annotated[int | None, flag("--steps", "Optimisation steps in all.")] = None,
    batch_size: Annotated[int | None, flag("--batch-size", "Batch size.")] = None,
    lr: Annotated[float | None, flag("--lr", "Adam learning rate.")] = None,
    seed: Annotated[int | None, flag("--seed", "Seed of every random generator.", **SEED)] = None,
    device: Annotated[str | None, flag("--device", "auto, cpu, cuda or cuda:N.")] = None,
    threads: Annotated[int | None, flag("--threads", "CPU threads (0: physical cores).")] = None,
    log_every: Annotated[int | None, flag("--log-every", "Steps between metrics rows.")] = None,
    checkpoint_every: Annotated[
        int | None, flag("--checkpoint-every", "Steps between checkpoints.")
    ] = None,
    keep_checkpoints: Annotated[
        int | None, flag("--keep-checkpoints", "Checkpoints kept (the newest).")
    ] = None,
    eval_every: Annotated[
        int | None, flag("--eval-every", "Steps between fast evaluations (0: never).")
    ] = None,
    eval_metrics: Annotated[
        str | None, flag("--eval-metrics", "Metrics of those evaluations, comma-separated "
                          "(default: all).")
    ] = None,
    figures: Annotated[
        bool | None, flag("--figures/--no-figures", "Write traversal figures at the end.")
    ] = None,
    precision: Annotated[str | None, flag(
        "--precision", "fp32, or bf16 (autocast; posterior, KL, selection, losses stay fp32).")
    ] = None,
    compile_model: Annotated[bool | None, flag(
        "--compile/--no-compile", "torch.compile the model (first-step cost printed).")] = None,
    data: Annotated[
        str | None, flag("--data", "Dataset.")
    ] = None,
    data_path: Annotated[
        Path | None, flag("--data-path", "Dataset file or folder (array: your own npz; images: "
                           "a folder or zip; scream-dsprites: the scream image).")
    ] = None,
    data_root: Annotated[str | None, flag("--data-root", "Data cache folder.")] = None,
    config_file: Annotated[
        Path | None, flag("--config", "TOML config; flags given override it.")
    ] = None,
    assignments: Annotated[
        list[str] | None, flag("--set", "Any config value, e.g. --set objective.c_max=25 "
                                "(repeatable; values read as TOML).")
    ] = None,
    run_dir: Annotated[
        Path | None, flag("--run-dir", "Run directory (default runs/<model>-<time>).")
    ] = None,
    resume: Annotated[
        Path | None, flag("--resume", "Continue this run where it stopped (with --config: "
                           "train that file's config, which may differ from the run's only in "
                           "resumable fields such as steps).")
    ] = None,
    progress: Annotated[bool, flag("--progress/--no-progress", "Show a progress bar.")] = True,
) -> None:
    """Train a VAE (Non-Syn by default); flags override --set, then --config, then defaults.

    The data is dSprites by default, or another dataset with --data NAME (docs/datasets.md),
    your own npz with --data array --data-path FILE.npz, or a folder or zip
    of images with --data images --data-path DIR_OR_ZIP.
    """
    from nsvae.config import Config, load_config, parse_assignment
    from nsvae.experiment import train_run
    from nsvae.rundir import read_run_config
    from nsvae.rundir.run import training_config

    given = dict(locals())
    given["data_path"] = data_path and str(data_path.absolute())
    overrides: dict[str, dict] = {}
    for text in assignments or ():
        section, key, value = parse_assignment(text)
        overrides.setdefault(section, {})[key] = value
    for name, (section, key) in FLAG_KEYS.items():
        if given[name] is not None:
            overrides.setdefault(section, {})[key] = given[name]
    if resume is not None:
        if run_dir is not None:
            raise ConfigError("--resume takes the run's own directory; drop --run-dir")
        base = read_run_config(resume)[0] if config_file is None else load_config(config_file)
        config, run_dir = base.updated(overrides), resume
        training_config(run_dir, config, resume=True)  # a refused file: before the data loads
    else:
        base = Config() if config_file is None else load_config(config_file)
        config = base.updated(overrides).validate()
        run_dir = run_dir or _new_run_dir(config.objective.name)
    if eval_metrics is not None and not config.train.eval_every:
        warn(f"--eval-metrics {eval_metrics} scores nothing without --eval-every N (train."
             "eval_every is 0)")
    typer.echo(f"run: {run_dir}")
    run = train_run(config, run_dir, resume=resume is not None, progress=progress)
    typer.echo(f"done: {run.step} steps; run in {run.path}")


def _train_defaults(command) -> None:
    """Complete the help of each headline flag from the library: the choices its registry holds
    (objectives, datasets, architectures) and its default (from :class:`Config`)."""
    from nsvae.config import Config
    from nsvae.data import DATASETS
    from nsvae.models import ARCHS
    from nsvae.objectives import OBJECTIVES

    choices = {"model": OBJECTIVES, "data": DATASETS, "arch": ARCHS}
    defaults = Config().to_dict()
    for param in command.params:
        if param.name in choices and "Choose from" not in (param.help or ""):
            param.help = f"{param.help} Choose from: {', '.join(choices[param.name])}."
        if param.name in FLAG_KEYS and "(default " not in (param.help or ""):
            section, key = FLAG_KEYS[param.name]
            value = defaults[section].get(key)
            if value not in (None, ""):
                param.help = f"{param.help} (default {value})"


# Headline flags of `nsvae train`: flag parameter -> (section, key). Anything else: --set.
FLAG_KEYS = {
    "data": ("data", "name"), "data_path": ("data", "path"), "data_root": ("data", "data_root"),
    "arch": ("model", "arch"), "z_dim": ("model", "z_dim"), "likelihood": ("model", "likelihood"),
    "model": ("objective", "name"), "beta": ("objective", "beta"),
    "alpha": ("objective", "alpha"), "omega": ("objective", "omega"),
    "policy": ("objective", "policy"), "mode": ("objective", "mode"),
    "selection_batch": ("objective", "selection_batch"), "epsilon": ("objective", "epsilon"),
    "update": ("objective", "update"), "gamma": ("objective", "gamma"),
    **{name: ("train", name) for name in (
        "steps", "batch_size", "lr", "seed", "device", "threads", "log_every",
        "checkpoint_every", "keep_checkpoints", "eval_every", "eval_metrics", "figures",
        "precision")},
    "compile_model": ("train", "compile"),
}


def _new_run_dir(name: str) -> Path:
    import time

    stem = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, number = stem, 1
    while path.exists():
        number += 1
        path = stem.with_name(f"{stem.name}-{number}")
    return path


HELP_FROM_LIBRARY["train"] = _train_defaults
