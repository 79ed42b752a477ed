"""Partial information decomposition of what latents tell about a factor, and UniBound.

For a ground-truth factor y_k, one latent z_l and the other latents z_\\l, a partial information
decomposition (PID) [1]_ splits ``I(y_k; z) = U_l + U_rest + R + S``: what only z_l tells
(unique, U_l), what only z_\\l tells (U_rest), what both tell (redundant, R) and what they tell
only jointly (synergistic, S), with ``I(y_k; z_l) = U_l + R`` and ``I(y_k; z_\\l) = U_rest + R``.
No unique choice of R exists, but the identities and non-negativity alone bound every part by
three mutual informations [2]_ (:func:`pid_bounds`). A disentangled code has, for every factor,
one latent with much unique information; Tokui & Sato's UniBound [2]_ scores that with the lower
bound ``U_l >= max(0, I(y_k; z_l) - I(y_k; z_\\l))``, the best latent per factor, normalised by
H(y_k) and averaged over factors. Unlike MIG, it falls when a factor is also told by a rotated
or duplicated copy spread over several other latents.

The mutual informations are estimated from sampled (factor, code) pairs, as MIG's are, so the
metric scores any representation (a run's posterior means, an exported model, a ``--codes``
file, the entanglement protocol's codes): each is H(y_k) minus the held-out cross-entropy of a
classifier of y_k from the latent subset (:func:`factor_information`). Tokui & Sato estimate
them from the encoder's posterior mixture instead; why nsvae does not, measured:
docs/synergy.md#pid-and-unibound.

References
----------
.. [1] P. L. Williams and R. D. Beer, "Nonnegative decomposition of multivariate information",
   arXiv:1004.2515, 2010.
.. [2] S. Tokui and I. Sato, "Disentanglement analysis with partial information
   decomposition", ICLR 2022, arXiv:2108.13753.
"""

from __future__ import annotations

import numpy as np

from nsvae.metrics.utils import (
    check_pairs,
    discrete_entropy,
    metric,
    require_count,
    require_factor_sizes,
    require_latents,
    require_variation,
    sample_factor_codes,
)

SMOOTHING = 1e-3  # weight of the factor's marginal in each classified point's prediction
BOUNDS = ("unique", "rest_unique", "redundancy", "synergy")


