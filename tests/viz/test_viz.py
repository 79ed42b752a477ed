"""Figures of nsvae.viz: traversals, latents against factors, training curves.

Every figure is drawn from a tiny trained model (a few steps of ``nsvae.training.train`` on a small
dSprites-like grid) and from synthetic codes whose answer is known; files are checked to be valid
images of the expected size, and the arrays behind the figures are checked against brute force.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nsvae.config import Config
from nsvae.data.ground_truth import ArrayGroundTruthData, FactorSpace
from nsvae.errors import DataError
from nsvae.models import representation_function
from nsvae.objectives import OBJECTIVES
from nsvae.training import train
from nsvae.viz import curves, factors, grid, traversals

NAMES = ("shape", "scale", "orientation", "posX", "posY")
SIZES = (2, 2, 2, 6, 6)
Z_DIM = 4


def sprite_images(sizes=SIZES) -> np.ndarray:
    """Binary 64x64 sprites over a small grid: square/ellipse, 2 scales, 2 orientations, 6x6."""
    grid_factors = FactorSpace(sizes).index_to_factors(np.arange(int(np.prod(sizes))))
    rows, cols = np.mgrid[0:64, 0:64] + 0.5
    images = np.zeros((len(grid_factors), 1, 64, 64), np.float32)
    for i, (shape, scale, turned, x, y) in enumerate(grid_factors):
        dx = cols - (12 + 40 * x / (sizes[3] - 1))
        dy = rows - (12 + 40 * y / (sizes[4] - 1))
        r = 5 + 3 * scale
        if shape == 0:
            inside = (
                (np.abs(dx) + np.abs(dy) <= 1.4 * r)
                if turned
                else (np.maximum(np.abs(dx), np.abs(dy)) <= r)
            )
        else:
            inside = (dx / r) ** 2 + (dy / (r * (0.6 if turned else 1.0))) ** 2 <= 1
        images[i, 0] = inside
    return images


@pytest.fixture(scope="module")
def sprites():
    return ArrayGroundTruthData(sprite_images(), SIZES, NAMES)


@pytest.fixture(scope="module")
def run(sprites, tmp_path_factory):
    config = Config.from_dict(
        {
            "model": {"z_dim": Z_DIM},
            "train": {
                "steps": 20,
                "batch_size": 16,
                "log_every": 5,
                "checkpoint_every": 1000,
                "threads": 1,
                "device": "cpu",
                "figures": False,
            },
        }
    )
    return train(config, tmp_path_factory.mktemp("viz") / "run", data=sprites)


@pytest.fixture(scope="module")
def observations(sprites):
    return sprites.sample_observations(12, np.random.RandomState(0))


def image_of(path) -> Image.Image:
    image = Image.open(path)
    image.verify()  # a valid, complete file
    return Image.open(path)


def assert_drawn(path) -> None:
    """A valid PNG with something drawn on it: some ink on a white page, not all ink."""
    pixels = np.asarray(image_of(path).convert("L"), dtype=np.float64)
    assert min(pixels.shape) >= 100
    assert 0.002 < np.mean(pixels < 200) < 0.9


def full_grid(sizes) -> np.ndarray:
    return FactorSpace(sizes).index_to_factors(np.arange(int(np.prod(sizes))))


# ------------------------------------------------------------------------------------ grids


def test_render_grid_has_the_size_grid_size_promises():
    tiles = np.random.RandomState(0).rand(3, 5, 1, 64, 64)
    tiles[0, 4] = np.nan  # a blank tile
    image = grid.render_grid(tiles, ["a", "b\nc", "d"], "title", group=2)
    width, height = grid.grid_size(3, 5, group=2)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    with pytest.raises(ValueError, match="labels"):
        grid.render_grid(tiles, ["a"], "title")


def test_mosaic_places_tiles_exactly():
    tiles = np.zeros((2, 3, 1, 4, 4), np.float32)
    tiles[1, 2] = 1.0
    canvas = grid.mosaic(tiles, group=0)
    y, x = 4 + grid.PAD, 2 * (4 + grid.PAD)
    assert np.all(canvas[y : y + 4, x : x + 4] == 1.0)
    assert np.all(canvas[:4, :4] == 0.0)
    assert canvas[4, 0, 0] == pytest.approx(grid.PAD_VALUE)


# ------------------------------------------------------------------------------- traversals


def test_traversal_codes_change_one_latent_only():
    bases = np.random.RandomState(1).randn(2, 5).astype(np.float32)
    values = np.linspace(-3, 3, 7, dtype=np.float32)
    codes = traversals.traversal_codes(bases, [3, 0], values)
    assert codes.shape == (2, 2, 7, 5)
    for row, latent in enumerate([3, 0]):
        np.testing.assert_array_equal(codes[row, :, :, latent], np.broadcast_to(values, (2, 7)))
        others = np.delete(codes[row], latent, axis=-1)
        np.testing.assert_array_equal(
            others, np.broadcast_to(np.delete(bases, latent, axis=-1)[:, None], others.shape)
        )


def test_kl_order_is_descending_and_stable():
    np.testing.assert_array_equal(traversals.kl_order([0.5, 2.0, 0.5, 3.0]), [3, 1, 0, 2])


def test_mean_kl_per_latent_matches_the_formula():
    mu, logvar = np.array([[1.0, 0.0]]), np.array([[0.0, np.log(4.0)]])
    # KL(N(1, 1) || N(0, 1)) = 0.5; KL(N(0, 4) || N(0, 1)) = 0.5 * (4 - 1 - log 4)
    np.testing.assert_allclose(
        traversals.mean_kl_per_latent(mu, logvar), [0.5, 0.5 * (3 - np.log(4.0))]
    )


def test_save_traversals_png(run, observations, tmp_path):
    path = traversals.save_traversals(
        run.model,
        observations,
        tmp_path / "t" / "trav.png",
        latent_labels=["posX", "", "scale", ""],
        steps=6,
        num_images=2,
    )
    assert image_of(path).size == grid.grid_size(Z_DIM + 2, 12, group=6)
    assert image_of(path).format == "PNG"


def test_traversal_rows_follow_kl_and_carry_labels(run):
    bases = np.zeros((1, Z_DIM), np.float32)
    tiles, labels = traversals.traversal_grid(
        run.model, bases, [0.0, 3.0, 1.0, 2.0], ["a", "posX", "", "c"], steps=5
    )
    assert tiles.shape == (Z_DIM, 5, 1, 64, 64)
    assert [label.split("\n")[0] for label in labels] == [
        "z1 \u00b7 posX",
        "z3 \u00b7 c",
        "z2",
        "z0 \u00b7 a",
    ]
    assert labels[0].endswith("KL 3.00 nats")
    expected = traversals.decode(
        run.model, traversals.traversal_codes(bases, [1], np.linspace(-3, 3, 5, dtype=np.float32))
    )[0, 0]
    np.testing.assert_allclose(tiles[0], expected, atol=1e-6)


def test_traversal_errors(run, observations, tmp_path):
    with pytest.raises(DataError, match="latent labels"):
        traversals.save_traversals(run.model, observations, tmp_path / "x.png", latent_labels=["a"])
    with pytest.raises(DataError, match="kl_per_latent"):
        traversals.save_traversals(
            run.model, observations, tmp_path / "x.png", kl_per_latent=[1.0, 2.0]
        )
    with pytest.raises(DataError, match=r"\[n, C, H, W\]"):
        traversals.save_traversals(run.model, observations[0], tmp_path / "x.png")


def test_save_prior_traversals_and_reconstructions(run, observations, tmp_path):
    prior = traversals.save_prior_traversals(
        run.model, tmp_path / "prior.png", [1.0, 0.5, 0.2, 0.0], steps=5, num_samples=2
    )
    assert image_of(prior).size == grid.grid_size(Z_DIM + 1, 10, group=5)
    recon = traversals.save_reconstructions(run.model, observations, tmp_path / "recon.png", cols=5)
    assert image_of(recon).size == grid.grid_size(2 * 3, 5)  # 12 images -> 3 pairs of rows


def test_prior_samples_are_reproducible():
    np.testing.assert_array_equal(
        traversals.prior_samples(3, 2, seed=4), traversals.prior_samples(3, 2, seed=4)
    )


def test_traversal_gif_frames_and_size(run, observations, tmp_path):
    path = traversals.save_traversal_gif(
        run.model, observations, tmp_path / "sweep.gif", steps=4, num_images=3, num_prior=2
    )
    image = image_of(path)
    assert image.format == "GIF"
    assert image.n_frames == len(traversals.sweep_values(3.0, 4)) == 6
    assert image.size == grid.grid_size(Z_DIM + 1, 5, group=3)
    np.testing.assert_allclose(traversals.sweep_values(3.0, 4), [-3, -1, 1, 3, 1, -1])


# --------------------------------------------------------------------- latents vs factors


def test_mean_code_by_factors_matches_a_loop():
    rs = np.random.RandomState(2)
    f = np.stack([rs.randint(3, size=500), rs.randint(4, size=500), rs.randint(5, size=500)], 1)
    f[f[:, 0] == 2, 2] = 0  # leave cells (2, v != 0) empty
    codes = rs.randn(500, 2)
    means = factors.mean_code_by_factors(codes, f, [0, 2], [3, 5])
    for a in range(3):
        for b in range(5):
            chosen = (f[:, 0] == a) & (f[:, 2] == b)
            if chosen.any():
                np.testing.assert_allclose(means[:, a, b], codes[chosen].mean(0))
            else:
                assert np.all(np.isnan(means[:, a, b]))


def test_posx_latent_varies_along_x_only():
    sizes = (3, 6, 40, 32, 32)
    space = FactorSpace(sizes)

    class Grid:
        factor_sizes = list(sizes)
        sample_factors = space.sample_factors

    f = factors.stratified_factors(Grid(), [3, 4], 2, np.random.RandomState(0))
    codes = np.stack([f[:, 3] / 31.0, f[:, 4] / 31.0], axis=1)
    heat = factors.dsprites_panels(codes, f, NAMES, sizes)["position"]  # [d, posX, posY]
    assert heat.shape == (2, 32, 32)
    np.testing.assert_allclose(heat[0], np.broadcast_to(np.arange(32)[:, None] / 31.0, (32, 32)))
    np.testing.assert_allclose(heat[1], np.broadcast_to(np.arange(32)[None] / 31.0, (32, 32)))


def test_scale_latent_gives_flat_orientation_lines():
    sizes = (3, 6, 10, 4, 4)
    f = full_grid(sizes)
    codes = np.stack([f[:, 1] * 0.2, np.cos(f[:, 2])], axis=1).astype(np.float64)
    panels = factors.dsprites_panels(codes, f, NAMES, sizes)
    orientation, scale = panels["orientation"], panels["scale"]
    assert orientation.shape == (2, 3, 10) and scale.shape == (2, 3, 6)
    np.testing.assert_allclose(orientation[0], np.full((3, 10), 0.5))  # mean scale code: flat
    np.testing.assert_allclose(scale[0], np.broadcast_to(np.arange(6) * 0.2, (3, 6)))
    assert np.ptp(orientation[1], axis=1).min() > 1.0  # the orientation latent is not flat
    np.testing.assert_allclose(np.ptp(scale[1], axis=1), 0.0, atol=1e-12)


def test_stratified_factors_fill_every_cell_equally():
    space = FactorSpace(SIZES)

    class Grid:
        factor_sizes = list(SIZES)
        sample_factors = space.sample_factors

    f = factors.stratified_factors(Grid(), [3, 4], 5, np.random.RandomState(0))
    assert f.shape == (36 * 5, 5)
    space.check_factors(f)
    np.testing.assert_array_equal(np.bincount(f[:, 3] * 6 + f[:, 4], minlength=36), 5)


def test_active_latents_threshold_and_kl_order():
    rs = np.random.RandomState(0)
    codes = np.stack([rs.randn(1000), 0.01 * rs.randn(1000), 3 * rs.randn(1000)], 1)
    np.testing.assert_array_equal(factors.active_latents(codes), [0, 2])
    np.testing.assert_array_equal(factors.active_latents(codes, kl_per_latent=[1, 5, 2]), [2, 0])


def test_mutual_information_finds_the_factor_of_each_latent():
    sizes = (3, 6, 5, 8, 8)
    f = full_grid(sizes)
    rs = np.random.RandomState(0)
    codes = np.stack(
        [f[:, 3] + 0.01 * rs.randn(len(f)), np.zeros(len(f)), f[:, 1] * 0.5, rs.randn(len(f))],
        axis=1,
    )
    mi = factors.latent_factor_mi(codes, f)
    assert mi.shape == (4, 5)
    assert mi[0, 3] == pytest.approx(1.0) and mi[2, 1] == pytest.approx(1.0)
    assert np.allclose(mi[1], 0.0, atol=1e-12)  # a constant latent carries nothing
    assert mi[3].max() < 0.05  # noise: little information about any factor
    assert factors.latent_factor_labels(codes, mi, NAMES) == ["posX", "", "scale", ""]


def test_factor_figures_from_a_trained_model(run, sprites, tmp_path):
    rep = representation_function(run.model, "mean")
    f, codes = factors.sample_codes(sprites, rep, np.random.RandomState(0), samples_per_cell=2)
    assert f.shape == (72, 5) and codes.shape == (72, Z_DIM)
    path = factors.save_factor_figure(codes, f, NAMES, SIZES, tmp_path / "f.png", [1, 2, 3, 4])
    assert_drawn(path)
    mi = factors.latent_factor_mi(codes, f)
    path = factors.save_mutual_information(mi, NAMES, tmp_path / "mi.png", [1, 2, 3, 4])
    assert_drawn(path)


def test_factor_figures_from_synthetic_codes(tmp_path):
    sizes = (3, 6, 10, 8, 8)
    f = full_grid(sizes)
    codes = np.stack([f[:, 3] / 7.0, f[:, 4] / 7.0, f[:, 1] / 5.0, np.zeros(len(f))], 1)
    path = factors.save_factor_figure(codes, f, NAMES, sizes, tmp_path / "ds.png")
    assert_drawn(path)
    assert list(factors.active_latents(codes)) == [0, 1, 2]  # one row each; the zero code none
    generic = ["a", "b", "c", "d", "e"]
    path = factors.save_factor_figure(codes, f, generic, sizes, tmp_path / "generic.png")
    assert_drawn(path)
    curves_by_factor = factors.factor_curves(codes, f, sizes)
    np.testing.assert_allclose(curves_by_factor[3][0], np.arange(8) / 7.0)
    np.testing.assert_allclose(curves_by_factor[4][0], 0.5)
    path = factors.save_factor_figure(np.zeros((10, 2)), f[:10], NAMES, sizes, tmp_path / "0.png")
    assert len(factors.active_latents(np.zeros((10, 2)))) == 0  # drawn as "no active latents"
    image_of(path)


# ------------------------------------------------------------------------------ curves


def synthetic_rows(d=3, logs=6, evals=2):
    rows = []
    for t in range(1, logs + 1):
        rows.append(
            {
                "step": 10 * t,
                "time": t,
                "loss": 100.0 / t,
                "recon": 90.0 / t,
                "kl": 10.0,
                "kl_per_latent": [5.0, 3.0, 2.0][:d],
                "steps_per_s": 5.0,
                "synergy": 1.0 / t,
                "a_best_size": 1.5,
                "a_best_freq": [1.0, 0.5, 0.0][:d],
            }
        )
        if t % (logs // evals) == 0:
            rows.append(
                {
                    "step": 10 * t,
                    "eval": {
                        "mig": {"score": 0.1 * t, "num": 3},
                        "sap": {"score": 0.05 * t, "per": [1.0]},
                    },
                }
            )
    return rows


def test_training_and_eval_series():
    rows = synthetic_rows()
    series = curves.training_series(rows)
    np.testing.assert_array_equal(series["step"], [10, 20, 30, 40, 50, 60])
    assert series["a_best_freq"].shape == (6, 3) and series["kl_per_latent"].shape == (6, 3)
    evals = curves.eval_series(rows)
    assert set(evals) == {"mig", "sap"} and set(evals["mig"]) == {"score"}  # floats only
    np.testing.assert_allclose(evals["mig"]["score"][1], [0.3, 0.6])
    np.testing.assert_array_equal(evals["mig"]["score"][0], [30, 60])
    with pytest.raises(DataError, match="no training rows"):
        curves.training_series([r for r in rows if "eval" in r])
    rows[0]["kl_per_latent"] = [5.0, 3.0]  # a damaged row: the key is left out, not an error
    assert "kl_per_latent" not in curves.training_series(rows)
    assert curves.training_series(rows)["a_best_freq"].shape == (6, 3)


def panel_kinds(rows, logged=None):
    return [(key, how.kind) for key, how in curves.training_panels(rows, logged)]


def test_curve_figures(run, tmp_path):
    nonsyn = OBJECTIVES["nonsyn"].logged
    assert panel_kinds(synthetic_rows(), nonsyn) == [
        ("recon", "scalar"),
        ("kl", "scalar"),
        ("synergy", "scalar"),
        ("a_best_size", "scalar"),
        ("kl_per_latent", "per_latent"),
        ("a_best_freq", "share"),
    ]
    assert_drawn(curves.save_training_curves(synthetic_rows(), tmp_path / "c.png", nonsyn))
    assert_drawn(curves.save_eval_curves(synthetic_rows(), tmp_path / "e.png"))
    rows = run.metrics()
    assert "a_best_freq" in rows[-1]  # the default objective is nonsyn
    assert panel_kinds(rows, nonsyn) == panel_kinds(synthetic_rows(), nonsyn)
    assert_drawn(curves.save_training_curves(rows, tmp_path / "run.png", nonsyn))
    assert curves.save_eval_curves(rows, tmp_path / "none.png") is None
    plain = [
        {k: v for k, v in r.items() if k not in ("synergy", "a_best_size", "a_best_freq")}
        for r in rows
    ]
    assert panel_kinds(plain) == [
        ("recon", "scalar"),
        ("kl", "scalar"),
        ("kl_per_latent", "per_latent"),
    ]
    assert_drawn(curves.save_training_curves(plain, tmp_path / "plain.png"))


def test_every_logged_term_gets_a_panel():
    """Terms of other objectives (tc, dip, capacity) and undeclared ones are plotted too."""
    rows = [
        {
            "step": s,
            "loss": 1.0,
            "recon": 1.0,
            "kl": 1.0,
            "kl_per_latent": [0.5, 0.5],
            "tc": 0.1 * s,
            "dip": 0.2,
            "capacity": 2.0,
            "new_term": 3.0,
        }
        for s in (1, 2)
    ]
    kinds = dict(panel_kinds(rows, OBJECTIVES["beta_tcvae"].logged))
    assert {"tc", "dip", "capacity", "new_term"} <= kinds.keys()
    panels = dict(curves.training_panels(rows, OBJECTIVES["beta_tcvae"].logged))
    assert panels["tc"].title == "total correlation (minibatch estimate)"
    assert panels["new_term"].title == "new_term"
