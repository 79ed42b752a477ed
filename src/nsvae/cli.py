"""The ``nsvae`` command.

Every library error (:class:`nsvae.errors.NsvaeError`) becomes a one-line message on stderr and
a non-zero exit code, every library warning (:class:`nsvae.errors.NsvaeWarning`) a line
``nsvae: warning: ...``; nothing below this module prints or exits. Exit codes: 0 success,
2 usage or configuration, the typed codes of :mod:`nsvae.errors` (3 data, 4 run directory or
checkpoint, 5 training, 6 metric, 7 run directory in use), 70 an unexpected internal error,
130 SIGINT (Ctrl-C), 143 SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

import nsvae
from nsvae.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    NsvaeError,
    NsvaeWarning,
    Terminated,
    handling_signals,
    is_out_of_memory,
    one_line,
    signal_exit_code,
    warn,
)

app = typer.Typer(
    name="nsvae",
    help="Train, evaluate and compare disentangling VAEs (Non-Synergistic VAE and baselines).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Render, fetch and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
study_app = typer.Typer(help="Look at and re-score the results of a study (nsvae sweep).",
                        no_args_is_help=True)
app.add_typer(study_app, name="study")
SEED = {"min": 0, "max": 2**32 - 1}  # what every random generator takes


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"nsvae {nsvae.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", is_eager=True,
        callback=_show_version)] = False,
) -> None:
    pass


class LibraryHelp(TyperCommand):
    """A command whose help is completed from the library when shown, so that no command
    imports torch (through the config or the metrics) just to parse its arguments."""

    def format_help(self, ctx, formatter) -> None:
        HELP_FROM_LIBRARY[self.name](self)
        super().format_help(ctx, formatter)


# ----------------------------------------------------------------------------------------- data

DataRootOption = Annotated[
    Path | None,
    typer.Option("--data-root", help="Data root (default: $NSVAE_DATA, else ~/.cache/nsvae)."),
]
DatasetArgument = Annotated[str, typer.Argument(help="Dataset name: dsprites.")]


def _dsprites_only(dataset: str) -> None:
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
    if sheet is not None and sheet.suffix.lower() != ".png":
        raise ConfigError(f"--sheet writes a PNG: give a file name ending in .png, got {sheet}")
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


@app.command("train", cls=LibraryHelp)
def train_command(
    model: Annotated[str | None, _flag(
        "--model", "Objective (its other settings: --set or --config).")] = None,
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
    arch: Annotated[str | None, _flag("--arch", "Architecture.")] = None,
    likelihood: Annotated[
        str | None, _flag("--likelihood", "auto, bernoulli or gaussian.")
    ] = None,
    steps: Annotated[int | None, _flag("--steps", "Optimisation steps in all.")] = None,
    batch_size: Annotated[int | None, _flag("--batch-size", "Batch size.")] = None,
    lr: Annotated[float | None, _flag("--lr", "Adam learning rate.")] = None,
    seed: Annotated[int | None, _flag("--seed", "Seed of every random generator.", **SEED)] = None,
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
    eval_metrics: Annotated[
        str | None, _flag("--eval-metrics", "Metrics of those evaluations, comma-separated "
                          "(default: all).")
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
        str | None, _flag("--data", "Dataset.")
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
        Path | None, _flag("--resume", "Continue this run where it stopped (with --config: "
                           "train that file's config, which may differ from the run's only in "
                           "resumable fields such as steps).")
    ] = None,
    progress: Annotated[bool, _flag("--progress/--no-progress", "Show a progress bar.")] = True,
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
    for flag, (section, key) in FLAG_KEYS.items():
        if given[flag] is not None:
            overrides.setdefault(section, {})[key] = given[flag]
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


# ------------------------------------------------------------------------------------- evaluate


@app.command("evaluate", cls=LibraryHelp)
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
        str | None, typer.Option("--representation", help="mean (default) or sampled.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every metric.", **SEED)] = 0,
    fast: Annotated[bool, typer.Option("--fast", help="Smaller sample counts.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", help="With --codes: also write the results here.")
    ] = None,
) -> None:
    """Score RUN (merged into RUN/eval.json) or, with --codes, given codes; print a table.

    Every metric that succeeds is printed and saved; if any fails, the command then exits
    non-zero naming them.
    """
    from nsvae.files import write_json
    from nsvae.metrics import evaluate as ev
    from nsvae.metrics.results import save_evaluation

    if (run is None) == (codes is None):
        raise ConfigError("give either a run directory or --codes FILE.npz")
    if codes is not None and (fast or representation is not None):
        raise ConfigError("--fast and --representation apply to a run; --codes scores the codes "
                          "as given with every metric's full settings")
    if output is not None and codes is None:
        raise ConfigError("--output goes with --codes; a run's results go to RUN/eval.json")
    if output is not None and output.is_dir():
        raise ConfigError(f"--output takes a file name, not a directory (got {output})")
    if codes is not None:
        result = ev.evaluate_codes(*ev.load_codes(codes), metrics=metrics, seed=seed,
                                   progress=_metric_progress)
    else:
        result = ev.evaluate_run(run, metrics=metrics, representation=representation or "mean",
                                 seed=seed, fast=fast, progress=_metric_progress, save=False)
    _print_metrics(result["metrics"])
    if "factor_names" in result["metrics"].get("mig", {}):
        _print_captured(result["metrics"]["mig"])
    if codes is None:
        typer.echo(f"written: {save_evaluation(run, result)}")
    elif output is not None:
        write_json(output, result, DataError)
    if result["failed"]:
        raise _failures(result["failed"])


def _metric_progress(name: str, index: int, total: int) -> None:
    typer.echo(f"[{index}/{total}] {name}", err=True)


def _print_metrics(metrics: dict) -> None:
    for name, values in metrics.items():
        for key, value in values.items():
            if isinstance(value, int | float):
                typer.echo(f"{name:<26}{key:<40}{value:.4f}")


def _print_captured(mig: dict) -> None:
    """Which latent carries each factor on its own and, on dSprites-like data, the seed bar."""
    from nsvae.metrics.mig import captured_by_name, seed_bar_line

    latent_of = captured_by_name(mig)
    captured = [f"{name} by z{j}" for name, j in latent_of.items() if j >= 0]
    uncaptured = [name for name, j in latent_of.items() if j < 0]
    typer.echo(f"captured factors: {', '.join(captured) or 'none'}"
               + (f" (not captured: {', '.join(uncaptured)})" if uncaptured else ""))
    if (verdict := seed_bar_line(mig)) is not None:
        typer.echo(verdict)


def _failures(failed: dict) -> NsvaeError:
    """One error naming every metric that failed, and why."""
    from nsvae.errors import MetricError

    reasons = "; ".join(f"{name}: {message}" for name, message in failed.items())
    return MetricError(f"{len(failed)} metric(s) failed ({reasons}); the others were kept")


def _metric_names(command) -> None:
    """List the registered metrics in the help of ``--metrics``."""
    from nsvae.metrics import METRICS

    for param in command.params:
        if param.name == "metrics" and "choose from" not in (param.help or ""):
            param.help = f"{param.help} Choose from: {', '.join(METRICS)}."


# --------------------------------------------------------------------------------------- report


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run directory (from nsvae train).")],
    seed: Annotated[
        int, typer.Option(help="Seed of the samples drawn for the figures.", **SEED)
    ] = 0,
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
                            num_samples=num_samples,
                            progress=lambda message: typer.echo(message, err=True)))


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory (from nsvae train).")],
    out: Annotated[Path, typer.Argument(help="Folder to write (created if missing).")],
) -> None:
    """Copy RUN's results and its model's weights alone (no checkpoints) into OUT.

    OUT holds config.json, metrics.jsonl, eval.json, report.html, figures/ and
    model.safetensors (a few MB): nsvae evaluate and nsvae report open it like a run; it cannot
    be resumed.
    """
    from nsvae.rundir import export_run

    typer.echo(f"written: {export_run(run, out)}")


HELP_FROM_LIBRARY = {"train": _train_defaults, "evaluate": _metric_names}


# ----------------------------------------------------------------------------------- robustness


@app.command("robustness")
def robustness_command(
    data: Annotated[str, _flag("--data", "Dataset whose factors are represented (dsprites, "
                                         "3dshapes, ...; only its factor names and sizes are "
                                         "read).")],
    out: Annotated[Path, _flag("--out", "Folder for robustness.csv and robustness.png.")],
    data_path: Annotated[Path | None, _flag(
        "--data-path", "File of a file-backed dataset (as nsvae train --data-path).")] = None,
    metrics: Annotated[str | None, _flag(
        "--metrics", "Comma-separated metric names (default: every metric).")] = None,
    kinds: Annotated[str, _flag(
        "--kinds", "Comma-separated kinds of entanglement.")] = "rotate,duplicate,noise,mix",
    fast: Annotated[bool, _flag("--fast", "The metrics' smaller sample counts.")] = False,
    seed: Annotated[int, _flag("--seed", "Seed of every metric.", **SEED)] = 0,
) -> None:
    """Score every metric on a dataset's factors entangled step by step (Tokui & Sato's
    protocol): rotated pairs, noisy copies, added noise, mixing. Writes DIR/robustness.csv
    (kind, level, metric, value) and DIR/robustness.png (one panel per kind)."""
    from nsvae.config import DataConfig
    from nsvae.data import build_data
    from nsvae.metrics.evaluate import evaluate_functions
    from nsvae.metrics.robustness import LEVELS, robustness_rows
    from nsvae.viz.robustness import write_robustness

    chosen = [kind.strip() for kind in kinds.split(",")]
    unknown = [kind for kind in chosen if kind not in LEVELS]
    if unknown:
        raise ConfigError(f"unknown kind {', '.join(unknown)} (choose from: "
                          f"{', '.join(LEVELS)})")
    dataset = build_data(DataConfig(name=data, path=data_path and str(data_path)).validate())
    failures = {}

    def suite(factor_data, entangled):
        result = evaluate_functions(factor_data, entangled.represent, entangled.encode,
                                    metrics=metrics, seed=seed, fast=fast)
        failures.update(result["failed"])
        return result["metrics"]

    rows = robustness_rows(dataset, suite, chosen, say=typer.echo)
    table, figure = write_robustness(rows, out)
    typer.echo(f"written: {table}\nwritten: {figure}")
    if failures:
        raise _failures(failures)


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
    trial: Annotated[str | None, _flag(
        "--trial", "Run only this trial, here, without Ray (one job per trial for a scheduler "
        "of your own); results.csv is updated.")] = None,
    list_trials: Annotated[bool, _flag(
        "--list", "Print each trial's name and state (finished, pending, unfinished, failed); "
        "run nothing.")] = False,
) -> None:
    """Run every trial of STUDY_FILE with Ray Tune; rerun to resume (finished trials are kept).

    With --trial NAME, run that one trial here without Ray (--address, --cpus and
    --max-concurrent do not apply); the command exits with the trial's own error code.
    """
    from nsvae.sweep import Resources, load_study, run_one_trial, run_sweep, trial_states

    if list_trials and trial is not None:
        raise ConfigError("--list runs nothing: give --list or --trial NAME, not both")
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"--out {out} is a file: give the study's directory")
    study = load_study(study_file)
    resources = Resources(address, cpus, cpus_per_trial, gpus_per_trial, max_concurrent)
    if list_trials:
        for name, state in trial_states(study, out):
            typer.echo(f"{name}\t{state}")
        return
    if trial is not None:
        record = run_one_trial(study, out, trial, resources)
        if record["status"] != "done":
            from nsvae.errors import TrainingError

            failure = TrainingError(f"trial {trial} failed: {record['error']}")
            failure.exit_code = record.get("exit_code", failure.exit_code)  # e.g. 143: requeue
            raise failure
        typer.echo(f"trial {trial}: done at step {record['step']}; results: "
                   f"{out / 'results.csv'}")
        return
    summary = run_sweep(study, out, resources, say=typer.echo)
    typer.echo(f"study {study.name}: {summary.done} trials done, {summary.skipped} already "
               f"finished, in {summary.seconds:.1f} s (Ray start and stop "
               f"{summary.ray_seconds:.1f} s); results: {summary.results}")


@study_app.command("report")
def study_report_command(
    out: Annotated[Path, typer.Argument(help="Study directory (from nsvae sweep).")],
    against: Annotated[str | None, typer.Option(
        help="A setting (trial name without its seed) to compare every other setting with: "
             "the share of seed pairs each wins, and the Mann-Whitney p-value.")] = None,
) -> None:
    """Draw the study's figures into DIR/figures/, write DIR/report.html (self-contained) and
    DIR/summary.md (each setting's median and spread, in Markdown; with --against, each other
    setting's share of seed pairs won against that one and the Mann-Whitney p-value)."""
    from nsvae.sweep.report import write_study_report

    typer.echo(write_study_report(out, against))


@study_app.command("rescore")
def study_rescore_command(
    out: Annotated[Path, typer.Argument(help="Study directory (from nsvae sweep, or a copy of "
                                              "its results with each trial's model).")],
    metrics: Annotated[str, typer.Option(
        "--metrics", help="Comma-separated metric names to score every finished trial with.")],
    fast: Annotated[bool, typer.Option("--fast", help="Smaller sample counts.")] = False,
) -> None:
    """Score every finished trial of DIR with --metrics from its kept model (no training):
    merged into each trial's eval.json, then DIR/results.csv is rewritten with the new columns
    beside the old ones, which keep their values."""
    from nsvae.sweep.rescore import rescore_study

    typer.echo(f"results: {rescore_study(out, metrics, fast, say=typer.echo)}")


# ----------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the command line; library errors become one line on stderr and an exit code."""
    # Idle OpenMP threads sleep instead of spinning: on a small shared CPU, spinning threads of
    # one process slow every other process (training steps measured 3-5x slower under
    # contention). Set before anything imports torch; a value in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with _signals(), warnings.catch_warnings():
        warnings.showwarning = _warning_printer(warnings.showwarning)
        warnings.simplefilter("always", NsvaeWarning)
        try:
            code = app(args=argv, standalone_mode=False)
        except NsvaeError as error:
            typer.echo(f"nsvae: error: {error}", err=True)
            return error.exit_code
        except (KeyboardInterrupt, Terminated) as stop:
            return _stopped("SIGTERM" if isinstance(stop, Terminated) else "SIGINT")
        except Exception as error:  # click usage errors and anything unexpected stay one line
            return _report_unexpected(error)
        if code == signal_exit_code("SIGINT"):  # typer turns Ctrl-C into this return value
            return _stopped("SIGINT")
        return code if isinstance(code, int) else 0


def run() -> int:
    """The ``nsvae`` program: :func:`main`, then no traceback from a signal during shutdown."""
    code = main()
    _ignore_signals()
    return code


def _signals():
    """SIGTERM raises :class:`Terminated` (as SIGINT raises KeyboardInterrupt) in the block;
    the SIGINT and SIGTERM handlers found are restored after it (a stopped command ignores
    both)."""
    return handling_signals({signal.SIGTERM: _terminate,
                             signal.SIGINT: signal.getsignal(signal.SIGINT)})


def _terminate(number, frame):
    raise Terminated


def _ignore_signals() -> None:
    """Ignore further SIGINT and SIGTERM: the command is already stopping."""
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)


