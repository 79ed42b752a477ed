"""The ``nsvae`` command.

Every library error (:class:`nsvae.errors.NsvaeError`) becomes a one-line message on stderr and
a non-zero exit code; nothing below this module prints or exits.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from nsvae.errors import DataError, DataWarning, NsvaeError

app = typer.Typer(
    name="nsvae",
    help="Train, evaluate and compare disentangling VAEs (Non-Synergistic VAE and baselines).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Render, fetch and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
study_app = typer.Typer(help="Look at the results of a study (nsvae sweep).",
                        no_args_is_help=True)
app.add_typer(study_app, name="study")


# ----------------------------------------------------------------------------------------- data

DataRootOption = Annotated[
    Path | None,
    typer.Option("--data-root", help="Data root (default: $NSVAE_DATA, else ~/.cache/nsvae)."),
]
DatasetArgument = Annotated[str, typer.Argument(help="Dataset name: dsprites.")]


def _dsprites_only(dataset: str) -> None:
    from nsvae.errors import ConfigError

    if dataset != "dsprites":
        raise ConfigError(f"unknown dataset {dataset!r}; only 'dsprites' is rendered or fetched")


@data_app.command("render")
def data_render(
    dataset: DatasetArgument,
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the official npz layout here.")
    ] = None,
    sheet: Annotated[
        Path | None, typer.Option("--sheet", help="Write a contact sheet PNG.")
    ] = None,
    data_root: DataRootOption = None,
) -> None:
    """Render dSprites into the cache (or reuse it); optionally write an npz and a contact sheet."""
    import time

    from nsvae.data import dsprites

    _dsprites_only(dataset)
    start = time.perf_counter()
    images, reused = dsprites.cached_images(data_root)
    data = dsprites.DSprites(images)
    how = "reused" if reused else f"rendered in {time.perf_counter() - start:.1f} s"
    typer.echo(f"dSprites cache ({how}): {dsprites.cache_path(data_root)}")
    if output is not None:
        typer.echo(f"npz (official layout): {dsprites.save_npz(output, data.images)}")
    if sheet is not None:
        path = dsprites.save_contact_sheet(
            sheet, lambda classes: data.images[data.factors_to_index(classes[:, 1:])]
        )
        typer.echo(f"contact sheet: {path}")


@data_app.command("fetch")
def data_fetch(
    dataset: Annotated[str, typer.Argument(
        help="Dataset: dsprites, color-dsprites, noisy-dsprites, scream-dsprites, 3dshapes, "
        "mpi3d-toy, mpi3d-realistic, mpi3d-real, smallnorb, cars3d, celeba.")],
    data_root: DataRootOption = None,
) -> None:
    """Download the official files and check their checksums (offline: says where to put them)."""
    from nsvae.data import fetch_dataset

    for path in fetch_dataset(dataset, data_root):
        typer.echo(f"{dataset} official file (checksum OK): {path}")


# ---------------------------------------------------------------------------------------- train


def _flag(name: str, text: str, **kwargs):
    return typer.Option(name, help=text, **kwargs)


@app.command("train")
def train_command(
    model: Annotated[str | None, _flag(
        "--model", "Objective: nonsyn, vae, beta_vae, annealed_vae, beta_tcvae, dip_vae, "
        "factor_vae (their other settings: --set or --config).")] = None,
    alpha: Annotated[float | None, _flag("--alpha", "Non-Syn weight of KL(A_worst).")] = None,
    omega: Annotated[float | None, _flag("--omega", "Greedy discount, in (0, 1].")] = None,
    policy: Annotated[
        str | None, _flag("--policy", "Selection: reference, sorted, epsilon-greedy.")
    ] = None,
    mode: Annotated[str | None, _flag("--mode", "One subset per batch or per sample.")] = None,
    selection_batch: Annotated[
        str | None, _flag("--selection-batch", "Select on the same or an independent batch.")
    ] = None,
    epsilon: Annotated[float | None, _flag("--epsilon", "Exploration of epsilon-greedy.")] = None,
    update: Annotated[str | None, _flag(
        "--update", "Non-Syn update: joint (one Adam step on the whole loss) or seed (the "
        "seed's two steps: ELBO, then alpha * KL(A_worst)).")] = None,
    beta: Annotated[float | None, _flag(
        "--beta", "Weight of the KL (beta_vae, nonsyn) or of the TC (beta_tcvae).")] = None,
    gamma: Annotated[float | None, _flag("--gamma", "FactorVAE weight of the TC.")] = None,
    z_dim: Annotated[int | None, _flag("--z-dim", "Number of latents.")] = None,
    arch: Annotated[str | None, _flag("--arch", "Architecture: dlib, seed, seed-linear.")] = None,
    likelihood: Annotated[
        str | None, _flag("--likelihood", "auto, bernoulli or gaussian.")
    ] = None,
    steps: Annotated[int | None, _flag("--steps", "Optimisation steps in all.")] = None,
    batch_size: Annotated[int | None, _flag("--batch-size", "Batch size.")] = None,
    lr: Annotated[float | None, _flag("--lr", "Adam learning rate.")] = None,
    seed: Annotated[int | None, _flag("--seed", "Seed of every random generator.")] = None,
    device: Annotated[str | None, _flag("--device", "auto, cpu, cuda or cuda:N.")] = None,
    threads: Annotated[int | None, _flag("--threads", "CPU threads (0: physical cores).")] = None,
    log_every: Annotated[int | None, _flag("--log-every", "Steps between metrics rows.")] = None,
    checkpoint_every: Annotated[
        int | None, _flag("--checkpoint-every", "Steps between checkpoints.")
    ] = None,
    keep_checkpoints: Annotated[
        int | None, _flag("--keep-checkpoints", "Checkpoints kept (the newest).")
    ] = None,
    eval_every: Annotated[
        int | None, _flag("--eval-every", "Steps between fast evaluations (0: never).")
    ] = None,
    figures: Annotated[
        bool | None, _flag("--figures/--no-figures", "Write traversal figures at the end.")
    ] = None,
    precision: Annotated[str | None, _flag(
        "--precision", "fp32, or bf16 (autocast; posterior, KL, selection, losses stay fp32).")
    ] = None,
    compile_model: Annotated[bool | None, _flag(
        "--compile/--no-compile", "torch.compile the model (first-step cost printed).")] = None,
    data: Annotated[
        str | None, _flag("--data", "Dataset: dsprites (default), dsprites-file, color-dsprites, "
                          "noisy-dsprites, scream-dsprites, 3dshapes, mpi3d-toy, "
                          "mpi3d-realistic, mpi3d-real, smallnorb, cars3d, celeba, images, "
                          "array.")
    ] = None,
    data_path: Annotated[
        Path | None, _flag("--data-path", "Dataset file or folder (array: your own npz; images: "
                           "a folder or zip; scream-dsprites: the scream image).")
    ] = None,
    data_root: Annotated[str | None, _flag("--data-root", "Data cache folder.")] = None,
    config_file: Annotated[
        Path | None, _flag("--config", "TOML config; flags given override it.")
    ] = None,
    assignments: Annotated[
        list[str] | None, _flag("--set", "Any config value, e.g. --set objective.c_max=25 "
                                "(repeatable; values read as TOML).")
    ] = None,
    run_dir: Annotated[
        Path | None, _flag("--run-dir", "Run directory (default runs/<model>-<time>).")
    ] = None,
    resume: Annotated[
        Path | None, _flag("--resume", "Continue this run where it stopped.")
    ] = None,
    progress: Annotated[bool, _flag("--progress/--no-progress", "Show a progress bar.")] = True,
) -> None:
    """Train a VAE (Non-Syn by default); flags override --set, then --config, then defaults.

    The data is dSprites by default, or another dataset with --data NAME (see the README's
    datasets table), your own npz with --data array --data-path FILE.npz, or a folder or zip
    of images with --data images --data-path DIR_OR_ZIP.
    """
    from nsvae.config import Config, load_config, parse_assignment
    from nsvae.errors import ConfigError
    from nsvae.experiment import train_run
    from nsvae.rundir import read_run_config

    given = dict(locals())
    given["data_path"] = data_path and str(data_path.absolute())
    overrides: dict[str, dict] = {}
    for text in assignments or ():
        section, key, value = parse_assignment(text)
        overrides.setdefault(section, {})[key] = value
    for flag, (section, key) in FLAG_KEYS.items():
        if given[flag] is not None:
            overrides.setdefault(section, {})[key] = given[flag]
    if resume is not None:
        if config_file is not None or run_dir is not None:
            raise ConfigError("--resume takes the run's own config and directory; "
                              "drop --config and --run-dir")
        config, run_dir = read_run_config(resume)[0].updated(overrides), resume
    else:
        base = Config() if config_file is None else load_config(config_file)
        config = base.updated(overrides).validate()
        run_dir = run_dir or _new_run_dir(config.objective.name)
    typer.echo(f"run: {run_dir}")
    run = train_run(config, run_dir, resume=resume is not None, progress=progress)
    typer.echo(f"done: {run.step} steps; run in {run.path}")


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
        "checkpoint_every", "keep_checkpoints", "eval_every", "figures", "precision")},
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


# ------------------------------------------------------------------------------------- evaluate


@app.command("evaluate")
def evaluate_command(
    run: Annotated[Path | None, typer.Argument(help="Run directory (from nsvae train).")] = None,
    codes: Annotated[
        Path | None,
        typer.Option(
            "--codes",
            help="Score an .npz of factors [N, K] int, codes [N, D] float (optional factor_sizes).",
        ),
    ] = None,
    metrics: Annotated[
        str | None, typer.Option("--metrics", help="Comma-separated metric names (default: all).")
    ] = None,
    representation: Annotated[
        str, typer.Option("--representation", help="mean or sampled.")
    ] = "mean",
    seed: Annotated[int, typer.Option("--seed", help="Seed of every metric.")] = 0,
    fast: Annotated[bool, typer.Option("--fast", help="Smaller sample counts.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", help="With --codes: also write the results here.")
    ] = None,
) -> None:
    """Score RUN (writes RUN/eval.json) or, with --codes, given codes; print a table."""
    from nsvae.errors import ConfigError
    from nsvae.files import write_json
    from nsvae.metrics import evaluate as ev

    if (run is None) == (codes is None):
        raise ConfigError("give either a run directory or --codes FILE.npz")
    if codes is not None:
        result = ev.evaluate_codes(*ev.load_codes(codes), metrics=metrics, seed=seed)
        if output is not None:
            write_json(output, result, DataError)
    else:
        result = ev.evaluate_run(
            run, metrics=metrics, representation=representation, seed=seed, fast=fast
        )
    for name, values in result["metrics"].items():
        for key, value in values.items():
            if isinstance(value, int | float):
                typer.echo(f"{name:<26}{key:<40}{value:.4f}")
    if run is not None:
        typer.echo(f"written: {Path(run) / 'eval.json'}")


# --------------------------------------------------------------------------------------- report


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run directory (from nsvae train).")],
    seed: Annotated[int, typer.Option(help="Seed of the samples drawn for the figures.")] = 0,
    samples_per_cell: Annotated[
        int, typer.Option(help="dSprites images encoded per (posX, posY) cell.", min=1)
    ] = 16,
    num_samples: Annotated[
        int, typer.Option(help="Images encoded for the factor figures of other data.", min=1)
    ] = 10_000,
) -> None:
    """Draw every figure of RUN into RUN/figures/ and write RUN/report.html (self-contained)."""
    from nsvae.viz.report import write_report

    typer.echo(write_report(run, seed=seed, samples_per_cell=samples_per_cell,
                            num_samples=num_samples))


# ---------------------------------------------------------------------------------------- sweep


@app.command("sweep")
def sweep_command(
    study_file: Annotated[Path, typer.Argument(help="Study file (TOML): see examples/studies/.")],
    out: Annotated[Path, _flag("--out", "Study directory (trials, results.csv, Ray's logs).")],
    address: Annotated[str | None, _flag(
        "--address", "Run on this Ray cluster (auto, ray://HOST:PORT); default: start Ray "
        "here.")] = None,
    cpus: Annotated[int | None, _flag(
        "--cpus", "CPUs of the Ray started here (default: all).", min=1)] = None,
    cpus_per_trial: Annotated[float, _flag(
        "--cpus-per-trial", "CPUs each trial reserves; its torch threads follow.",
        min=0.01)] = 1.0,
    gpus_per_trial: Annotated[float, _flag(
        "--gpus-per-trial", "GPUs each trial reserves.", min=0.0)] = 0.0,
    max_concurrent: Annotated[int | None, _flag(
        "--max-concurrent", "At most this many trials at once.", min=1)] = None,
) -> None:
    """Run every trial of STUDY_FILE with Ray Tune; rerun to resume (finished trials are kept)."""
    from nsvae.sweep import Resources, load_study, run_sweep

    study = load_study(study_file)
    resources = Resources(address, cpus, cpus_per_trial, gpus_per_trial, max_concurrent)
    summary = run_sweep(study, out, resources, say=typer.echo)
    typer.echo(f"study {study.name}: {summary.done} trials done, {summary.skipped} already "
               f"finished, in {summary.seconds:.1f} s (Ray start and stop "
               f"{summary.ray_seconds:.1f} s); results: {summary.results}")


@study_app.command("report")
def study_report_command(
    out: Annotated[Path, typer.Argument(help="Study directory (from nsvae sweep).")],
) -> None:
    """Draw the study's figures into DIR/figures/ and write DIR/report.html (self-contained)."""
    from nsvae.sweep.report import write_study_report

    typer.echo(write_study_report(out))


