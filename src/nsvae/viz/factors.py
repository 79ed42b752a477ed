"""What each latent encodes: mean codes against the ground-truth factors.

The dSprites figure follows the seed author's result figure (and Higgins et al., 2017,
"beta-VAE", Fig. 7 / Burgess et al., 2018, Fig. 2): one row per active latent (variance of the
mean code over the data above 0.01), showing the mean code as a heat map over (posX, posY)
averaged over the other factors, against scale with one line per shape, and against orientation
with one line per shape. Any other :class:`~nsvae.data.ground_truth.GroundTruthData` gets the
mean code against each factor. Both work from a representation function (numpy images ->
mean codes) and a sample of the data.

Sampling. Encoding all of dSprites (737,280 images) is too slow on a CPU, so
:func:`stratified_factors` draws ``per_cell`` random factor vectors for every cell of the
(posX, posY) grid: with the default 16 that is 16,384 images, 16 per heat-map cell, about 910
per (shape, scale) point and about 137 per (shape, orientation) point. Other data gets
``num_samples`` (10,000) uniformly drawn factor vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nsvae.data.dsprites import SHAPE_NAMES
from nsvae.metrics.utils import discrete_entropy, discrete_mutual_info, histogram_discretize
from nsvae.viz.grid import save_figure
from nsvae.viz.traversals import kl_order

DSPRITES_FACTORS = ("shape", "scale", "orientation", "posX", "posY")
ACTIVE_THRESHOLD = 0.01
CHUNK = 2048


def is_dsprites(factor_names: Sequence[str]) -> bool:
    """True when the data has dSprites' position, scale, orientation and shape factors."""
    return set(DSPRITES_FACTORS) <= set(factor_names)


def active_latents(
    codes: np.ndarray, threshold: float = ACTIVE_THRESHOLD, kl_per_latent=None
) -> np.ndarray:
    """Indices of latents whose mean code varies over the data (variance above ``threshold``).

    In index order, or by decreasing KL when ``kl_per_latent`` is given.
    """
    active = np.flatnonzero(np.var(np.asarray(codes, dtype=np.float64), axis=0) > threshold)
    if kl_per_latent is None:
        return active
    return active[kl_order(np.asarray(kl_per_latent)[active])]


