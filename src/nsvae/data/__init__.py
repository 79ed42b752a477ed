"""Ground-truth datasets and in-memory batches.

``get_dataset(name, **kw)`` builds a dataset by name; every dataset implements
:class:`GroundTruthData`, the contract the metrics rely on.
"""

from __future__ import annotations

from nsvae.checks import check
from nsvae.data.dsprites import DSprites, official_path
from nsvae.data.ground_truth import ArrayGroundTruthData, FactorSpace, GroundTruthData
from nsvae.data.npz import load_array_dataset, save_array_dataset
from nsvae.data.sampler import BatchSampler
from nsvae.errors import ConfigError


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


DATASETS = {"dsprites": _dsprites, "dsprites-file": _dsprites_file, "array": _array}


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
    return DATASETS[name](**kwargs)


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
    "ArrayGroundTruthData",
    "BatchSampler",
    "DSprites",
    "FactorSpace",
    "GroundTruthData",
    "build_data",
    "check_dataset_name",
    "get_dataset",
    "load_array_dataset",
    "save_array_dataset",
]
