"""``nsvae report`` and ``nsvae export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nsvae.cli.app import (
    SEED,
    app,
)


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

    typer.echo(
        write_report(
            run,
            seed=seed,
            samples_per_cell=samples_per_cell,
            num_samples=num_samples,
            progress=lambda message: typer.echo(message, err=True),
        )
    )


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
