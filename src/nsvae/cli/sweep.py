"""``nsvae sweep``, ``nsvae study report`` and ``nsvae study rescore``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nsvae.cli.app import (
    app,
    flag,
    study_app,
)
from nsvae.errors import CheckpointError, ConfigError


@app.command("sweep")
def sweep_command(
    study_file: Annotated[Path, typer.Argument(help="Study file (TOML): see examples/studies/.")],
    out: Annotated[Path, flag("--out", "Study directory (trials, results.csv, Ray's logs).")],
    address: Annotated[
        str | None,
        flag(
            "--address", "Run on this Ray cluster (auto, ray://HOST:PORT); default: start Ray here."
        ),
    ] = None,
    cpus: Annotated[
        int | None, flag("--cpus", "CPUs of the Ray started here (default: all).", min=1)
    ] = None,
    cpus_per_trial: Annotated[
        float,
        flag("--cpus-per-trial", "CPUs each trial reserves; its torch threads follow.", min=0.01),
    ] = 1.0,
    gpus_per_trial: Annotated[
        float, flag("--gpus-per-trial", "GPUs each trial reserves.", min=0.0)
    ] = 0.0,
    max_concurrent: Annotated[
        int | None, flag("--max-concurrent", "At most this many trials at once.", min=1)
    ] = None,
    trial: Annotated[
        str | None,
        flag(
            "--trial",
            "Run only this trial, here, without Ray (one job per trial for a scheduler "
            "of your own); results.csv is updated.",
        ),
    ] = None,
    list_trials: Annotated[
        bool,
        flag(
            "--list",
            "Print each trial's name and state (finished, pending, unfinished, failed); "
            "run nothing.",
        ),
    ] = False,
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
        typer.echo(f"trial {trial}: done at step {record['step']}; results: {out / 'results.csv'}")
        return
    summary = run_sweep(study, out, resources, say=typer.echo)
    typer.echo(
        f"study {study.name}: {summary.done} trials done, {summary.skipped} already "
        f"finished, in {summary.seconds:.1f} s (Ray start and stop "
        f"{summary.ray_seconds:.1f} s); results: {summary.results}"
    )


@study_app.command("report")
def study_report_command(
    out: Annotated[Path, typer.Argument(help="Study directory (from nsvae sweep).")],
    against: Annotated[
        str | None,
        typer.Option(
            help="A setting (trial name without its seed) to compare every other setting with: "
            "the share of seed pairs each wins, and the Mann-Whitney p-value."
        ),
    ] = None,
) -> None:
    """Draw the study's figures into DIR/figures/, write DIR/report.html (self-contained) and
    DIR/summary.md (each setting's median and spread, in Markdown; with --against, each other
    setting's share of seed pairs won against that one and the Mann-Whitney p-value)."""
    from nsvae.sweep.report import write_study_report

    typer.echo(write_study_report(out, against))


@study_app.command("rescore")
def study_rescore_command(
    out: Annotated[
        Path,
        typer.Argument(
            help="Study directory (from nsvae sweep, or a copy of "
            "its results with each trial's model)."
        ),
    ],
    metrics: Annotated[
        str,
        typer.Option(
            "--metrics", help="Comma-separated metric names to score every finished trial with."
        ),
    ],
    fast: Annotated[bool, typer.Option("--fast", help="Smaller sample counts.")] = False,
    again: Annotated[
        bool,
        typer.Option("--again", help="Also score the metrics a trial already holds."),
    ] = False,
) -> None:
    """Score every finished trial of DIR with --metrics from its kept model (no training):
    merged into each trial's eval.json, then DIR/results.csv is rewritten with the new columns
    beside the old ones, which keep their values. Metrics a trial already holds are skipped."""
    from nsvae.sweep.rescore import rescore_study

    typer.echo(f"results: {rescore_study(out, metrics, fast, again=again, say=typer.echo)}")
