"""Training curves from a run's ``metrics.jsonl`` rows.

Training rows carry ``step, loss, recon, kl, kl_per_latent`` and, for the Non-Syn objective,
``synergy`` (the unweighted KL(A_worst) term), ``a_best_size`` and ``a_best_freq`` (fraction of
steps since the previous log in which each latent was in A_best). Evaluation rows are
``{"step": int, "eval": {metric: {key: value}}}`` (written with ``--eval-every``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nsvae.errors import DataError
from nsvae.viz.grid import save_figure

SCALARS = ("loss", "recon", "kl", "synergy", "a_best_size", "steps_per_s")
PER_LATENT = ("kl_per_latent", "a_best_freq")
MAX_LEGEND = 12  # latents named in a legend at most


def split_rows(rows: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """Training rows (with a ``loss``) and evaluation rows (with an ``eval``), in file order."""
    return [r for r in rows if "loss" in r], [r for r in rows if "eval" in r]


def training_series(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """Arrays over the training rows: ``step`` [T], each scalar key [T], each per-latent key [T, d].

    A key appears only if every training row has it.
    """
    train, _ = split_rows(rows)
    if not train:
        raise DataError("metrics.jsonl has no training rows")
    series = {"step": np.array([r["step"] for r in train], dtype=np.int64)}
    for key in SCALARS + PER_LATENT:
        if all(key in r for r in train):
            series[key] = np.array([r[key] for r in train], dtype=np.float64)
    return series


def eval_series(rows: Sequence[dict]) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``{metric: {key: (steps, values)}}`` for every float in the evaluation rows (counts and
    lists are left out)."""
    out: dict[str, dict[str, tuple[list, list]]] = {}
    for row in split_rows(rows)[1]:
        for metric, values in row["eval"].items():
            for key, value in values.items():
                if isinstance(value, float):
                    steps, ys = out.setdefault(metric, {}).setdefault(key, ([], []))
                    steps.append(row["step"])
                    ys.append(float(value))
    return {metric: {key: (np.array(s), np.array(v)) for key, (s, v) in keys.items()}
            for metric, keys in out.items()}


def _style(axes, title, ylabel=None):
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("step", fontsize=8)
    if ylabel:
        axes.set_ylabel(ylabel, fontsize=8)
    axes.grid(alpha=0.3)
    axes.tick_params(labelsize=7)


def _per_latent_lines(axes, steps, values, title):
    for j in range(values.shape[1]):
        axes.plot(steps, values[:, j], lw=1.0, label=f"z{j}")
    _style(axes, title, "nats")
    if values.shape[1] <= MAX_LEGEND:
        axes.legend(fontsize=6, ncol=2, loc="upper left", framealpha=0.8)


def _frequency_map(figure, axes, steps, freq):
    half = (steps[-1] - steps[0]) / max(2 * (len(steps) - 1), 1)
    image = axes.imshow(freq.T, aspect="auto", cmap="magma", vmin=0.0, vmax=1.0,
                        interpolation="nearest", origin="lower",
                        extent=(steps[0] - half, steps[-1] + half, -0.5, freq.shape[1] - 0.5))
    axes.set_title("share of steps each latent was in A_best", fontsize=9)
    axes.set_xlabel("step", fontsize=8)
    axes.set_ylabel("latent", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.set_yticks(range(freq.shape[1]) if freq.shape[1] <= MAX_LEGEND else [])
    figure.colorbar(image, ax=axes, fraction=0.05, pad=0.02).ax.tick_params(labelsize=7)


def draw_training_curves(rows: Sequence[dict]) -> Figure:
    """Reconstruction, KL, KL per latent and, for Non-Syn runs, the synergy term, |A_best| and
    the A_best frequency of each latent (a latents x steps heat map), against the step."""
    s = training_series(rows)
    steps = s["step"]
    panels = [("recon", "reconstruction", "nats"), ("kl", "KL(q(z|x) || p(z))", "nats")]
    if "synergy" in s:
        panels += [("synergy", "synergy term KL(A_worst) (unweighted)", "nats"),
                   ("a_best_size", "mean |A_best|", "latents")]
    panels = [p for p in panels if p[0] in s]
    extra = [key for key in PER_LATENT if key in s]
    count = len(panels) + len(extra)
    cols = 2 if count <= 4 else 3
    grid_rows = -(-count // cols)
    figure = Figure(figsize=(4.2 * cols, 3.0 * grid_rows), dpi=100, facecolor="white")
    grid = figure.add_gridspec(grid_rows, cols, wspace=0.3, hspace=0.5, left=0.07, right=0.97,
                               top=1 - 0.35 / (3.0 * grid_rows), bottom=0.5 / (3.0 * grid_rows))
    cells = iter(grid)
    for key, title, unit in panels:
        axes = figure.add_subplot(next(cells))
        axes.plot(steps, s[key], lw=1.2)
        _style(axes, title, unit)
    if "kl_per_latent" in s:
        _per_latent_lines(figure.add_subplot(next(cells)), steps, s["kl_per_latent"],
                          "KL per latent")
    if "a_best_freq" in s:
        _frequency_map(figure, figure.add_subplot(next(cells)), steps, s["a_best_freq"])
    return figure


def draw_eval_curves(rows: Sequence[dict]) -> Figure | None:
    """One panel per evaluated metric, one line per scalar it reports; None without eval rows."""
    series = eval_series(rows)
    if not series:
        return None
    cols = min(3, len(series))
    grid_rows = -(-len(series) // cols)
    figure = Figure(figsize=(4.2 * cols, 3.0 * grid_rows), dpi=100, facecolor="white")
    grid = figure.add_gridspec(grid_rows, cols, wspace=0.3, hspace=0.55, left=0.08, right=0.97,
                               top=1 - 0.35 / (3.0 * grid_rows), bottom=0.5 / (3.0 * grid_rows))
    for cell, (metric, keys) in zip(grid, series.items(), strict=False):
        axes = figure.add_subplot(cell)
        for key, (steps, values) in keys.items():
            axes.plot(steps, values, marker=".", lw=1.0, label=key)
        _style(axes, metric)
        if len(keys) <= MAX_LEGEND:
            axes.legend(fontsize=6, framealpha=0.8)
    return figure


def save_training_curves(rows: Sequence[dict], path) -> Path:
    """Write :func:`draw_training_curves` as a PNG; returns the path."""
    return save_figure(draw_training_curves(rows), path)


def save_eval_curves(rows: Sequence[dict], path) -> Path | None:
    """Write :func:`draw_eval_curves` as a PNG; returns the path, or None without eval rows."""
    figure = draw_eval_curves(rows)
    return None if figure is None else save_figure(figure, path)
