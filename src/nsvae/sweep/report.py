"""``nsvae study report DIR``: the study's figures in ``DIR/figures/``, ``DIR/report.html`` and
``DIR/summary.md``.

The page is self-contained like a run's report (:mod:`nsvae.viz.report`): a summary, the median
and spread of each headline metric per setting, the figures of :mod:`nsvae.viz.study` with how
to read them, every trial's row, and the study file. Each metric is shown by its headline
number (:data:`nsvae.metrics.results.HEADLINES`, else its first number). ``summary.md`` is the
per-setting table in Markdown, for a README. Given a reference setting, both also compare every
other setting with it, seed by seed (:func:`superiority`).
"""

from __future__ import annotations

import html
import itertools
import math
from pathlib import Path
from typing import NamedTuple

from nsvae.errors import CheckpointError, ConfigError
from nsvae.files import atomic_write
from nsvae.metrics.results import headline_columns
from nsvae.provenance import TRAINED_ON
from nsvae.sweep.results import load_results, metric_columns, setting_columns
from nsvae.viz.report import figure_html, format_value, html_table, page_html
from nsvae.viz.study import MODEL, save_study_figures

MAX_TRIAL_ROWS = 500  # trials listed on the page at most (all are in results.csv)
QUARTILES_FROM = 5  # seeds from which the spread is the quartiles (below: the range)
EXACT_SPLITS = 100_000  # splits of the pooled seeds up to which the p-value is exact
BOOTSTRAP_RESAMPLES = 10_000  # of the interval of the difference of medians
SPREAD = (
    f"median (25th to 75th percentile with {QUARTILES_FROM} seeds or more, else lowest to highest)"
)
CAPTIONS = {
    "distributions.png": (
        "Metrics per setting",
        "For each metric, a box over the seeds of every setting (the trial "
        "name without its seed; median, quartiles, whiskers to 1.5 IQR) and "
        "each seed as a dot, coloured by model. Wide boxes mean the seed "
        "matters as much as the hyperparameters.",
    ),
    "hyperparameters.png": (
        "Metrics against hyperparameters",
        "One row per model and swept number: each metric of every seed "
        "(dots) and its median (line) against the swept value; the model's "
        "other swept values are pooled.",
    ),
    "synergy.png": (
        "Synergy against disentanglement",
        "The synergy score of every trial against each disentanglement metric, "
        "coloured by model: Non-Syn's claim is less synergy with more "
        "disentanglement.",
    ),
    "rank_correlation.png": (
        "Rank correlation between metrics",
        "Spearman rank correlation of every pair of metrics over all "
        "finished trials (as Locatello et al. 2019, figure 2): metrics that "
        "agree rank the models alike.",
    ),
}


def headline_metrics(frame) -> list[str]:
    """One column per metric of the table (:func:`nsvae.metrics.results.headline_columns`)."""
    return [
        column for column in headline_columns(metric_columns(frame)) if frame[column].notna().any()
    ]


def swept_numbers(frame) -> list[tuple[str, str]]:
    """(model, column) for every numeric swept column with several values within a model."""
    pairs = []
    for model, rows in frame.groupby(MODEL, sort=False):
        for column in setting_columns(frame):
            values = rows[column].dropna()
            if column != MODEL and values.nunique() > 1 and _numeric(values):
                pairs.append((model, column))
    return pairs


def summary_rows(frame, metrics: list[str]) -> list[list]:
    """Per setting: model, seeds, then the median and spread of every metric
    (:func:`median_and_spread`)."""
    return [
        [
            setting,
            group[MODEL].iloc[0],
            len(group),
            *(median_and_spread(group[metric]) for metric in metrics),
        ]
        for setting, group in frame.groupby("setting", sort=False)
    ]


def median_and_spread(values) -> str:
    """``median (low to high)``: the quartiles from :data:`QUARTILES_FROM` values up, else the
    lowest and highest (quartiles of three seeds would be interpolations); one value alone; ""
    for none."""
    values = values.dropna().astype(float)
    if len(values) < 2:
        return f"{values.iloc[0]:.4g}" if len(values) else ""
    low, high = (
        (values.quantile(0.25), values.quantile(0.75))
        if len(values) >= QUARTILES_FROM
        else (values.min(), values.max())
    )
    return f"{values.median():.4g} ({low:.4g} to {high:.4g})"


