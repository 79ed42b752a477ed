"""Semantic tests of the disentanglement metrics on the dSprites factor grid (3, 6, 40, 32, 32).

The observations are the factor vectors themselves, so a representation is any function of them:
identity (each standardised factor in its own latent), a random rotation, pure noise, every
latent duplicated, a constant. Sample counts are reduced where the defaults are not under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from nsvae.data.ground_truth import ArrayGroundTruthData, FactorSpace
from nsvae.errors import MetricError
from nsvae.metrics import METRICS, beta_vae, dci, factor_vae, mig, modularity_explicitness, sap
from nsvae.metrics.dci import compute_dci
from nsvae.metrics.factor_vae import _votes
from nsvae.metrics.mig import mig_chen
from nsvae.metrics.unsupervised import compute_unsupervised
from nsvae.metrics.utils import (
    REPRESENTATION_BATCH,
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
    sample_factor_codes,
)

SIZES = (3, 6, 40, 32, 32)
SMALL = {
    "beta_vae": {"num_train": 300, "num_eval": 300},
    "factor_vae": {"num_train": 500, "num_eval": 500, "num_variance_estimate": 2000},
    "mig": {},
    "sap": {},
    "modularity_explicitness": {"num_train": 3000, "num_test": 1000},
    "dci": {"num_train": 500, "num_test": 250, "n_jobs": 1},
    "unsupervised": {},
}


def grid_data(sizes=SIZES) -> ArrayGroundTruthData:
    space = FactorSpace(sizes)
    return ArrayGroundTruthData(space.index_to_factors(np.arange(space.num_total)), sizes)


@pytest.fixture(scope="module")
def data():
    return grid_data()


def standardise(x, sizes=SIZES):
    sizes = np.asarray(sizes, dtype=np.float64)
    return (np.asarray(x, dtype=np.float64) - (sizes - 1) / 2) / np.sqrt((sizes**2 - 1) / 12)


ROTATION = np.linalg.qr(np.random.RandomState(1).standard_normal((5, 5)))[0]
COARSE_SIZES = (3, 6, 8, 8, 8)  # for DCI: the same semantics, far fewer boosted trees
COARSE = grid_data(COARSE_SIZES)


def coarse_identity(x):
    return standardise(x, COARSE_SIZES)


def coarse_rotation(x):
    return standardise(x, COARSE_SIZES) @ ROTATION


def identity(x):
    return standardise(x)


def rotation(x):
    return standardise(x) @ ROTATION


def duplicate(x):
    return np.repeat(standardise(x), 2, axis=1)


def constant(x):
    return np.zeros((len(x), 5))


class Noise:
    """Codes independent of the observations (its own generator)."""

    def __init__(self):
        self.rng = np.random.RandomState(123)

    def __call__(self, x):
        return self.rng.standard_normal((len(x), 5))


def run(name, data, representation, seed=0, **params):
    return METRICS[name](
        data, representation, np.random.RandomState(seed), **{**SMALL[name], **params}
    )


# ------------------------------------------------------------------------------ identity


def test_identity_scores_match_the_published_ceilings(data):
    assert run("beta_vae", data, identity) == {"train_accuracy": 1.0, "eval_accuracy": 1.0}
    assert run("factor_vae", data, identity) == {
        "train_accuracy": 1.0,
        "eval_accuracy": 1.0,
        "num_active_dims": 5,
    }
    # 20 bins cap the MI of the 32- and 40-valued factors: about 0.90, not 1.
    assert mig(data, identity, np.random.RandomState(0))["discrete_mig"] == pytest.approx(
        0.90, abs=0.01
    )
    # A linear classifier on one latent cannot separate 40 classes: SAP about 0.24.
    assert sap(data, identity, np.random.RandomState(0))["SAP_score"] == pytest.approx(
        0.24, abs=0.01
    )
    scores = run("modularity_explicitness", data, identity, num_train=5000, num_test=2000)
    assert scores["modularity_score"] == pytest.approx(1.0, abs=1e-3)
    # 0.987 at the default 10,000 points, where the logistic regressions fit a little better.
    assert scores["explicitness_score_test"] == pytest.approx(0.985, abs=0.01)


def test_identity_dci_is_disentangled_complete_and_informative(data):
    scores = run("dci", data, identity)
    assert scores["disentanglement"] > 0.97
    assert scores["completeness"] > 0.97
    assert scores["informativeness_test"] > 0.95


# ------------------------------------------------------------------- rotation, noise, dup


def test_rotation_scores_low_on_mig_sap_and_dci(data):
    assert run("mig", data, rotation)["discrete_mig"] < 0.1
    assert run("sap", data, rotation)["SAP_score"] < 0.05
    # DCI on a coarser grid: the semantics are the same, the boosted trees far cheaper.
    scores = run("dci", COARSE, coarse_rotation)
    assert scores["disentanglement"] < 0.3
    assert scores["completeness"] < 0.3


def test_noise_scores_chance(data):
    chance = 1 / len(SIZES)
    assert run("beta_vae", data, Noise())["eval_accuracy"] == pytest.approx(chance, abs=0.07)
    assert run("factor_vae", data, Noise())["eval_accuracy"] == pytest.approx(chance, abs=0.07)
    assert run("mig", data, Noise())["discrete_mig"] < 0.01
    assert run("sap", data, Noise())["SAP_score"] < 0.02
    explicitness = run("modularity_explicitness", data, Noise(), num_train=1000, num_test=500)
    assert explicitness["explicitness_score_test"] == pytest.approx(0.5, abs=0.03)


def test_duplicated_latents_keep_factor_vae_but_zero_mig(data):
    assert run("factor_vae", data, duplicate)["eval_accuracy"] == 1.0
    assert run("mig", data, duplicate)["discrete_mig"] == pytest.approx(0.0, abs=1e-3)


def test_constant_representation_scores_zero_or_chance_without_crashing(data):
    chance = 1 / len(SIZES)
    assert run("beta_vae", data, constant)["eval_accuracy"] == pytest.approx(chance, abs=0.07)
    assert run("factor_vae", data, constant) == {
        "train_accuracy": 0.0,
        "eval_accuracy": 0.0,
        "num_active_dims": 0,
    }
    assert run("mig", data, constant)["discrete_mig"] == 0.0
    assert run("sap", data, constant)["SAP_score"] == 0.0
    scores = run("modularity_explicitness", data, constant, num_train=500, num_test=200)
    assert scores["modularity_score"] == 0.0
    assert scores["explicitness_score_test"] == 0.5
    scores = run("dci", COARSE, constant)
    assert scores["disentanglement"] == pytest.approx(0.0, abs=1e-9)
    assert scores["completeness"] == pytest.approx(0.0, abs=1e-9)
    assert set(run("unsupervised", data, constant, num_train=500).values()) == {0.0}


def test_same_seed_gives_identical_results(data):
    for name in ("factor_vae", "mig", "sap"):
        assert run(name, data, rotation, seed=3) == run(name, data, rotation, seed=3)


def test_dci_values_do_not_depend_on_parallel_workers():
    rng = np.random.RandomState(0)
    factors = rng.randint(4, size=(300, 3))
    codes = factors + rng.standard_normal((300, 3))
    train, test = (factors[:200], codes[:200]), (factors[200:], codes[200:])
    one = compute_dci(train, test, np.random.RandomState(0), n_jobs=1)
    two = compute_dci(train, test, np.random.RandomState(0), n_jobs=2)
    assert one == two


def test_dci_forest_estimator_agrees_on_identity_and_rotation():
    for representation, low, high in ((coarse_identity, 0.95, 1.0), (coarse_rotation, 0.0, 0.3)):
        gbt = run("dci", COARSE, representation)
        forest = run("dci", COARSE, representation, estimator="forest")
        for key in ("disentanglement", "completeness"):
            assert low <= forest[key] <= high
            assert forest[key] == pytest.approx(gbt[key], abs=0.1)


# ----------------------------------------------------------------------- mig (Chen et al.)


def test_mig_chen_is_high_for_identity_and_zero_for_duplicates(data):
    def encoder(x):
        return standardise(x), np.full((len(x), 5), np.log(0.01**2))

    def duplicated(x):
        mu, logvar = encoder(x)
        return np.repeat(mu, 2, axis=1), np.repeat(logvar, 2, axis=1)

    params = {"num_points": 1000, "num_samples": 500}
    high = mig_chen(data, encoder, np.random.RandomState(0), **params)["mig_chen"]
    assert high > 0.5
    low = mig_chen(data, duplicated, np.random.RandomState(0), **params)["mig_chen"]
    assert low == pytest.approx(0.0, abs=0.02)


# ------------------------------------------------------------------- unsupervised (analytic)


def test_unsupervised_gaussian_total_correlation_is_analytic():
    cov = np.array([[1.0, 0.6], [0.6, 2.0]])
    codes = np.random.RandomState(0).multivariate_normal([0, 0], cov, size=20000)
    expected = 0.5 * (np.log(1.0) + np.log(2.0) - np.log(np.linalg.det(cov)))
    scores = compute_unsupervised(codes)
    assert scores["gaussian_total_correlation"] == pytest.approx(expected, abs=0.01)
    independent = compute_unsupervised(np.random.RandomState(0).standard_normal((20000, 3)))
    assert independent["gaussian_total_correlation"] == pytest.approx(0.0, abs=1e-3)
    assert independent["gaussian_wasserstein_correlation"] == pytest.approx(0.0, abs=1e-3)


# ------------------------------------------------------------------ loop twins of pieces


def test_mutual_info_matrix_equals_sklearn_loop():
    rng = np.random.RandomState(0)
    x = rng.randint(7, size=(500, 4)) * 3 + 1
    y = np.stack([rng.randint(5, size=500), x[:, 0] % 4, rng.randint(2, size=500)], axis=1)
    expected = np.array([[mutual_info_score(y[:, k], x[:, j]) for k in range(3)] for j in range(4)])
    np.testing.assert_allclose(discrete_mutual_info(x, y), expected, atol=1e-12)
    np.testing.assert_allclose(discrete_mutual_info(x, y, chunk=128), expected, atol=1e-12)
    entropies = [mutual_info_score(y[:, k], y[:, k]) for k in range(3)]
    np.testing.assert_allclose(discrete_entropy(y), entropies, atol=1e-12)


def test_histogram_discretisation_is_disentanglement_libs():
    codes = np.random.RandomState(0).standard_normal((300, 3))
    codes[:, 2] = 1.5
    bins = histogram_discretize(codes)
    for j in range(2):
        edges = np.histogram(codes[:, j], 20)[1][:-1]
        np.testing.assert_array_equal(bins[:, j], np.digitize(codes[:, j], edges))
    assert bins[:, 0].min() == 1 and bins[:, 0].max() == 20
    assert len(np.unique(bins[:, 2])) == 1


def test_sampling_equals_disentanglement_libs_loop(data):
    factors, codes = sample_factor_codes(data, identity, 100, np.random.RandomState(5), 16)
    rng = np.random.RandomState(5)
    expected = np.concatenate([data.sample(min(16, 100 - i), rng)[0] for i in range(0, 100, 16)])
    np.testing.assert_array_equal(factors, expected)
    np.testing.assert_allclose(codes, identity(expected))


def test_factor_vae_votes_equal_a_loop_over_votes(data):
    variances = np.var(
        rotation(data.sample_observations(2000, np.random.RandomState(0))), 0, ddof=1
    )
    active = np.array([True, True, False, True, True])
    votes = _votes(data, rotation, 64, 50, np.random.RandomState(7), variances, active)
    rng, expected = np.random.RandomState(7), np.zeros_like(votes)
    for _ in range(50):  # disentanglement_lib's _generate_training_sample, one vote at a time
        k = rng.randint(data.num_factors)
        factors = data.sample_factors(64, rng)
        factors[:, k] = factors[0, k]
        local = np.var(rotation(data.sample_observations_from_factors(factors, rng)), 0, ddof=1)
        expected[k, np.flatnonzero(active)[np.argmin(local[active] / variances[active])]] += 1
    np.testing.assert_array_equal(votes, expected)


def test_beta_vae_features_equal_a_loop_over_points(data):
    from nsvae.metrics.beta_vae import _sample_points

    points, labels = _sample_points(data, rotation, 64, 20, np.random.RandomState(2))
    rng = np.random.RandomState(2)
    for i in range(20):
        k = rng.randint(data.num_factors)
        f1, f2 = data.sample_factors(64, rng), data.sample_factors(64, rng)
        f2[:, k] = f1[:, k]
        x1 = data.sample_observations_from_factors(f1, rng)
        x2 = data.sample_observations_from_factors(f2, rng)
        assert labels[i] == k
        np.testing.assert_allclose(points[i], np.abs(rotation(x1) - rotation(x2)).mean(0))


def test_representation_is_only_called_in_batches(data):
    sizes = []

    def recording(x):
        sizes.append(len(x))
        return identity(x)

    beta_vae(data, recording, np.random.RandomState(0), num_train=10, num_eval=10)
    factor_vae(
        data,
        recording,
        np.random.RandomState(0),
        num_train=10,
        num_eval=10,
        num_variance_estimate=1000,
    )
    mig(data, recording, np.random.RandomState(0), num_train=1000)
    assert max(sizes) <= REPRESENTATION_BATCH


# --------------------------------------------------------------------------- edge cases


def test_nan_codes_wrong_length_and_single_valued_factors_are_one_line_errors(data):
    def nan_codes(x):
        codes = identity(x)
        codes[0, 0] = np.nan
        return codes

    def short(x):
        return identity(x)[:-1]

    errors = []
    for representation in (nan_codes, short):
        with pytest.raises(MetricError) as error:
            mig(data, representation, np.random.RandomState(0), num_train=100)
        errors.append(str(error.value))
    one_valued = ArrayGroundTruthData(np.zeros((6, 2)), (1, 6))
    for metric in (mig, dci, sap, modularity_explicitness):
        with pytest.raises(MetricError, match="single value") as error:
            metric(one_valued, lambda x: x, np.random.RandomState(0))
        errors.append(str(error.value))
    with pytest.raises(MetricError, match="at least 2 latents") as error:
        mig(data, lambda x: identity(x)[:, :1], np.random.RandomState(0), num_train=100)
    errors.append(str(error.value))
    assert all("\n" not in message for message in errors)


# ------------------------------------------------------------------- captured factors


def test_every_factor_is_captured_by_its_own_latent_in_the_identity(data):
    scores = run("mig", data, identity)
    assert scores["captured_by"] == list(range(len(SIZES)))
    assert np.asarray(scores["normalized_mi"]).shape == (len(SIZES), len(SIZES))


def test_noise_and_rotations_capture_no_factor_on_their_own(data):
    assert run("mig", data, Noise())["captured_by"] == [-1] * len(SIZES)
    rotated = run("mig", data, rotation)["captured_by"]
    assert rotated.count(-1) >= 2  # a random rotation mixes the factors into every latent


DSPRITES_NAMES = ("shape", "scale", "orientation", "posX", "posY")


def test_the_seed_bar_is_met_by_the_identity_and_missed_by_noise_or_a_swap():
    from nsvae.metrics.mig import seed_bar

    space = FactorSpace(SIZES)
    named = ArrayGroundTruthData(
        space.index_to_factors(np.arange(space.num_total)), SIZES, factor_names=DSPRITES_NAMES
    )
    perfect = run("mig", named, identity)
    assert perfect["factor_names"] == list(DSPRITES_NAMES)
    assert seed_bar(perfect) == {
        "met": True,
        "mig": perfect["discrete_mig"],
        "captured": dict(zip(DSPRITES_NAMES, range(5), strict=True)),
        "missing": [],
    }
    noise = seed_bar(run("mig", named, Noise()))
    assert not noise["met"] and noise["missing"] == ["posX", "posY", "scale"]

    # x and y mixed into two latents (a 45-degree rotation): MIG falls and neither is captured
    def mixed(x):
        z = identity(x)
        z[:, 3], z[:, 4] = z[:, 3] + z[:, 4], z[:, 3] - z[:, 4]
        return z

    swapped = seed_bar(run("mig", named, mixed))
    assert not swapped["met"] and swapped["missing"] == ["posX", "posY"]
    assert swapped["captured"] == {"shape": 0, "scale": 1, "orientation": 2}
    assert not seed_bar(perfect, min_mig=1.01)["met"]  # the MIG threshold counts on its own

    with pytest.raises(MetricError, match="no factor posX, posY"):
        seed_bar(run("mig", data_without_names := grid_data(), identity))
    assert data_without_names.factor_names[0] == "factor_0"
    with pytest.raises(MetricError, match="no factor names"):
        seed_bar({"discrete_mig": 0.5, "captured_by": [0, 1]})


def test_a_latent_informative_about_two_factors_captures_neither():
    nmi = np.array(
        [
            [0.9, 0.5, 0.0],  # latent 0: factor 0, but half as much of factor 1
            [0.1, 0.6, 0.0],  # latent 1: factor 1, six times its factor 0
            [0.0, 0.0, 0.4],
        ]
    )  # latent 2: factor 2 below the 0.5 share
    from nsvae.metrics.mig import captured_factors

    assert captured_factors(nmi) == [-1, 1, -1]
    assert captured_factors(nmi, share=0.3, ratio=1.5) == [0, 1, 2]
