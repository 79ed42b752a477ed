"""PID bounds and UniBound (Tokui & Sato, ICLR 2022): the bounds against exact decompositions
computed by ``dit`` on canonical systems, and the estimator's response to entanglement."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nsvae.metrics import CODE_METRICS, METRICS
from nsvae.metrics.pid import factor_information, pid_bounds, unibound_codes

# Canonical two-source systems (x1, x2) -> y, each outcome equally likely.
SYSTEMS = {
    "copy": [(a, b, 2 * a + b) for a, b in itertools.product((0, 1), repeat=2)],
    "xor": [(a, b, a ^ b) for a, b in itertools.product((0, 1), repeat=2)],
    "and": [(a, b, a & b) for a, b in itertools.product((0, 1), repeat=2)],
    "unique": [(a, b, a) for a, b in itertools.product((0, 1), repeat=2)],
    "redundant": [(a, a, a) for a in (0, 1)],
    "redundant_and_xor": [
        (2 * r + a, 2 * r + b, 2 * r + (a ^ b)) for r, a, b in itertools.product((0, 1), repeat=3)
    ],
    "sum": [(a, b, a + b) for a, b in itertools.product((0, 1), repeat=2)],
}
# dit's PID measures with the atoms of sources [0], [1] about target [2].
MEASURES = ("PID_BROJA", "PID_WB", "PID_MMI", "PID_CCS", "PID_dep")
ATOMS = {
    "redundancy": ((0,), (1,)),
    "unique": ((0,),),
    "rest_unique": ((1,),),
    "synergy": ((0, 1),),
}


def _exact(outcomes):
    """dit's distribution of equally likely ``outcomes`` and its I(y;x1), I(y;x2), I(y;x1,x2)."""
    import dit

    text = ["".join(str(v) for v in outcome) for outcome in outcomes]
    distribution = dit.Distribution(text, [1 / len(text)] * len(text))
    informations = [
        dit.shannon.mutual_information(distribution, sources, [2]) for sources in ([0], [1], [0, 1])
    ]
    return distribution, informations


@pytest.mark.parametrize("system", SYSTEMS)
def test_the_bounds_bracket_every_pid_measure_of_dit_on_canonical_systems(system):
    import dit.pid

    distribution, (single, rest, joint) = _exact(SYSTEMS[system])
    bounds = pid_bounds(single, rest, joint)
    np.random.seed(0)  # noqa: NPY002  (dit's optimisers draw from numpy's global state)
    for measure in MEASURES:
        pid = getattr(dit.pid, measure)(distribution, [[0], [1]], [2])
        for part, atom in ATOMS.items():
            lower, upper = (float(value) for value in bounds[part])
            value = pid.get_pi(atom)
            # 2e-3 bits: the precision of dit's numerical optimisers
            assert lower - 2e-3 <= value <= upper + 2e-3, (
                system,
                measure,
                part,
                lower,
                value,
                upper,
            )


def test_the_bounds_are_exact_where_the_identities_leave_no_freedom():
    def flat(bounds):
        return {
            f"{part}_{side}": float(value)
            for part, pair in bounds.items()
            for side, value in zip(("lower", "upper"), pair, strict=True)
        }

    _, xor = _exact(SYSTEMS["xor"])
    assert flat(pid_bounds(*xor)) == pytest.approx(
        flat({"unique": (0, 0), "rest_unique": (0, 0), "redundancy": (0, 0), "synergy": (1, 1)})
    )
    _, unique = _exact(SYSTEMS["unique"])
    assert flat(pid_bounds(*unique)) == pytest.approx(
        flat({"unique": (1, 1), "rest_unique": (0, 0), "redundancy": (0, 0), "synergy": (0, 0)})
    )
    # one redundancy fixes every part: the uniques at one end go with the redundancy and the
    # synergy at the other, and the parts add up to the informations
    single, rest, joint = np.random.RandomState(0).uniform(0, 1, (3, 50))
    joint = np.maximum(joint + single, rest)
    parts = pid_bounds(single, rest, joint)
    for side in (0, 1):
        other = 1 - side
        np.testing.assert_allclose(parts["unique"][side] + parts["redundancy"][other], single)
        np.testing.assert_allclose(parts["rest_unique"][side] + parts["redundancy"][other], rest)
        np.testing.assert_allclose(
            parts["unique"][side]
            + parts["rest_unique"][side]
            + parts["redundancy"][other]
            + parts["synergy"][other],
            joint,
        )


