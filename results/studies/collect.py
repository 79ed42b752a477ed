"""Copy a study's finished trials into results/: each trial's trial.json, config.json,
metrics.jsonl, eval.json, figures and model.safetensors (its weights alone; no checkpoints,
TensorBoard events, locks or report.html, whose pictures are the figures), the study's
results.csv and study.toml; then draw the study
report there (report.html, figures/, summary.md), comparing every setting with AGAINST if given
(``nsvae study report --against``).

    python results/studies/collect.py /work/studies/cpu results/studies/cpu-study vae
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from nsvae.sweep.report import write_study_report
from nsvae.sweep.trial import read_record

KEPT = ("trial.json", "config.json", "metrics.jsonl", "eval.json", "figures", "model.safetensors")


def collect(source: Path, target: Path) -> list[str]:
    """Copy every finished trial of ``source`` into ``target``; return their names."""
    copied = []
    for trial in sorted((source / "trials").iterdir()):
        record = read_record(trial) if trial.is_dir() else None
        if record is None or record["status"] != "done":
            continue
        into = target / "trials" / trial.name
        shutil.rmtree(into, ignore_errors=True)
        into.mkdir(parents=True)
        for name in KEPT:
            if (trial / name).is_dir():
                shutil.copytree(trial / name, into / name)
            elif (trial / name).is_file():
                shutil.copy2(trial / name, into / name)
        copied.append(trial.name)
    for name in ("results.csv", "study.toml"):
        shutil.copy2(source / name, target / name)
    return copied


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or not (Path(sys.argv[1]) / "results.csv").is_file():
        sys.exit(
            "usage: python results/studies/collect.py STUDY_DIR TARGET [AGAINST] "
            "(STUDY_DIR: an nsvae sweep --out folder, with its results.csv; AGAINST: a "
            "setting to compare the others with)"
        )
    source, target = (Path(arg) for arg in sys.argv[1:3])
    against = sys.argv[3] if len(sys.argv) == 4 else None
    names = collect(source, target)
    print(f"{len(names)} finished trials copied; report: {write_study_report(target, against)}")
