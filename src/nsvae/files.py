"""Files every stage writes and reads: atomic writes, JSON results and ``.jsonl`` logs.

Every file nsvae writes (checkpoints, ``config.json``, ``eval.json``, ``report.html``, npz
archives, the dSprites cache and downloads) goes through :func:`atomic_path`: the content is
written to a temporary name beside the target and renamed into place (``os.replace`` is atomic),
so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nsvae.errors import CheckpointError, NsvaeError, one_line


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, error: type[NsvaeError] = CheckpointError,
                what: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    Parameters
    ----------
    path : path-like
        The file to (re)place; its folder is created if missing.
    error : NsvaeError subclass
        Raised, with a one-line message, when writing fails (the temporary file is removed).
    what : str
        What the file is, for the message (default: ``path``).

    Raises
    ------
    NsvaeError
        Of type ``error``, on any ``OSError`` in the block or the rename. Other exceptions
        propagate unchanged, and the temporary file is removed.
    """
    path = Path(path)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, path)
    except OSError as failure:
        temporary.unlink(missing_ok=True)
        raise error(f"cannot write {what or path}: {one_line(failure.strerror or failure)}") \
            from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes,
                 error: type[NsvaeError] = CheckpointError) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path`, flushed to disk before the rename.

    Raises
    ------
    NsvaeError
        Of type ``error`` if the file cannot be written (the old file, if any, is kept).
    """
    with atomic_path(path, error) as temporary, open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def to_json(value):
    """``json.dumps`` fallback for numpy scalars and arrays and paths (as found in results)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(path: str | os.PathLike, value, error: type[NsvaeError] = CheckpointError) -> None:
    """Write ``value`` as indented JSON (numpy values allowed) atomically."""
    text = json.dumps(value, indent=2, default=to_json) + "\n"
    atomic_write(path, text.encode("utf-8"), error)


def read_json(path: str | os.PathLike) -> dict:
    """A JSON file's content.

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable or not JSON.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {one_line(error)}") from None


def append_row(path: str | os.PathLike, row: dict) -> None:
    """Append one JSON object as a line of a ``.jsonl`` file."""
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(row, default=to_json) + "\n")


def write_rows(path: str | os.PathLike, rows: list[dict]) -> None:
    """Replace a ``.jsonl`` file with ``rows``, atomically."""
    atomic_write(path, "".join(json.dumps(row, default=to_json) + "\n" for row in rows).encode())


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Every row of a ``.jsonl`` file; an unfinished last line (a crash) is skipped.

    Raises
    ------
    CheckpointError
        If the file is unreadable or a line other than the last is not JSON.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise CheckpointError(f"corrupt {path}: line {number} is not JSON") from None
    return rows
