"""``nsvae robustness``: the entanglement protocol's table and figure.

``DIR/robustness.csv`` holds one row per (kind, level, metric key) with its value
(:func:`nsvae.metrics.robustness.robustness_rows`); ``DIR/robustness.png`` draws each metric's
headline number (:func:`nsvae.metrics.results.headline_columns`) against the level, one panel
per kind of entanglement.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from nsvae.files import atomic_path
from nsvae.metrics.results import headline_columns
from nsvae.viz.grid import save_figure

AXES = {"rotate": "rotation of the last two factors' latents (degrees)",
        "duplicate": "strength of each latent's noisy copy",
        "noise": "standard deviation of the added noise",
        "mix": "share of the latents' mean in each latent"}


def draw_robustness(frame) -> Figure:
    """One panel per kind: every headline metric against the level (0: the factors)."""
    from matplotlib import colormaps

    metrics = headline_columns(dict.fromkeys(frame["metric"]))
    palette = colormaps["tab20"].colors
    kinds = list(dict.fromkeys(frame["kind"]))
    figure = Figure(figsize=(4.2 * len(kinds) + 2.6, 4.0), layout="constrained")
    axes = figure.subplots(1, len(kinds), squeeze=False).ravel()
    for panel, kind in zip(axes, kinds, strict=True):
        rows = frame[frame["kind"] == kind]
        for index, metric in enumerate(metrics):
            line = rows[rows["metric"] == metric].sort_values("level")
            panel.plot(line["level"], line["value"], marker="o", markersize=3,
                       color=palette[index % len(palette)], label=metric)
        panel.set_title(kind, fontsize=10)
        panel.set_xlabel(AXES.get(kind, "level"), fontsize=8)
        panel.grid(alpha=0.3)
        panel.tick_params(labelsize=7)
    axes[0].set_ylabel("score", fontsize=8)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=7)
    return figure


def write_robustness(rows: list[dict], out: str | Path) -> tuple[Path, Path]:
    """Write ``out/robustness.csv`` and ``out/robustness.png`` (atomically); return both."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["kind", "level", "metric", "value"])
    out = Path(out)
    table = out / "robustness.csv"
    with atomic_path(table) as temporary:
        frame.to_csv(temporary, index=False)
    return table, save_figure(draw_robustness(frame), out / "robustness.png")
