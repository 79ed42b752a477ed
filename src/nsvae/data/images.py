"""Image collections without ground truth: a folder or zip of JPEG/PNG files, and CelebA.

Every file of the folder (recursively) or zip (read in place, never extracted) is decoded once,
turned to RGB, centre-cropped to the largest square, resized to 64 x 64 (Lanczos) and stored in
a cached uint8 array ``[N, 3, 64, 64]`` under the data root, opened as a memory map afterwards
(:func:`nsvae.data.files.cached_array`). The cache is keyed by the source's name, size and
modification time (of the zip, or of every file of the folder), so a changed source is decoded
again. Files that are not readable images are skipped and reported, never silently: a
:class:`~nsvae.errors.DataWarning` with their count and first names, on every load.

CelebA (Liu et al., 2015) is the official ``img_align_celeba.zip`` (202,599 aligned faces,
178 x 218) or its extracted folder, with the same preprocessing; the seed trained on it with a
Gaussian likelihood (``likelihood="auto"`` picks it for three channels). It has no factors.
"""

from __future__ import annotations

import io
import json
import os
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from nsvae.data.files import ARCHIVE_ERRORS, OfficialFile, cached_array, source_key
from nsvae.data.files import data_root as data_folder
from nsvae.data.ground_truth import FactorSpace, GroundTruthData
from nsvae.errors import DataError, DataWarning, one_line
from nsvae.files import write_json

IMAGE_SIZE = 64
PREPROCESSING = {"version": 1, "crop": "centre square", "size": IMAGE_SIZE, "resample": "lanczos"}
SHOWN_NAMES = 3  # skipped files named in the warning
MAX_FILE_BYTES = 256 * 2**20  # larger files are skipped unread (a zip bomb, not a picture)
DECODED_FORMATS = ("JPEG", "PNG")  # what docs/datasets.md documents; any other is skipped
MAX_PIXELS = 2**25  # 33.5 megapixels: a 5,792 x 5,792 image; the decoder never sees larger
CELEBA = OfficialFile(
    "celeba",
    "img_align_celeba.zip",
    "https://drive.google.com/uc?id=0B7EVK8r0v71pZjFTYXZWM3FlRnM",
    ("00d2c5bc6d35e252742224ab0c1e8fcb",),
    name="CelebA",
)
UNDECODABLE = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
    NotImplementedError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)  # raised, not printed: see :func:`decode_rgb`


class ImageCollection(GroundTruthData):
    """Images without ground-truth factors, as RGB uint8 ``[N, 3, 64, 64]``.

    ``has_factors`` is False; the one "factor" is the image index, so training, figures and the
    unsupervised metrics can draw observations through the usual contract.

    Parameters
    ----------
    images : uint8 array [N, 3, 64, 64]
        The decoded images (typically the memory-mapped cache).
    names : list of str
        The source file of each image.
    source : str
        Where the images come from (for provenance).
    """

    factor_names = ("image",)
    observation_shape = (3, IMAGE_SIZE, IMAGE_SIZE)
    has_factors = False

    def __init__(self, images: np.ndarray, names: list[str], source: str):
        if images.dtype != np.uint8 or images.shape[1:] != self.observation_shape:
            raise DataError(
                f"images must be uint8 [N, 3, 64, 64], got {images.dtype} {list(images.shape)}"
            )
        if len(images) == 0 or len(names) != len(images):
            raise DataError(f"{source}: {len(images)} images for {len(names)} names")
        self.factor_space = FactorSpace([len(images)])
        self.images = images
        self.names = names
        self.source = source

    def sample_observations_from_factors(self, factors, random_state):
        rows = self.images[self.factors_to_index(factors)]
        return np.multiply(rows, 1 / 255, dtype=np.float32)

    def observations_array(self):
        return self.images, 1 / 255


# ------------------------------------------------------------------------------------ sources