def latent_factor_mi(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Mutual information ``I(z_j; v_k)`` [d, K] normalised by ``H(v_k)``, in [0, 1].

    Codes are discretised into ``num_bins`` equal-width bins per latent and the plug-in
    estimate is used, as in MIG (Chen et al., 2018, "Isolating Sources of Disentanglement in
    VAEs"; disentanglement_lib's histogram discretisation).
    """
    factors = np.asarray(factors)
    mi = discrete_mutual_info(
        histogram_discretize(np.asarray(codes, np.float64), num_bins), factors
    )
    entropy = discrete_entropy(factors)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(entropy > 0, mi / entropy, 0.0)


def latent_factor_labels(
    codes: np.ndarray,
    normalized_mi: np.ndarray,
    factor_names: Sequence[str],
    threshold: float = ACTIVE_THRESHOLD,
    min_information: float = 0.05,
) -> list[str]:
    """Per latent, the factor it carries most (normalised) information about.

    Empty for inactive latents (see :func:`active_latents`) and for latents whose largest
    normalised mutual information is below ``min_information``.
    """
    active = set(active_latents(codes, threshold).tolist())
    best = np.argmax(normalized_mi, axis=1)
    return [
        factor_names[best[j]]
        if j in active and normalized_mi[j, best[j]] >= min_information
        else ""
        for j in range(normalized_mi.shape[0])
    ]


def mean_code_by_factors(
    codes: np.ndarray, factors: np.ndarray, which: Sequence[int], sizes: Sequence[int]
) -> np.ndarray:
    """Mean code of each latent in each cell of a sub-grid of factors.

    Parameters
    ----------
    codes : array [n, d]
        Mean codes of the sampled observations.
    factors : int array [n, K]
        Their factor vectors.
    which : sequence of int
        Columns of ``factors`` that index the cells (others are averaged over).
    sizes : sequence of int
        Number of values of each of those factors.

    Returns
    -------
    array [d, *sizes]
        ``out[j, v_1, v_2, ...]`` is the mean of latent j over samples with those factor values;
        NaN for cells without samples.
    """
    codes = np.asarray(codes, dtype=np.float64)
    cells = np.ravel_multi_index(tuple(np.asarray(factors)[:, list(which)].T), tuple(sizes))
    total = int(np.prod(sizes))
    counts = np.bincount(cells, minlength=total).astype(np.float64)
    sums = np.stack([np.bincount(cells, weights=column, minlength=total) for column in codes.T])
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    return means.reshape(len(codes.T), *sizes)


def dsprites_panels(
    codes: np.ndarray, factors: np.ndarray, factor_names: Sequence[str], factor_sizes: Sequence[int]
) -> dict[str, np.ndarray]:
    """Arrays behind the dSprites figure, for every latent.

    Returns a dict with ``position`` [d, size(posX), size(posY)] (indexed ``[j, posX, posY]``),
    ``scale`` [d, shapes, size(scale)] and ``orientation`` [d, shapes, size(orientation)]; each
    the mean code over the samples sharing those factor values.
    """
    column = {name: factor_names.index(name) for name in DSPRITES_FACTORS}

    def by(*names):
        return mean_code_by_factors(
            codes, factors, [column[n] for n in names], [factor_sizes[column[n]] for n in names]
        )

    return {
        "position": by("posX", "posY"),
        "scale": by("shape", "scale"),
        "orientation": by("shape", "orientation"),
    }


def factor_curves(
    codes: np.ndarray, factors: np.ndarray, factor_sizes: Sequence[int]
) -> list[np.ndarray]:
    """Mean code against each factor: one array [d, size_k] per factor k."""
    return [
        mean_code_by_factors(codes, factors, [k], [size]) for k, size in enumerate(factor_sizes)
    ]


def stratified_factors(
    data, strata: Sequence[int], per_cell: int, random_state: np.random.RandomState
) -> np.ndarray:
    """Factor vectors with exactly ``per_cell`` samples in every cell of the ``strata`` factors.

    The other factors are drawn uniformly and independently, so cell means average over them.
    """
    sizes = [data.factor_sizes[k] for k in strata]
    grid = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
    factors = data.sample_factors(len(grid) * per_cell, random_state)
    factors[:, list(strata)] = np.repeat(grid, per_cell, axis=0)
    return factors


def encode_factors(
    data,
    representation: Callable[[np.ndarray], np.ndarray],
    factors: np.ndarray,
    random_state: np.random.RandomState,
) -> np.ndarray:
    """Mean codes [n, d] of the observations of ``factors``, rendered and encoded in chunks."""
    return np.concatenate(
        [
            np.asarray(
                representation(
                    data.sample_observations_from_factors(factors[i : i + CHUNK], random_state)
                ),
                dtype=np.float64,
            )
            for i in range(0, len(factors), CHUNK)
        ]
    )


def sample_codes(
    data,
    representation,
    random_state: np.random.RandomState,
    samples_per_cell: int = 16,
    num_samples: int = 10_000,
):
    """Factors [n, K] and mean codes [n, d] for the latent-vs-factor figures.

    dSprites: :func:`stratified_factors` over (posX, posY) with ``samples_per_cell`` per cell;
    other data: ``num_samples`` uniform factor vectors.
    """
    names = list(data.factor_names)
    if is_dsprites(names):
        strata = [names.index("posX"), names.index("posY")]
        factors = stratified_factors(data, strata, samples_per_cell, random_state)
    else:
        factors = data.sample_factors(num_samples, random_state)
    return factors, encode_factors(data, representation, factors, random_state)


def _row_label(latent: int, kl_per_latent) -> str:
    return f"z{latent}" + ("" if kl_per_latent is None else f"\nKL {kl_per_latent[latent]:.2f}")


def _value_range(*arrays) -> tuple[float, float]:
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays])
    if finite.size == 0:
        return -1.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    margin = max(0.05 * (high - low), 1e-3)
    return low - margin, high + margin


def _empty(figure: Figure, message: str) -> None:
    figure.text(0.5, 0.5, message, ha="center", va="center", fontsize=11)


def shape_names(num_shapes: int) -> list[str]:
    """dSprites' shape names (square, ellipse, heart), or ``shape k`` for other counts."""
    if num_shapes == len(SHAPE_NAMES):
        return list(SHAPE_NAMES)
    return [f"shape {k}" for k in range(num_shapes)]


def draw_dsprites_figure(
    codes,
    factors,
    factor_names,
    factor_sizes,
    kl_per_latent=None,
    threshold: float = ACTIVE_THRESHOLD,
) -> Figure:
    """The seed's figure: per active latent, position heat map, scale and orientation curves.

    Colour (heat maps) and y axes (curves) share one range across all rows, so rows compare.
    Scale is plotted at dSprites' values 0.5..1, orientation in degrees 0..360.
    """
    active = active_latents(codes, threshold, kl_per_latent)
    panels = {
        key: value[active]
        for key, value in dsprites_panels(codes, factors, list(factor_names), factor_sizes).items()
    }
    rows = max(len(active), 1)
    figure = Figure(figsize=(10.0, 0.6 + 1.9 * rows), dpi=100, facecolor="white")
    if not len(active):
        _empty(figure, f"no active latents (variance of the mean code <= {threshold})")
        return figure
    low, high = _value_range(*panels.values())
    height = figure.get_figheight()
    grid = figure.add_gridspec(
        rows,
        4,
        width_ratios=[1.0, 1.5, 2.4, 0.08],
        wspace=0.35,
        hspace=0.45,
        left=0.09,
        right=0.93,
        top=1 - 0.45 / height,
        bottom=0.35 / height,
    )
    shapes = shape_names(panels["scale"].shape[1])
    scale_x = np.linspace(0.5, 1.0, panels["scale"].shape[2])
    orientation_x = np.linspace(0.0, 360.0, panels["orientation"].shape[2])
    for row, latent in enumerate(active):
        heat = figure.add_subplot(grid[row, 0])
        image = heat.imshow(
            panels["position"][row].T,
            cmap="RdBu_r",
            vmin=low,
            vmax=high,
            origin="upper",
            interpolation="nearest",
        )
        heat.set_xticks([])
        heat.set_yticks([])
        heat.set_ylabel(
            _row_label(latent, kl_per_latent),
            rotation=0,
            ha="right",
            va="center",
            fontsize=9,
            labelpad=8,
        )
        scale = figure.add_subplot(grid[row, 1])
        orientation = figure.add_subplot(grid[row, 2])
        for k, name in enumerate(shapes):
            scale.plot(scale_x, panels["scale"][row, k], marker=".", label=name)
            orientation.plot(orientation_x, panels["orientation"][row, k], label=name)
        for axes in (scale, orientation):
            axes.set_ylim(low, high)
            axes.grid(alpha=0.3)
            axes.tick_params(labelsize=7)
        orientation.set_xticks([0, 90, 180, 270, 360])
        if row == 0:
            heat.set_title("position (x right, y down)", fontsize=9)
            scale.set_title("scale", fontsize=9)
            orientation.set_title("orientation", fontsize=9)
            orientation.legend(fontsize=7, ncol=3, loc="upper right", framealpha=0.8)
        if row == rows - 1:
            scale.set_xlabel("scale", fontsize=8)
            orientation.set_xlabel("orientation (degrees)", fontsize=8)
    colorbar = figure.colorbar(image, cax=figure.add_subplot(grid[:, 3]))
    colorbar.set_label("mean code", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    return figure


def draw_factor_curves(
    codes,
    factors,
    factor_names,
    factor_sizes,
    kl_per_latent=None,
    threshold: float = ACTIVE_THRESHOLD,
) -> Figure:
    """Per active latent (rows) and factor (columns): the mean code against the factor's index.

    All panels share one y range.
    """
    active = active_latents(codes, threshold, kl_per_latent)
    curves = [curve[active] for curve in factor_curves(codes, factors, factor_sizes)]
    rows, cols = max(len(active), 1), len(curves)
    figure = Figure(
        figsize=(max(2.2 * cols + 1.0, 5.0), 0.7 + 1.5 * rows), dpi=100, facecolor="white"
    )
    if not len(active):
        _empty(figure, f"no active latents (variance of the mean code <= {threshold})")
        return figure
    low, high = _value_range(*curves)
    grid = figure.add_gridspec(
        rows,
        cols,
        wspace=0.3,
        hspace=0.45,
        left=min(0.9 / figure.get_figwidth(), 0.2),
        right=0.98,
        top=1 - 0.4 / figure.get_figheight(),
        bottom=0.45 / figure.get_figheight(),
    )
    for row, latent in enumerate(active):
        for k, curve in enumerate(curves):
            axes = figure.add_subplot(grid[row, k])
            axes.plot(np.arange(curve.shape[1]), curve[row], marker=".")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_ylim(low, high)
            axes.grid(alpha=0.3)
            axes.tick_params(labelsize=7)
            if k:
                axes.set_yticklabels([])
            else:
                axes.set_ylabel(
                    _row_label(latent, kl_per_latent),
                    rotation=0,
                    ha="right",
                    va="center",
                    fontsize=9,
                )
            if row == 0:
                axes.set_title(factor_names[k], fontsize=9)
            if row == rows - 1:
                axes.set_xlabel("factor value index", fontsize=8)
    return figure


def save_factor_figure(
    codes,
    factors,
    factor_names,
    factor_sizes,
    path,
    kl_per_latent=None,
    threshold: float = ACTIVE_THRESHOLD,
) -> Path:
    """Write the latent-vs-factor PNG: :func:`draw_dsprites_figure` for dSprites-like data
    (:func:`is_dsprites`), else :func:`draw_factor_curves`. Returns the path."""
    draw = draw_dsprites_figure if is_dsprites(factor_names) else draw_factor_curves
    figure = draw(codes, factors, list(factor_names), list(factor_sizes), kl_per_latent, threshold)
    return save_figure(figure, path)


def draw_mutual_information(
    normalized_mi: np.ndarray, factor_names: Sequence[str], kl_per_latent=None
) -> Figure:
    """Heat map of ``I(z_j; v_k) / H(v_k)`` (latents as rows, by decreasing KL when given)."""
    order = np.arange(len(normalized_mi)) if kl_per_latent is None else kl_order(kl_per_latent)
    rows, cols = normalized_mi.shape
    figure = Figure(figsize=(1.6 + 0.9 * cols, 0.9 + 0.4 * rows), dpi=100, facecolor="white")
    axes = figure.add_axes(
        (
            1.1 / figure.get_figwidth(),
            0.75 / figure.get_figheight(),
            1 - 1.6 / figure.get_figwidth(),
            1 - 1.15 / figure.get_figheight(),
        )
    )
    image = axes.imshow(normalized_mi[order], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for row, latent in enumerate(order):
        for k in range(cols):
            value = normalized_mi[latent, k]
            axes.text(
                k,
                row,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if value > 0.6 else "white",
            )
    axes.set_xticks(range(cols), list(factor_names), fontsize=8, rotation=30, ha="right")
    axes.set_yticks(
        range(rows),
        [_row_label(int(j), kl_per_latent).replace("\n", "  ") for j in order],
        fontsize=8,
    )
    axes.set_title("mutual information I(z; v) / H(v), 20-bin histograms", fontsize=9)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.05, pad=0.02)
    colorbar.ax.tick_params(labelsize=7)
    return figure


def save_mutual_information(normalized_mi, factor_names, path, kl_per_latent=None) -> Path:
    """Write :func:`draw_mutual_information` as a PNG; returns the path."""
    return save_figure(draw_mutual_information(normalized_mi, factor_names, kl_per_latent), path)
