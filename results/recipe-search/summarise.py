"""The fast-recipe search (issue 13, item 2): each run's MIG trajectory and whether it met the bar.

    python results/recipe-search/summarise.py      # prints the table, writes summary.csv

Reads ``runs/*/metrics.jsonl`` (the evaluation rows that ``--eval-every 2000 --eval-metrics mig``
wrote: MIG at its fast sample count, 3,000 points) and ``runs/*/eval.json`` (MIG at
disentanglement_lib's 10,000 points after the last step), and applies
:func:`nsvae.metrics.mig.seed_bar` to every evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from nsvae.metrics.mig import seed_bar
from nsvae.metrics.results import read_evaluation
from nsvae.rundir import read_run_config

HERE = Path(__file__).resolve().parent


def summary(run: Path) -> dict:
    """One row: the run's settings, MIG every 2,000 steps, its best, the first step at which the
    bar was met and at which any factor was captured (empty: never), the final full MIG."""
    config, _ = read_run_config(run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = {row["step"]: row["eval"]["mig"] for row in rows if "eval" in row}
    trained = [row for row in rows if "recon" in row][-1]
    final = next(
        entry["values"]
        for entry in read_evaluation(run / "eval.json")
        if entry["metric"] == "mig" and not entry["fast"]
    )
    best = max(evals, key=lambda step: evals[step]["discrete_mig"])
    return {
        "run": run.name,
        "arch": config.model.arch,
        "update": config.objective.update,
        "lr": config.train.lr,
        "precision": config.train.precision,
        "seed": config.train.seed,
        "steps": trained["step"],
        "steps_per_s_gpu": round(trained["steps_per_s"], 1),
        **{
            f"mig@{step // 1000}k": round(evals[step]["discrete_mig"], 3)
            for step in (4000, 8000, 12000, 16000, 24000, 32000, 40000)
            if step in evals
        },
        "best_mig": round(evals[best]["discrete_mig"], 3),
        "best_step": best,
        "bar_met_at": next((step for step in sorted(evals) if seed_bar(evals[step])["met"]), None),
        "first_capture_at": next(  # any factor captured (the demo's criterion, issue 24)
            (step for step in sorted(evals) if seed_bar(evals[step])["captured"]), None
        ),
        "final_mig_10k": round(final["discrete_mig"], 3),
        "final_captured": ", ".join(seed_bar(final)["captured"]) or "-",
        "recon": round(trained["recon"], 1),
        "kl": round(trained["kl"], 1),
        "synergy": round(trained["synergy"], 2),
    }


def main() -> None:
    table = pd.DataFrame([summary(run) for run in sorted((HERE / "runs").iterdir())])
    table.to_csv(HERE / "summary.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