def superiority(values, reference) -> tuple[float, float]:
    """How often one setting's seeds score above a reference setting's, and how surely.

    Parameters
    ----------
    values, reference : pandas.Series
        One metric over the seeds of each setting (missing and infinite values are dropped).

    Returns
    -------
    superiority : float
        The share of (seed, reference seed) pairs in which the setting scores higher, ties
        counting half: the Mann-Whitney U statistic (Mann & Whitney 1947) over ``n * m``,
        Vargha & Delaney's (2000) A measure. 1 means every seed beats every reference seed,
        0.5 no tendency either way.
    p : float
        The two-sided p-value of U: exact, twice the smaller tail of U over all ``C(n + m, n)``
        splits of the pooled values into groups of n and m (ties included), while there are at
        most :data:`EXACT_SPLITS` of them; beyond that from the tie-corrected normal
        approximation (``scipy.stats.mannwhitneyu``). It cannot fall below :func:`smallest_p`
        (0.1 for 3 seeds against 3). NaN when either side has no value.
    """
    import numpy as np
    from scipy.stats import mannwhitneyu

    values, reference = (s.to_numpy(dtype=float) for s in (values, reference))
    values, reference = values[np.isfinite(values)], reference[np.isfinite(reference)]
    n, m = len(values), len(reference)
    if not n or not m:
        return float("nan"), float("nan")
    if math.comb(n + m, n) > EXACT_SPLITS:
        result = mannwhitneyu(values, reference, method="asymptotic")
        return float(result.statistic) / (n * m), float(result.pvalue)
    pooled = np.concatenate([values, reference])
    wins = (pooled[:, None] > pooled[None, :]) + 0.5 * (pooled[:, None] == pooled[None, :])
    first = np.zeros((math.comb(n + m, n), n + m), dtype=bool)  # each split's first group
    for row, members in enumerate(itertools.combinations(range(n + m), n)):
        first[row, list(members)] = True
    u = np.einsum("si,ij,sj->s", first, wins, ~first)  # U of every split; the observed is row 0
    p = 2 * min(np.mean(u >= u[0]), np.mean(u <= u[0]))
    return float(u[0]) / (n * m), min(1.0, float(p))


