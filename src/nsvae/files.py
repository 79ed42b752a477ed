"""Files every stage writes and reads: atomic writes, JSON results and ``.jsonl`` logs.

Every file nsvae writes (checkpoints, ``config.json``, ``eval.json``, ``report.html``, npz
archives, the dSprites cache and downloads) goes through :func:`atomic_path`: the content is
written to a temporary name beside the target and renamed into place (``os.replace`` is atomic),
so a reader sees the old file or the new one, never half of one.

Processes that share a file take a :func:`file_lock` on it: an ``flock`` held by an open file
descriptor, which the kernel releases when the process ends however it ends, so a crashed or
killed process never leaves a lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from nsvae.errors import CheckpointError, NsvaeError, RunLockedError, one_line, warn


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, error: type[NsvaeError] = CheckpointError, what: str = ""
) -> Iterator[Path]:
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
        Of type ``error``, on any ``OSError`` in the block or the rename: "cannot read" when it
        names another file than ``path``, its temporary file or their folders (a source the
        block reads), else "cannot write". Other exceptions propagate unchanged, and the
        temporary file is removed.
    """
    path = Path(path)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, path)
    except OSError as failure:
        _remove(temporary)
        reason = one_line(failure.strerror or failure)
        if failure.filename and Path(failure.filename) not in (temporary, path, *path.parents):
            raise error(f"cannot read {failure.filename}: {reason}") from None  # a source
        raise error(f"cannot write {what or path}: {reason}") from None
    except BaseException:
        _remove(temporary)
        raise


def _remove(temporary: Path) -> None:
    """Remove a temporary file if it is there (where the folder itself cannot be made, as under
    a file, there is nothing to remove and the first error is the one to report)."""
    with contextlib.suppress(OSError):
        temporary.unlink(missing_ok=True)


def atomic_write(
    path: str | os.PathLike, data: bytes, error: type[NsvaeError] = CheckpointError
) -> None:
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


JSON_LIMIT = 2**28  # bytes: a run's JSON files hold configs, logs and RNG states, never this


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of the regular file ``path``, of at most ``limit`` bytes.

    A FIFO, device or folder planted at the name (a received folder may hold one) is refused
    at once instead of blocking or filling memory, as is a file over the limit.

    Raises
    ------
    OSError
        The file cannot be opened or read; ``errno.EINVAL`` with a one-line message for a file
        that is not regular or is too large.
    """
    descriptor = _open_regular(path, os.O_RDONLY)
    with os.fdopen(descriptor, "rb") as file:
        size = os.fstat(descriptor).st_size
        if size > limit:
            raise OSError(errno.EINVAL, f"{size} bytes, more than the {limit} allowed")
        return file.read(limit + 1)[:limit]


def _open_regular(path: str | os.PathLike, flags: int) -> int:
    """A descriptor of ``path`` opened with ``flags`` (never blocking), if it is a regular file.

    Raises
    ------
    OSError
        From ``os.open``, or ``errno.EINVAL`` for a FIFO, device or folder (the descriptor is
        closed).
    """
    descriptor = os.open(path, flags | os.O_NONBLOCK, 0o644)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or folder)")
    return descriptor


def read_json(path: str | os.PathLike) -> dict:
    """A JSON file's content (a regular file of at most :data:`JSON_LIMIT` bytes).

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable, not a regular file, too large or not JSON.
    """
    try:
        return json.loads(read_regular(path, JSON_LIMIT).decode("utf-8"))
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror or one_line(error)}") from None
    except (ValueError, RecursionError) as error:  # ValueError: any JSON it refuses
        raise CheckpointError(f"cannot read {path}: {one_line(error)}") from None


def append_row(path: str | os.PathLike, row: dict) -> None:
    """Append one JSON object as a line of a ``.jsonl`` file.

    Raises
    ------
    CheckpointError
        If the file cannot be written.
    """
    try:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(row, default=to_json) + "\n")
    except OSError as failure:
        raise CheckpointError(
            f"cannot write {path}: {one_line(failure.strerror or failure)}"
        ) from None


def write_rows(path: str | os.PathLike, rows: list[dict]) -> None:
    """Replace a ``.jsonl`` file with ``rows``, atomically."""
    atomic_write(path, "".join(json.dumps(row, default=to_json) + "\n" for row in rows).encode())


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Every row (a JSON object) of a ``.jsonl`` file.

    An unfinished last line (a crash) is skipped silently; any other line that is not a JSON
    object with an int ``step`` is skipped with a warning (:func:`nsvae.errors.warn`).

    Raises
    ------
    CheckpointError
        If the file is unreadable.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error}") from None
    rows, corrupt = [], []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):  # also integers past Python's digit limit
            row = None
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
        elif not (row is None and number == len(lines)):  # not an unfinished last line
            corrupt.append(number)
    if corrupt:
        warn(f"skipped {len(corrupt)} corrupt line(s) of {path} (line {corrupt[0]} first)")
    return rows


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike,
    exclusive: bool = True,
    wait: bool = True,
    busy: Callable[[str], str] | None = None,
) -> Iterator[None]:
    """Hold an ``flock`` on the lock file ``path`` (created if missing) for the block.

    Parameters
    ----------
    path : path-like
        The lock file; its content is the process id of the last exclusive holder.
    exclusive : bool
        An exclusive lock (one holder) or a shared one (any number of shared holders).
    wait : bool
        Wait for the lock, or raise :class:`RunLockedError` at once when it is held.
    busy : callable, optional
        The message of that error, from the holder's process id (a function, not a template:
        a path may hold braces).

    Raises
    ------
    RunLockedError
        ``wait`` is False and another process holds the lock.
    CheckpointError
        The lock file cannot be created (a shared lock on a folder that cannot be written is
        skipped instead: nobody can be writing there).
    """
    path = Path(path)
    descriptor = _open_lock(path, exclusive)
    if descriptor is None:
        yield
        return
    try:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(descriptor, mode)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip() or "?"
            message = busy(holder) if busy else f"{path} is locked by process {holder}"
            raise RunLockedError(message) from None
        if exclusive:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _open_lock(path: Path, exclusive: bool) -> int | None:
    """A descriptor of the lock file, or None for a shared lock where it cannot be created.

    A lock file is a regular file that nsvae created: a symbolic link, FIFO or device planted at
    its name (a received folder may hold one) is refused, never written through or waited on.
    """
    try:
        if exclusive:
            path.parent.mkdir(parents=True, exist_ok=True)
        return _lock_descriptor(path, os.O_RDWR | os.O_CREAT)
    except OSError as failure:
        nobody_writes = (errno.EACCES, errno.EROFS, errno.EPERM, errno.ENOENT)
        if exclusive or failure.errno not in nobody_writes:
            raise CheckpointError(
                f"cannot lock {path}: {one_line(failure.strerror or failure)}"
            ) from None
    try:
        return _lock_descriptor(path, os.O_RDONLY)
    except OSError:
        return None


def _lock_descriptor(path: Path, flags: int) -> int:
    """:func:`_open_regular` without following a link; a link, FIFO or device is refused."""
    try:
        return _open_regular(path, flags | os.O_NOFOLLOW)
    except OSError as failure:
        if failure.errno in (errno.ELOOP, errno.EINVAL):
            raise CheckpointError(
                f"{path} is not a regular file (a symbolic link, FIFO or "
                "device): nsvae does not write through it; delete it"
            ) from None
        raise
