"""``nsvae evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nsvae.cli.app import (
    HELP_FROM_LIBRARY,
    SEED,
    LibraryHelp,
    app,
    metric_failures,
)
from nsvae.errors import ConfigError, DataError


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
        raise ConfigError(
            "--fast and --representation apply to a run; --codes scores the codes "
            "as given with every metric's full settings"
        )
    if output is not None and codes is None:
        raise ConfigError("--output goes with --codes; a run's results go to RUN/eval.json")
    if output is not None and output.is_dir():
        raise ConfigError(f"--output takes a file name, not a directory (got {output})")
    if codes is not None:
        result = ev.evaluate_codes(
            *ev.load_codes(codes), metrics=metrics, seed=seed, progress=_metric_progress
        )
    else:
        result = ev.evaluate_run(
            run,
            metrics=metrics,
            representation=representation or "mean",
            seed=seed,
            fast=fast,
            progress=_metric_progress,
            save=False,
        )
    _print_metrics(result["metrics"])
    if "factor_names" in result["metrics"].get("mig", {}):
        _print_captured(result["metrics"]["mig"])
    if codes is None:
        typer.echo(f"written: {save_evaluation(run, result)}")
    elif output is not None:
        write_json(output, result, DataError)
    if result["failed"]:
        raise metric_failures(result["failed"])


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
    typer.echo(
        f"captured factors: {', '.join(captured) or 'none'}"
        + (f" (not captured: {', '.join(uncaptured)})" if uncaptured else "")
    )
    if (verdict := seed_bar_line(mig)) is not None:
        typer.echo(verdict)


def _metric_names(command) -> None:
    """List the registered metrics in the help of ``--metrics``."""
    from nsvae.metrics import METRICS

    for param in command.params:
        if param.name == "metrics" and "choose from" not in (param.help or ""):
            param.help = f"{param.help} Choose from: {', '.join(METRICS)}."


HELP_FROM_LIBRARY["evaluate"] = _metric_names
