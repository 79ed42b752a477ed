"""Copy a study's newly finished trials into results/: each trial's trial.json, config.json,
metrics.jsonl, eval.json, figures and model.safetensors (its weights alone; no checkpoints,
TensorBoard events, locks or report.html, whose pictures are the figures) and the study's
study.toml; rebuild results.csv from the trials in results/ (so scores that ``nsvae study
rescore`` added there stay); then draw the study
report there (report.html, figures/, summary.md), comparing every setting with AGAINST if given
(``nsvae study report --against``).

    python results/studies/collect.py /work/studies/cpu results/studies/cpu-study vae
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from nsvae.errors import NsvaeError
from nsvae.files import file_lock
from nsvae.sweep.report import write_study_report
from nsvae.sweep.results import write_results
from nsvae.sweep.runner import Resources, trial_specs
from nsvae.sweep.study import load_study
from nsvae.sweep.trial import read_record

KEPT = ("trial.json", "config.json", "metrics.jsonl", "eval.json", "figures", "model.safetensors")


def collect(source: Path, target: Path, against: str | None = None) -> tuple[list[str], Path]:
    """Copy the finished trials of ``source`` that ``target`` lacks into it and draw the study
    report there; return the names copied and the report's path.

    A trial already in ``target`` is left as it is: a finished trial does not change, and its
    ``eval.json`` there may hold scores that ``nsvae study rescore`` added. Each trial is
    copied into a temporary folder renamed into place, so an interrupted copy leaves no
    partial trial. ``results.csv`` lists the trials of ``target``: the study's others are
    pending there, whatever their state in ``source``. All of it holds ``target``'s study lock,
    so it never runs beside ``nsvae study rescore`` or another collect on the same ``target``.
    """
    target.mkdir(exist_ok=True)
    with file_lock(
        target / ".lock",
        wait=False,
        busy=lambda _pid: f"{target} is in use by a rescore or another collect; try again later",
    ):
        copied = _copy_new(source, target)
        return copied, write_study_report(target, against)


def _copy_new(source: Path, target: Path) -> list[str]:
    """The copy of :func:`collect`, run under its lock."""
    copied = []
    for trial in sorted((source / "trials").iterdir()):
        record = read_record(trial) if trial.is_dir() else None
        into = target / "trials" / trial.name
        if record is None or record["status"] != "done" or read_record(into) is not None:
            continue
        partial = into.with_name(f".{trial.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name in KEPT:
            if (trial / name).is_dir():
                shutil.copytree(trial / name, partial / name)
            elif (trial / name).is_file():
                shutil.copy2(trial / name, partial / name)
        shutil.rmtree(into, ignore_errors=True)
        partial.rename(into)
        copied.append(trial.name)
    shutil.copy2(source / "study.toml", target / "study.toml")
    study = load_study(target / "study.toml")
    write_results(target, trial_specs(study, target, Resources()))  # from target's eval.json
    return copied


def main(argv: list[str] | None = None) -> None:
    """The command line (module docstring): one line on stdout, or a one-line error and exit 2
    (bad arguments) or 1 (a lock held, an unreadable study)."""
    import argparse

    parser = argparse.ArgumentParser(description="Copy a study's finished trials into results/.")
    parser.add_argument("source", type=Path, help="an nsvae sweep --out folder (with study.toml)")
    parser.add_argument("target", type=Path, help="its folder in results/studies")
    parser.add_argument("against", nargs="?", help="the setting to compare the others with")
    args = parser.parse_args(argv)
    if not (args.source / "study.toml").is_file():
        parser.error(f"{args.source} holds no study.toml: not an nsvae sweep --out folder")
    if not args.target.resolve().parent.is_dir():
        parser.error(f"{args.target.resolve().parent} is not a folder")
    try:
        names, report = collect(args.source, args.target, args.against)
    except (NsvaeError, OSError) as error:
        sys.exit(f"collect.py: error: {error}")
    print(f"{len(names)} new finished trials copied; report: {report}")


if __name__ == "__main__":
    main()