def median_difference_interval(
    values, reference, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """A bootstrap interval of ``median(values) - median(reference)``.

    The percentile interval (Efron & Tibshirani 1993, ch. 13) of the difference over
    ``resamples`` resamplings of each group's seeds with replacement, drawn from a fixed seed so
    that a report is reproducible. With 5 seeds a side it is wide: it shows how far apart the
    settings might be, not only whether they differ. NaN when either side has no value.
    """
    import numpy as np

    values, reference = (s.to_numpy(dtype=float) for s in (values, reference))
    values, reference = values[np.isfinite(values)], reference[np.isfinite(reference)]
    if not len(values) or not len(reference):
        return float("nan"), float("nan")
    random = np.random.RandomState(0)
    medians = [
        np.median(group[random.randint(0, len(group), (resamples, len(group)))], axis=1)
        for group in (values, reference)
    ]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(medians[0] - medians[1], [tail, 100 - tail])
    return float(low), float(high)


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided p-value of :func:`superiority` for n seeds against m: a complete
    separation is 2 of the ``C(n + m, n)`` splits (1 when that leaves no room)."""
    return min(1.0, 2 / math.comb(n + m, n))


def superiority_rows(frame, metrics: list[str], reference: str) -> list[list]:
    """Per setting other than ``reference``: its seeds, then for every metric the share of seed
    pairs won with its p-value (:func:`superiority`) and the 95 % interval of the difference
    of medians (:func:`median_difference_interval`).

    Raises
    ------
    ConfigError
        If no finished trial has the setting ``reference``.
    """
    groups = dict(tuple(frame.groupby("setting", sort=False)))
    if reference not in groups:
        raise ConfigError(
            f"no finished trial of setting {reference!r} to compare with; "
            f"finished settings: {', '.join(groups)}"
        )
    base = groups[reference]
    return [
        [setting, len(group), *(_superiority_cell(group[m], base[m]) for m in metrics)]
        for setting, group in groups.items()
        if setting != reference
    ]


def pair_rows(frame, metrics: list[str]) -> list[list]:
    """Every pair of settings once, A before B in ``frame``'s order: A, B, their seeds (``n v
    m``), then for every metric A's share of seed pairs won against B, the p-value and the
    interval of A's median minus B's, as :func:`superiority_rows` gives them with B as the
    reference."""
    groups = dict(tuple(frame.groupby("setting", sort=False)))
    names = list(groups)
    return [
        [
            a,
            b,
            f"{len(groups[a])} v {len(groups[b])}",
            *(_superiority_cell(groups[a][m], groups[b][m]) for m in metrics),
        ]
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]


def _superiority_cell(values, reference) -> str:
    share, p = superiority(values, reference)
    if share != share:
        return ""
    low, high = median_difference_interval(values, reference)
    return f"{share:.2f} (p {p:.2g}; {low:+.2g} to {high:+.2g})"


def superiority_caption(reference: str, seeds: int) -> str:
    """What a cell of :func:`superiority_rows` holds."""
    return (
        f"Against {reference} ({seeds} seed{'s' * (seeds != 1)}): the share of seed "
        f"pairs in which the setting scores higher than {reference} (ties count half; 1: "
        "every seed above every seed, 0.5: no tendency), the two-sided Mann-Whitney "
        "p-value, and a 95 % bootstrap interval of the setting's median minus "
        f"{reference}'s. With n seeds against m, p cannot fall below 2 / C(n + m, n): for "
        f"3 seeds against {reference}'s {seeds}, {smallest_p(3, seeds):.2g}; for 5 against "
        f"5, {smallest_p(5, 5):.2g}."
    )


class Comparison(NamedTuple):
    """Every setting against a reference setting, seed by seed: what :func:`compare_with`
    gives, shown as it is by ``summary.md`` and ``report.html``."""

    reference: str
    caption: str
    header: list[str]
    rows: list[list]


def compare_with(frame, metrics: list[str], reference: str) -> Comparison:
    """:func:`superiority_rows` against ``reference``, with its caption and header.

    Raises
    ------
    ConfigError
        If no finished trial has the setting ``reference``.
    """
    rows = superiority_rows(frame, metrics, reference)
    caption = superiority_caption(reference, int((frame["setting"] == reference).sum()))
    return Comparison(reference, caption, ["setting", "seeds", *metrics], rows)


PROVENANCE = dict(zip(TRAINED_ON, ("CPU", "code commit"), strict=True))  # column: its words


def trained_on_counts(frame, column: str) -> str:
    """What the finished trials of ``frame`` trained on (``column``: ``cpu`` or
    ``nsvae_commit``), each value with its number of trials: ``A (12), not recorded (3)``."""
    values = frame[column] if column in frame.columns else None
    if values is None or values.isna().all():
        return "not recorded"
    counts = [f"{value} ({count})" for value, count in values.value_counts(sort=False).items()]
    unknown = int(values.isna().sum())
    return ", ".join(counts + ([f"not recorded ({unknown})"] if unknown else []))


def mixed_provenance(frame) -> list[str]:
    """A warning line for each of :data:`PROVENANCE` that the finished trials of ``frame`` do
    not share: seeds trained on other CPUs or code are other draws of their recipe (kernels
    round differently), so a difference between settings may be one between machines."""
    lines = []
    for column, what in PROVENANCE.items():
        if column in frame.columns and frame[column].dropna().nunique() > 1:
            lines.append(
                f"Trials trained on more than one {what}: {trained_on_counts(frame, column)}. "
                "Kernels round differently, so their seeds are other draws of the same recipe."
            )
    return lines


def summary_markdown(frame, metrics: list[str], comparison: Comparison | None = None) -> str:
    """:func:`summary_rows` as a Markdown table, with a line saying what the cells hold (and
    :func:`mixed_provenance`'s warnings); then, given a :class:`Comparison`
    (:func:`compare_with`), its caption and table."""
    lines = [
        f"Per setting, each metric's {SPREAD}.",
        *(line for warning in mixed_provenance(frame) for line in ("", warning)),
        "",
        *markdown_table(["setting", "model", "seeds", *metrics], summary_rows(frame, metrics)),
    ]
    if comparison is not None:
        lines += ["", comparison.caption, "", *markdown_table(comparison.header, comparison.rows)]
    return "\n".join(lines) + "\n"


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """The lines of a Markdown table."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def write_study_report(out: str | Path, against: str | None = None) -> Path:
    """Draw the figures of the study in ``out``, write ``out/report.html`` and
    ``out/summary.md``; return the page's path.

    Parameters
    ----------
    out : str or Path
        The study directory (``nsvae sweep --out``).
    against : str, optional
        A setting to compare every other one with, seed by seed (:func:`superiority_rows`).

    Raises
    ------
    CheckpointError
        If ``out`` has no results table, or no trial has finished.
    ConfigError
        If ``against`` names no finished setting.
    """
    out = Path(out)
    table = load_results(out)
    done = table[table["status"] == "done"].copy()
    if done.empty:
        raise CheckpointError(f"no finished trial in {out}/results.csv yet")
    metrics = headline_metrics(done)
    comparison = None if against is None else compare_with(done, metrics, against)
    summary = summary_markdown(done, metrics, comparison)
    synergy = next((m for m in metrics if "synergy" in m), None)
    figures = save_study_figures(done, metrics, swept_numbers(done), synergy, out / "figures")
    study_file = out / "study.toml"
    text = study_file.read_text(encoding="utf-8") if study_file.is_file() else ""
    page = page_html(
        _study_name(text, out),
        "nsvae study report",
        _sections(table, done, metrics, figures, text, comparison),
    )
    path = out / "report.html"
    atomic_write(path, page.encode("utf-8"))
    atomic_write(out / "summary.md", summary.encode("utf-8"))
    return path


def _sections(
    table, done, metrics, figures, text, comparison: Comparison | None
) -> list[tuple[str, str, str]]:
    counts = table["status"].value_counts()
    summary = html_table(
        [
            ("trials", len(table)),
            *((status, int(count)) for status, count in counts.items()),
            ("settings", done["setting"].nunique()),
            ("models", ", ".join(dict.fromkeys(done[MODEL]))),
            *(
                (f"{what} (finished trials)", trained_on_counts(done, column))
                for column, what in PROVENANCE.items()
            ),
        ]
    )
    summary += "".join(f"<p class=note>{html.escape(line)}</p>" for line in mixed_provenance(done))
    sections = [
        ("summary", "Summary", summary),
        (
            "settings",
            "Median and spread per setting",
            f"<p class=note>Each cell: the {SPREAD}.</p>"
            + html_table(summary_rows(done, metrics), ["setting", "model", "seeds", *metrics]),
        ),
    ]
    if comparison is not None:
        sections.append(
            (
                "against",
                f"Against {comparison.reference}",
                f"<p class=note>{html.escape(comparison.caption)}</p>"
                + html_table(comparison.rows, comparison.header),
            )
        )
    for name, path in figures.items():
        title, caption = CAPTIONS[name]
        sections.append(
            (name.split(".")[0].replace("_", "-"), title, figure_html(path, title, caption))
        )
    shown = table.head(MAX_TRIAL_ROWS)
    columns = [c for c in shown.columns if c not in metric_columns(shown) or c in metrics]
    note = (
        f"<p class=note>First {MAX_TRIAL_ROWS} of {len(table)} trials; all are in results.csv.</p>"
        if len(table) > MAX_TRIAL_ROWS
        else ""
    )
    sections.append(
        (
            "trials",
            "Trials",
            note
            + html_table(
                [[_cell(v) for v in row] for row in shown[columns].itertuples(index=False)], columns
            ),
        )
    )
    if text:
        sections.append(("study-file", "Study file", f"<pre>{html.escape(text)}</pre>"))
    return sections


def _study_name(text: str, out: Path) -> str:
    import tomllib

    try:
        return str(tomllib.loads(text).get("study", {}).get("name", out.name))
    except tomllib.TOMLDecodeError:
        return out.name


def _cell(value):
    """Empty for missing values, numbers through :func:`format_value`."""
    return "" if value != value or value is None else format_value(value)


def _numeric(values) -> bool:
    try:
        values.astype(float)
    except (TypeError, ValueError):
        return False
    return True
