"""Modularity and explicitness (Ridgeway & Mozer, 2018), with disentanglement_lib's defaults."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from nsvae.errors import MetricError
from nsvae.metrics.utils import (
    NUM_BINS,
    check_split,
    discrete_mutual_info,
    histogram_discretize,
    metric,
    require_factor_sizes,
    require_variation,
    sample_train_test,
    split_codes,
)


@metric(fast={"num_train": 2_000, "num_test": 1_000})
def modularity_explicitness(
    data,
    representation,
    random_state: np.random.RandomState,
    num_train: int = 10_000,
    num_test: int = 5_000,
    batch_size: int = 16,
    num_bins: int = NUM_BINS,
) -> dict:
    """Modularity and explicitness of ``num_train`` / ``num_test`` sampled (factor, code) pairs.

    See :func:`compute_modularity_explicitness` for the definitions.

    Parameters
    ----------
    data : GroundTruthData
        Ground-truth dataset; every factor needs at least two values.
    representation : callable
        Observations [n, ...] -> codes [n, d]; called on chunks of at most 256 observations.
    random_state : numpy.random.RandomState
        Source of all randomness.
    num_train, num_test : int
        Training and test points (disentanglement_lib: 10,000 and 5,000).
    batch_size : int
        Factors drawn at a time (disentanglement_lib: 16; fixes the random stream only).
    num_bins : int
        Histogram bins per latent for the mutual information (disentanglement_lib: 20).

    Returns
    -------
    dict
        ``modularity_score``, ``explicitness_score_train``, ``explicitness_score_test``.

    References
    ----------
    Ridgeway & Mozer, "Learning Deep Disentangled Embeddings With the F-Statistic Loss",
    NeurIPS 2018; disentanglement_lib ``modularity_explicitness.compute_modularity_explicitness``.
    """
    require_factor_sizes(data, "modularity_explicitness")
    train, test = sample_train_test(
        data, representation, num_train, num_test, random_state, batch_size
    )
    return compute_modularity_explicitness(train, test, num_bins)


def modularity_explicitness_codes(
    factors, codes, random_state, test_fraction: float = 1 / 3, num_bins: int = NUM_BINS
):
    """Modularity and explicitness of given (factor, code) pairs, split into train and test."""
    train, test = split_codes(factors, codes, random_state, test_fraction)
    return compute_modularity_explicitness(train, test, num_bins)


def compute_modularity_explicitness(train, test, num_bins: int = NUM_BINS) -> dict:
    """Modularity (from 20-bin mutual information) and explicitness (logistic regression ROC-AUC).

    Modularity: with ``m[i, k]`` the discrete MI between latent i and factor k on the training
    points, each latent scores ``1 - (sum_k m_ik^2 - max_k m_ik^2) / (max_k m_ik^2 (K - 1))``
    (0 when it carries no information); the score is the mean over latents.

    Explicitness: latents standardised with the training mean and standard deviation (a constant
    latent is only centred, where disentanglement_lib would divide by 0); per factor one
    ``LogisticRegression()`` on all latents; the macro ROC-AUC of its class probabilities against
    the one-hot labels, averaged over factors (classes absent from a set are left out of its AUC).

    Parameters
    ----------
    train, test : tuple of arrays
        ``(factors [n, K] int, codes [n, d] float)``, K >= 2.
    num_bins : int
        Histogram bins per latent.

    Returns
    -------
    dict
        ``modularity_score``, ``explicitness_score_train``, ``explicitness_score_test``.
    """
    factors, codes, factors_test, codes_test = check_split(train, test)
    if factors.shape[1] < 2:
        raise MetricError("modularity_explicitness needs at least two factors")
    require_variation(factors, "modularity_explicitness")
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    mean, std = codes.mean(axis=0), codes.std(axis=0)
    std[std == 0] = 1.0
    explicitness = np.array(
        [
            _explicitness(
                (codes - mean) / std, factors[:, k], (codes_test - mean) / std, factors_test[:, k]
            )
            for k in range(factors.shape[1])
        ]
    )
    return {
        "modularity_score": modularity(mi),
        "explicitness_score_train": float(explicitness[:, 0].mean()),
        "explicitness_score_test": float(explicitness[:, 1].mean()),
    }


def modularity(mi: np.ndarray) -> float:
    """Mean over latents (rows of ``mi`` [d, K]) of the modularity of each latent."""
    squared = mi**2
    top = squared.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - (squared.sum(axis=1) - top) / (top * (mi.shape[1] - 1))
    return float(np.mean(np.where(top == 0.0, 0.0, score)))


def _explicitness(x, y, x_test, y_test) -> tuple[float, float]:
    """Train and test macro ROC-AUC of a logistic regression predicting ``y`` from ``x``."""
    model = LogisticRegression()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return _macro_auc(model, x, y), _macro_auc(model, x_test, y_test)


def _macro_auc(model, x, y) -> float:
    onehot = y[:, None] == model.classes_[None, :]
    present = onehot.any(axis=0) & ~onehot.all(axis=0)
    if not present.any():
        return 0.5
    return float(roc_auc_score(onehot[:, present], model.predict_proba(x)[:, present]))
