"""Official dataset files and on-disk caches: where they live, checksums, downloads, memory maps.

Every dataset that comes from a published file names it with an :class:`OfficialFile` (URL,
published checksums, where nsvae looks for it). :func:`fetch` downloads one and checks it; without
network its one-line error names the URL, the expected checksum and the path to put the file.

Decoded or converted data is cached once as a plain ``.npy`` file under the data root and opened
as a copy-on-write memory map (:func:`cached_array`): it opens in milliseconds, pages come in on
first use, and data larger than memory trains from disk. Caches and downloads are written through
:func:`nsvae.files.atomic_path` (a temporary file renamed into place), so a file is always
complete. Cache names carry a key of the source files' names, sizes and modification times
(:func:`source_key`), so a changed source is converted again.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import lzma
import os
import tokenize
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nsvae.errors import DataError, one_line
from nsvae.files import atomic_path

CONVERTER_VERSION = 1  # part of every converted cache's key: bump when a conversion changes
# What reading a zip member or an npy header raises on a damaged or unsupported file: besides the
# usual, RuntimeError (an encrypted member), NotImplementedError (a compression method zipfile
# lacks), lzma.LZMAError, and tokenize.TokenError or SyntaxError (a malformed npy header).
ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    tokenize.TokenError,
    SyntaxError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root``, else ``$NSVAE_DATA``, else ``~/.cache/nsvae``."""
    return Path(root or os.environ.get("NSVAE_DATA") or "~/.cache/nsvae").expanduser()


# ----------------------------------------------------------------------------------- checksums


def file_digests(path: Path) -> dict[str, str]:
    """Git blob SHA-1, SHA-1, MD5 and SHA-256 of a file, in one pass."""
    digests = {
        "git blob SHA-1": hashlib.sha1(b"blob %d\0" % path.stat().st_size),
        "SHA-1": hashlib.sha1(),
        "MD5": hashlib.md5(),
        "SHA-256": hashlib.sha256(),
    }
    with open(path, "rb") as file:
        while chunk := file.read(1 << 22):
            for digest in digests.values():
                digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def check_checksum(path: Path, expected: Sequence[str]) -> None:
    """Raise :class:`DataError` unless one of the file's digests is in ``expected``."""
    digests = file_digests(Path(path))
    if not {e.lower() for e in expected} & set(digests.values()):
        raise DataError(
            f"{path}: checksum mismatch (git blob SHA-1 {digests['git blob SHA-1']}, "
            f"MD5 {digests['MD5']}; expected {' or '.join(expected)}): "
            "wrong, truncated or corrupt file"
        )


def expected_checksums(official: Sequence[str], checksum: str | None) -> tuple[str, ...]:
    """The digests to accept: ``official`` for ``"official"``, ``(checksum,)``, or none for None."""
    if checksum is None:
        return ()
    return tuple(official) if checksum == "official" else (checksum,)


# ------------------------------------------------------------------------------ official files


@dataclass(frozen=True)
class OfficialFile:
    """A published dataset file.

    Attributes
    ----------
    folder : str
        Sub-folder of the data root where nsvae looks for it.
    filename : str
        Its name there (the published name).
    url : str
        Where it is published.
    checksums : tuple of str
        Published digests (MD5, SHA-1, SHA-256 or git blob SHA-1); empty when none is published.
    folder_ok : bool
        Whether the file's extracted folder may stand in for it (Cars3D's archive).
    name : str
        What messages call it: the dataset's name ("Cars3D"), or what the file is.
    """

    folder: str
    filename: str
    url: str
    checksums: tuple[str, ...] = ()
    folder_ok: bool = False
    name: str = field(kw_only=True)

    def path(self, root: str | os.PathLike | None = None) -> Path:
        """Where nsvae looks for the file (and :func:`fetch` puts it)."""
        return data_root(root) / self.folder / self.filename

    def expected(self) -> str:
        """The expected checksum in words, for messages."""
        if not self.checksums:
            return "no published checksum"
        return "checksum " + " or ".join(self.checksums)

    def require(self, path: Path) -> Path:
        """``path`` if it is a file (or, with :attr:`folder_ok`, a folder), else a
        :class:`DataError` saying where to get the file."""
        if path.is_dir() and not self.folder_ok:
            raise DataError(
                f"{path} is a folder, not the {self.name} file: put the file there "
                f"or give its path ({self.url})"
            )
        if not path.exists():
            raise DataError(
                f"no {self.name} file at {path}: download {self.url} "
                f"({self.expected()}) and put it there"
            )
        return path

    def check(self, path: Path, checksum: str | None = "official") -> None:
        """Check ``path`` against the published checksums (``"official"``), a given digest or none.

        A file without a published checksum passes ``"official"``.
        """
        expected = expected_checksums(self.checksums, checksum)
        if expected:
            check_checksum(path, expected)


def fetch(file: OfficialFile, root: str | os.PathLike | None = None, timeout: float = 60.0) -> Path:
    """Download ``file`` to :meth:`OfficialFile.path` and check its checksum.

    A file already there is checked and reused, as is an extracted folder where one may stand
    in for the file (:attr:`OfficialFile.folder_ok`; a folder has no checksum). The download
    goes through :func:`nsvae.files.atomic_path`, so a failed or rejected download leaves
    nothing behind.

    Raises
    ------
    DataError
        No network (one line naming the URL, the expected checksum and where to put the file
        downloaded by hand), a checksum mismatch, or a folder where the file belongs.
    """
    path = file.path(root)
    if path.is_file():
        file.check(path)
        return path
    if path.is_dir():
        return file.require(path)
    with atomic_path(path, DataError) as partial:
        try:
            with (
                urllib.request.urlopen(file.url, timeout=timeout) as response,
                open(partial, "wb") as out,
            ):
                while chunk := response.read(1 << 22):
                    out.write(chunk)
        except (OSError, http.client.HTTPException) as error:
            raise DataError(
                f"cannot download {file.url} ({one_line(error)}); download it by "
                f"hand ({file.expected()}) and put it at {path}"
            ) from None
        file.check(partial)
    return path


