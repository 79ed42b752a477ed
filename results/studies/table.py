"""Print the README's tables of a study in results/, from the study's results.csv.

Per setting: the finished seeds and each headline metric's median and spread
(:func:`nsvae.sweep.report.summary_rows`), with UniBound where the study has it, the latent
synergy, its part outside A_best (S_A) and I(x; z); given a reference setting, a second table
comparing every other setting with it seed by seed (:func:`nsvae.sweep.report.compare_with`).
With ``--trials``: one row per finished trial instead, with the factors each captures
(``captured_by`` in its eval.json), the latent closest to capturing one and the minutes it took
to train and evaluate. With ``--pid``: one row per trial scored with UniBound, with its PID
bounds (:mod:`nsvae.metrics.pid`). With ``--pairs``: every pair of settings compared seed by
seed, as the reference setting's table compares each setting with it.
With ``--write``, the table goes in place of the one between the lines
``<!-- table.py: start NAME KIND -->`` and ``<!-- table.py: end NAME KIND -->`` of each README
that has them (README.md, results/README.md; NAME the study folder's name, KIND ``settings``
for the per-setting tables, ``trials``, ``pid`` or ``pairs``).

    python results/studies/table.py results/studies/cpu-study vae    # per setting, and against vae
    python results/studies/table.py results/studies/cpu-study vae --write  # into its blocks
    python results/studies/table.py results/studies/cpu-study --trials     # one row per trial
    python results/studies/table.py results/studies/cpu-study-v2 --pid     # UniBound, PID bounds
    python results/studies/table.py results/studies/cpu-study-v2 --trials --write
    python results/studies/table.py results/studies/cpu-study-v2 --pairs  # every pair of settings
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nsvae.files import read_rows
from nsvae.metrics.mig import captured_by_name
from nsvae.metrics.results import headline, read_evaluation
from nsvae.sweep.report import compare_with, markdown_table, pair_rows, summary_rows
from nsvae.sweep.results import load_results
from nsvae.sweep.trial import read_record

ROOT = Path(__file__).resolve().parents[2]
README, RESULTS_README = ROOT / "README.md", ROOT / "results" / "README.md"


def markers(name: str) -> tuple[str, str]:
    """The start and end lines of the block ``name`` (``STUDY KIND``):
    ``<!-- table.py: start NAME -->`` and ``<!-- table.py: end NAME -->``."""
    return f"<!-- table.py: start {name} -->", f"<!-- table.py: end {name} -->"


HEADLINES = {
    "mig.discrete_mig": "MIG",
    "factor_vae.eval_accuracy": "FactorVAE",
    "beta_vae.eval_accuracy": "BetaVAE",
    "dci.disentanglement": "DCI D",
}
SYNERGY = {
    "latent_synergy.synergy_latent": "latent synergy (nats)",
    "latent_synergy.synergy_latent_subsets": "S_A (nats)",
    "latent_synergy.mutual_info_xz": "I(x; z) (nats)",
}
COLUMNS = {**HEADLINES, "unibound.unibound": "UniBound", **SYNERGY}
TRIAL_COLUMNS = {
    **HEADLINES,
    "sap.SAP_score": "SAP",
    **{key: name for key, name in SYNERGY.items() if not key.endswith("_subsets")},
}


def table(study: Path, against: str | None = None) -> str:
    """The Markdown table of the finished trials of ``study``, one row per setting; then, given
    ``against``, each other setting's share of seed pairs won against it and the p-value."""
    done = finished(study)
    columns = present_columns(done)
    header = ["setting", "seeds", *columns.values()]
    rows = [[setting, *cells] for setting, _model, *cells in summary_rows(done, list(columns))]
    lines = markdown_table(header, rows)
    if against is not None:
        comparison = compare_with(done, list(columns), against)
        lines += ["", f"Against {against}:", "", *markdown_table(header, comparison.rows)]
    return "\n".join(lines)


