"""DCI disentanglement, completeness and informativeness (Eastwood & Williams, 2018).

disentanglement_lib's classification variant: one gradient-boosted tree classifier per factor on
all latents; importances are the classifiers' impurity-based ``feature_importances_``.
Estimators and measurements against disentanglement_lib: docs/metrics.md#dci.
"""

from __future__ import annotations

import numpy as np
import scipy.stats
from joblib import Parallel, delayed
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

from nsvae.errors import MetricError
from nsvae.metrics.utils import (
    check_split,
    metric,
    require_factor_sizes,
    require_latents,
    require_variation,
    sample_train_test,
    split_codes,
)

ESTIMATORS = ("gbt", "forest")


@metric(fast={"num_train": 1_000, "num_test": 500})
def dci(
    data,
    representation,
    random_state: np.random.RandomState,
    num_train: int = 10_000,
    num_test: int = 5_000,
    batch_size: int = 16,
    estimator: str = "gbt",
    n_jobs: int = -1,
) -> dict:
    """DCI scores of ``num_train`` / ``num_test`` sampled (factor, code) pairs.

    See :func:`compute_dci` for the definition and the estimators.

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
    estimator : {"gbt", "forest"}
        Importance estimator, see :func:`compute_dci` and docs/metrics.md#dci-estimators.
    n_jobs : int
        Factors fitted in parallel (joblib; -1: all cores). Does not change the values.

    Returns
    -------
    dict
        ``disentanglement``, ``completeness``, ``informativeness_train``, ``informativeness_test``.

    References
    ----------
    Eastwood & Williams, "A Framework for the Quantitative Evaluation of Disentangled
    Representations", ICLR 2018; disentanglement_lib ``dci.compute_dci``.
    """
    require_factor_sizes(data, "dci")
    train, test = sample_train_test(
        data, representation, num_train, num_test, random_state, batch_size
    )
    return compute_dci(train, test, random_state, estimator, n_jobs)


def dci_codes(
    factors,
    codes,
    random_state,
    test_fraction: float = 1 / 3,
    estimator: str = "gbt",
    n_jobs: int = -1,
):
    """DCI of given (factor, code) pairs, split at random into train and test rows."""
    train, test = split_codes(factors, codes, random_state, test_fraction)
    return compute_dci(train, test, random_state, estimator, n_jobs)


def compute_dci(train, test, random_state, estimator: str = "gbt", n_jobs: int = -1) -> dict:
    """DCI of train and test (factors [n, K], codes [n, d]) pairs.

    Per factor k a classifier predicts v_k from all latents; ``R[j, k]`` is the importance of
    latent j. With ``P_j. = R_j. / sum_k R_jk`` and ``rho_j = sum_k R_jk / sum R``:
    disentanglement ``D = sum_j rho_j (1 - H_K(P_j.))`` (entropy base K = #factors), completeness
    ``C = sum_k rho_k (1 - H_d(P_.k))`` (base d = #latents), both with 1e-11 added inside the
    entropies and a uniform R when every importance is 0; informativeness is the mean
    prediction *accuracy* over factors (disentanglement_lib), not an error.

    Estimators: ``"gbt"`` (default, disentanglement_lib's gradient-boosted trees, factors fitted
    in parallel with values independent of ``n_jobs``) or ``"forest"`` (a random forest, tens
    of times faster; compare models with it, do not quote it against the default).
    Estimators and the forest's agreement with the default: docs/metrics.md#dci.

    Parameters
    ----------
    train, test : tuple of arrays
        ``(factors [n, K] int, codes [n, d] float)``; K >= 2 and d >= 2.
    random_state : numpy.random.RandomState
        Seeds of the classifiers.
    estimator : {"gbt", "forest"}
        Importance estimator.
    n_jobs : int
        Factors fitted in parallel (joblib).

    Returns
    -------
    dict
        ``disentanglement``, ``completeness``, ``informativeness_train``, ``informativeness_test``,
        and ``importance_matrix`` [d][K].

    References
    ----------
    Eastwood & Williams, "A Framework for the Quantitative Evaluation of Disentangled
    Representations", ICLR 2018; disentanglement_lib ``dci.compute_dci``.
    """
    if estimator not in ESTIMATORS:
        raise MetricError(
            f"unknown dci estimator {estimator!r} (choose from: {', '.join(ESTIMATORS)})"
        )
    factors_train, codes_train, factors_test, codes_test = check_split(train, test)
    if (
        codes_test.shape[1] != codes_train.shape[1]
        or factors_test.shape[1] != factors_train.shape[1]
    ):
        raise MetricError("train and test codes or factors differ in width")
    require_latents(codes_train, "dci")
    if factors_train.shape[1] < 2:
        raise MetricError("dci needs at least two factors")
    require_variation(factors_train, "dci")
    num_factors = factors_train.shape[1]
    seeds = random_state.randint(2**31 - 1, size=num_factors)
    classes = [len(np.unique(f)) for f in factors_train.T]
    order = np.argsort(classes, kind="stable")[::-1]  # largest first balances the workers
    fits = Parallel(n_jobs=n_jobs)(
        delayed(_fit_factor)(
            codes_train, factors_train[:, k], codes_test, factors_test[:, k], estimator, seeds[k]
        )
        for k in order
    )
    importance = np.zeros((codes_train.shape[1], num_factors))
    accuracy = np.zeros((2, num_factors))
    for k, (importances, train_accuracy, test_accuracy) in zip(order, fits, strict=True):
        importance[:, k] = importances
        accuracy[:, k] = train_accuracy, test_accuracy
    return {
        "disentanglement": disentanglement(importance),
        "completeness": completeness(importance),
        "informativeness_train": float(accuracy[0].mean()),
        "informativeness_test": float(accuracy[1].mean()),
        "importance_matrix": importance.tolist(),
    }


def _fit_factor(x_train, y_train, x_test, y_test, estimator, seed):
    """Importances [d] of the latents for one factor, and the train and test accuracies."""
    if estimator == "gbt":
        model = GradientBoostingClassifier(random_state=seed)
    else:
        model = RandomForestClassifier(50, max_depth=8, max_features=None, random_state=seed)
    model.fit(x_train, y_train)
    importances = np.abs(model.feature_importances_)
    train_accuracy = np.mean(model.predict(x_train) == y_train)
    test_accuracy = np.mean(model.predict(x_test) == y_test)
    return importances, train_accuracy, test_accuracy


def disentanglement(importance: np.ndarray) -> float:
    """D: importance-weighted mean over latents of 1 - entropy (base K) of each latent's row."""
    return _specificity(importance, axis=1)


def completeness(importance: np.ndarray) -> float:
    """C: importance-weighted mean over factors of 1 - entropy (base d) of each factor's column."""
    return _specificity(importance, axis=0)


def _specificity(importance: np.ndarray, axis: int) -> float:
    """Mean of 1 - H(importance normalised along ``axis``, base its length), weighted by sums."""
    per_slice = 1.0 - scipy.stats.entropy(
        importance + 1e-11, base=importance.shape[axis], axis=axis
    )
    if importance.sum() == 0.0:
        importance = np.ones_like(importance)
    weights = importance.sum(axis=axis) / importance.sum()
    return float(np.sum(per_slice * weights))