# ----------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the command line; library errors become one line on stderr and an exit code."""
    # Idle OpenMP threads sleep instead of spinning: on a small shared CPU, spinning threads of
    # one process slow every other process (training steps measured 3-5x slower under
    # contention). Set before anything imports torch; a value in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            app(args=argv, standalone_mode=False)
    except NsvaeError as error:
        typer.echo(f"nsvae: error: {error}", err=True)
        return error.exit_code
    except KeyboardInterrupt:
        typer.echo("nsvae: interrupted", err=True)
        return 130
    except FileNotFoundError as error:
        typer.echo(f"nsvae: error: no such file: {error.filename}", err=True)
        return DataError.exit_code
    except typer.Exit as done:
        return done.exit_code
    except Exception as error:  # click usage errors and anything unexpected stay one line
        return _report_unexpected(error)
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """nsvae's own warnings (:class:`nsvae.errors.DataWarning`) as one line on stderr."""
    if issubclass(category, DataWarning):
        typer.echo(f"nsvae: warning: {message}", err=True)
    else:
        typer.echo(warnings.formatwarning(message, category, filename, lineno, line).rstrip(),
                   err=True)


def _report_unexpected(error: Exception) -> int:
    """One line for usage errors (typer's bundled click exceptions) and for anything else."""
    if isinstance(error, typer.Abort):
        typer.echo("nsvae: aborted", err=True)
        return 130
    if hasattr(error, "format_message") and isinstance(getattr(error, "exit_code", None), int):
        if error.format_message():  # empty after `nsvae` alone has printed the help
            typer.echo(f"nsvae: error: {error.format_message()} (see nsvae --help)", err=True)
        return error.exit_code
    typer.echo(f"nsvae: internal error: {type(error).__name__}: {error}", err=True)
    return 70


if __name__ == "__main__":
    sys.exit(main())