def pairs_table(study: Path) -> str:
    """Every pair of settings of ``study``, seed by seed (:func:`nsvae.sweep.report.pair_rows`):
    for settings A and B, A before B in the study's order, the share of seed pairs in which A
    scores higher, the two-sided Mann-Whitney p-value and the 95 % bootstrap interval of A's
    median minus B's."""
    done = finished(study)
    columns = present_columns(done)
    rows = pair_rows(done, list(columns))
    return "\n".join(markdown_table(["A", "B", "seeds", *columns.values()], rows))


def present_columns(done) -> dict[str, str]:
    """:data:`COLUMNS` with a value in some trial of ``done`` (an older study has no UniBound).
    A column that only some trials have is summarised over those trials alone."""
    return {
        column: name
        for column, name in COLUMNS.items()
        if column in done.columns and done[column].notna().any()
    }


def trials_table(study: Path) -> str:
    """One row per finished trial of ``study``: its metrics to 3 decimals, the factors it
    captures, each with its latent, and its minutes of training and evaluation; then a line with
    the hours of each in all."""
    rows, spent = [], []
    for name, trial in finished(study).set_index("name").iterrows():
        folder = study / "trials" / name
        minutes = trial_minutes(folder)
        spent.append(minutes)
        rows.append(
            [
                name,
                *(f"{trial[column]:.3f}" for column in TRIAL_COLUMNS),
                *factor_cells(folder),
                *(f"{m:.0f}" for m in minutes),
            ]
        )
    header = [
        "trial",
        *TRIAL_COLUMNS.values(),
        "captured",
        "closest (normalised MI)",
        "training (min)",
        "evaluation (min)",
    ]
    training, evaluation = np.sum(spent, axis=0) / 60 if spent else (0.0, 0.0)
    return "\n".join(
        [
            *markdown_table(header, rows),
            "",
            f"In all: {training:.1f} hours of training, {evaluation:.1f} of evaluation.",
        ]
    )


PID_PARTS = {
    "unique": "U (own latent)",
    "rest_unique": "U (the others)",
    "redundancy": "R",
    "synergy": "S",
}


def pid_table(study: Path) -> str:
    """One row per finished trial of ``study`` scored with UniBound: UniBound, then each PID
    part of what each factor's own latent and the other latents tell about it, as
    ``lower-upper`` (:func:`nsvae.metrics.pid.summarize`: normalised by H(y_k), means over
    factors)."""
    done = finished(study)
    done = done[done["unibound.unibound"].notna()] if "unibound.unibound" in done else done[:0]
    rows = [
        [
            trial["name"],
            f"{trial['unibound.unibound']:.3f}",
            *(
                f"{trial[f'unibound.{part}_lower']:.3f}-{trial[f'unibound.{part}_upper']:.3f}"
                for part in PID_PARTS
            ),
        ]
        for _, trial in done.iterrows()
    ]
    return "\n".join(markdown_table(["trial", "UniBound", *PID_PARTS.values()], rows))


def trial_minutes(trial: Path) -> tuple[float, float]:
    """Minutes of training (the ``time`` of the trial's last training row in ``metrics.jsonl``,
    which runs on across resumes) and of evaluation (``seconds.evaluate`` in ``trial.json``)."""
    training = [row["time"] for row in read_rows(trial / "metrics.jsonl") if "time" in row]
    return training[-1] / 60, read_record(trial)["seconds"]["evaluate"] / 60


def factor_cells(trial: Path) -> tuple[str, str]:
    """``posX (z2), ...``: the factors the trial's latents capture, or ``none``; and the latent
    and factor of its highest normalised mutual information, e.g. ``z3: scale 0.48``."""
    mig = headline(read_evaluation(trial / "eval.json"))["mig"]
    names = [
        f"{factor} (z{latent})" for factor, latent in captured_by_name(mig).items() if latent >= 0
    ]
    nmi = np.asarray(mig["normalized_mi"])
    latent, factor = np.unravel_index(nmi.argmax(), nmi.shape)
    return (
        ", ".join(names) or "none",
        f"z{latent}: {mig['factor_names'][factor]} {nmi[latent, factor]:.2f}",
    )


