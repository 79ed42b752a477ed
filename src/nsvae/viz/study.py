"""Figures of a study: its finished trials as one pandas DataFrame, one row per trial.

The frame has a ``setting`` column (the trial's name without its seed), ``objective.name`` (the
model), the swept ``section.field`` columns and ``metric.key`` columns. Each function draws the
columns it is given:

* :func:`draw_distributions`: per metric, the values over seeds of every setting (box and dots);
* :func:`draw_hyperparameters`: per model and swept number, each metric against its value;
* :func:`draw_synergy_scatter`: synergy against each disentanglement metric, one dot per trial;
* :func:`draw_rank_correlation`: Spearman rank correlations between the metrics over every
  trial, as in Locatello et al. (2019), figure 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nsvae.viz.grid import save_figure

MODEL = "objective.name"
PANEL = (3.6, 2.9)  # inches per panel


def model_colors(frame) -> dict[str, tuple]:
    """A colour per model, in order of first appearance."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    models = list(dict.fromkeys(frame[MODEL]))
    return {model: palette[i % len(palette)] for i, model in enumerate(models)}


def _panels(count: int, columns: int, size=PANEL) -> tuple[Figure, list]:
    rows = max(1, -(-count // columns))
    columns = min(columns, max(count, 1))
    figure = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for extra in axes[count:]:
        extra.set_visible(False)
    return figure, list(axes[:count])


def _style(axes, title: str, xlabel: str = "", ylabel: str = "") -> None:
    axes.set_title(title, fontsize=9)
    axes.set_xlabel(xlabel, fontsize=8)
    axes.set_ylabel(ylabel, fontsize=8)
    axes.grid(alpha=0.3)
    axes.tick_params(labelsize=7)


def draw_distributions(frame, metrics: Sequence[str], columns: int = 3) -> Figure:
    """One panel per metric: a box over the seeds of each setting, with each seed as a dot."""
    colors = model_colors(frame)
    settings = list(dict.fromkeys(frame["setting"]))
    width = max(PANEL[0], 0.35 * len(settings) + 1)
    figure, axes = _panels(len(metrics), columns if width < 6 else 1, (width, PANEL[1] + 0.8))
    jitter = np.random.RandomState(0)
    for ax, metric in zip(axes, metrics, strict=True):
        groups = [frame.loc[frame["setting"] == s, metric].dropna().to_numpy() for s in settings]
        ax.boxplot(
            groups,
            positions=range(len(settings)),
            widths=0.6,
            showfliers=False,
            medianprops={"color": "black"},
        )
        for i, (setting, values) in enumerate(zip(settings, groups, strict=True)):
            model = frame.loc[frame["setting"] == setting, MODEL].iloc[0]
            ax.scatter(
                i + jitter.uniform(-0.15, 0.15, len(values)),
                values,
                s=12,
                color=colors[model],
                alpha=0.8,
                zorder=3,
            )
        ax.set_xticks(range(len(settings)), settings, rotation=60, ha="right", fontsize=6)
        _style(ax, metric)
    return figure


def draw_hyperparameters(
    frame, metrics: Sequence[str], axes_of_models: Sequence[tuple[str, str]]
) -> Figure | None:
    """Rows of (model, swept number), a panel per metric: the metric of each seed against the
    swept value (dots) and its median (line); other swept values of the model are pooled."""
    if not axes_of_models or not metrics:
        return None
    colors = model_colors(frame)
    figure, axes = _panels(len(axes_of_models) * len(metrics), len(metrics))
    panels = iter(axes)
    for model, key in axes_of_models:
        rows = frame[frame[MODEL] == model]
        values = rows[key].astype(float)
        for metric in metrics:
            ax = next(panels)
            ax.scatter(values, rows[metric], s=12, color=colors[model], alpha=0.7)
            medians = rows.groupby(values)[metric].median()
            ax.plot(medians.index, medians.to_numpy(), color=colors[model], lw=1.5)
            if values.min() > 0 and values.max() / values.min() >= 10:
                ax.set_xscale("log")
            _style(ax, f"{model}: {metric}", key)
    return figure


def draw_synergy_scatter(
    frame, synergy: str, others: Sequence[str], columns: int = 3
) -> Figure | None:
    """One panel per disentanglement metric: ``synergy`` against it, a dot per trial."""
    if not others:
        return None
    colors = model_colors(frame)
    figure, axes = _panels(len(others), columns)
    for ax, metric in zip(axes, others, strict=True):
        for model, rows in frame.groupby(MODEL, sort=False):
            ax.scatter(
                rows[metric], rows[synergy], s=14, color=colors[model], alpha=0.8, label=model
            )
        _style(ax, "", metric, synergy)
    axes[0].legend(fontsize=7)
    return figure


def rank_correlation(frame, metrics: Sequence[str]):
    """Spearman rank correlations between the metric columns over the trials (a DataFrame)."""
    return frame[list(metrics)].astype(float).corr(method="spearman")


def draw_rank_correlation(frame, metrics: Sequence[str]) -> Figure | None:
    """The rank-correlation matrix as a heat map, each cell labelled with its value."""
    if len(metrics) < 2 or len(frame) < 3:
        return None
    matrix = rank_correlation(frame, metrics).to_numpy()
    size = 2.5 + 0.55 * len(metrics)
    figure = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6)
    ax.set_xticks(range(len(metrics)), metrics, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(metrics)), metrics, fontsize=7)
    bar = figure.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("Spearman rank correlation", fontsize=8)
    return figure


def save_study_figures(
    frame, metrics: Sequence[str], axes_of_models, synergy: str | None, folder: str | Path
) -> dict[str, Path]:
    """Draw every study figure that the frame supports into ``folder``; name -> path."""
    folder = Path(folder)
    others = [m for m in metrics if "synergy" not in m]
    figures = {
        "distributions.png": draw_distributions(frame, metrics) if metrics else None,
        "hyperparameters.png": draw_hyperparameters(frame, metrics, axes_of_models),
        "synergy.png": draw_synergy_scatter(frame, synergy, others) if synergy else None,
        "rank_correlation.png": draw_rank_correlation(frame, metrics),
    }
    return {
        name: save_figure(figure, folder / name)
        for name, figure in figures.items()
        if figure is not None
    }
