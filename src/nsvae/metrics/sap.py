"""Separated Attribute Predictability (Kumar et al., 2018), with disentanglement_lib's defaults."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from nsvae.metrics.utils import (
    check_split,
    metric,
    require_factor_sizes,
    require_latents,
    require_variation,
    sample_train_test,
    split_codes,
)


@metric(fast={"num_train": 2_000, "num_test": 1_000})
def sap(
    data,
    representation,
    random_state: np.random.RandomState,
    num_train: int = 10_000,
    num_test: int = 5_000,
    batch_size: int = 16,
    continuous_factors: bool = False,
) -> dict:
    """SAP score of ``num_train`` / ``num_test`` sampled (factor, code) pairs.

    See :func:`compute_sap` for the definition.

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
    continuous_factors : bool
        Score with squared correlations instead of classifiers (disentanglement_lib: False).

    Returns
    -------
    dict
        ``SAP_score``.

    References
    ----------
    Kumar, Sattigeri & Balakrishnan, "Variational Inference of Disentangled Latent Concepts from
    Unlabeled Observations", ICLR 2018; disentanglement_lib ``sap_score.compute_sap``.
    """
    require_factor_sizes(data, "sap")
    train, test = sample_train_test(
        data, representation, num_train, num_test, random_state, batch_size
    )
    return compute_sap(train, test, continuous_factors)


def sap_codes(
    factors, codes, random_state, test_fraction: float = 1 / 3, continuous_factors: bool = False
):
    """SAP of given (factor, code) pairs, split at random into train and test rows."""
    train, test = split_codes(factors, codes, random_state, test_fraction)
    return compute_sap(train, test, continuous_factors)


def compute_sap(train, test, continuous_factors: bool = False) -> dict:
    """SAP: mean over factors of the gap between the two latents that best predict it alone.

    For discrete factors, ``S[i, k]`` is the test accuracy of
    ``LinearSVC(C=0.01, class_weight="balanced")`` trained on latent i alone to predict factor
    k; for continuous factors it is ``cov(z_i, v_k)^2 / (var z_i var v_k)`` on the training
    points (0 where ``var z_i <= 1e-12``). SAP = mean_k (top1 - top2 of ``S[:, k]``).

    Parameters
    ----------
    train, test : tuple of arrays
        ``(factors [n, K] int, codes [n, d] float)``, d >= 2.
    continuous_factors : bool
        Use the correlation score.

    Returns
    -------
    dict
        ``SAP_score``.
    """
    factors, codes, factors_test, codes_test = check_split(train, test)
    require_latents(codes, "sap")
    require_variation(factors, "sap")
    scores = np.zeros((codes.shape[1], factors.shape[1]))
    for i in range(codes.shape[1]):
        for k in range(factors.shape[1]):
            if continuous_factors:
                scores[i, k] = _squared_correlation(codes[:, i], factors[:, k])
            else:
                scores[i, k] = _single_latent_accuracy(
                    codes[:, i : i + 1], factors[:, k], codes_test[:, i : i + 1], factors_test[:, k]
                )
    top = np.sort(scores, axis=0)
    return {"SAP_score": float(np.mean(top[-1] - top[-2]))}


def _single_latent_accuracy(x, y, x_test, y_test) -> float:
    classifier = LinearSVC(C=0.01, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(x, y)
    return float(np.mean(classifier.predict(x_test) == y_test))


def _squared_correlation(z, v) -> float:
    cov = np.cov(z, v, ddof=1)
    return float(cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1])) if cov[0, 0] > 1e-12 else 0.0
