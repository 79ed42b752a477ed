"""Training curves from a run's ``metrics.jsonl`` rows.

Training rows carry ``step, time, loss, steps_per_s, recon, kl, kl_per_latent`` and the terms
the objective logs, which it declares with their titles (``Objective.logged``: Non-Syn's
``synergy``, ``a_best_size`` and ``a_best_freq``, beta-TCVAE's ``tc``, DIP-VAE's ``dip``,
AnnealedVAE's ``capacity``). Every logged quantity gets a panel; one that no declaration names
is drawn under its key. Evaluation rows are ``{"step": int, "eval": {metric: {key: value}}}``
(written with ``--eval-every``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nsvae.checks import is_number
from nsvae.errors import DataError
from nsvae.objectives import Logged, Objective
from nsvae.viz.grid import save_figure

BOOKKEEPING = ("step", "time", "steps_per_s", "compile_s")  # of the rows, not of the model
NOT_PLOTTED = (*BOOKKEEPING, "loss")
KINDS = ("scalar", "per_latent", "share")  # panel order
MAX_LEGEND = 12  # latents named in a legend at most


def split_rows(rows: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """Training rows (with a ``loss``) and evaluation rows (with an ``eval``), in file order."""
    return [r for r in rows if "loss" in r], [r for r in rows if "eval" in r]


def training_series(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """Arrays over the training rows: ``step`` [T], each scalar key [T], each per-latent key [T, d].

    A key appears only if every training row has a number, or a list of as many numbers, under
    it (a row that differs, such as one of a damaged file, leaves the key out).
    """
    train, _ = split_rows(rows)
    if not train:
        raise DataError("metrics.jsonl has no training rows")
    series = {"step": np.array([r["step"] for r in train], dtype=np.int64)}
    for key in train[0]:
        shapes = {_shape(r.get(key)) for r in train}
        if key != "step" and len(shapes) == 1 and None not in shapes:
            series[key] = np.array([r[key] for r in train], dtype=np.float64)
    return series


def training_panels(
    rows: Sequence[dict], logged: Mapping[str, Logged] | None = None
) -> list[tuple[str, Logged]]:
    """The panels of the training curves: ``(key, how it is drawn)``, scalars first.

    ``logged`` is the objective's declaration (``Objective.logged``; the base objective's when
    None); logged keys it does not name are drawn as plain scalars or one line per latent.
    """
    series = training_series(rows)
    declared = dict(Objective.logged if logged is None else logged)
    panels = [
        (
            key,
            declared.get(key)
            or Logged(key, unit="", kind="per_latent" if series[key].ndim == 2 else "scalar"),
        )
        for key in series
        if key not in NOT_PLOTTED
    ]
    return sorted(panels, key=lambda panel: KINDS.index(panel[1].kind))


def _shape(value) -> tuple[int, ...] | None:
    """``()`` for a number, ``(n,)`` for a list of n numbers, None for anything else."""
    if isinstance(value, list):
        return (len(value),) if value and all(_shape(item) == () for item in value) else None
    return () if is_number(value) else None


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
    return {
        metric: {key: (np.array(s), np.array(v)) for key, (s, v) in keys.items()}
        for metric, keys in out.items()
    }


def _style(axes, title, ylabel=None):
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("step", fontsize=8)
    if ylabel:
        axes.set_ylabel(ylabel, fontsize=8)
    axes.grid(alpha=0.3)
    axes.tick_params(labelsize=7)


def _per_latent_lines(axes, steps, values, title, unit):
    for j in range(values.shape[1]):
        axes.plot(steps, values[:, j], lw=1.0, label=f"z{j}")
    _style(axes, title, unit)
    if values.shape[1] <= MAX_LEGEND:
        axes.legend(fontsize=6, ncol=2, loc="upper left", framealpha=0.8)


def _frequency_map(figure, axes, steps, freq, title):
    half = (steps[-1] - steps[0]) / max(2 * (len(steps) - 1), 1)
    image = axes.imshow(
        freq.T,
        aspect="auto",
        cmap="magma",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        origin="lower",
        extent=(steps[0] - half, steps[-1] + half, -0.5, freq.shape[1] - 0.5),
    )
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("step", fontsize=8)
    axes.set_ylabel("latent", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.set_yticks(range(freq.shape[1]) if freq.shape[1] <= MAX_LEGEND else [])
    figure.colorbar(image, ax=axes, fraction=0.05, pad=0.02).ax.tick_params(labelsize=7)


def draw_training_curves(
    rows: Sequence[dict], logged: Mapping[str, Logged] | None = None
) -> Figure:
    """One panel per logged quantity against the step (:func:`training_panels`): a line per
    scalar, a line per latent for per-latent values (KL per latent), a latents x steps heat map
    for shares (how often each latent was in Non-Syn's A_best)."""
    s = training_series(rows)
    steps = s["step"]
    panels = training_panels(rows, logged)
    cols = 2 if len(panels) <= 4 else 3
    grid_rows = -(-len(panels) // cols)
    figure = Figure(figsize=(4.2 * cols, 3.0 * grid_rows), dpi=100, facecolor="white")
    grid = figure.add_gridspec(
        grid_rows,
        cols,
        wspace=0.3,
        hspace=0.5,
        left=0.07,
        right=0.97,
        top=1 - 0.35 / (3.0 * grid_rows),
        bottom=0.5 / (3.0 * grid_rows),
    )
    for cell, (key, how) in zip(grid, panels, strict=False):
        axes = figure.add_subplot(cell)
        if how.kind == "share":
            _frequency_map(figure, axes, steps, s[key], how.title)
        elif how.kind == "per_latent":
            _per_latent_lines(axes, steps, s[key], how.title, how.unit)
        else:
            axes.plot(steps, s[key], lw=1.2)
            _style(axes, how.title, how.unit)
    return figure


def draw_eval_curves(rows: Sequence[dict]) -> Figure | None:
    """One panel per evaluated metric, one line per scalar it reports; None without eval rows."""
    series = eval_series(rows)
    if not series:
        return None
    cols = min(3, len(series))
    grid_rows = -(-len(series) // cols)
    figure = Figure(figsize=(4.2 * cols, 3.0 * grid_rows), dpi=100, facecolor="white")
    grid = figure.add_gridspec(
        grid_rows,
        cols,
        wspace=0.3,
        hspace=0.55,
        left=0.08,
        right=0.97,
        top=1 - 0.35 / (3.0 * grid_rows),
        bottom=0.5 / (3.0 * grid_rows),
    )
    for cell, (metric, keys) in zip(grid, series.items(), strict=False):
        axes = figure.add_subplot(cell)
        for key, (steps, values) in keys.items():
            axes.plot(steps, values, marker=".", lw=1.0, label=key)
        _style(axes, metric)
        if len(keys) <= MAX_LEGEND:
            axes.legend(fontsize=6, framealpha=0.8)
    return figure


def save_training_curves(
    rows: Sequence[dict], path, logged: Mapping[str, Logged] | None = None
) -> Path:
    """Write :func:`draw_training_curves` as a PNG; returns the path."""
    return save_figure(draw_training_curves(rows, logged), path)


def save_eval_curves(rows: Sequence[dict], path) -> Path | None:
    """Write :func:`draw_eval_curves` as a PNG; returns the path, or None without eval rows."""
    figure = draw_eval_curves(rows)
    return None if figure is None else save_figure(figure, path)
