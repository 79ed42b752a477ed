"""``nsvae robustness``: the entanglement protocol's table and figure.

``DIR/robustness.csv`` holds one row per (kind, level, metric key) with its value
(:func:`nsvae.metrics.robustness.robustness_rows`); ``DIR/robustness.png`` draws each metric's
headline number (:func:`nsvae.metrics.results.headline_columns`) against the level, one column
per kind of entanglement.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from nsvae.files import atomic_path
from nsvae.metrics.results import headline_columns
from nsvae.viz.grid import save_figure

AXES = {
    "rotate": "rotation of the last two factors' latents (degrees)",
    "duplicate": "strength of each latent's noisy copy",
    "noise": "standard deviation of the added noise",
    "mix": "share of the latents' mean in each latent",
}


def draw_robustness(frame) -> Figure:
    """Every headline metric against the level (0: the factors), one column per kind; scores
    within [0, 1] in the top row, unbounded values (nats) in a row of their own."""
    from matplotlib import colormaps

    metrics = headline_columns(dict.fromkeys(frame["metric"]))
    values = frame.groupby("metric")["value"]
    bounded = [m for m in metrics if values.min()[m] >= -0.1 and values.max()[m] <= 1.1]
    rows = [bounded, [m for m in metrics if m not in bounded]]
    rows = [row for row in rows if row]
    colors = {m: colormaps["tab20"].colors[i % 20] for i, m in enumerate(metrics)}
    kinds = list(dict.fromkeys(frame["kind"]))
    figure = Figure(figsize=(3.6 * len(kinds) + 3.0, 3.2 * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), len(kinds), squeeze=False)
    for row, chosen in enumerate(rows):
        for column, kind in enumerate(kinds):
            panel, of_kind = axes[row, column], frame[frame["kind"] == kind]
            for metric in chosen:
                line = of_kind[of_kind["metric"] == metric].sort_values("level")
                panel.plot(
                    line["level"],
                    line["value"],
                    marker="o",
                    markersize=3,
                    color=colors[metric],
                    label=metric,
                )
            panel.set_title(kind if row == 0 else "", fontsize=10)
            panel.set_xlabel(AXES.get(kind, "level") if row == len(rows) - 1 else "", fontsize=8)
            panel.grid(alpha=0.3)
            panel.tick_params(labelsize=7)
        axes[row, 0].set_ylabel("score" if chosen is bounded else "nats", fontsize=8)
    handles = [
        handle
        for row in range(len(rows))
        for handle in zip(*axes[row, 0].get_legend_handles_labels(), strict=True)
    ]
    figure.legend(*zip(*handles, strict=True), loc="outside right center", fontsize=7)
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
