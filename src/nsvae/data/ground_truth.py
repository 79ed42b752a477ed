"""The ground-truth data contract that every metric relies on.

Follows google-research/disentanglement_lib (``GroundTruthData``): a dataset is a full grid of
discrete factors of variation, each observation is determined (up to noise) by its factor vector,
and metrics only ever sample factors and the observations of those factors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nsvae.errors import DataError

MAX_GRID = 2**48  # grid points: flat indices and their products stay exact in int64


class FactorSpace:
    """Row-major map between flat indices and factor vectors of a discrete factor grid.

    Parameters
    ----------
    factor_sizes : sequence of int
        Number of values of each factor; the last factor varies fastest.
    """

    def __init__(self, factor_sizes: Sequence[int]):
        try:
            sizes = np.asarray(factor_sizes, dtype=np.int64)
        except (OverflowError, TypeError, ValueError):
            sizes = np.zeros(0, dtype=np.int64)
        if sizes.ndim != 1 or sizes.size == 0 or np.any(sizes < 1):
            raise DataError(
                f"factor sizes must be a non-empty list of positive ints, got {list(factor_sizes)}"
            )
        total = math.prod(int(size) for size in sizes)  # Python ints: no int64 wrap-around
        if total > MAX_GRID:
            raise DataError(
                f"factor sizes {sizes.tolist()} make a grid of {total:.3g} points; "
                f"at most {MAX_GRID:.3g} are supported"
            )
        self.factor_sizes = sizes
        self.num_factors = int(sizes.size)
        self.num_total = total
        self.bases = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)

    def check_factors(self, factors: np.ndarray) -> np.ndarray:
        """Return ``factors`` as an int64 [n, K] array, or raise :class:`DataError` if off-grid."""
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise DataError(f"factors must have shape [n, {self.num_factors}], got {factors.shape}")
        if not np.issubdtype(factors.dtype, np.integer):
            raise DataError(f"factors must be integer class indices, got dtype {factors.dtype}")
        factors = factors.astype(np.int64, copy=False)
        if np.any(factors < 0) or np.any(factors >= self.factor_sizes):
            raise DataError(
                f"factor indices out of range for factor sizes {self.factor_sizes.tolist()}"
            )
        return factors

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        """Flat row-major indices [n] of factor vectors [n, K]."""
        return self.check_factors(factors) @ self.bases

    def index_to_factors(self, index: np.ndarray) -> np.ndarray:
        """Factor vectors [n, K] of flat indices [n]."""
        index = np.asarray(index, dtype=np.int64)
        if np.any(index < 0) or np.any(index >= self.num_total):
            raise DataError(f"indices out of range [0, {self.num_total})")
        return (index[:, None] // self.bases) % self.factor_sizes

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        """Sample ``num`` factor vectors uniformly and independently per factor."""
        return np.stack(
            [random_state.randint(size, size=num) for size in self.factor_sizes], axis=1
        ).astype(np.int64)

    def check_grid(self, classes: np.ndarray, where: str) -> None:
        """Raise :class:`DataError` unless ``classes`` [N, K] are the full grid in row-major order.

        ``where`` names the file in the message.
        """
        if classes.shape != (self.num_total, self.num_factors):
            raise DataError(
                f"{where}: labels have shape {list(classes.shape)}, expected "
                f"{[self.num_total, self.num_factors]}"
            )
        if not np.array_equal(classes, self.index_to_factors(np.arange(self.num_total))):
            raise DataError(
                f"{where}: labels are not the factor grid "
                f"{self.factor_sizes.tolist()} in row-major order"
            )


def classes_of_values(values: np.ndarray) -> np.ndarray:
    """Class indices [N, K] of factor values [N, K]: the rank of each value in its column."""
    return np.stack(
        [np.unique(column, return_inverse=True)[1].ravel() for column in values.T], axis=1
    ).astype(np.int64)


class GroundTruthData:
    """A dataset with discrete ground-truth factors on a full grid (disentanglement_lib contract).

    Subclasses set ``factor_names``, ``factor_space`` and ``observation_shape`` and implement
    :meth:`sample_observations_from_factors`. Observations are float32 arrays shaped
    ``[n, *observation_shape]``; images are channel-first with values in [0, 1].
    ``deterministic`` is True when an observation is a function of its factors alone (the
    random state is not used to render it, and there is no ``observation_transform``), so that
    evaluation may encode each grid point once and reuse its code (:mod:`nsvae.metrics.codes`).

    ``has_factors`` is False for a collection of images without ground truth (its one "factor"
    is the image index): training, traversals and the unsupervised metrics work on it, metrics
    that need factors do not. ``observation_transform``, when set, is a function
    ``(observations [n, ...] float32, random_state) -> observations`` that turns the rows of
    :meth:`observations_array` into observations (the procedural dSprites variants draw their
    colours and backgrounds there, at sampling time).
    """

    deterministic = False
    factor_names: tuple[str, ...]
    factor_space: FactorSpace
    observation_shape: tuple[int, ...]
    has_factors: bool = True
    observation_transform = None

    @property
    def factor_sizes(self) -> list[int]:
        return self.factor_space.factor_sizes.tolist()

    @property
    def num_factors(self) -> int:
        return self.factor_space.num_factors

    def __len__(self) -> int:
        return self.factor_space.num_total

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        return self.factor_space.factors_to_index(factors)

    def index_to_factors(self, index: np.ndarray) -> np.ndarray:
        return self.factor_space.index_to_factors(index)

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        """Sample ``num`` factor vectors [num, K], uniformly and independently per factor."""
        return self.factor_space.sample_factors(num, random_state)

    def sample_observations_from_factors(
        self, factors: np.ndarray, random_state: np.random.RandomState
    ) -> np.ndarray:
        """Observations [n, *observation_shape] (float32) of the factor vectors [n, K]."""
        raise NotImplementedError

    def observations_array(self) -> tuple[np.ndarray, float]:
        """Every observation in index order as one compact array, and the scale to [0, 1].

        Returns ``(array, scale)`` with ``array`` shaped ``[len(self), *observation_shape]`` in
        its storage dtype (uint8 for images) and ``array.astype(float32) * scale`` the
        observations. Used by the in-memory batch sampler; no copy is made where possible.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot be held in memory as one array")

    def sample(
        self, num: int, random_state: np.random.RandomState
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sample factors and their observations together."""
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        """Sample ``num`` observations of uniformly drawn factors."""
        return self.sample(num, random_state)[1]


class ArrayGroundTruthData(GroundTruthData):
    """Ground-truth data backed by an array of observations laid out over the full factor grid.

    Parameters
    ----------
    observations : array [prod(factor_sizes), ...]
        One observation per grid point, in row-major factor order (last factor fastest).
    factor_sizes : sequence of int
        Number of values of each factor.
    factor_names : sequence of str, optional
        Names of the factors; ``factor_0``, ``factor_1``, ... by default.
    scale : float
        ``observations.astype(float32) * scale`` are the observations, so images can stay
        compact (uint8 0..255 with scale 1/255, or 0/1 with scale 1).
    """

    deterministic = True

    def __init__(
        self, observations, factor_sizes: Sequence[int], factor_names=None, scale: float = 1.0
    ):
        self.factor_space = FactorSpace(factor_sizes)
        observations = np.asarray(observations)
        if observations.ndim < 1 or observations.shape[0] != self.factor_space.num_total:
            raise DataError(
                f"expected {self.factor_space.num_total} observations (the product of factor sizes "
                f"{list(factor_sizes)}), got array of shape {observations.shape}"
            )
        if factor_names is None:
            factor_names = [f"factor_{i}" for i in range(self.factor_space.num_factors)]
        if len(factor_names) != self.factor_space.num_factors:
            raise DataError(
                f"{len(factor_names)} factor names for {self.factor_space.num_factors} factors"
            )
        self.factor_names = tuple(factor_names)
        self.observations = observations
        self.observation_shape = tuple(observations.shape[1:])
        self.scale = float(scale)

    def sample_observations_from_factors(self, factors, random_state):
        rows = self.observations[self.factors_to_index(factors)]
        return np.multiply(rows, self.scale, dtype=np.float32)

    def observations_array(self):
        return self.observations, self.scale
