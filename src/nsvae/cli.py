"""The ``nsvae`` command.

Every library error (:class:`nsvae.errors.NsvaeError`) becomes a one-line message on stderr and
a non-zero exit code; nothing below this module prints or exits.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from nsvae.errors import NsvaeError

app = typer.Typer(
    name="nsvae",
    help="Train, evaluate and compare disentangling VAEs (Non-Synergistic VAE and baselines).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Render, fetch and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


# ----------------------------------------------------------------------------------------- data


# ---------------------------------------------------------------------------------------- train


# ------------------------------------------------------------------------------------- evaluate


# --------------------------------------------------------------------------------------- report


# ----------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the command line; library errors become one line on stderr and an exit code."""
    try:
        app(args=argv, standalone_mode=False)
    except NsvaeError as error:
        typer.echo(f"nsvae: error: {error}", err=True)
        return error.exit_code
    except KeyboardInterrupt:
        typer.echo("nsvae: interrupted", err=True)
        return 130
    except FileNotFoundError as error:
        typer.echo(f"nsvae: error: no such file: {error.filename}", err=True)
        return 3
    except typer.Exit as done:
        return done.exit_code
    except Exception as error:  # click usage errors and anything unexpected stay one line
        return _report_unexpected(error)
    return 0


def _report_unexpected(error: Exception) -> int:
    import click

    if isinstance(error, click.exceptions.ClickException):
        error.show()
        return error.exit_code
    if isinstance(error, click.exceptions.Abort):
        typer.echo("nsvae: aborted", err=True)
        return 130
    typer.echo(f"nsvae: internal error: {type(error).__name__}: {error}", err=True)
    return 70


if __name__ == "__main__":
    sys.exit(main())
