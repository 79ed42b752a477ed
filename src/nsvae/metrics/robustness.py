"""How every metric responds to entanglement: Tokui & Sato's protocol on a dataset's factors.

Start from the ideal representation of a ground-truth dataset, one latent per factor (each
factor's value index, standardised to mean 0 and variance 1), read through a Gaussian posterior
of width :data:`BASE_NOISE` so that every estimator is defined. Entangle it step by step, one
kind at a time, each keeping the number of latents fixed across its levels, so that an
estimator's bias from the number of latents stays the same along a curve. Level 0 is the factors
themselves (for ``duplicate``, beside copies that are pure noise, which carry nothing):

- ``rotate``: the latents of the last two factors (dSprites: posX and posY) rotated by the
  level, in degrees, 0 to 45;
- ``duplicate``: every latent followed by a copy ``level * z_j + e_j``, e_j unit Gaussian noise
  (the copies carry nothing at 0, almost all of z at 4);
- ``noise``: unit Gaussian noise times the level added to every latent;
- ``mix``: every latent pulled towards the mean of all of them, ``(1 - level) z_j + level *
  mean(z)``.

A disentanglement metric should fall with each; the table says which metrics miss which kind.
Every registered metric scores every level through the same observations -> codes contract as a
trained model (the observations are the factor values themselves): representation metrics get
one posterior sample per observation, the encoder metrics the posterior.

References
----------
S. Tokui and I. Sato, "Disentanglement analysis with partial information decomposition",
ICLR 2022, arXiv:2108.13753 (section on the entanglement protocol).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nsvae.data.ground_truth import FactorSpace, GroundTruthData
from nsvae.errors import MetricError
from nsvae.metrics.results import flat_metrics

BASE_NOISE = 0.02  # posterior standard deviation of every latent, in units of its factor's spread
LEVELS = {
    "rotate": (0.0, 9.0, 18.0, 27.0, 36.0, 45.0),
    "duplicate": (0.0, 0.5, 1.0, 2.0, 4.0),
    "noise": (0.0, 0.25, 0.5, 1.0, 2.0),
    "mix": (0.0, 0.25, 0.5, 0.75, 0.9),
}


class FactorValues(GroundTruthData):
    """The factor grid of a dataset whose observations are the factor value indices (float32)."""

    deterministic = True

    def __init__(self, data: GroundTruthData):
        self.name = f"{getattr(data, 'name', type(data).__name__)} factors"
        self.factor_names = tuple(data.factor_names)
        self.factor_space = FactorSpace(data.factor_sizes)
        self.observation_shape = (len(self.factor_names),)

    def sample_observations_from_factors(self, factors, random_state):
        return np.asarray(factors, dtype=np.float32)


class Entangled:
    """A Gaussian representation of factor values: posterior means ``standardised factors @
    mix.T`` and standard deviations ``widths``, one per latent.

    Parameters
    ----------
    sizes : sequence of int
        The factors' numbers of values (value ``v`` of a factor of size ``n`` is standardised
        to ``(v - (n - 1) / 2) / sqrt((n**2 - 1) / 12)``).
    mix : array [d, K]
        Latents from standardised factors.
    widths : array [d]
        Posterior standard deviations.
    seed : int
        Seeds the posterior samples of :meth:`represent`.
    """

    def __init__(self, sizes, mix: np.ndarray, widths: np.ndarray, seed: int = 0):
        self.sizes = np.asarray(sizes, dtype=np.float64)
        self.mix, self.widths = mix, widths
        self.random = np.random.RandomState(seed)

    def encode(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances [n, d] of factor-value observations [n, K]."""
        standard = (np.asarray(observations, dtype=np.float64) - (self.sizes - 1) / 2) / np.sqrt(
            (self.sizes**2 - 1) / 12
        )
        means = standard @ self.mix.T
        return means, np.broadcast_to(2 * np.log(self.widths), means.shape).copy()

    def represent(self, observations: np.ndarray) -> np.ndarray:
        """One posterior sample [n, d] per observation."""
        means, logvar = self.encode(observations)
        return means + np.exp(0.5 * logvar) * self.random.standard_normal(means.shape)


def entangle(sizes, kind: str, level: float, seed: int = 0) -> Entangled:
    """The representation of factors of ``sizes`` entangled by ``kind`` at ``level``.

    Raises
    ------
    MetricError
        An unknown kind, or ``rotate`` with fewer than two factors.
    """
    num = len(sizes)
    mix, widths = np.eye(num), np.full(num, BASE_NOISE)
    if kind == "rotate":
        if num < 2:
            raise MetricError("rotate needs at least two factors")
        angle = np.radians(level)
        pair = [num - 2, num - 1]
        mix[np.ix_(pair, pair)] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    elif kind == "duplicate":  # each copy: level * z_j plus unit noise
        mix = np.concatenate([mix, level * mix])
        widths = np.concatenate([widths, np.full(num, np.hypot(1.0, BASE_NOISE))])
    elif kind == "noise":
        widths = np.full(num, np.hypot(BASE_NOISE, level))
    elif kind == "mix":
        mix = (1 - level) * mix + level * np.full((num, num), 1 / num)
    else:
        raise MetricError(f"unknown entanglement {kind!r} (choose from: {', '.join(LEVELS)})")
    return Entangled(sizes, mix, widths, seed)


def robustness_rows(
    data: GroundTruthData,
    run_suite: Callable,
    kinds=tuple(LEVELS),
    say: Callable[[str], None] = lambda line: None,
) -> list[dict]:
    """Score every level of every kind; one row per (kind, level, metric key).

    Parameters
    ----------
    data : GroundTruthData
        The dataset whose factors are represented (only its factor names and sizes are read).
    run_suite : callable
        ``run_suite(factor_data, representation) -> {metric: {key: value}}``, e.g. every
        registered metric through :func:`nsvae.metrics.evaluate.evaluate_model`.
    kinds : sequence of str
        Kinds of :data:`LEVELS`.
    say : callable
        Receives a line per level scored.

    Returns
    -------
    list of dict
        ``{"kind", "level", "metric", "value"}``, ``metric`` as ``<metric>.<key>`` of every
        number the metrics return (lists, such as per-factor scores, left out).
    """
    factor_data = FactorValues(data)
    rows = []
    for kind in kinds:
        for level in LEVELS[kind]:
            scores = run_suite(factor_data, entangle(data.factor_sizes, kind, level))
            flat = flat_metrics(scores)
            rows += [
                {"kind": kind, "level": level, "metric": key, "value": value}
                for key, value in flat.items()
            ]
            say(f"{kind} {level:g}: {len(flat)} values")
    return rows