def block_span(text: str, name: str) -> tuple[int, int]:
    """Where the lines between the start and end lines of block ``name`` (:func:`markers`, each
    on a line of its own, in that order) begin and end in ``text``."""
    start, end_line = markers(name)
    if (
        text.count(start) != 1
        or text.count(end_line) != 1
        or text.index(start) > text.index(end_line)
    ):
        raise ValueError(f"expected one {start!r} line, then one {end_line!r} line")
    begin, end = text.index(start) + len(start), text.index(end_line)
    if text[begin] != "\n" or text[end - 1] != "\n":
        raise ValueError(f"{start!r} and {end_line!r} must be lines of their own")
    return begin + 1, end


def block(text: str, name: str) -> str:
    """The table between the start and end lines of block ``name``."""
    begin, end = block_span(text, name)
    return text[begin:end].removesuffix("\n")


def replace_block(text: str, table_text: str, name: str) -> str:
    """``text`` with the table of block ``name`` replaced by ``table_text``."""
    begin, end = block_span(text, name)
    lines = table_text.rstrip("\n") + "\n" if table_text.strip() else ""
    return text[:begin] + lines + text[end:]


def write_tables(table_text: str, name: str, readmes=(README, RESULTS_README)) -> list[Path]:
    """Write ``table_text`` into block ``name`` of each of ``readmes`` that has its start line;
    return those written. A block that no README has is an error, not a silent no-op, and every
    block is replaced (so checked) before any README is written."""
    texts = {path: path.read_text(encoding="utf-8") for path in readmes}
    replaced = {
        path: replace_block(text, table_text, name)
        for path, text in texts.items()
        if markers(name)[0] in text
    }
    if not replaced:
        raise ValueError(f"no README has a {markers(name)[0]!r} line")
    for path, text in replaced.items():
        path.write_text(text, encoding="utf-8", newline="")
    return list(replaced)


def finished(study: Path):
    """The rows of ``study``'s results.csv whose trial finished."""
    results = load_results(study)
    return results[results["status"] == "done"]


def main(argv: list[str] | None = None) -> None:
    """The command line (module docstring)."""
    import argparse

    parser = argparse.ArgumentParser(description="The README tables of a study in results/.")
    parser.add_argument("study", type=Path, help="a study folder in results/studies")
    parser.add_argument("against", nargs="?", help="the setting to compare the others with")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--trials", action="store_true", help="one row per finished trial")
    kind.add_argument("--pid", action="store_true", help="UniBound and the PID bounds per trial")
    kind.add_argument("--pairs", action="store_true", help="every pair of settings, seed by seed")
    parser.add_argument(
        "--write", action="store_true", help="write the table into its block of the READMEs"
    )
    args = parser.parse_args(argv)
    if (args.trials or args.pid or args.pairs) and args.against:
        parser.error("--trials, --pid and --pairs take no AGAINST setting")
    if args.write and not (args.trials or args.pid or args.pairs or args.against):
        parser.error(
            "--write needs AGAINST (the settings table and the comparison), --trials, --pid or "
            "--pairs"
        )
    if args.trials:
        kind, text = "trials", trials_table(args.study)
    elif args.pid:
        kind, text = "pid", pid_table(args.study)
    elif args.pairs:
        kind, text = "pairs", pairs_table(args.study)
    else:
        kind, text = "settings", table(args.study, args.against)
    if not args.write:
        print(text)
        return
    try:
        written = write_tables(text, f"{args.study.name} {kind}")
    except ValueError as error:
        parser.exit(1, f"table.py: error: {error}\n")
    print(f"written: {', '.join(str(path.relative_to(ROOT)) for path in written)}")


if __name__ == "__main__":
    main()
