"""FactorVAE disentanglement score (Kim & Mnih, 2018), with disentanglement_lib's defaults."""

from __future__ import annotations

import numpy as np

from nsvae.metrics.utils import metric, represent, require_count, sample_and_represent


@metric(fast={"num_train": 500, "num_eval": 250, "num_variance_estimate": 1_000})
def factor_vae(
    data,
    representation,
    random_state: np.random.RandomState,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
) -> dict:
    """FactorVAE score: majority-vote accuracy of the least varying latent under a fixed factor.

    Global variances (ddof=1) are estimated on ``num_variance_estimate`` random observations;
    latents with standard deviation below ``prune_threshold`` are pruned. Each vote fixes a
    uniformly chosen factor k at the value of the first of ``batch_size`` random factor vectors,
    and votes (k, argmin over active latents of local / global variance). The classifier maps each
    latent to the factor with most training votes; accuracy is the share of votes it gets right.
    With every latent pruned, the scores are 0.

    Parameters
    ----------
    data : GroundTruthData
        Ground-truth dataset to sample factors and observations from.
    representation : callable
        Observations [n, ...] -> codes [n, d]; called on chunks of at most 256 observations.
    random_state : numpy.random.RandomState
        Source of all randomness.
    batch_size : int
        Observations per vote, L (disentanglement_lib: 64).
    num_train, num_eval : int
        Training and evaluation votes (disentanglement_lib: 10,000 and 5,000).
    num_variance_estimate : int
        Observations for the global variances (disentanglement_lib: 10,000).
    prune_threshold : float
        Standard deviation below which a latent is inactive (disentanglement_lib: 0.05).

    Returns
    -------
    dict
        ``train_accuracy``, ``eval_accuracy`` and ``num_active_dims`` (the number of active
        latents; disentanglement_lib reports ``len`` of its boolean mask, i.e. always d).

    References
    ----------
    Kim & Mnih, "Disentangling by Factorising", ICML 2018; disentanglement_lib
    ``factor_vae.compute_factor_vae``.
    """
    require_count(batch_size, "batch_size", 2)
    require_count(num_variance_estimate, "num_variance_estimate", 2)
    observations = data.sample_observations(num_variance_estimate, random_state)
    global_variances = np.var(represent(representation, observations), axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    train_votes = _votes(
        data, representation, batch_size, num_train, random_state, global_variances, active
    )
    classifier = np.argmax(train_votes, axis=0)
    eval_votes = _votes(
        data, representation, batch_size, num_eval, random_state, global_variances, active
    )
    return {
        "train_accuracy": _accuracy(train_votes, classifier),
        "eval_accuracy": _accuracy(eval_votes, classifier),
        "num_active_dims": int(active.sum()),
    }


def _accuracy(votes: np.ndarray, classifier: np.ndarray) -> float:
    return float(votes[classifier, np.arange(votes.shape[1])].sum() / votes.sum())


def _votes(data, representation, batch_size, num_votes, random_state, global_variances, active):
    """Vote matrix [K, d]: how often fixing factor k made latent j the least varying active one."""
    require_count(num_votes, "num_votes")
    active_index = np.flatnonzero(active)

    def draw():
        index = random_state.randint(data.num_factors)
        factors = data.sample_factors(batch_size, random_state)
        factors[:, index] = factors[0, index]
        return index, data.sample_observations_from_factors(factors, random_state)

    def reduce(codes):
        local = np.var(codes[:, :, active_index], axis=1, ddof=1)
        return active_index[np.argmin(local / global_variances[active_index], axis=1)]

    labels, argmins = sample_and_represent(representation, draw, num_votes, reduce)
    votes = np.zeros((data.num_factors, global_variances.shape[0]), dtype=np.int64)
    np.add.at(votes, (labels, argmins), 1)
    return votes