# -------------------------------------------------------------------------------------- caches


def source_key(paths: Sequence[Path], **settings) -> str:
    """Short hash of the files' resolved names, sizes, modification times and whether this
    process may read them, and ``settings``: a file whose permissions were fixed after it was
    skipped as unreadable changes the key, so it is read again."""
    stats = []
    for path in paths:
        stat = Path(path).stat()
        stats.append(
            [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, os.access(path, os.R_OK)]
        )
    text = json.dumps([stats, settings], sort_keys=True, default=str).encode()
    return hashlib.sha1(text).hexdigest()[:16]


def open_cache(
    path: Path, dtype, shape: Sequence[int] | None = None, what: str = "cache"
) -> np.ndarray:
    """A cached ``.npy`` as a copy-on-write memory map, checked for dtype (and shape).

    Raises
    ------
    DataError
        ``corrupt <what> <path> (...); delete it``: the cache is unreadable or of another dtype
        or shape (deleting it makes it again).
    """
    try:
        array = np.load(path, mmap_mode="c", allow_pickle=False)
    except (ValueError, OSError) as error:
        raise DataError(f"corrupt {what} {path} ({one_line(error)}); delete it") from None
    if array.dtype != dtype or (shape is not None and array.shape != tuple(shape)):
        raise DataError(f"corrupt {what} {path} ({array.dtype} {list(array.shape)}); delete it")
    return array


def cached_array(
    path: Path,
    dtype,
    shape: Sequence[int],
    fill: Callable[[np.ndarray], int | None],
    what: str = "cache",
) -> tuple[np.ndarray, bool]:
    """The cache ``path`` as a memory map, made first by ``fill(out)`` if it is not there.

    ``fill`` writes the rows of ``out``, a writable memory map of ``shape`` and ``dtype``, and
    returns how many leading rows it kept (None: all). It may raise; then nothing is left behind
    (the cache is written through :func:`nsvae.files.atomic_path`). The file's space is
    allocated before ``fill`` runs, so a full disk is an error, not a crash.

    Parameters
    ----------
    what : str
        What the cache holds, for messages (``"dSprites cache"``).

    Returns
    -------
    array : memory-mapped ndarray
    reused : bool
        False if this call made the cache.

    Raises
    ------
    DataError
        The cache cannot be written (a full disk included), or is corrupt (see
        :func:`open_cache`).
    """
    reused = path.is_file()
    if not reused:
        with atomic_path(path, DataError, f"the {what} {path}") as temporary:
            out = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=tuple(shape))
            _reserve(temporary)
            kept = fill(out)
            out.flush()
            if kept is not None and kept < len(out):
                _write_rows(temporary, out[:kept])
            del out
    array = open_cache(path, dtype, what=what)
    if array.shape[1:] != tuple(shape)[1:]:
        raise DataError(f"corrupt {what} {path} ({array.dtype} {list(array.shape)}); delete it")
    return array, reused


def _reserve(path: Path) -> None:
    """Allocate the whole (sparse) file on disk now: a disk too small for it fails here with
    ENOSPC, an error :func:`nsvae.files.atomic_path` reports in one line (removing the file),
    instead of killing the process with SIGBUS when ``fill`` writes a page the disk cannot hold.
    """
    with open(path, "r+b") as file:
        os.posix_fallocate(file.fileno(), 0, os.fstat(file.fileno()).st_size)


def _write_rows(path: Path, rows: np.ndarray, chunk: int = 4096) -> None:
    """Replace the ``.npy`` file ``path`` with ``rows`` atomically, ``chunk`` rows at a time."""
    with atomic_path(path, DataError) as temporary:
        out = np.lib.format.open_memmap(temporary, mode="w+", dtype=rows.dtype, shape=rows.shape)
        for start in range(0, len(rows), chunk):
            out[start : start + chunk] = rows[start : start + chunk]
        out.flush()
        del out


def converted_images(
    dataset: str,
    sources: Sequence[Path],
    shape: Sequence[int],
    fill: Callable[[np.ndarray], int | None],
    root=None,
) -> np.ndarray:
    """A dataset's images converted once from its source files, as a uint8 memory map.

    The cache is ``<root>/<dataset>/converted-<key>.npy`` with the key of :func:`source_key`;
    ``fill`` converts (see :func:`cached_array`).
    """
    key = source_key(sources, converter=CONVERTER_VERSION)
    path = data_root(root) / dataset / f"converted-{key}.npy"
    return cached_array(path, np.uint8, shape, fill)[0]


def copy_channels_first(
    read: Callable[[int, int], np.ndarray], out: np.ndarray, chunk: int = 2048
) -> None:
    """Fill ``out`` [N, C, H, W] from ``read(start, stop)`` -> rows [n, H, W, C], in chunks."""
    for start in range(0, len(out), chunk):
        stop = min(start + chunk, len(out))
        out[start:stop] = np.moveaxis(read(start, stop), -1, 1)
