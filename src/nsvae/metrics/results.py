"""``eval.json``: every evaluation of a run, merged entry by entry, each with its provenance.

The file holds one entry per metric, representation and parameters (the sample counts, the
fast or full suite, the objective's evaluation settings)::

    {"format": 2,
     "entries": [{"metric", "representation", "params", "values", "fast", "seed", "step",
                  "seconds", "versions", "evaluated_at"}, ...],
     "metrics": {name: values}}            # the headline value of each metric (see below)

A new evaluation replaces only the entries with its own (metric, representation, parameters)
and keeps every other one, so scoring a second metric set never erases the first. The file is
rewritten atomically under a lock (``.eval.lock``), so two evaluations of one run merge instead
of racing. ``metrics`` repeats, per metric, the newest entry of the posterior-mean
representation (of any representation when there is none), for readers of the first format.
Files of the first format (one evaluation, no ``entries``) are read as entries.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

from nsvae.checks import is_number
from nsvae.errors import CheckpointError, warn
from nsvae.files import file_lock, read_json, write_json

FORMAT = 2
FILE = "eval.json"
LOCK = ".eval.lock"
_REQUIRED = {"metric": str, "representation": str, "params": dict, "values": dict}
# The number that stands for a metric in tables and figures; a metric not listed: its first.
HEADLINES = {
    "beta_vae": "eval_accuracy",
    "factor_vae": "eval_accuracy",
    "dci": "disentanglement",
    "modularity_explicitness": "modularity_score",
}


def flat_metrics(metrics: Mapping, prefix: str = "") -> dict[str, float]:
    """Every number of an ``eval.json`` ``metrics`` table as ``metric.key`` -> value (nested
    tables add a level, ``factor_synergy.per_factor.x``; lists are left out)."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update(flat_metrics(value, f"{prefix}{key}."))
        elif is_number(value):
            flat[f"{prefix}{key}"] = value
    return flat


def headline_columns(columns) -> list[str]:
    """One ``metric.key`` of ``columns`` per metric: its :data:`HEADLINES` key, else its first."""
    chosen: dict[str, str] = {}
    for column in columns:
        metric, _, key = column.partition(".")
        if HEADLINES.get(metric) == key or metric not in chosen:
            chosen[metric] = column
    return list(chosen.values())


def result_entries(result: Mapping) -> list[dict]:
    """The entries of one evaluation result (:func:`nsvae.metrics.evaluate.evaluate_model`)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return [
        {
            "metric": name,
            "representation": result.get("representation") or "mean",
            "params": result["params"].get(name, {}),
            "values": values,
            "fast": result.get("fast"),
            "seed": result.get("seed"),
            "step": result.get("step"),
            "seconds": result.get("seconds", {}).get(name),
            "versions": result.get("versions"),
            "evaluated_at": stamp,
        }
        for name, values in result["metrics"].items()
    ]


def merge_entries(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` with the entries of the same (metric, representation, params) as ``new``
    replaced by them; new keys are appended."""
    fresh = {entry_key(entry): entry for entry in new}
    kept = [entry for entry in old if entry_key(entry) not in fresh]
    return kept + list(fresh.values())


def entry_key(entry: Mapping) -> tuple[str, str, str]:
    """What an entry is an evaluation of: metric, representation and parameters."""
    return (entry["metric"], entry["representation"], json.dumps(entry["params"], sort_keys=True))


def headline(entries: list[dict]) -> dict[str, dict]:
    """Per metric, the values of its newest entry, preferring the mean representation."""
    chosen: dict[str, dict] = {}
    for entry in entries:  # later entries are newer
        current = chosen.get(entry["metric"])
        if (
            current is None
            or entry["representation"] == "mean"
            or current["representation"] != "mean"
        ):
            chosen[entry["metric"]] = entry
    return {name: entry["values"] for name, entry in chosen.items()}


class OtherFormatError(CheckpointError):
    """An ``eval.json`` of a format this version does not read: refused, never replaced."""


def read_evaluation(path: str | os.PathLike) -> list[dict]:
    """The entries of an ``eval.json`` (either format); ``[]`` when there is no file.

    Raises
    ------
    CheckpointError
        The file is unreadable, not JSON, of a format other than :data:`FORMAT` (or the first),
        or not laid out as this module describes.
    """
    path = Path(path)
    if not path.exists():
        return []
    stored = read_json(path)
    if isinstance(stored, dict) and stored.get("format", FORMAT) != FORMAT:
        raise OtherFormatError(
            f"{path} has format {stored['format']!r}; this nsvae reads "
            f"format {FORMAT} and the first, unnumbered one"
        )
    if (
        isinstance(stored, dict)
        and "entries" not in stored
        and isinstance(stored.get("metrics"), dict)
    ):
        stored = {"entries": _first_format_entries(stored)}
    entries = stored.get("entries") if isinstance(stored, dict) else None
    if not isinstance(entries, list) or not all(_valid(entry) for entry in entries):
        raise CheckpointError(f"corrupt {path}: not an nsvae evaluation file")
    return entries


def save_evaluation(run_dir: str | os.PathLike, result: Mapping) -> Path:
    """Merge the entries of ``result`` into ``run_dir/eval.json``; return its path.

    A corrupt ``eval.json`` is kept as ``eval.json.corrupt`` (with a warning) and replaced.

    Raises
    ------
    CheckpointError
        The run directory cannot be written, or its ``eval.json`` is of another format (another
        version's file is left as it is): nothing is lost that was there before.
    """
    run_dir = Path(run_dir)
    path = run_dir / FILE
    with file_lock(run_dir / LOCK):
        try:
            old = read_evaluation(path)
        except OtherFormatError:
            raise
        except CheckpointError as error:
            backup = path.with_name(f"{FILE}.corrupt")
            warn(f"{error}; kept as {backup.name}, writing a new one")
            os.replace(path, backup)
            old = []
        entries = merge_entries(old, result_entries(result))
        write_json(path, {"format": FORMAT, "entries": entries, "metrics": headline(entries)})
    return path


def _valid(entry) -> bool:
    return isinstance(entry, dict) and all(
        isinstance(entry.get(key), kind) for key, kind in _REQUIRED.items()
    )


def _first_format_entries(stored: Mapping) -> list[dict]:
    """Entries of an ``eval.json`` written before entries existed (one evaluation)."""
    params = stored.get("params") if isinstance(stored.get("params"), dict) else {}
    seconds = stored.get("seconds") if isinstance(stored.get("seconds"), dict) else {}
    return [
        {
            "metric": name,
            "representation": str(stored.get("representation") or "mean"),
            "params": params.get(name) if isinstance(params.get(name), dict) else {},
            "values": values,
            "fast": stored.get("fast"),
            "seed": stored.get("seed"),
            "step": stored.get("step"),
            "seconds": seconds.get(name),
            "versions": stored.get("versions"),
            "evaluated_at": None,
        }
        for name, values in stored["metrics"].items()
    ]
