"""Typed errors of nsvae, and the signals that stop a command.

Library code raises these; only :mod:`nsvae.cli` turns them into a one-line message and a
non-zero exit code. Each subclass carries its own exit code so scripts can tell failures apart.
:func:`handling_signals` is the one place that installs (and restores) signal handlers.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any


class NsvaeError(Exception):
    """Base class of every error nsvae raises on purpose."""

    exit_code = 1


class ConfigError(NsvaeError, ValueError):
    """A hyperparameter, flag or configuration file is invalid."""

    exit_code = 2


class DataError(NsvaeError):
    """A data file is missing, corrupt, of the wrong layout, or an input array is malformed."""

    exit_code = 3


class CheckpointError(NsvaeError):
    """A run directory or checkpoint cannot be read, written or resumed."""

    exit_code = 4


class TrainingError(NsvaeError):
    """Training cannot continue (for instance the loss became NaN or infinite)."""

    exit_code = 5


class TrainingInterrupted(TrainingError):
    """Training stopped on SIGINT or SIGTERM (or a sweep's stop request) after writing a
    checkpoint; it can be resumed.

    Parameters
    ----------
    message : str
        The one-line message.
    signal_name : str
        ``"SIGINT"`` (exit code 130) or ``"SIGTERM"`` (exit code 143).
    step : int, optional
        The step reached (and checkpointed).
    """

    exit_code = 130

    def __init__(self, message: str, signal_name: str = "SIGINT", step: int | None = None):
        super().__init__(message)
        self.signal_name, self.step = signal_name, step
        self.exit_code = signal_exit_code(signal_name)


class MetricError(NsvaeError, ValueError):
    """A metric cannot be computed on the given data or codes."""

    exit_code = 6


class RunLockedError(CheckpointError):
    """Another process holds the lock of a run directory (it is training there)."""

    exit_code = 7


class DependencyError(NsvaeError):
    """An optional package that a command needs is not installed."""

    exit_code = 8


class Terminated(BaseException):  # noqa: N818 (named like KeyboardInterrupt, its sibling)
    """Raised in the main thread on SIGTERM, as ``KeyboardInterrupt`` is on SIGINT."""


class NsvaeWarning(UserWarning):
    """Something the user should know that does not stop the command (one line)."""


# Exit codes of the signals that end a command: 128 + the signal number, the shell's convention.
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


def signal_exit_code(signal_name: str) -> int:
    """Exit code of a command ended by ``signal_name`` (``SIGINT`` 130, ``SIGTERM`` 143)."""
    return SIGNAL_EXIT_CODES.get(signal_name, 130)


@contextlib.contextmanager
def handling_signals(handlers: Mapping[int, Callable[[int, Any], None]]) -> Iterator[None]:
    """Install ``handlers`` (signal number: handler) for the block and restore the handlers
    found after it. Only the main thread may install handlers (Python's rule); in any other
    thread the block runs with nothing installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, handler) for number, handler in handlers.items()}
    try:
        yield
    finally:
        for number, found in previous.items():
            signal.signal(number, found)


class DataWarning(NsvaeWarning):
    """Data was read with a problem that did not stop it (for instance unreadable files skipped).

    The CLI prints it as one line; in Python it is an ordinary warning.
    """


OUT_OF_MEMORY = (
    "out of memory",
    "not enough memory",
    "can't allocate memory",
    "cannot allocate memory",  # torch's words on CUDA, Windows and Linux
    "failed to map segment",
)  # the dynamic loader's, in a small address space


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a failed allocation: a MemoryError, a RuntimeError of torch's
    allocators (``torch.OutOfMemoryError`` on a GPU; on the CPU a plain RuntimeError whose
    message says so), or an ImportError of a library the loader could not map into a limited
    address space (``ulimit -v``). Such a run asks more memory than there is: a configuration
    problem (:class:`ConfigError`'s exit code), not a bug."""
    text = str(error).lower()
    return (
        isinstance(error, MemoryError)
        or isinstance(error, RuntimeError | ImportError)
        and any(words in text for words in OUT_OF_MEMORY)
    )


def one_line(error: BaseException | str) -> str:
    """The message of ``error`` on one line (its type name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


def warn(message: str) -> None:
    """Tell the user ``message`` (one line) without stopping: an :class:`NsvaeWarning`.

    The command line prints it as ``nsvae: warning: message``; Python callers see a warning.
    """
    warnings.warn(one_line(message), NsvaeWarning, stacklevel=2)