def _factors(num=4_000, sizes=(3, 6, 10, 10), seed=0):
    rs = np.random.RandomState(seed)
    factors = np.stack([rs.randint(0, size, num) for size in sizes], 1)
    return factors, (factors - factors.mean(0)) / factors.std(0), rs


def _score(factors, codes, seed=1):
    return unibound_codes(factors, codes, np.random.RandomState(seed))


def test_the_factors_themselves_score_one_and_random_codes_zero():
    factors, standard, rs = _factors()
    perfect = _score(factors, standard + 0.01 * rs.standard_normal(standard.shape))
    assert perfect["unibound"] > 0.95
    assert perfect["latent_per_factor"] == [0, 1, 2, 3]
    for part in ("redundancy_upper", "synergy_upper", "rest_unique_upper"):
        assert perfect[part] < 0.03, part
    random = _score(factors, rs.standard_normal(standard.shape))
    assert random["unibound"] < 0.02
    assert max(random["mutual_info_joint"]) < 0.02


def test_unibound_falls_as_two_latents_rotate_and_synergy_appears():
    factors, standard, rs = _factors()
    noise = 0.01 * rs.standard_normal(standard.shape)
    scores = []
    for degrees in (0, 10, 20, 30, 45):
        angle = np.radians(degrees)
        codes = standard.copy()
        codes[:, 2] = np.cos(angle) * standard[:, 2] - np.sin(angle) * standard[:, 3]
        codes[:, 3] = np.sin(angle) * standard[:, 2] + np.cos(angle) * standard[:, 3]
        scores.append(_score(factors, codes + noise))
    unibound = [score["unibound"] for score in scores]
    assert all(a > b for a, b in itertools.pairwise(unibound)), unibound
    assert scores[-1]["unibound_per_factor"][2] < 0.1  # at 45 degrees nothing is unique
    assert scores[-1]["synergy_lower"] > scores[0]["synergy_upper"] + 0.1
    untouched = np.array([s["unibound_per_factor"][:2] for s in scores])  # the other factors
    np.testing.assert_allclose(untouched, untouched[:1].repeat(5, 0), atol=0.02)


def test_unibound_falls_as_latents_are_copied_and_redundancy_rises():
    factors, standard, rs = _factors()
    scores = []
    for strength in (0.0, 0.5, 1.0, 2.0, 4.0):
        copies = strength * standard + rs.standard_normal(standard.shape)
        codes = np.concatenate([standard, copies], 1)
        scores.append(_score(factors, codes + 0.01 * rs.standard_normal(codes.shape)))
    unibound = [score["unibound"] for score in scores]
    redundancy = [score["redundancy_lower"] for score in scores]
    assert all(a > b for a, b in itertools.pairwise(unibound)), unibound
    assert all(a < b for a, b in itertools.pairwise(redundancy)), redundancy


def test_xor_of_two_latents_is_synergy_that_no_single_latent_shows():
    rs = np.random.RandomState(0)
    codes = rs.standard_normal((4_000, 3))
    factors = ((codes[:, :1] > 0) ^ (codes[:, 1:2] > 0)).astype(np.int64)
    info = factor_information(factors, codes, np.random.RandomState(1))
    assert info["single"].max() < 0.01
    assert info["joint"][0] > 0.3 * info["entropy"][0]
    result = _score(factors, codes)
    assert result["synergy_lower"] > 0.3 and result["unibound"] < 0.01


