"""Print the README's table of a study in results/: per model, the finished seeds and each
headline metric's median and spread (:func:`nsvae.sweep.report.median_and_spread`), with the
latent synergy, its part outside A_best (S_A) and I(x; z), from the study's results.csv; given
a reference setting, a second table comparing every other setting with it seed by seed
(:func:`nsvae.sweep.report.superiority_rows`).

    python results/studies/table.py results/studies/cpu-study vae
"""

from __future__ import annotations

import sys
from pathlib import Path

from nsvae.sweep.report import median_and_spread, superiority_rows
from nsvae.sweep.results import load_results

COLUMNS = {"mig.discrete_mig": "MIG", "factor_vae.eval_accuracy": "FactorVAE",
           "beta_vae.eval_accuracy": "BetaVAE", "dci.disentanglement": "DCI D",
           "latent_synergy.synergy_latent": "latent synergy (nats)",
           "latent_synergy.synergy_latent_subsets": "S_A (nats)",
           "latent_synergy.mutual_info_xz": "I(x; z) (nats)"}


HEADER = ["| setting | seeds | " + " | ".join(COLUMNS.values()) + " |",
          "|---|---|" + "---|" * len(COLUMNS)]


def table(study: Path, against: str | None = None) -> str:
    """The Markdown table of the finished trials of ``study``, one row per setting; then, given
    ``against``, each other setting's share of seed pairs won against it and the p-value."""
    results = load_results(study)
    done = results[results["status"] == "done"]
    rows = [[setting, len(group), *(median_and_spread(group[column]) for column in COLUMNS)]
            for setting, group in done.groupby("setting", sort=False)]
    lines = HEADER + [_row(row) for row in rows]
    if against is not None:
        rows = superiority_rows(done, list(COLUMNS), against)
        lines += ["", f"Against {against}:", "", *HEADER, *(_row(row) for row in rows)]
    return "\n".join(lines)


def _row(cells: list) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python results/studies/table.py STUDY_DIR [AGAINST]")
    print(table(Path(sys.argv[1]), *sys.argv[2:]))
