"""Ground-truth datasets, image collections and in-memory batches.

``get_dataset(name, **kw)`` builds a dataset by name (:data:`DATASETS`); every dataset implements
:class:`GroundTruthData`, the contract the metrics rely on (an image collection has no factors:
``has_factors`` is False). ``fetch_dataset(name)`` downloads a dataset's official files
(each entry's ``files``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nsvae.checks import check
from nsvae.data import cars3d, mpi3d, norb, shapes3d
from nsvae.data.dsprites import OFFICIAL_FILE as DSPRITES_FILE
from nsvae.data.dsprites import DSprites, official_path
from nsvae.data.dsprites_variants import SCREAM, ProceduralDSprites, Screamer, add_noise, colorize
from nsvae.data.files import OfficialFile, fetch
from nsvae.data.ground_truth import ArrayGroundTruthData, FactorSpace, GroundTruthData
from nsvae.data.images import CELEBA, ImageCollection, load_celeba, load_images
from nsvae.data.npz import load_array_dataset, save_array_dataset
from nsvae.data.sampler import BatchSampler
from nsvae.errors import ConfigError, DataError


def _dsprites(path=None, data_root=None) -> DSprites:
    """Rendered dSprites, or the official file when ``path`` is given."""
    return DSprites.load(data_root) if path is None else DSprites.from_file(path)


def _dsprites_file(path=None, data_root=None) -> DSprites:
    """The official dSprites file: ``path``, or where ``nsvae data fetch dsprites`` puts it."""
    return DSprites.from_file(official_path(data_root) if path is None else path)


def _array(path=None, data_root=None) -> ArrayGroundTruthData:
    """Your own ground-truth data: the npz file ``path`` (:mod:`nsvae.data.npz`).

    ``data_root`` is not used.
    """
    if path is None:
        raise ConfigError("dataset 'array' needs its npz file: give --data-path (data.path)")
    return load_array_dataset(path)


def _images(path=None, data_root=None) -> ImageCollection:
    """Your own images: the folder or zip ``path`` (:mod:`nsvae.data.images`)."""
    if path is None:
        raise ConfigError(
            "dataset 'images' needs a folder or zip of images: give --data-path (data.path)"
        )
    return load_images(path, data_root)


def _variant(transform, name, path=None, data_root=None) -> ProceduralDSprites:
    """A procedural dSprites variant of rendered dSprites (or of the official file ``path``)."""
    return ProceduralDSprites(_dsprites(path, data_root), transform, name)


def _scream(path=None, data_root=None) -> ProceduralDSprites:
    """scream-dSprites: rendered dSprites on patches of the scream image ``path``
    (default: ``<data root>/scream/scream.jpg``)."""
    screamer = Screamer(SCREAM.path(data_root) if path is None else path)
    return ProceduralDSprites(DSprites.load(data_root), screamer, "scream-dsprites")


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: ``load(path=None, data_root=None)`` builds it, and ``files`` are the
    published files it is made from (``nsvae data fetch NAME``; none for your own data)."""

    load: Callable[..., GroundTruthData]
    files: tuple[OfficialFile, ...] = ()


#: Every dataset by name: how to build it and its published files.
DATASETS = {
    "dsprites": DatasetEntry(_dsprites, (DSPRITES_FILE,)),
    "dsprites-file": DatasetEntry(_dsprites_file, (DSPRITES_FILE,)),
    "color-dsprites": DatasetEntry(
        functools.partial(_variant, colorize, "color-dsprites"), (DSPRITES_FILE,)
    ),
    "noisy-dsprites": DatasetEntry(
        functools.partial(_variant, add_noise, "noisy-dsprites"), (DSPRITES_FILE,)
    ),
    "scream-dsprites": DatasetEntry(_scream, (SCREAM,)),
    "3dshapes": DatasetEntry(shapes3d.load_shapes3d, (shapes3d.OFFICIAL,)),
    **{
        f"mpi3d-{name}": DatasetEntry(functools.partial(mpi3d.load_mpi3d, name), (file,))
        for name, file in mpi3d.VARIANTS.items()
    },
    "smallnorb": DatasetEntry(norb.load_smallnorb, norb.OFFICIAL_FILES),
    "cars3d": DatasetEntry(cars3d.load_cars3d, (cars3d.OFFICIAL,)),
    "celeba": DatasetEntry(load_celeba, (CELEBA,)),
    "images": DatasetEntry(_images),
    "array": DatasetEntry(_array),
}


def get_dataset(name: str, **kwargs) -> GroundTruthData:
    """Build the dataset ``name`` (one of :data:`DATASETS`) with keyword arguments
    ``path`` and ``data_root``.

    Raises
    ------
    ConfigError
        Unknown name or keyword.
    DataError
        The data cannot be read or rendered.
    """
    check_dataset_name(name)
    unknown = sorted(set(kwargs) - {"path", "data_root"})
    if unknown:
        raise ConfigError(f"unknown dataset options {unknown} for {name!r}")
    return DATASETS[name].load(**kwargs)


def fetch_dataset(name: str, data_root=None) -> list[Path]:
    """Download every official file of ``name`` that is not already there, and check them.

    Raises
    ------
    ConfigError
        ``name`` has no official files (your own ``images`` or ``array``; unknown names).
    DataError
        One line for all files that could not be had: for each, the URL, the expected checksum
        and where to put it by hand; or a checksum mismatch.
    """
    files = DATASETS[name].files if name in DATASETS else ()
    if not files:
        raise ConfigError(
            f"no official files to fetch for {name!r}; datasets with files: "
            f"{', '.join(fetchable_datasets())}"
        )
    paths, failures = [], []
    for file in files:
        try:
            paths.append(fetch(file, data_root))
        except DataError as error:
            failures.append(str(error))
    if failures:
        raise DataError("; ".join(failures))
    return paths


def fetchable_datasets() -> list[str]:
    """The names of the datasets that have published files."""
    return [name for name, entry in DATASETS.items() if entry.files]


def check_dataset_name(name: str) -> None:
    """The rule for ``data.name``: a key of :data:`DATASETS`.

    Raises
    ------
    ConfigError
        ``unknown dataset 'x' (data.name); choose from [...]``.
    """
    check(name in DATASETS, f"unknown dataset {name!r} (data.name); choose from {sorted(DATASETS)}")


def build_data(data_config) -> GroundTruthData:
    """The dataset of a :class:`nsvae.config.DataConfig` (``name``, ``path``, ``data_root``)."""
    options = {"path": data_config.path, "data_root": data_config.data_root}
    return get_dataset(data_config.name, **{k: v for k, v in options.items() if v is not None})


__all__ = [
    "DATASETS",
    "DatasetEntry",
    "ArrayGroundTruthData",
    "BatchSampler",
    "DSprites",
    "FactorSpace",
    "GroundTruthData",
    "ImageCollection",
    "ProceduralDSprites",
    "build_data",
    "check_dataset_name",
    "fetch_dataset",
    "fetchable_datasets",
    "get_dataset",
    "load_array_dataset",
    "save_array_dataset",
]