def test_unibound_is_registered_for_runs_and_given_codes_and_is_deterministic():
    assert METRICS["unibound"].input_kind == "representation"
    assert METRICS["unibound"].fast_params == {"num_train": 3_000}
    factors, standard, rs = _factors(num=500)
    assert CODE_METRICS["unibound"] is unibound_codes
    first, again = _score(factors, standard, seed=3), _score(factors, standard, seed=3)
    assert first == again


@pytest.mark.slow
def test_robustness_writes_the_table_and_figure_and_unibound_falls_with_each_kind(
    tmp_path, squares_npz, capsys
):
    import pandas as pd

    from nsvae.cli import main

    out = tmp_path / "robustness"
    assert (
        main(
            [
                "robustness",
                "--data",
                "array",
                "--data-path",
                str(squares_npz),
                "--out",
                str(out),
                "--fast",
                "--metrics",
                "mig,unibound,mig_chen",
            ]
        )
        == 0
    )
    assert "written:" in capsys.readouterr().out
    table = pd.read_csv(out / "robustness.csv")
    assert list(table.columns) == ["kind", "level", "metric", "value"]
    assert set(table["kind"]) == {"rotate", "duplicate", "noise", "mix"}
    assert (out / "robustness.png").stat().st_size > 10_000
    for kind, rows in table[table["metric"] == "unibound.unibound"].groupby("kind"):
        values = rows.sort_values("level")["value"].to_numpy()
        assert values[0] > 0.9, kind  # level 0: the factors themselves
        assert values[-1] < values[0] - 0.3, (kind, values)
    # both latents of the 8 x 8 grid are rotated: MIG falls too, but less than to zero
    rotate = table[(table["kind"] == "rotate") & (table["metric"] == "mig.discrete_mig")]
    assert rotate.sort_values("level")["value"].iloc[-1] < 0.5


def test_robustness_refuses_an_unknown_kind_in_one_line(tmp_path, squares_npz, capsys):
    from nsvae.cli import main

    assert (
        main(
            [
                "robustness",
                "--data",
                "array",
                "--data-path",
                str(squares_npz),
                "--out",
                str(tmp_path),
                "--kinds",
                "rotate,twist",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown kind twist" in err


def test_a_representation_alone_skips_the_encoder_metrics_with_the_reason():
    from nsvae.metrics.evaluate import evaluate_functions
    from nsvae.metrics.robustness import FactorValues, entangle

    data = FactorValues(type("Grid", (), {"factor_names": ("a", "b"), "factor_sizes": [4, 5]}))
    code = entangle([4, 5], "rotate", 0.0)
    result = evaluate_functions(data, code.represent, metrics="mig,mig_chen", fast=True)
    assert set(result["metrics"]) == {"mig"}
    assert result["skipped"] == {
        "mig_chen": "mig_chen needs an encoder's posterior (mu, logvar), not codes alone"
    }
    both = evaluate_functions(data, code.represent, code.encode, metrics="mig,mig_chen", fast=True)
    assert set(both["metrics"]) == {"mig", "mig_chen"} and both["skipped"] == {}


@pytest.mark.parametrize(
    ("kind", "levels"), [("rotate", (0.0, 15.0, 30.0, 45.0)), ("duplicate", (0.0, 1.0, 2.0, 4.0))]
)
def test_on_the_dsprites_factors_unibound_falls_with_the_rotation_of_the_positions_and_copies(
    kind, levels
):
    from nsvae.data.dsprites import FACTOR_NAMES, LATENT_SIZES
    from nsvae.metrics.evaluate import evaluate_functions
    from nsvae.metrics.robustness import FactorValues, entangle

    grid = type(
        "DSpritesGrid", (), {"factor_names": FACTOR_NAMES, "factor_sizes": list(LATENT_SIZES[1:])}
    )
    data = FactorValues(grid)
    unibound = []
    for level in levels:  # rotate: the last two factors, posX and posY
        code = entangle(data.factor_sizes, kind, level)
        result = evaluate_functions(data, code.represent, metrics="unibound", fast=True)
        unibound.append(result["metrics"]["unibound"]["unibound"])
    assert unibound[0] > 0.95
    assert all(a > b for a, b in itertools.pairwise(unibound)), unibound
