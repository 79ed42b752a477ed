"""Print the README's table of a study in results/: per model, the finished seeds and each
headline metric's median and spread (:func:`nsvae.sweep.report.median_and_spread`), with the
latent synergy, its part outside A_best (S_A) and I(x; z), from the study's results.csv.

    python results/studies/table.py results/studies/cpu-study
"""

from __future__ import annotations

import sys
from pathlib import Path

from nsvae.sweep.report import median_and_spread
from nsvae.sweep.results import load_results

COLUMNS = {"mig.discrete_mig": "MIG", "factor_vae.eval_accuracy": "FactorVAE",
           "beta_vae.eval_accuracy": "BetaVAE", "dci.disentanglement": "DCI D",
           "latent_synergy.synergy_latent": "latent synergy (nats)",
           "latent_synergy.synergy_latent_subsets": "S_A (nats)",
           "latent_synergy.mutual_info_xz": "I(x; z) (nats)"}


def table(study: Path) -> str:
    """The Markdown table of the finished trials of ``study``, one row per setting."""
    results = load_results(study)
    done = results[results["status"] == "done"]
    lines = ["| setting | seeds | " + " | ".join(COLUMNS.values()) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for setting, group in done.groupby("setting", sort=False):
        cells = [median_and_spread(group[column]) for column in COLUMNS]
        lines.append(f"| {setting} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python results/studies/table.py STUDY_DIR")
    print(table(Path(sys.argv[1])))