def list_files(source: Path) -> list[str]:
    """Names of the files of a folder (recursive, relative, hidden files left out) or a zip.

    Raises
    ------
    DataError
        ``source`` is neither a folder nor a readable zip, or holds no files.
    """
    if source.is_dir():
        names = sorted(
            p.relative_to(source).as_posix()
            for p in source.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
    elif source.is_file():
        try:
            with zipfile.ZipFile(source) as archive:
                names = sorted(info.filename for info in archive.infolist() if not info.is_dir())
        except ARCHIVE_ERRORS as error:
            raise DataError(f"{source}: not a readable zip file ({one_line(error)})") from None
    else:
        raise DataError(f"no image folder or zip file at {source}")
    if not names:
        raise DataError(f"{source}: no files")
    return names


def read_files(source: Path, names: list[str]):
    """Yield ``(name, bytes or error text)`` of each file, from the folder or the zip.

    A file (or zip member, by the size its header declares, which bounds what zipfile reads)
    over :data:`MAX_FILE_BYTES` is not read: its error text says so.
    """
    if source.is_dir():
        for name in names:
            try:
                path = source / name
                yield name, _too_large(path.stat().st_size) or path.read_bytes()
            except OSError as error:
                yield name, one_line(error)
        return
    with zipfile.ZipFile(source) as archive:
        for name in names:
            try:
                yield name, _too_large(archive.getinfo(name).file_size) or archive.read(name)
            except ARCHIVE_ERRORS as error:
                yield name, one_line(error)


def _too_large(size: int) -> str:
    """The error text of a file of ``size`` bytes over :data:`MAX_FILE_BYTES`, else ``""``."""
    return f"{size:,} bytes, over {MAX_FILE_BYTES:,}: not read" if size > MAX_FILE_BYTES else ""


def decode_rgb(source) -> Image.Image:
    """The image of ``source`` (a path or a binary file) in RGB, its values scaled to 0-255.

    PIL's own conversion clips 16-bit images (a 16-bit photograph turns white), so wide integer
    images are scaled by their range (255 when every value fits, else 65,535, else their
    largest value).
    Only :data:`DECODED_FORMATS` are decoded, whatever the file's name (PIL knows 40-odd formats,
    some of which hand the file to other programs: Ghostscript for EPS), and only images of at
    most :data:`MAX_PIXELS` pixels, checked from the header before anything is decoded. A
    decompression-bomb warning is raised as an error, so the image counts as undecodable.

    Raises
    ------
    One of :data:`UNDECODABLE`, or ``PIL.UnidentifiedImageError`` (another format).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(source, formats=DECODED_FORMATS) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ValueError(
                    f"{image.width} x {image.height} pixels, over {MAX_PIXELS:,}: not decoded"
                )
            image.load()
            if image.mode != "I" and not image.mode.startswith("I;16"):
                return image.convert("RGB")
            values = np.asarray(image, dtype=np.float64)
    largest = values.max(initial=0.0)
    top = next(limit for limit in (255.0, 65535.0, largest) if largest <= limit)
    gray = np.clip(values / max(top, 1.0) * 255, 0, 255).round().astype(np.uint8)
    return Image.fromarray(gray, "L").convert("RGB")


def preprocess(data: bytes) -> np.ndarray:
    """Decode an image file to RGB uint8 ``[3, 64, 64]``: centre square crop, Lanczos resize.

    Raises
    ------
    DataError
        The bytes are not a complete, readable image.
    """
    try:
        rgb = decode_rgb(io.BytesIO(data))
    except UnidentifiedImageError:
        raise DataError("not an image") from None
    except UNDECODABLE as error:
        raise DataError(one_line(error)) from None
    width, height = rgb.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = rgb.crop((left, top, left + side, top + side))
    return resize(np.asarray(square)).transpose(2, 0, 1)


def resize(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """An image [H, W] or [H, W, 3] uint8 resized to ``size`` x ``size`` with Lanczos filtering
    (PIL's ANTIALIAS, as disentanglement_lib resizes smallNORB and Cars3D)."""
    resized = Image.fromarray(image).resize((size, size), Image.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


# ---------------------------------------------------------------------------------- the cache


def cache_folder(source: Path, data_root=None) -> Path:
    """Where the decoded images of ``source`` are cached: ``<root>/images/<key>/``."""
    files = [source] if source.is_file() else [source / name for name in list_files(source)]
    return data_folder(data_root) / "images" / source_key(files, **PREPROCESSING)


def decode_all(source: Path, names: list[str], out: np.ndarray, progress_name: str):
    """Decode every file into ``out`` (readable ones first, in order).

    Returns the kept names and the skipped ``(name, reason)`` pairs.
    """
    kept, skipped = [], []
    files = tqdm(
        read_files(source, names),
        total=len(names),
        desc=f"decoding {progress_name}",
        unit="img",
        disable=None,
        leave=False,
    )
    for name, data in files:
        try:
            if isinstance(data, str):
                raise DataError(data)
            out[len(kept)] = preprocess(data)
            kept.append(name)
        except DataError as error:
            skipped.append((name, str(error)))
    return kept, skipped


def load_images(source: str | os.PathLike, data_root=None, name: str = "images") -> ImageCollection:
    """The images of a folder or zip (module docstring), decoded once into the cache.

    Warns :class:`~nsvae.errors.DataWarning` when files were skipped (count and first names).

    Raises
    ------
    DataError
        No such folder or zip, an unreadable zip, or no readable image at all.
    """
    source = Path(source)
    folder = cache_folder(source, data_root)
    index_path, images_path = folder / "index.json", folder / "images.npy"
    if not index_path.is_file():  # written last: without it the cache is incomplete
        images_path.unlink(missing_ok=True)
    names = None if images_path.is_file() else list_files(source)
    record = {}

    def fill(out):
        kept, skipped = decode_all(source, names, out, name)
        if not kept:
            raise DataError(
                f"{source}: none of its {len(names)} files is a readable image "
                f"(first: {_first(skipped)})"
            )
        record.update(names=kept, skipped=skipped)
        return len(kept)

    shape = (0 if names is None else len(names), *ImageCollection.observation_shape)
    images, reused = cached_array(images_path, np.uint8, shape, fill)
    if reused:
        record = _read_index(index_path, len(images))
    else:
        write_json(index_path, record, DataError)
    if record["skipped"]:
        warnings.warn(
            f"{source}: skipped {len(record['skipped'])} of "
            f"{len(record['skipped']) + len(images)} files that are not readable "
            f"images (first: {_first(record['skipped'])})",
            DataWarning,
            stacklevel=2,
        )
    return ImageCollection(images, record["names"], str(source))


def load_celeba(
    path: str | os.PathLike | None = None, data_root=None, checksum: str | None = "official"
) -> ImageCollection:
    """CelebA: ``img_align_celeba.zip`` (or its folder) at ``path`` or under the data root.

    The zip is checked against the published MD5 (``checksum``: see
    :meth:`nsvae.data.files.OfficialFile.check`) before it is first decoded; a folder has no
    checksum.

    Raises
    ------
    DataError
        Missing file (the message says where to get it), checksum mismatch, unreadable zip.
    """
    source = CELEBA.path(data_root) if path is None else Path(path)
    if not source.exists():
        raise DataError(
            f"no {CELEBA.name} at {source}: download {CELEBA.url} "
            f"({CELEBA.expected()}) and put it there, or give its folder"
        )
    if source.is_file() and not (cache_folder(source, data_root) / "index.json").is_file():
        CELEBA.check(source, checksum)
    return load_images(source, data_root, name=CELEBA.name)


def _first(skipped) -> str:
    shown = [f"{name} ({reason})" for name, reason in skipped[:SHOWN_NAMES]]
    return ", ".join(shown) + (", ..." if len(skipped) > SHOWN_NAMES else "")


def _read_index(path: Path, num_images: int) -> dict:
    """The cache's index: ``names`` (one per cached image) and ``skipped`` (name, reason) pairs.

    Raises
    ------
    DataError
        The index is unreadable, not JSON or not laid out as :func:`load_images` writes it.
    """
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        names, skipped = record["names"], record["skipped"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"corrupt cache index {path} ({one_line(error)}); delete its folder"
        ) from None
    if not (
        _is_string_list(names)
        and len(names) == num_images
        and isinstance(skipped, list)
        and all(_is_string_list(pair) and len(pair) == 2 for pair in skipped)
    ):
        raise DataError(
            f"corrupt cache index {path} (not {num_images} names and a list of "
            "(name, reason) pairs); delete its folder"
        )
    return {"names": names, "skipped": [tuple(pair) for pair in skipped]}


def _is_string_list(values) -> bool:
    """Whether ``values`` (read from JSON) is a list of strings."""
    return isinstance(values, list) and all(isinstance(value, str) for value in values)
