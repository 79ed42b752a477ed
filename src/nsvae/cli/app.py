"""The ``nsvae`` application: its command groups, shared options and helpers.

Each command lives in a module of this package and registers itself on :data:`app` (or on
:data:`data_app` / :data:`study_app`); :mod:`nsvae.cli.program` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from typer.core import TyperCommand

import nsvae
from nsvae.errors import MetricError, NsvaeError

app = typer.Typer(
    name="nsvae",
    help="Train, evaluate and compare disentangling VAEs (Non-Synergistic VAE and baselines).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Render, fetch and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
study_app = typer.Typer(
    help="Look at and re-score the results of a study (nsvae sweep).", no_args_is_help=True
)
app.add_typer(study_app, name="study")
SEED = {"min": 0, "max": 2**32 - 1}  # what every random generator takes
# Command name -> a function completing its help from the library when the help is shown.
HELP_FROM_LIBRARY: dict[str, Callable] = {}


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"nsvae {nsvae.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_show_version
        ),
    ] = False,
) -> None:
    pass


class LibraryHelp(TyperCommand):
    """A command whose help is completed from the library when shown (:data:`HELP_FROM_LIBRARY`),
    so that no command imports torch (through the config or the metrics) just to parse its
    arguments."""

    def format_help(self, ctx, formatter) -> None:
        HELP_FROM_LIBRARY[self.name](self)
        super().format_help(ctx, formatter)


def flag(name: str, text: str, **kwargs):
    """An option named ``name`` with help ``text``."""
    return typer.Option(name, help=text, **kwargs)


def metric_failures(failed: dict) -> NsvaeError:
    """One error naming every metric that failed, and why."""
    reasons = "; ".join(f"{name}: {message}" for name, message in failed.items())
    return MetricError(f"{len(failed)} metric(s) failed ({reasons}); the others were kept")