def pid_bounds(single, rest, joint) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Lower and upper bounds of the PID of (y; a, b) from I(y; a), I(y; b) and I(y; a, b).

    With the co-information ``c = I(y;a) + I(y;b) - I(y;a,b)`` and every part non-negative:
    ``max(0, I(y;a) - I(y;b)) <= U_a <= I(y;a) - max(0, c)``, the same for U_b with a and b
    swapped, ``max(0, c) <= R <= min(I(y;a), I(y;b))`` and
    ``max(0, -c) <= S <= min(I(y;a), I(y;b)) - c`` [2]_. The identities leave one degree of
    freedom, R, on the interval ``[max(0, c), min(I(y;a), I(y;b))]``; every other part follows
    from it (the uniques fall as R rises, the synergy rises with it), so these are the tightest
    bounds that hold for every redundancy measure.

    Parameters
    ----------
    single, rest, joint : array-like, broadcastable
        I(y; a), I(y; b) and I(y; a, b), in any one unit, with
        ``max(I(y;a), I(y;b)) <= I(y;a,b)``.

    Returns
    -------
    dict
        ``unique`` (U_a), ``rest_unique`` (U_b), ``redundancy`` and ``synergy``, each a pair
        ``(lower, upper)`` of arrays.
    """
    single, rest, joint = (np.asarray(v, dtype=np.float64) for v in (single, rest, joint))
    co = single + rest - joint
    shared = np.maximum(co, 0.0)
    return {
        "unique": (np.maximum(single - rest, 0.0), single - shared),
        "rest_unique": (np.maximum(rest - single, 0.0), rest - shared),
        "redundancy": (shared, np.minimum(single, rest)),
        "synergy": (np.maximum(-co, 0.0), np.minimum(single, rest) - co),
    }


def factor_information(
    labels: np.ndarray, codes: np.ndarray, random_state: np.random.RandomState
) -> dict[str, np.ndarray]:
    """I(y_k; z_l), I(y_k; z_\\l) and I(y_k; z) of (factor, code) pairs, in nats.

    ``I(y_k; z_S) = H(y_k) - CE``, with CE the held-out cross-entropy of the Bayes classifier
    of y_k built from class-conditional Gaussians of z_S (each class's mean and covariance, the
    covariance shrunk towards the pooled within-class one by ``d / (n_v + d)``, each variance
    raised by 1e-3 of itself), cross-fitted on two halves of the rows so every row is
    classified once by a model fitted without it. Each prediction is mixed with weight
    :data:`SMOOTHING` with the factor's marginal, so one badly classified row costs a bounded
    loss. The classifier sees
    any class-dependent mean or covariance of the latents: rotations and copies (linear),
    codes on rings (class means on a circle) and XOR-like synergy (covariances of opposite
    signs). As any classifier's, CE >= H(y_k | z_S) in expectation: the estimate is a lower
    bound, clipped to [0, H(y_k)]; I(y_k; z) is then raised to at least each subset's, as the
    chain rule requires.

    Parameters
    ----------
    labels : int array [N, K]
        Factor values of the rows.
    codes : float array [N, d]
        Their codes.
    random_state : numpy.random.RandomState
        Splits the rows into the two halves.

    Returns
    -------
    dict
        ``single`` [d, K] (I(y_k; z_l)), ``rest`` [d, K] (I(y_k; z_\\l)), ``joint`` [K]
        (I(y_k; z)) and ``entropy`` [K] (plug-in H(y_k)), in nats.
    """
    num, dim = codes.shape
    order = random_state.permutation(num)
    halves = (order[: num // 2], order[num // 2 :])
    subsets = [
        list(range(dim)),
        *([j] for j in range(dim)),
        *([i for i in range(dim) if i != j] for j in range(dim)),
    ]
    loss = np.zeros((len(subsets), labels.shape[1]))
    for k, column in enumerate(labels.T):
        classes = np.unique(column, return_inverse=True)[1].ravel()
        for train, test in (halves, halves[::-1]):
            model = _ClassGaussians(codes[train], classes[train], classes.max() + 1)
            for index, subset in enumerate(subsets):
                log_p = model.log_posterior(codes[test], subset)
                loss[index, k] -= log_p[np.arange(len(test)), classes[test]].sum()
    entropy = discrete_entropy(labels)
    info = np.clip(entropy - loss / num, 0.0, entropy)
    joint, single, rest = info[0], info[1 : dim + 1], info[dim + 1 :]
    joint = np.maximum(joint, np.maximum(single.max(0), rest.max(0)))
    return {"single": single, "rest": rest, "joint": joint, "entropy": entropy}


class _ClassGaussians:
    """Class-conditional Gaussians of codes [n, d] with labels in ``range(num_classes)``."""

    def __init__(self, codes: np.ndarray, classes: np.ndarray, num_classes: int):
        dim = codes.shape[1]
        counts = np.bincount(classes, minlength=num_classes)
        self.prior = counts / len(classes)
        self.means = np.zeros((num_classes, dim))
        own = np.zeros((num_classes, dim, dim))
        for v in np.flatnonzero(counts):
            members = codes[classes == v]
            self.means[v] = members.mean(0)
            centred = members - self.means[v]
            own[v] = centred.T @ centred / len(members)
        within = np.einsum("v,vij->ij", self.prior, own)  # the pooled within-class covariance
        ridge = np.diag(1e-3 * np.diag(within) + 1e-12)
        weight = (counts / (counts + dim))[:, None, None]
        self.covariances = weight * own + (1 - weight) * within + ridge

    def log_posterior(self, codes: np.ndarray, subset: list[int]) -> np.ndarray:
        """log p(v | z_S) [n, num_classes] of ``codes`` restricted to ``subset``, smoothed."""
        seen = np.flatnonzero(self.prior)
        log_joint = np.full((len(codes), len(self.prior)), -np.inf)
        for v in seen:
            factor = np.linalg.cholesky(self.covariances[v][np.ix_(subset, subset)])
            white = np.linalg.solve(factor, (codes[:, subset] - self.means[v, subset]).T)
            log_joint[:, v] = (
                np.log(self.prior[v])
                - np.log(np.diag(factor)).sum()
                - 0.5 * np.square(white).sum(0)
            )
        log_joint -= log_joint.max(1, keepdims=True)
        posterior = np.exp(log_joint)
        posterior /= posterior.sum(1, keepdims=True)
        with np.errstate(divide="ignore"):
            return np.log((1 - SMOOTHING) * posterior + SMOOTHING * self.prior)


def summarize(info: dict[str, np.ndarray]) -> dict:
    """UniBound and the PID bounds, normalised by H(y_k), from :func:`factor_information`.

    UniBound takes each factor's largest unique-information lower bound over latents [2]_. The
    parts are given for each factor's own latent l_k, the one that tells most about it
    (largest I(y_k; z_l), MIG's top latent), so that they add up: ``U_l + R = I(y_k; z_l)``.
    Headline values are means over factors.
    """
    entropy, single = info["entropy"], info["single"]
    bounds = pid_bounds(single, info["rest"], info["joint"][None])
    latent = single.argmax(0)
    factors = np.arange(single.shape[1])
    per_factor = {"unibound": bounds["unique"][0].max(0) / entropy}
    for name in BOUNDS:
        for side, values in zip(("lower", "upper"), bounds[name], strict=True):
            per_factor[f"{name}_{side}"] = values[latent, factors] / entropy
    result = {}
    for key, values in per_factor.items():
        result[key] = float(values.mean())
        result[f"{key}_per_factor"] = values.tolist()
    result.update(
        latent_per_factor=latent.tolist(),
        mutual_info_single=single.tolist(),
        mutual_info_rest=info["rest"].tolist(),
        mutual_info_joint=info["joint"].tolist(),
        entropy=entropy.tolist(),
    )
    return result


@metric(fast={"num_train": 3_000})
def unibound(
    data,
    representation,
    random_state: np.random.RandomState,
    num_train: int = 10_000,
    batch_size: int = 16,
) -> dict:
    """UniBound and the PID bounds of (y_k; z_l, z_\\l) on ``num_train`` sampled pairs [2]_.

    See :func:`compute_unibound`.

    Parameters
    ----------
    data : GroundTruthData
        Ground-truth dataset; every factor needs at least two values.
    representation : callable
        Observations [n, ...] -> codes [n, d]; called on chunks of at most 256 observations.
    random_state : numpy.random.RandomState
        Source of all randomness.
    num_train : int
        Sampled (factor, code) pairs (as MIG's 10,000).
    batch_size : int
        Factors drawn at a time (as MIG: fixes the random stream only).

    Returns
    -------
    dict
        As :func:`compute_unibound`, with ``factor_names``.

    References
    ----------
    Tokui & Sato, "Disentanglement Analysis with Partial Information Decomposition", ICLR 2022.
    """
    require_factor_sizes(data, "unibound")
    factors, codes = sample_factor_codes(data, representation, num_train, random_state, batch_size)
    return {
        **compute_unibound(factors, codes, random_state),
        "factor_names": list(data.factor_names),
    }


def unibound_codes(factors, codes, random_state) -> dict:
    """:func:`unibound` of given (factor, code) pairs."""
    return compute_unibound(*check_pairs(factors, codes), random_state)


def compute_unibound(factors: np.ndarray, codes: np.ndarray, random_state) -> dict:
    """UniBound and the PID bounds of validated (factor, code) pairs.

    Returns
    -------
    dict
        ``unibound`` (mean over factors of the best latent's unique-information lower bound,
        normalised by H(y_k)) and ``unibound_per_factor``; for each part (``unique``,
        ``rest_unique``, ``redundancy``, ``synergy``) and side (``lower``, ``upper``)
        ``<part>_<side>`` and ``<part>_<side>_per_factor``, for the PID of (y_k; z_l, z_\\l)
        with l each factor's own latent (``latent_per_factor``, see :func:`summarize`),
        normalised by H(y_k); the informations in nats
        (``mutual_info_single`` [d, K], ``mutual_info_rest`` [d, K], ``mutual_info_joint``
        [K], ``entropy`` [K]).

    Raises
    ------
    MetricError
        Fewer than 4 rows or 2 latents, or a factor with a single value.
    """
    require_count(len(codes), "the number of (factor, code) pairs", 4)
    require_latents(codes, "unibound")
    require_variation(factors, "unibound")
    return summarize(factor_information(factors, codes.astype(np.float64), random_state))
