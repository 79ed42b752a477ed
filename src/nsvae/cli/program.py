"""Run the command line: every library error becomes one line and an exit code.

Every library error (:class:`nsvae.errors.NsvaeError`) becomes a one-line message on stderr and
a non-zero exit code, every library warning (:class:`nsvae.errors.NsvaeWarning`) a line
``nsvae: warning: ...``; nothing below this package prints or exits.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings

import typer

from nsvae.cli.app import app
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
)


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
    return handling_signals(
        {signal.SIGTERM: _terminate, signal.SIGINT: signal.getsignal(signal.SIGINT)}
    )


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
        remedy = (
            "raise the process's address-space limit (ulimit -v)"
            if isinstance(error, ImportError)
            else "lower the batch size, model.z_dim or the evaluation's sample counts"
        )
        typer.echo(f"nsvae: error: out of memory ({one_line(error)}): {remedy}", err=True)
        return ConfigError.exit_code
    typer.echo(f"nsvae: internal error: {type(error).__name__}: {error}", err=True)
    return 70
