"""Synergy among learned latents, measured with Griffith & Koch's S_max.

``S_max = I(X; Y) - I_max`` with ``I_max = sum_y p(y) max_i KL(p(x_i | y) || p(x_i))``, the
information about a target Y "beyond the maximum of its parts" [1]_ (Williams & Beer's specific
information [2]_), which the Non-Synergistic VAE [3]_ penalises but never measures. Two metrics
measure it:

- :func:`latent_synergy`: Y = x, sources the single latents z_i of the encoder q(z|x), with the
  aggregate posterior q(z) = E_x q(z|x) [4]_ as the marginal.
- :func:`factor_synergy`: Y = each ground-truth factor v_k, sources the single latents of a
  representation, discretised into histogram bins as MIG does.

Both follow the metric contract (``fn(..., random_state, **params) -> dict`` of plain floats and
lists, in nats) and accept ``fast=True`` for smaller samples. Definitions, estimators, biases,
accuracy and cost: docs/synergy.md.

References
----------
.. [1] V. Griffith and C. Koch, "Quantifying synergistic mutual information", in Guided
   Self-Organization: Inception, Springer, 2014.
.. [2] P. L. Williams and R. D. Beer, "Nonnegative decomposition of multivariate information",
   arXiv:1004.2515, 2010.
.. [3] G. Barrientos and S. Sootla, "Non-synergistic variational autoencoders", 2018,
   OpenReview Skl3M20qYQ.
.. [4] R. T. Q. Chen, X. Li, R. Grosse and D. Duvenaud, "Isolating sources of disentanglement
   in variational autoencoders", NeurIPS 2018.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nsvae.errors import MetricError
from nsvae.gaussian import LOG_2PI, log_density
from nsvae.metrics.utils import (
    NUM_BINS,
    REPRESENTATION_BATCH,
    discrete_entropy,
    encode_factors,
    histogram_discretize,
    metric,
    require_count,
    require_factor_sizes,
    require_variation,
    sample_factor_codes,
)
from nsvae.objectives.selection import select_best

CHUNK_ELEMENTS = 1 << 22  # float64 entries of one [queries, points, components] block (32 MiB)


@torch.no_grad()
@metric(fast={"fast": True}, input="encoder", factors=False)
def latent_synergy(
    data,
    encoder,
    random_state: np.random.RandomState,
    *,
    num_samples: int | None = None,
    num_queries: int | None = None,
    num_nodes: int = 16,
    num_z: int = 16,
    omega: float = 0.9,
    policy: str = "sorted",
    epsilon: float = 0.1,
    batch_size: int = REPRESENTATION_BATCH,
    fast: bool = False,
) -> dict:
    """S_max of the single latents about the data, with the aggregate posterior as marginal.

    With Y = x and the latents z_i of the encoder q(z|x) = N(mu(x), diag exp(logvar(x))) as
    sources, S_max [1]_ [3]_ is ``S = I(x; z) - E_x max_i KL(q(z_i | x) || q(z_i))`` with the
    aggregate posterior ``q(z) = E_x q(z | x)`` [4]_ as marginal; ``0 <= S <= I(x; z)``. The
    subset variant ``S_A = I(x; z) - E_x KL(q(z_A | x) || q(z_A))`` counts only what the
    training policy's subset ``A = select_best(k(x), omega, ...)`` misses, with ``k(x)_i`` the
    per-latent KL to the aggregate posterior
    (:func:`nsvae.objectives.selection.select_best`, per x).

    The aggregate posterior of each query is a stratified mixture over ``num_samples``
    encoded observations; the per-latent KLs use Gauss-Hermite quadrature, I(x; z) and the
    subset KL randomised quasi-Monte Carlo. Estimators, biases, accuracy and cost:
    docs/synergy.md#latent-synergy.

    Parameters
    ----------
    data : GroundTruthData
        Observations to average over (uniformly).
    encoder : callable
        Observations [n, ...] -> ``(mu, logvar)``, two arrays [n, d] of the Gaussian posterior
        (as :func:`nsvae.metrics.mig.mig_chen`; for a model,
        ``functools.partial(nsvae.models.encode_observations, model)``).
    random_state : numpy.random.RandomState
        Source of all randomness (an int seeds a new one).
    num_samples : int, optional
        Mixture components M (default 10,000; 2,000 when ``fast``); at least 2.
    num_queries : int, optional
        Observations Q in the average over x (default 500; 200 when ``fast``); at most M.
    num_nodes : int
        Gauss-Hermite nodes per 1-D KL.
    num_z : int
        Quasi-Monte Carlo samples per query for I(x; z) and the subset KL.
    omega, policy, epsilon : float, str, float
        The Non-Syn VAE's selection (discount, policy, exploration) for the subset variant;
        pass the run's objective settings to match its training.
    batch_size : int
        Observations encoded at a time.
    fast : bool
        Smaller default ``num_samples`` and ``num_queries``.

    Returns
    -------
    dict
        ``synergy_latent`` (S), ``mutual_info_xz`` (I(x; z)), ``i_max``
        (``E_x max_i KL(q(z_i|x) || q(z_i))``), ``synergy_latent_fraction`` (S / I(x; z), 0 when
        I(x; z) <= 0), ``synergy_latent_subsets`` (S_A), ``a_best_size`` (mean |A*(x)|),
        ``mutual_info_per_latent`` (list[d] of I(x; z_i) = E_x k(x)_i) and
        ``mutual_info_xz_bound`` (log N, the estimator's ceiling); all in nats.

    Raises
    ------
    MetricError
        Bad sample counts, or an encoder output that is not finite or not [B, d].

    References
    ----------
    .. [1] V. Griffith and C. Koch, "Quantifying synergistic mutual information", 2014.
    .. [2] P. L. Williams and R. D. Beer, "Nonnegative decomposition of multivariate
       information", 2010.
    .. [3] G. Barrientos and S. Sootla, "Non-synergistic variational autoencoders", 2018.
    .. [4] R. T. Q. Chen et al., "Isolating sources of disentanglement in variational
       autoencoders", NeurIPS 2018 (aggregate-posterior estimators, MWS / MSS).
    """
    random_state = _random_state(random_state)
    num_samples = (2_000 if fast else 10_000) if num_samples is None else num_samples
    num_queries = (200 if fast else 500) if num_queries is None else num_queries
    require_count(num_samples, "num_samples", 2)
    require_count(num_queries, "num_queries")
    require_count(num_nodes, "num_nodes", 2)
    require_count(num_z, "num_z")
    require_count(batch_size, "batch_size")

    if len(data) < 2:
        raise MetricError(f"latent_synergy needs at least 2 observations, got {len(data)}")
    mu, logvar = _encode(encoder, data, num_samples, random_state, batch_size)
    population, num, dim = len(data), mu.shape[0], mu.shape[1]
    num_queries = min(num_queries, num)
    log_other = math.log1p(-1.0 / population) - math.log(num - 1)
    mixture = _Mixture(mu, logvar, -math.log(population) - log_other, log_other)

    seed = int(random_state.randint(2**31))
    sobol = torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed)
    uniform = sobol.draw(num_queries * num_z, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    noise = torch.special.ndtri(uniform).reshape(num_queries, num_z, dim)
    generator = torch.Generator().manual_seed(seed)
    per_latent = _chunked(mixture.per_latent_kl, num_queries, num_nodes * dim * num, num_nodes)
    best = select_best(per_latent, omega, policy=policy, epsilon=epsilon, generator=generator)
    joint = _chunked(mixture.joint_kl, num_queries, 2 * num_z * num, noise, best)

    mutual_info, subset_kl = joint.mean(0).tolist()
    i_max = per_latent.max(1).values.mean().item()
    synergy = mutual_info - i_max
    return {
        "synergy_latent": synergy,
        "mutual_info_xz": mutual_info,
        "i_max": i_max,
        "synergy_latent_fraction": synergy / mutual_info if mutual_info > 0 else 0.0,
        "synergy_latent_subsets": mutual_info - subset_kl,
        "a_best_size": best.sum(1, dtype=torch.float64).mean().item(),
        "mutual_info_per_latent": per_latent.mean(0).tolist(),
        "mutual_info_xz_bound": math.log(population),
    }


@metric(fast={"fast": True})
def factor_synergy(
    data,
    representation,
    random_state: np.random.RandomState,
    *,
    num_samples: int | None = None,
    num_bins: int = NUM_BINS,
    alpha: float = 1.0,
    batch_size: int = 16,
    fast: bool = False,
) -> dict:
    """S_max of the single (discretised) latents about each ground-truth factor.

    For factor v_k as target and the latents as sources, S_max [1]_ is
    ``S_k = I(z; v_k) - sum_v p(v) max_i KL(p(z_i | v_k = v) || p(z_i))``, the second term
    being I_max (Williams & Beer's specific information [2]_). As in MIG, each latent is
    discretised into ``num_bins`` equal-width bins and both terms refer to the discretised
    codes z~. Reported per factor as S_k / H(v_k) and their mean; supervised, unlike
    :func:`latent_synergy`.

    I_max is a plug-in estimate from histogram counts; I(z~; v_k) a leave-one-out histogram
    classifier over a greedy nested path of latent subsets. S_k is not clipped at 0 (its net
    bias is downward). Estimators, biases and the alternatives tried:
    docs/synergy.md#factor-synergy.

    Parameters
    ----------
    data : GroundTruthData
        Ground-truth dataset; every factor needs at least two values.
    representation : callable
        Observations [n, ...] -> codes [n, d]; called on chunks of at most 256 observations.
    random_state : numpy.random.RandomState
        Source of all randomness (an int seeds a new one).
    num_samples : int, optional
        Sampled (factor, code) pairs (default 10,000 as MIG; 2,000 when ``fast``).
    num_bins : int
        Histogram bins per latent (disentanglement_lib: 20).
    alpha : float
        Pseudo-count of the classifier's smoothing towards the marginal (> 0).
    batch_size : int
        Factors drawn at a time (as MIG: fixes the random stream only).
    fast : bool
        Smaller default ``num_samples``.

    Returns
    -------
    dict
        ``synergy_factor_mean`` (mean over factors of S_k / H(v_k)), and per factor (lists in
        factor order): ``synergy_factor_per_factor`` (S_k / H(v_k)), ``synergy_factor_nats``
        (S_k), ``mutual_info_factor`` (I(z~; v_k)), ``i_max_factor`` (I_max) and
        ``entropy_factor`` (H(v_k), plug-in), in nats.

    Raises
    ------
    MetricError
        A factor with a single value, or bad sample counts / codes.

    References
    ----------
    .. [1] V. Griffith and C. Koch, "Quantifying synergistic mutual information", 2014.
    .. [2] P. L. Williams and R. D. Beer, "Nonnegative decomposition of multivariate
       information", 2010.
    """
    random_state = _random_state(random_state)
    num_samples = (2_000 if fast else 10_000) if num_samples is None else num_samples
    require_count(num_samples, "num_samples", 2)
    if not alpha > 0:
        raise MetricError(f"alpha must be > 0, got {alpha}")
    require_factor_sizes(data, "factor_synergy")
    factors, codes = sample_factor_codes(
        data, representation, num_samples, random_state, batch_size
    )
    require_variation(factors, "factor_synergy", data.factor_names)
    bins = histogram_discretize(codes, num_bins) - 1
    entropy = discrete_entropy(factors)
    labels = [np.unique(column, return_inverse=True)[1].ravel() for column in factors.T]
    mutual_info = np.array([_joint_information(bins, v, num_bins, alpha) for v in labels])
    i_max = np.array([_i_max(bins, v, num_bins) for v in labels])
    synergy = mutual_info - i_max
    return {
        "synergy_factor_mean": float(np.mean(synergy / entropy)),
        "synergy_factor_per_factor": (synergy / entropy).tolist(),
        "synergy_factor_nats": synergy.tolist(),
        "mutual_info_factor": mutual_info.tolist(),
        "i_max_factor": i_max.tolist(),
        "entropy_factor": entropy.tolist(),
    }


def _random_state(random_state) -> np.random.RandomState:
    """``random_state`` itself, or a new RandomState seeded with it."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    return np.random.RandomState(random_state)


def _encode(encoder, data, num_samples, random_state, batch_size):
    """Posterior (mu, logvar) [M, d] float64 on the CPU of M observations of ``data``.

    Every observation once, in index order, when ``len(data) <= num_samples``; otherwise
    ``num_samples`` uniform draws.
    """
    if len(data) <= num_samples:
        factors = data.index_to_factors(np.arange(len(data)))
    else:
        factors = data.sample_factors(num_samples, random_state)
    mu, logvar = encode_factors(data, encoder, factors, random_state, batch_size)
    return torch.from_numpy(mu), torch.from_numpy(logvar)


def _chunked(fn, num_queries: int, cost_per_query: int, *args) -> torch.Tensor:
    """``fn(rows, *args)`` on blocks of query rows (``cost_per_query`` elements each), joined."""
    step = max(1, CHUNK_ELEMENTS // cost_per_query)
    blocks = [slice(s, min(s + step, num_queries)) for s in range(0, num_queries, step)]
    return torch.cat([fn(rows, *args) for rows in blocks])


class _Mixture:
    """The aggregate posterior as a Gaussian mixture, for queries that are its first components.

    Component m has weight ``exp(log_other)``, except the query's own component, which has
    ``exp(log_other + log_self_extra)``. Log-densities are linear in the features
    ``(z^2, z, 1)`` of each latent, so a block of points against all components is one matmul.
    """

    def __init__(self, mu, logvar, log_self_extra: float, log_other: float):
        self.mu, self.logvar = mu, logvar
        precision = torch.exp(-logvar)
        # [3, M, d]: log N(z_i; mu_mi, var_mi) = z_i^2 c0 + z_i c1 + c2
        self.coef = torch.stack(
            [-0.5 * precision, mu * precision, -0.5 * (mu**2 * precision + logvar + LOG_2PI)]
        )
        self.log_self_extra, self.log_other = log_self_extra, log_other

    def _log_own(self, rows: slice, z: torch.Tensor) -> torch.Tensor:
        """Per-latent log q(z_i | x_q) of points z [q, p, d] under each query's own posterior."""
        return log_density(z, self.mu[rows, None], self.logvar[rows, None])

    def _log_mixture(self, rows: slice, exponents: torch.Tensor) -> torch.Tensor:
        """logsumexp over components [..., q, p, M] of exponents plus the query's weights."""
        itself = torch.arange(rows.start, rows.stop)
        exponents[..., torch.arange(len(itself)), :, itself] += self.log_self_extra
        return torch.logsumexp(exponents, dim=-1) + self.log_other

    def per_latent_kl(self, rows: slice, num_nodes: int) -> torch.Tensor:
        """KL(q(z_i | x_q) || q(z_i)) [q, d] by Gauss-Hermite quadrature on each 1-D marginal."""
        nodes, weights = np.polynomial.hermite_e.hermegauss(num_nodes)
        nodes, weights = torch.from_numpy(nodes), torch.from_numpy(weights / math.sqrt(2 * math.pi))
        z = self.mu[rows, None] + torch.exp(0.5 * self.logvar[rows, None]) * nodes[:, None]
        features = torch.stack([z**2, z, torch.ones_like(z)], dim=-1)  # [q, k, d, 3]
        exponents = torch.einsum("qkdf,fmd->dqkm", features, self.coef)
        log_ratio = self._log_own(rows, z) - self._log_mixture(rows, exponents).permute(1, 2, 0)
        return torch.einsum("qkd,k->qd", log_ratio, weights)

    def joint_kl(self, rows: slice, noise: torch.Tensor, subset: torch.Tensor) -> torch.Tensor:
        """[q, 2]: KL(q(z | x_q) || q(z)) and KL(q(z_A | x_q) || q(z_A)) at the noise's points."""
        z = self.mu[rows, None] + torch.exp(0.5 * self.logvar[rows, None]) * noise[rows]
        features = torch.stack([z**2, z, torch.ones_like(z)], dim=-2)  # [q, s, 3, d]
        own = self._log_own(rows, z)
        masks = torch.stack([torch.ones_like(subset[rows]), subset[rows]]).to(z.dtype)  # [2, q, d]
        exponents = torch.einsum("qsfd,aqd,fmd->aqsm", features, masks, self.coef)
        log_ratio = torch.einsum("qsd,aqd->aqs", own, masks) - self._log_mixture(rows, exponents)
        return log_ratio.mean(-1).T


def _cross_entropy(cells: np.ndarray, labels: np.ndarray, prior: np.ndarray, alpha: float) -> float:
    """Leave-one-out cross-entropy of the labels under the smoothed histogram of ``cells``."""
    num_values = prior.shape[0]
    counts = np.bincount(cells * num_values + labels, minlength=(cells.max() + 1) * num_values)
    own = counts[cells * num_values + labels] - 1.0
    total = np.bincount(cells)[cells] - 1.0
    return float(-np.mean(np.log((own + alpha * prior[labels]) / (total + alpha))))


def _joint_information(bins: np.ndarray, labels: np.ndarray, num_bins: int, alpha: float) -> float:
    """I(z~; v) >= 0 by the greedy leave-one-out classifier (docs/synergy.md#factor-synergy)."""
    n, dim = bins.shape
    counts = np.bincount(labels)
    prior = counts / (n - 1.0 + len(counts))  # at v_n: p(v_n) without point n, Laplace-smoothed
    cells = np.zeros(n, dtype=np.int64)
    base = best = _cross_entropy(cells, labels, prior, alpha)
    remaining = list(range(dim))
    while remaining:
        refined = [_refine(cells, bins[:, j], num_bins) for j in remaining]
        scores = [_cross_entropy(c, labels, prior, alpha) for c in refined]
        pick = int(np.argmin(scores))
        cells, best = refined[pick], min(best, scores[pick])
        remaining.pop(pick)
    return base - best


def _refine(cells: np.ndarray, bins: np.ndarray, num_bins: int) -> np.ndarray:
    """Compact labels of the joint cells (cell, bin)."""
    return np.unique(cells * num_bins + bins, return_inverse=True)[1].ravel()


def _i_max(bins: np.ndarray, labels: np.ndarray, num_bins: int) -> float:
    """Plug-in I_max = sum_v p(v) max_i KL(p(z~_i | v) || p(z~_i)) from histogram counts."""
    n, dim = bins.shape
    num_values = labels.max() + 1
    index = (np.arange(dim) * num_bins + bins) * num_values + labels[:, None]
    joint = np.bincount(index.ravel(), minlength=dim * num_bins * num_values)
    joint = joint.reshape(dim, num_bins, num_values) / n
    p_bin, p_value = joint.sum(2, keepdims=True), joint.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint / p_value * np.log(joint / (p_bin * p_value)), 0.0)
    specific = terms.sum(1)  # [d, V]
    return float(np.sum(p_value[0, 0] * specific.max(0)))
