"""Encode once per evaluation: posterior codes of grid points, shared by every metric.

The metrics of a suite draw their observations independently (BetaVAE alone asks for 1.9 M
images of dSprites' 737,280), so encoding them metric by metric repeats most of the work. When
an observation is a function of its factors alone (``data.deterministic``) and the codes of the
whole grid fit in memory, an evaluation instead

- hands each metric a view of the data, :class:`GridKeys`, whose "observations" are their flat
  grid indices (int64 [n]): the metrics only draw, slice, concatenate and represent
  observations, so they run unchanged and draw exactly the same random numbers;
- represents those indices by looking their posteriors up in one :class:`PosteriorTable`,
  which encodes a grid point the first time any metric asks for it and never again.

The table encodes in full batches (the indices asked for, topped up with the next grid points
not yet encoded), through :func:`nsvae.models.encode_posterior`, whose codes do not depend on
the batch, so every metric sees the very codes that encoding its own observations would give;
the ``sampled`` representation draws its noise from its own generator, chunk by chunk as before
(:func:`nsvae.models.posterior_representation`). A metric that reads the pixels themselves
declares ``@metric(pixels=True)`` and gets the real data.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from tqdm.auto import tqdm

from nsvae.data.ground_truth import GroundTruthData
from nsvae.errors import MetricError, one_line
from nsvae.models import (
    BATCH_SIZE,
    encode_observations,
    encode_posterior,
    model_device,
    posterior_representation,
    representation_function,
)

MAX_TABLE_BYTES = 1 << 30  # the posteriors of the grid (mu and logvar, fp32) held at most
SCAN = 1 << 16  # grid points looked at per pass when topping up a batch


def cacheable(data: GroundTruthData, z_dim: int) -> bool:
    """Whether the posteriors of every grid point of ``data`` may be cached by index."""
    deterministic = getattr(data, "deterministic", False) and data.observation_transform is None
    return bool(deterministic) and len(data) * z_dim * 8 <= MAX_TABLE_BYTES


class GridKeys(GroundTruthData):
    """``data`` with the flat grid index of each observation in place of its pixels.

    Factors are drawn by ``data`` itself; :meth:`sample_observations_from_factors` returns
    int64 indices [n] and does not use the random state (as ``data``, being deterministic,
    does not), so a metric draws the same random numbers as on ``data``.
    """

    def __init__(self, data: GroundTruthData):
        self.data = data
        self.factor_space = data.factor_space
        self.factor_names = data.factor_names
        self.observation_shape = data.observation_shape
        self.has_factors = data.has_factors

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return self.data.sample_factors(num, random_state)

    def sample_observations_from_factors(self, factors, random_state) -> np.ndarray:
        return self.factors_to_index(factors)


class PosteriorTable:
    """Posterior ``(mu, logvar)`` of the grid points of ``data``, each encoded on first request.

    Parameters
    ----------
    model : VAE
        Anything with ``encode(x) -> (mu, logvar)``.
    data : GroundTruthData
        Deterministic ground-truth data.
    z_dim : int
        The model's number of latents (:func:`latent_count`).
    batch_size : int
        Observations encoded at a time.
    precision : {"fp32", "bf16"}
        Autocast of the encoder.
    progress : bool or None
        Show a bar of the grid points encoded; None: only on a terminal.
    """

    def __init__(
        self,
        model,
        data: GroundTruthData,
        z_dim: int,
        batch_size: int = BATCH_SIZE,
        precision: str = "fp32",
        progress: bool | None = None,
    ):
        self.model, self.data = model, data
        self.batch_size, self.precision = batch_size, precision
        device = model_device(model)
        self.mu = torch.zeros(len(data), z_dim, device=device)
        self.logvar = torch.zeros_like(self.mu)
        self.known = np.zeros(len(data), dtype=bool)
        self.cursor = 0  # every grid point before it is encoded
        self.bar = tqdm(
            total=len(data),
            unit="obs",
            desc="encoding",
            leave=False,
            disable=None if progress is None else not progress,
        )

    def __call__(self, keys: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Posteriors ``(mu, logvar)`` [n, d] on the model's device of grid indices [n]."""
        keys = np.asarray(keys, dtype=np.int64)
        missing = np.unique(keys[~self.known[keys]])
        if missing.size:
            self.known[missing] = True
            self._encode(np.concatenate([missing, self._unknown(-missing.size % self.batch_size)]))
        index = torch.from_numpy(keys).to(self.mu.device)
        return self.mu[index], self.logvar[index]

    def numpy(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`__call__` as float32 numpy arrays (the ``encoder`` input of metrics)."""
        return tuple(t.cpu().numpy() for t in self(keys))

    def close(self) -> None:
        self.bar.close()

    def _unknown(self, count: int) -> np.ndarray:
        """Up to ``count`` grid points not yet encoded, in index order, now marked known."""
        taken = []
        while count > 0 and self.cursor < len(self.known):
            stop = min(self.cursor + SCAN, len(self.known))
            free = (self.cursor + np.flatnonzero(~self.known[self.cursor : stop]))[:count]
            taken.append(free)
            count -= free.size
            self.cursor = int(free[-1]) + 1 if count == 0 else stop
        rows = np.concatenate(taken) if taken else np.zeros(0, dtype=np.int64)
        self.known[rows] = True
        return rows

    def _encode(self, rows: np.ndarray) -> None:
        factors = self.data.index_to_factors(rows)
        observations = self.data.sample_observations_from_factors(factors, None)
        mu, logvar = encode_posterior(self.model, observations, self.batch_size, self.precision)
        index = torch.from_numpy(rows).to(self.mu.device)
        self.mu[index], self.logvar[index] = mu, logvar
        self.bar.update(len(rows))


def latent_count(model, data: GroundTruthData, precision: str = "fp32") -> int:
    """``model.z_dim``, or for an encoder without it the width of its code of one observation.

    Raises
    ------
    MetricError
        The encoder's output is not two arrays [1, d] for one observation.
    """
    if isinstance(getattr(model, "z_dim", None), int):
        return model.z_dim
    first = data.sample_observations_from_factors(
        data.index_to_factors(np.zeros(1, int)), np.random.RandomState(0)
    )
    try:
        mu, logvar = encode_observations(model, first, precision=precision)
    except (TypeError, ValueError) as error:
        raise MetricError(
            f"the encoder must return (mu, logvar) for a batch of observations "
            f"[n, {', '.join(map(str, data.observation_shape))}]: "
            f"{one_line(error)}"
        ) from None
    if np.shape(mu) != np.shape(logvar) or np.ndim(mu) != 2 or np.shape(mu)[0] != 1:
        raise MetricError(
            f"the encoder returned mu {list(np.shape(mu))} and logvar "
            f"{list(np.shape(logvar))} for one observation; expected two [1, d]"
        )
    return int(np.shape(mu)[1])


class MetricInputs:
    """What each metric of one evaluation takes after its random state: data and encoder.

    Per metric, ``inputs(function) -> (data, input)`` with ``input`` a fresh representation
    (its sampling noise restarts, as when each metric ran alone) or encoder, as the metric
    declares (``function.input_kind``). With ``cache`` and data that :func:`cacheable` allows,
    both read one :class:`PosteriorTable` and the data is its :class:`GridKeys` view;
    otherwise each metric encodes its own observations. Use as a context manager (the table's
    progress bar closes at the end).
    """

    def __init__(
        self,
        model,
        data,
        representation: str = "mean",
        seed: int = 0,
        precision: str = "fp32",
        cache: bool = True,
        progress: bool | None = None,
        batch_size: int = BATCH_SIZE,
    ):
        self.model, self.data, self.kind, self.seed = model, data, representation, seed
        self.precision, self.batch_size = precision, batch_size
        self.z_dim = latent_count(model, data, precision)
        self.table = None
        if cache and cacheable(data, self.z_dim):
            self.table = PosteriorTable(model, data, self.z_dim, batch_size, precision, progress)

    def __enter__(self) -> MetricInputs:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.table is not None:
            self.table.close()

    def __call__(self, function) -> tuple:
        """``(data, representation or encoder)`` for the metric ``function``."""
        if self.table is None or getattr(function, "reads_pixels", False):
            return self.data, self._uncached(function.input_kind)
        if function.input_kind == "encoder":
            return GridKeys(self.data), self.table.numpy
        device = model_device(self.model)
        return GridKeys(self.data), posterior_representation(
            self.table, self.kind, self.z_dim, device, self.batch_size, self.seed
        )

    def _uncached(self, input_kind: str):
        if input_kind == "encoder":
            return functools.partial(
                encode_observations,
                self.model,
                batch_size=self.batch_size,
                precision=self.precision,
            )
        return representation_function(
            self.model, self.kind, self.batch_size, self.seed, self.precision
        )
