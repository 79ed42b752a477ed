"""``nsvae robustness``: the entanglement protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nsvae.cli.app import (
    SEED,
    app,
    flag,
    metric_failures,
)
from nsvae.errors import ConfigError


@app.command("robustness")
def robustness_command(
    data: Annotated[
        str,
        flag(
            "--data",
            "Dataset whose factors are represented (dsprites, "
            "3dshapes, ...; only its factor names and sizes are "
            "read).",
        ),
    ],
    out: Annotated[Path, flag("--out", "Folder for robustness.csv and robustness.png.")],
    data_path: Annotated[
        Path | None,
        flag("--data-path", "File of a file-backed dataset (as nsvae train --data-path)."),
    ] = None,
    metrics: Annotated[
        str | None, flag("--metrics", "Comma-separated metric names (default: every metric).")
    ] = None,
    kinds: Annotated[
        str, flag("--kinds", "Comma-separated kinds of entanglement.")
    ] = "rotate,duplicate,noise,mix",
    fast: Annotated[bool, flag("--fast", "The metrics' smaller sample counts.")] = False,
    seed: Annotated[int, flag("--seed", "Seed of every metric.", **SEED)] = 0,
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
        raise ConfigError(f"unknown kind {', '.join(unknown)} (choose from: {', '.join(LEVELS)})")
    dataset = build_data(DataConfig(name=data, path=data_path and str(data_path)).validate())
    failures = {}

    def suite(factor_data, entangled):
        result = evaluate_functions(
            factor_data,
            entangled.represent,
            entangled.encode,
            metrics=metrics,
            seed=seed,
            fast=fast,
        )
        failures.update(result["failed"])
        return result["metrics"]

    rows = robustness_rows(dataset, suite, chosen, say=typer.echo)
    table, figure = write_robustness(rows, out)
    typer.echo(f"written: {table}\nwritten: {figure}")
    if failures:
        raise metric_failures(failures)
