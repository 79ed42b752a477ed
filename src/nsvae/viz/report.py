"""``nsvae report RUN``: every figure of a run in ``RUN/figures/`` and one self-contained HTML page.

``RUN/report.html`` embeds its images as base64 data URIs and its style inline, so it opens
offline, can be mailed as one file, and loads nothing from the network. It shows the run's
summary, the figures with a note on how to read each, the metric and synergy tables of
``eval.json`` (when ``nsvae evaluate`` has been run), the configuration and the library
versions. A tiny inline script records on ``<html data-images="loaded/total">`` how many
images decoded, so a headless browser can check the page.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nsvae.errors import CheckpointError, warn
from nsvae.files import atomic_write
from nsvae.metrics.results import FILE, headline, read_evaluation
from nsvae.models import representation_function
from nsvae.objectives import objective_class
from nsvae.rundir import load_run
from nsvae.viz.curves import BOOKKEEPING, save_eval_curves, save_training_curves, split_rows
from nsvae.viz.factors import (
    latent_factor_labels,
    latent_factor_mi,
    sample_codes,
    save_factor_figure,
    save_mutual_information,
)
from nsvae.viz.traversals import (
    FIGURE_IMAGES,
    encode,
    mean_kl_per_latent,
    save_prior_traversals,
    save_reconstructions,
    save_traversal_gif,
    save_traversals,
)

KL_SAMPLES = 1024  # observations whose posteriors give the KL per latent


@dataclass
class ReportFigure:
    """A figure file of the report with its heading and how to read it."""

    name: str
    title: str
    caption: str


FIGURES = (
    ReportFigure(
        "training_curves.png",
        "Training curves",
        "Reconstruction, KL and every term the objective logs, per logging step. For the "
        "Non-Syn objective: the synergy term KL(A_worst) (before the alpha weight), the mean "
        "size of A_best and, as a heat map, how often each latent was in A_best: latents the "
        "selection keeps choosing are the informative ones, and the synergy term should fall "
        "as information concentrates in them.",
    ),
    ReportFigure(
        "eval_curves.png",
        "Metrics over training",
        "The fast metric suite evaluated every --eval-every steps.",
    ),
    ReportFigure(
        "factors.png",
        "Latents against factors",
        "One row per active latent (variance of the mean code over the data above 0.01), "
        "ordered by KL. For dSprites: the mean code over the (posX, posY) grid averaged over "
        "the other factors (x to the right, y down), then against scale and orientation with "
        "one line per shape; colours and y axes share one scale. A disentangled latent varies "
        "in one panel only: a left-right gradient is x position, a top-bottom gradient y "
        "position, a rising line in the scale panel is scale. For other data: the mean code "
        "against each factor's value index, one panel per factor.",
    ),
    ReportFigure(
        "mutual_information.png",
        "Mutual information between latents and factors",
        "I(z_j; v_k) / H(v_k) from 20-bin histograms of the mean code. A disentangled "
        "representation has at most one bright cell per row and per column.",
    ),
    ReportFigure(
        "traversals.png",
        "Posterior traversals",
        "Originals, reconstructions, then one row per latent (largest KL first) set to "
        "evenly spaced values over [-3, 3] while the others stay at the posterior mean of the "
        "image at the start of each group. Each row is labelled with the latent, its KL and "
        "the factor it carries most information about.",
    ),
    ReportFigure(
        "traversals.gif",
        "Animated traversals",
        "Every latent swept at once over [-3, 3] and back: columns are data images (left) "
        "and prior samples (right), rows the latents.",
    ),
    ReportFigure(
        "prior_traversals.png",
        "Prior traversals",
        "The same traversals around a sample of the prior N(0, I) instead of a posterior "
        "mean: what the decoder makes of codes the encoder never produced.",
    ),
    ReportFigure(
        "reconstructions.png",
        "Reconstructions",
        "Data images and the mean of the decoder's output for their posterior means.",
    ),
)


def draw_figures(
    run,
    data=None,
    seed: int = 0,
    samples_per_cell: int = 16,
    num_samples: int = 10_000,
    progress=None,
) -> dict[str, Path]:
    """Draw every figure of a run into ``run.path / "figures"``.

    Parameters
    ----------
    run : nsvae.rundir.Run
        The loaded run (model in eval mode).
    data : GroundTruthData, optional
        The run's data; ``run.data()`` by default.
    seed : int
        Seed of every sample drawn for the figures.
    samples_per_cell, num_samples : int
        Sample sizes of the latent-vs-factor figures (see :mod:`nsvae.viz.factors`).
    progress : callable, optional
        ``progress(message)``, called before each slow stage (encoding, each figure).

    Returns
    -------
    dict
        File name -> path of each figure written (curves only when ``metrics.jsonl`` has rows).
    """
    tell = progress or (lambda message: None)
    data = run.data() if data is None else data
    folder = run.path / "figures"
    model = run.model
    written = {}
    rows = run.metrics() if (run.path / "metrics.jsonl").exists() else []
    train_rows, eval_rows = split_rows(rows)
    if train_rows:
        logged = objective_class(run.config.objective.name).logged
        written["training_curves.png"] = save_training_curves(
            rows, folder / "training_curves.png", logged
        )
    if eval_rows:
        written["eval_curves.png"] = save_eval_curves(rows, folder / "eval_curves.png")

    tell(f"encoding {KL_SAMPLES} + {num_samples} samples")
    observations = data.sample_observations(KL_SAMPLES, np.random.RandomState(seed))
    kl = mean_kl_per_latent(*encode(model, observations))
    shown = observations[:FIGURE_IMAGES]
    figure = {name: folder / name for name in (f.name for f in FIGURES)}
    tell("drawing the figures")
    labels = None
    if data.has_factors:  # an image collection has none to plot latents against
        factors, codes = sample_codes(
            data,
            representation_function(model, "mean", seed=seed),
            np.random.RandomState(seed),
            samples_per_cell,
            num_samples,
        )
        mi = latent_factor_mi(codes, factors)
        labels = latent_factor_labels(codes, mi, data.factor_names)
        written["factors.png"] = save_factor_figure(
            codes, factors, data.factor_names, data.factor_sizes, figure["factors.png"], kl
        )
        written["mutual_information.png"] = save_mutual_information(
            mi, data.factor_names, figure["mutual_information.png"], kl
        )
    written["traversals.png"] = save_traversals(
        model, shown, figure["traversals.png"], kl, labels, num_images=2
    )
    written["traversals.gif"] = save_traversal_gif(
        model, shown, figure["traversals.gif"], kl, labels, steps=15, seed=seed
    )
    written["prior_traversals.png"] = save_prior_traversals(
        model, figure["prior_traversals.png"], kl, labels, num_samples=2, seed=seed
    )
    written["reconstructions.png"] = save_reconstructions(
        model, shown, figure["reconstructions.png"]
    )
    return written


def write_report(
    run_dir,
    data=None,
    seed: int = 0,
    samples_per_cell: int = 16,
    num_samples: int = 10_000,
    progress=None,
) -> Path:
    """Draw the figures of ``run_dir`` and write ``run_dir/report.html``; return its path.

    See :func:`draw_figures` for the parameters. A corrupt ``eval.json`` is left out of the
    page with a warning.

    Raises
    ------
    CheckpointError
        If ``run_dir`` is not a run, its ``config.json`` is unreadable, or the page cannot be
        written.
    """
    run = load_run(run_dir)
    figures = draw_figures(run, data, seed, samples_per_cell, num_samples, progress)
    record = run.record()
    evaluation = _evaluation(run.path / FILE)
    rows = run.metrics() if (run.path / "metrics.jsonl").exists() else []
    page = render_html(
        run.path.resolve().name,
        run.step,
        run.config.to_dict(),
        record.get("versions", {}),
        figures,
        evaluation,
        split_rows(rows)[0],
    )
    path = run.path / "report.html"
    atomic_write(path, page.encode("utf-8"))
    return path


def _evaluation(path: Path) -> dict | None:
    """``{"metrics": headline values, "entries": [...]}`` of an ``eval.json``, or None."""
    try:
        entries = read_evaluation(path)
    except CheckpointError as error:
        warn(f"{error}; the report shows no metrics")
        return None
    return {"metrics": headline(entries), "entries": entries} if entries else None


# ----------------------------------------------------------------------------------- HTML


def format_value(value) -> str:
    """Short text of a table value: floats to 4 significant digits, lists and dicts inline."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    return str(value)


