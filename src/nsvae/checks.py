"""One-line checks of configuration values, shared by every owner of a config section.

Each rule is written once, by the module that owns the value (the dataset registry, the model
builder, each objective's config class, the training config); these helpers only format the
message as ``section.key must ..., got value``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from nsvae.errors import ConfigError


def is_number(value) -> bool:
    """An int or a float, not a bool (JSON's true and false are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check(ok: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def choice(key: str, value: str, choices: Iterable[str]) -> None:
    """``value`` must be one of ``choices``."""
    choices = tuple(choices)
    check(value in choices, f"unknown {key} {value!r} (choose from: {', '.join(choices)})")


def non_negative(key: str, value: float) -> None:
    """A finite number >= 0."""
    check(value >= 0 and math.isfinite(value), f"{key} must be >= 0, got {value}")


def positive(key: str, value: float) -> None:
    """A finite number > 0."""
    check(value > 0 and math.isfinite(value), f"{key} must be > 0, got {value}")


INT_LIMIT = 2**63  # counts are int64 in torch and numpy


def at_least(minimum: int, note: str = ""):
    """A check that an integer is >= ``minimum`` (``note`` follows the bound in the message)
    and below :data:`INT_LIMIT`."""

    def at_least_minimum(key: str, value: int) -> None:
        check(value >= minimum, f"{key} must be >= {minimum}{note}, got {value}")
        check(value < INT_LIMIT, f"{key} must be below 2**63, got {value}")

    return at_least_minimum


SEED_LIMIT = 2**32  # numpy's RandomState takes seeds in [0, 2**32)


def check_seed(key: str, value: int) -> None:
    """A seed every generator takes: an int in [0, 2**32)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < SEED_LIMIT
    check(ok, f"{key} must be an integer in [0, 2**32), got {value!r}")


def unit_interval(key: str, value: float) -> None:
    """A number in [0, 1]."""
    check(0 <= value <= 1, f"{key} must be in [0, 1], got {value}")


def adam_betas(key: str, value: tuple[float, float]) -> None:
    """Adam's two moment decays, each in [0, 1)."""
    check(all(0 <= b < 1 for b in value), f"{key} must be in [0, 1), got {value}")


def setting(
    default,
    text: str,
    *,
    check=None,
    resumable: bool = False,
    path: bool = False,
    flag: str | None = None,
):
    """A config field: its default, one line of ``text`` (the help of its command-line flag,
    which ``nsvae train`` generates from it), its rule ``check(key, value)`` (run by
    :func:`check_fields`), whether it may change when a run is resumed, whether it names a file
    (the command line makes it absolute), and its flag where that is not ``--field-name``."""
    metadata = {"help": text, "resumable": resumable, "path": path}
    metadata.update({"check": check} if check else {})
    metadata.update({"flag": flag} if flag else {})
    return dataclasses.field(default=default, metadata=metadata)


def check_fields(config, section: str) -> None:
    """Run the ``check`` of each dataclass field's metadata on its value.

    A field declares its rule beside its default, e.g.
    ``alpha: float = setting(5.0, "Weight of KL(A_worst).", check=non_negative)``.
    """
    for item in dataclasses.fields(config):
        rule = item.metadata.get("check")
        if rule is not None:
            rule(f"{section}.{item.name}", getattr(config, item.name))