def _stopped(signal_name: str) -> int:
    """One line for a command stopped by a signal; its exit code (130 or 143)."""
    _ignore_signals()  # a second Ctrl-C while stopping prints no traceback
    typer.echo(f"nsvae: interrupted by {signal_name}", err=True)
    return signal_exit_code(signal_name)


def _warning_printer(show_other):
    """``warnings.showwarning`` printing library warnings as one line on stderr and passing
    the others to ``show_other``."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, NsvaeWarning):
            typer.echo(f"nsvae: warning: {message}", err=True)
        else:
            show_other(message, category, filename, lineno, file, line)

    return show


def _report_unexpected(error: Exception) -> int:
    """One line for usage errors (typer's bundled click exceptions), OS errors and the rest."""
    if type(error).__name__ == "NoArgsIsHelpError":  # a command group given alone: its help
        typer.echo(error.ctx.get_help())
        return 0
    if isinstance(error, typer.Abort):
        return _stopped("SIGINT")
    if hasattr(error, "format_message") and isinstance(getattr(error, "exit_code", None), int):
        typer.echo(f"nsvae: error: {error.format_message()} (see nsvae --help)", err=True)
        return error.exit_code
    if isinstance(error, FileNotFoundError):
        typer.echo(f"nsvae: error: no such file: {error.filename}", err=True)
        return DataError.exit_code
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        typer.echo(f"nsvae: error: {error.strerror or error}{where}", err=True)
        return CheckpointError.exit_code
    if is_out_of_memory(error):
        remedy = ("raise the process's address-space limit (ulimit -v)"
                  if isinstance(error, ImportError) else
                  "lower the batch size, model.z_dim or the evaluation's sample counts")
        typer.echo(f"nsvae: error: out of memory ({one_line(error)}): {remedy}", err=True)
        return ConfigError.exit_code
    typer.echo(f"nsvae: internal error: {type(error).__name__}: {error}", err=True)
    return 70


if __name__ == "__main__":
    sys.exit(run())
