"""Unsupervised scores of a representation (Locatello et al., 2019), as in disentanglement_lib."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from nsvae.metrics.utils import (
    NUM_BINS,
    check_codes,
    discrete_mutual_info,
    histogram_discretize,
    metric,
    require_latents,
    sample_factor_codes,
)


@metric(fast={"num_train": 3_000}, factors=False)
def unsupervised(
    data,
    representation,
    random_state: np.random.RandomState,
    num_train: int = 10_000,
    batch_size: int = 16,
    num_bins: int = NUM_BINS,
) -> dict:
    """Gaussian total correlation, Wasserstein correlation and mean pairwise MI of sampled codes.

    See :func:`compute_unsupervised` for the definitions.

    Parameters
    ----------
    data : GroundTruthData
        Ground-truth dataset (only its observations are used).
    representation : callable
        Observations [n, ...] -> codes [n, d]; called on chunks of at most 256 observations.
    random_state : numpy.random.RandomState
        Source of all randomness.
    num_train : int
        Sampled points (disentanglement_lib: 10,000).
    batch_size : int
        Factors drawn at a time (disentanglement_lib: 16; fixes the random stream only).
    num_bins : int
        Histogram bins per latent for the mutual information (disentanglement_lib: 20).

    Returns
    -------
    dict
        ``gaussian_total_correlation``, ``gaussian_wasserstein_correlation``,
        ``gaussian_wasserstein_correlation_norm``, ``mutual_info_score``.

    References
    ----------
    Locatello et al., "Challenging Common Assumptions in the Unsupervised Learning of
    Disentangled Representations", ICML 2019; disentanglement_lib
    ``unsupervised_metrics.unsupervised_metrics``.
    """
    codes = sample_factor_codes(data, representation, num_train, random_state, batch_size)[1]
    return compute_unsupervised(codes, num_bins)


def unsupervised_codes(factors, codes, random_state, num_bins: int = NUM_BINS):
    """Unsupervised scores of given codes (the factors and random state are not used)."""
    return compute_unsupervised(codes, num_bins)


def compute_unsupervised(codes, num_bins: int = NUM_BINS) -> dict:
    """Unsupervised scores of codes [n, d], d >= 2.

    With ``S = np.cov`` of the codes: ``gaussian_total_correlation`` = 0.5 (sum_i log S_ii -
    log det S), the total correlation of a Gaussian with that covariance;
    ``gaussian_wasserstein_correlation`` = 2 tr S - 2 tr sqrtm(S * diag(S)[:, None]), the squared
    2-Wasserstein distance between that Gaussian and the one with only its diagonal;
    ``_norm`` divides it by tr S; ``mutual_info_score`` is the mean discrete MI (20-bin
    histograms) over the d^2 - d ordered pairs of distinct latents. Latents of zero variance are
    left out of the Gaussian terms (disentanglement_lib would return NaN); all zero -> 0.

    Returns
    -------
    dict
        The four scores.
    """
    codes = check_codes(codes)
    require_latents(codes, "unsupervised")
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    live = np.diag(cov) > 0
    cov_live = cov[np.ix_(live, live)]
    scores = {
        "gaussian_total_correlation": 0.0,
        "gaussian_wasserstein_correlation": 0.0,
        "gaussian_wasserstein_correlation_norm": 0.0,
    }
    if live.any():
        diag = np.diag(cov_live)
        wasserstein = (
            2 * np.trace(cov_live) - 2 * np.trace(scipy.linalg.sqrtm(cov_live * diag[:, None])).real
        )
        scores = {
            "gaussian_total_correlation": float(
                0.5 * (np.sum(np.log(diag)) - np.linalg.slogdet(cov_live)[1])
            ),
            "gaussian_wasserstein_correlation": float(wasserstein),
            "gaussian_wasserstein_correlation_norm": float(wasserstein / np.trace(cov_live)),
        }
    discrete = histogram_discretize(codes, num_bins)
    mi = discrete_mutual_info(discrete, discrete)
    np.fill_diagonal(mi, 0.0)
    d = codes.shape[1]
    scores["mutual_info_score"] = float(mi.sum() / (d * d - d))
    return scores