def html_table(rows, header=None) -> str:
    """An HTML table of ``rows`` (cells through :func:`format_value`), with an optional header."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header) if header else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    head = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{head}<tbody>{body}</tbody></table>"


def data_uri(path: Path) -> str:
    """The file as a base64 ``data:`` URI (PNG or GIF)."""
    kind = "gif" if Path(path).suffix.lower() == ".gif" else "png"
    return f"data:image/{kind};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


def _metric_tables(metrics: Mapping) -> tuple[str, str]:
    def rows(names):
        return [(name, key, value) for name in names for key, value in metrics[name].items()]

    synergy = [name for name in metrics if "synergy" in name]
    others = [name for name in metrics if name not in synergy]
    header = ("metric", "key", "value")
    return (
        html_table(rows(others), header) if others else "",
        html_table(rows(synergy), header) if synergy else "",
    )


def captured_html(mig: Mapping) -> str:
    """Per factor, the latent that carries it on its own (or none) with its normalised MI, and
    on dSprites-like data whether the seed's qualitative result is reached
    (:func:`nsvae.metrics.mig.seed_bar`)."""
    from nsvae.metrics.mig import captured_by_name, seed_bar_line

    nmi = mig["normalized_mi"]
    rows = []
    for k, (name, latent) in enumerate(captured_by_name(mig).items()):
        best = max(range(len(nmi)), key=lambda j: nmi[j][k])
        rows.append((name, f"z{latent}" if latent >= 0 else "none", f"z{best}: {nmi[best][k]:.3f}"))
    table = html_table(rows, ("factor", "captured by", "most informative latent: normalised MI"))
    verdict = seed_bar_line(mig)
    return table if verdict is None else table + f"<p class=note>{html.escape(verdict)}</p>"


def _evaluation_note(entries: list[dict]) -> str:
    """Where the metric table comes from: steps, representations, seeds, suites."""

    def seen(key):
        return ", ".join(sorted({str(entry.get(key)) for entry in entries}))

    return (
        f"eval.json: {len(entries)} entries (step {seen('step')}, representation "
        f"{seen('representation')}, seed {seen('seed')}, fast {seen('fast')}); each metric "
        "shows its newest entry, posterior means first"
    )


def _summary(name, step, config, train_rows) -> str:
    objective = config.get("objective", {})
    items = [
        ("run", name),
        ("step", str(step)),
        ("objective", format_value(objective.get("name"))),
        (
            "model",
            f"{config.get('model', {}).get('arch')}, z_dim {config.get('model', {}).get('z_dim')}",
        ),
        ("data", format_value(config.get("data", {}).get("name"))),
    ]
    settings = {key: value for key, value in objective.items() if key != "name"}
    if settings:
        items.append(("objective settings", format_value(settings)))
    if train_rows:
        items.append(
            (
                "last log",
                ", ".join(
                    f"{key} {value:.4g}"
                    for key, value in train_rows[-1].items()
                    if key not in BOOKKEEPING and isinstance(value, int | float)
                ),
            )
        )
    return html_table(items)


def render_html(
    name: str,
    step: int,
    config: Mapping,
    versions: Mapping,
    figures: Mapping[str, Path],
    evaluation: Mapping | None,
    train_rows=(),
) -> str:
    """The report page as one string (see the module docstring).

    ``evaluation`` is ``{"metrics": {name: values}, "entries": [eval.json entries]}`` or None.
    """
    sections = [("summary", "Summary", _summary(name, step, config, list(train_rows)))]
    for figure in FIGURES:
        if figure.name in figures:
            body = figure_html(figures[figure.name], figure.title, figure.caption)
            sections.append(
                (
                    figure.name.split(".")[0].replace("_", "-")
                    + ("-gif" if figure.name.endswith(".gif") else ""),
                    figure.title,
                    body,
                )
            )
    if evaluation is not None:
        metrics, synergy = _metric_tables(evaluation["metrics"])
        note = f"<p class=note>{html.escape(_evaluation_note(evaluation['entries']))}</p>"
        if metrics:
            sections.append(("metrics", "Disentanglement metrics", note + metrics))
        mig = evaluation["metrics"].get("mig", {})
        if "factor_names" in mig:
            sections.append(("captured", "Captured factors", captured_html(mig)))
        if synergy:
            sections.append(("synergy", "Synergy", synergy))
    else:
        sections.append(
            (
                "metrics",
                "Metrics",
                "<p class=note>No eval.json yet: run <code>nsvae evaluate "
                f"{html.escape(name)}</code>, then the report again.</p>",
            )
        )
    config_html = (
        '<div class="columns">'
        + "".join(
            f"<div><h3>{html.escape(section)}</h3>{html_table(list(values.items()))}</div>"
            for section, values in config.items()
        )
        + "</div>"
    )
    sections.append(("config", "Configuration", config_html))
    sections.append(("versions", "Versions", html_table(list(versions.items()))))
    return page_html(name, "nsvae run report", sections)


def figure_html(path: Path, title: str, caption: str) -> str:
    """A ``<figure>`` with the image embedded and its caption."""
    return (
        f'<figure><img src="{data_uri(path)}" alt="{html.escape(title)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def page_html(name: str, subtitle: str, sections) -> str:
    """The self-contained page: a heading, a link bar and one ``<section>`` per
    ``(anchor, title, html)`` of ``sections``."""
    nav = " ".join(f'<a href="#{anchor}">{html.escape(title)}</a>' for anchor, title, _ in sections)
    body = "\n".join(
        f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{content}</section>'
        for anchor, title, content in sections
    )
    return PAGE.format(
        title=html.escape(f"nsvae report: {name}"),
        name=html.escape(name),
        subtitle=html.escape(subtitle),
        nav=nav,
        body=body,
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ margin: 0; background: #f5f6f8; color: #1c2230;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }}
main {{ max-width: 1180px; margin: 0 auto; padding: 20px 28px 60px; }}
header h1 {{ font-size: 26px; margin: 8px 0 2px; }}
header p {{ margin: 0 0 10px; color: #556070; }}
nav {{ position: sticky; top: 0; background: #f5f6f8ee; padding: 8px 0; z-index: 1;
  border-bottom: 1px solid #dde1e7; }}
nav a {{ color: #2358c4; text-decoration: none; margin-right: 16px; font-size: 14px;
  white-space: nowrap; }}
nav a:hover {{ text-decoration: underline; }}
section {{ background: #fff; border: 1px solid #dde1e7; border-radius: 8px;
  padding: 14px 22px 18px; margin: 18px 0; }}
h2 {{ font-size: 19px; margin: 0 0 10px; }}
h3 {{ font-size: 15px; margin: 14px 0 4px; color: #3b4454; }}
figure {{ margin: 0; }}
figure img {{ display: block; max-width: 100%; height: auto; margin: 0 auto;
  border: 1px solid #eceef2; }}
figcaption {{ color: #4b5566; font-size: 13.5px; margin-top: 8px; max-width: 900px; }}
table {{ border-collapse: collapse; font-size: 13.5px; margin: 4px 0; }}
th, td {{ text-align: left; padding: 3px 14px 3px 0; border-bottom: 1px solid #eceef2;
  vertical-align: top; }}
th {{ color: #556070; font-weight: 600; }}
td:first-child {{ color: #3b4454; white-space: nowrap; }}
td {{ font-variant-numeric: tabular-nums; word-break: break-word; }}
code {{ background: #eef0f4; padding: 1px 4px; border-radius: 3px; }}
pre {{ background: #eef0f4; padding: 8px 12px; border-radius: 4px; overflow-x: auto;
  font-size: 12.5px; }}
.columns {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr));
  gap: 0 28px; }}
.note {{ color: #556070; font-size: 13.5px; margin: 0 0 8px; }}
</style>
</head>
<body>
<main>
<header><h1>{name}</h1><p>{subtitle}</p></header>
<nav>{nav}</nav>
{body}
</main>
<script>
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }});
  document.documentElement.setAttribute("data-images", loaded.length + "/" + images.length);
}});
</script>
</body>
</html>
"""
