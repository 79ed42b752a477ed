"""A study's results table: ``DIR/results.csv`` (and ``results.parquet`` with pyarrow).

One row per trial: ``name``, ``setting`` (the name without the seed), ``status`` (done, failed,
unfinished, pending), ``objective.name``, every swept ``section.field``, ``seed``, ``steps``,
``seconds`` (train, evaluate and report of the attempt that finished it), ``cpu`` and
``nsvae_commit`` (what it trained on, :func:`nsvae.rundir.trained_on`), ``error``, then every
number of its ``eval.json`` as a ``metric.key`` column (e.g. ``mig.discrete_mig``; nested tables
add a level, as in ``factor_synergy.per_factor.x``; lists such as per-factor scores stay in
``eval.json``). Trials of earlier versions of the study file that have a record keep their rows.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nsvae.config import Config
from nsvae.errors import CheckpointError, one_line
from nsvae.files import atomic_path, file_lock, read_json
from nsvae.metrics.results import flat_metrics
from nsvae.provenance import TRAINED_ON
from nsvae.rundir import trained_on
from nsvae.sweep.trial import TrialSpec, has_checkpoint, read_record

HEAD = ("name", "setting", "status", "objective.name")
TAIL = ("seed", "steps", "seconds", *TRAINED_ON, "error")
CONFIG_SECTIONS = tuple(f.name for f in dataclasses.fields(Config))


def trial_row(spec: TrialSpec) -> dict[str, Any]:
    """The row of one trial, from its directory (nothing there yet: pending)."""
    directory = Path(spec.directory)
    record = read_record(directory)
    row = {
        "name": spec.name,
        "setting": spec.setting,
        "objective.name": spec.config["objective"]["name"],
        **{key: _cell(value) for key, value in spec.swept.items()},
        "seed": spec.seed,
    }
    if record is None:
        row["status"] = "unfinished" if has_checkpoint(directory) else "pending"
        return row
    row.update(
        status=record["status"],
        steps=record["step"],
        error=record["error"],
        seconds=round(sum(record["seconds"].values()), 3),
    )
    if (directory / "config.json").is_file():
        row.update(trained_on(directory))
    if record["status"] == "done":
        row.update(flat_metrics(read_json(directory / "eval.json")["metrics"]))
    return row


def recorded_specs(out: str | Path, skip: Iterable[str] = ()) -> list[TrialSpec]:
    """Specs of the trials under ``out/trials`` that have a record and a run (for rows of trials
    that a changed study file no longer lists), but those named in ``skip``."""
    specs, skip = [], set(skip)
    for record_path in sorted((Path(out) / "trials").glob("*/trial.json")):
        record = read_record(record_path.parent)
        if record["name"] in skip or not (record_path.parent / "config.json").is_file():
            continue  # listed by the study, or failed before its run began
        config = read_json(record_path.parent / "config.json")["config"]
        specs.append(
            TrialSpec(
                record["name"],
                record["setting"],
                str(record_path.parent),
                config,
                record["swept"],
                record["seed"],
            )
        )
    return specs


def result_rows(out: str | Path, specs: Iterable[TrialSpec]) -> list[dict[str, Any]]:
    """Rows of ``specs``, then of the recorded trials not among them."""
    specs = list(specs)
    return [trial_row(spec) for spec in specs + recorded_specs(out, {s.name for s in specs})]


def write_results(out: str | Path, specs: Iterable[TrialSpec]) -> Path:
    """Rewrite ``out/results.csv`` (and ``results.parquet`` when pyarrow is installed)
    atomically; return the CSV's path."""
    import pandas as pd

    rows = result_rows(out, specs)
    frame = pd.DataFrame(rows, columns=_columns(rows))
    path = Path(out) / "results.csv"
    with file_lock(Path(out) / ".results.lock"):  # a Ray sweep and --trial jobs may all write
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False)
        if _has_pyarrow():
            with atomic_path(path.with_suffix(".parquet")) as temporary:
                frame.to_parquet(temporary, index=False)
    return path


def load_results(out: str | Path):
    """The results table of a study directory as a pandas DataFrame (one row per trial).

    Raises
    ------
    CheckpointError
        If ``out/results.csv`` is missing, unreadable or not a table as :func:`write_results`
        writes it: cut off (no final newline), without a trial's name, setting or status, or
        with a metric that is not a number.
    """
    import pandas as pd

    path = Path(out) / "results.csv"
    if not path.is_file():
        raise CheckpointError(f"no results.csv in {out}: run nsvae sweep first")
    try:
        data = path.read_bytes()
        frame = pd.read_csv(io.BytesIO(data), index_col=False)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read {path}: {one_line(error)}") from None
    problem = _table_problem(frame, data)
    if problem:
        raise CheckpointError(
            f"{path} is not a results table ({problem}): run nsvae sweep again to rewrite it"
        )
    return frame


def _table_problem(frame, data: bytes) -> str | None:
    """What makes ``frame`` (read from ``data``) unlike a table of :func:`write_results`."""
    import pandas as pd

    if not data.endswith(b"\n"):
        return "its last line is cut off"
    missing = [column for column in HEAD[:3] if column not in frame.columns]
    if missing:
        return f"no {', '.join(missing)} column"
    if frame[list(HEAD[:3])].isna().any().any():
        return "a row without its trial's name, setting or status"
    for column in metric_columns(frame):
        values = frame[column].dropna()
        if pd.to_numeric(values, errors="coerce").isna().any():
            return f"a {column} value that is not a number"
    return None


def metric_columns(frame) -> list[str]:
    """The ``metric.key`` columns of a results table."""
    return [column for column in frame.columns if _kind(column) == "metric"]


def setting_columns(frame) -> list[str]:
    """The swept ``section.field`` columns of a results table (``objective.name`` first)."""
    return [column for column in frame.columns if _kind(column) == "setting"]


def _kind(column: str) -> str:
    if column in TAIL or column in ("name", "setting", "status"):
        return "trial"
    return "setting" if column.split(".")[0] in CONFIG_SECTIONS else "metric"


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Head, swept keys and tail, then metric columns, each in order of first appearance."""
    seen = [key for key in dict.fromkeys(key for row in rows for key in row) if key not in HEAD]
    swept = [key for key in seen if _kind(key) == "setting"]
    return [*HEAD, *swept, *TAIL, *(key for key in seen if _kind(key) == "metric")]


def _cell(value: Any) -> Any:
    """A table cell: lists (tuple fields) as their JSON text."""
    return json.dumps(value) if isinstance(value, list | tuple) else value


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True
