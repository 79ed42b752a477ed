"""Typed errors of nsvae.

Library code raises these; only :mod:`nsvae.cli` turns them into a one-line message and a
non-zero exit code. Each subclass carries its own exit code so scripts can tell failures apart.
"""

from __future__ import annotations


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
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint; it can be resumed."""

    exit_code = 130


class MetricError(NsvaeError, ValueError):
    """A metric cannot be computed on the given data or codes."""

    exit_code = 6


class DataWarning(UserWarning):
    """Data was read with a problem that did not stop it (for instance unreadable files skipped).

    The CLI prints it as one line; in Python it is an ordinary warning.
    """


def one_line(error: BaseException | str) -> str:
    """The message of ``error`` on one line (its type name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__
