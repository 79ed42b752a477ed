"""BetaVAE disentanglement score (Higgins et al., 2017), with disentanglement_lib's defaults."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from nsvae.metrics.utils import metric, require_count, sample_and_represent


@metric(fast={"num_train": 500, "num_eval": 250})
def beta_vae(
    data,
    representation,
    random_state: np.random.RandomState,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
) -> dict:
    """BetaVAE score: accuracy of a linear classifier predicting which factor was held fixed.

    Each point picks a factor k uniformly, samples two batches of ``batch_size`` factor vectors,
    copies factor k from the first batch to the second, and takes the mean over the pairs of
    ``|r(x1) - r(x2)|`` as the feature vector, labelled k. A ``LogisticRegression`` (scikit-learn
    defaults) is fit on ``num_train`` points and scored on ``num_eval`` fresh points.

    Parameters
    ----------
    data : GroundTruthData
        Ground-truth dataset to sample factors and observations from.
    representation : callable
        Observations [n, ...] -> codes [n, d]; called on chunks of at most 256 observations.
    random_state : numpy.random.RandomState
        Source of all randomness (disentanglement_lib uses ``RandomState(0)``).
    batch_size : int
        Pairs averaged per point (disentanglement_lib: 64).
    num_train, num_eval : int
        Training and evaluation points (disentanglement_lib: 10,000 and 5,000).

    Returns
    -------
    dict
        ``train_accuracy`` and ``eval_accuracy``.

    References
    ----------
    Higgins et al., "beta-VAE: Learning basic visual concepts with a constrained variational
    framework", ICLR 2017; disentanglement_lib ``beta_vae.compute_beta_vae_sklearn``.
    """
    require_count(batch_size, "batch_size")
    train_points, train_labels = _sample_points(
        data, representation, batch_size, num_train, random_state
    )
    model = LogisticRegression(random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_points, train_labels)
    eval_points, eval_labels = _sample_points(
        data, representation, batch_size, num_eval, random_state
    )
    return {
        "train_accuracy": float(model.score(train_points, train_labels)),
        "eval_accuracy": float(model.score(eval_points, eval_labels)),
    }


def _sample_points(data, representation, batch_size, num_points, random_state):
    """Feature vectors [num_points, d] and held-fixed factor labels [num_points]."""
    require_count(num_points, "num_points")

    def draw():
        index = random_state.randint(data.num_factors)
        factors1 = data.sample_factors(batch_size, random_state)
        factors2 = data.sample_factors(batch_size, random_state)
        factors2[:, index] = factors1[:, index]
        observations1 = data.sample_observations_from_factors(factors1, random_state)
        observations2 = data.sample_observations_from_factors(factors2, random_state)
        return index, np.concatenate([observations1, observations2])

    def reduce(codes):
        return np.abs(codes[:, :batch_size] - codes[:, batch_size:]).mean(axis=1)

    labels, points = sample_and_represent(representation, draw, num_points, reduce)
    return points, labels
