"""A study file: the trials of a sweep, read and checked before anything trains.

A study is a TOML file with three tables::

    [study]                       # all keys optional
    name = "nonsyn-vs-baselines"  # default: the file's stem
    seeds = [0, 1, 2]             # default: [0]
    metrics = "fast"              # "fast", "full", or a list of metric names
    fast = true                   # with a list: the metrics' smaller sample counts (default)
    report = true                 # each trial draws its figures and writes report.html
    keep_models = true            # each finished trial exports its weights (model.safetensors)

    [base.train]                  # run config sections applied to every trial
    steps = 30000                 # (relative base.data paths: from the study file's folder)

    [[grid]]                      # one block per family of trials
    "objective.name" = "nonsyn"
    "objective.alpha" = [1.0, 5.0]   # a list is an axis: the block's trials are the product

Keys of a ``[[grid]]`` block are ``section.field``, as ``nsvae train --set`` takes them; a list
value is always an axis, so a tuple field is swept with a list of lists. The trials are, for each
block, the product of its axes, times the seeds. A trial is named by every key of its block and
its seed, e.g. ``nonsyn-alpha=1-seed=0``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsvae.checks import SEED_LIMIT
from nsvae.config import Config, absolute_data_paths, read_toml, split_key
from nsvae.errors import ConfigError
from nsvae.metrics import METRICS
from nsvae.metrics.evaluate import metric_names

STUDY_KEYS = ("name", "seeds", "metrics", "fast", "report", "keep_models")
SUITES = ("fast", "full")
NAME_KEY = "objective.name"  # its value leads a trial's name, without the key
MAX_TRIAL_NAME = 200  # bytes: a folder name, its ".NAME.lock" and temporary names fit in 255


@dataclass(frozen=True)
class Trial:
    """One run of a study.

    Attributes
    ----------
    name : str
        Its directory name: its setting and its seed.
    setting : str
        The keys of its grid block with their values.
    config : Config
        Its validated run config (``train.seed`` is its seed).
    swept : dict
        ``section.field`` -> value, for every key of its grid block.
    seed : int
        Its seed.
    """

    name: str
    setting: str
    config: Config
    swept: dict[str, Any]
    seed: int


@dataclass(frozen=True)
class Study:
    """A checked study file.

    Attributes
    ----------
    name : str
        The study's name.
    metrics : tuple of str or None
        Metric names to evaluate (None: every metric).
    fast : bool
        Evaluate with the metrics' smaller sample counts.
    report : bool
        Each trial draws its figures and writes its ``report.html``.
    keep_models : bool
        Each finished trial writes its model's weights alone, ``model.safetensors``
        (:func:`nsvae.rundir.checkpoint.save_weights`): a folder that keeps only the results and
        these weights still opens as a run, to evaluate with any later metric.
    trials : tuple of Trial
        Every trial, block by block, seeds innermost.
    swept_keys : tuple of str
        Every key of every grid block, in order of first appearance.
    text : str
        The study file as it was read.
    """

    name: str
    metrics: tuple[str, ...] | None
    fast: bool
    report: bool
    keep_models: bool
    trials: tuple[Trial, ...]
    swept_keys: tuple[str, ...]
    text: str


def load_study(path: str | Path) -> Study:
    """Read and check a study file.

    Raises
    ------
    ConfigError
        One line, prefixed with the file, on a missing or non-TOML file, an unknown table or
        key, a value of the wrong type, an empty grid, an unknown metric, or trials that would
        share a name.
    """
    text, tables = read_toml(path, "study file")
    return parse_study(tables, Path(path).stem, text, origin=str(path), folder=Path(path).parent)


def parse_study(
    tables: Mapping[str, Any],
    default_name: str,
    text: str = "",
    origin: str = "study",
    folder: Path | None = None,
) -> Study:
    """:func:`load_study` of an already parsed file (``origin`` prefixes every message).

    Relative data paths, in ``[base.data]`` and swept in the grid alike, are taken relative to
    ``folder`` (the study file's; None: the working directory) and made absolute in each
    trial's config, so every trial reads the same data wherever its worker runs; trial names
    keep the values as written.
    """
    base = tables.get("base")
    if folder is not None and isinstance(base, Mapping) and isinstance(base.get("data"), Mapping):
        tables = {**tables, "base": {**base, "data": absolute_data_paths(base["data"], folder)}}
    try:
        return _parse(tables, default_name, text, folder)
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None


def _parse(tables: Mapping[str, Any], default_name: str, text: str, folder: Path | None) -> Study:
    _known(tables, ("study", "base", "grid"), "table", "")
    settings = _table(tables.get("study", {}), "[study]")
    _known(settings, STUDY_KEYS, "key", "study.")
    name = _typed(settings.get("name", default_name), str, "study.name")
    seeds = _seeds(settings.get("seeds", [0]))
    metrics, fast = _metrics(settings)
    report = _typed(settings.get("report", True), bool, "study.report")
    keep_models = _typed(settings.get("keep_models", True), bool, "study.keep_models")
    base = _base(tables.get("base", {}))
    blocks = _blocks(tables.get("grid"))
    swept_keys = tuple(dict.fromkeys(key for block in blocks for key in block))
    trials = [
        trial
        for number, block in enumerate(blocks, 1)
        for trial in _block_trials(base, block, number, seeds, swept_keys, folder)
    ]
    _unique_names(trials)
    for trial, _ in trials:
        _eval_metrics(trial.config.train.eval_metrics)
    return Study(
        name, metrics, fast, report, keep_models, tuple(t for t, _ in trials), swept_keys, text
    )


def _known(table: Mapping, known: tuple[str, ...], what: str, prefix: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"unknown {what} {prefix}{key} (known: {', '.join(known)})")


def _table(value: Any, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table, got {value!r}")
    return value


def _typed(value: Any, kind: type, key: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be of type {kind.__name__}, got {value!r}")
    return value


def _seeds(value: Any) -> tuple[int, ...]:
    good = (
        isinstance(value, list)
        and value
        and all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s < SEED_LIMIT for s in value
        )
    )
    if not good or len(set(value)) != len(value):
        raise ConfigError(
            f"study.seeds must be a non-empty list of distinct integers in "
            f"[0, 2**32), got {value!r}"
        )
    return tuple(value)


def _metrics(settings: Mapping) -> tuple[tuple[str, ...] | None, bool]:
    """``study.metrics`` and ``study.fast`` -> (names or None for all, fast)."""
    value = settings.get("metrics", "fast")
    if isinstance(value, str):
        if value not in SUITES:
            raise ConfigError(
                f"study.metrics must be 'fast', 'full' or a list of metric names, got {value!r}"
            )
        if "fast" in settings:
            raise ConfigError(f"study.fast goes with a list of metrics; {value!r} sets it")
        return None, value == "fast"
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"study.metrics must be 'fast', 'full' or a non-empty list of metric "
            f"names, got {value!r}"
        )
    unknown = [name for name in value if name not in METRICS]
    if unknown:
        raise ConfigError(
            f"unknown metric {unknown[0]!r} in study.metrics (choose from: {', '.join(METRICS)})"
        )
    return tuple(value), _typed(settings.get("fast", True), bool, "study.fast")


def _base(value: Any) -> Config:
    """The ``[base]`` sections on the default config (type-checked, not yet validated)."""
    sections = _table(value, "[base]")
    for section, values in sections.items():
        _table(values, f"[base.{section}]")
    if "seed" in sections.get("train", {}):
        raise ConfigError("base.train.seed: give the seeds in study.seeds")
    try:
        return Config().updated(sections)
    except ConfigError as error:
        raise ConfigError(f"[base]: {error}") from None


def _blocks(value: Any) -> list[dict[str, list]]:
    """Every ``[[grid]]`` block as ``section.field`` -> list of values (scalars: one value)."""
    if value is None or value == []:
        raise ConfigError("the grid is empty: add a [[grid]] block")
    if not isinstance(value, list) or not all(isinstance(block, Mapping) for block in value):
        raise ConfigError("grid must be [[grid]] tables")
    blocks = []
    for number, block in enumerate(value, 1):
        if not block:
            raise ConfigError(f"grid block {number} is empty")
        axes = {}
        for key, values in block.items():
            split_key(key, f"grid block {number}: keys are section.field, got {key!r}")
            if key == "train.seed":
                raise ConfigError(f"grid block {number}: give the seeds in study.seeds")
            if values == []:
                raise ConfigError(f"grid block {number}: {key} is an empty axis")
            axes[key] = values if isinstance(values, list) else [values]
        blocks.append(axes)
    return blocks


def _block_trials(
    base: Config,
    block: Mapping[str, list],
    number: int,
    seeds: tuple[int, ...],
    swept_keys: tuple[str, ...],
    folder: Path | None,
):
    """(trial, block number) for every point of a block's product, times the seeds."""
    for point in itertools.product(*block.values()):
        swept = dict(zip(block, point, strict=True))
        overrides: dict[str, dict[str, Any]] = {}
        for key, value in swept.items():
            section, field = split_key(key)
            overrides.setdefault(section, {})[field] = value
        if folder is not None and "data" in overrides:
            overrides["data"] = absolute_data_paths(overrides["data"], folder)
        try:
            config = base.updated(overrides).validate()
        except ConfigError as error:
            raise ConfigError(f"grid block {number}: {error}") from None
        setting = setting_name(swept, swept_keys)
        for seed in seeds:
            seeded = config.updated({"train": {"seed": seed}})
            yield Trial(trial_name(setting, seed), setting, seeded, swept, seed), number


def setting_name(swept: Mapping[str, Any], keys: tuple[str, ...] = ()) -> str:
    """``nonsyn-alpha=1-omega=0.9``: the objective's name, then ``field=value`` for every other
    swept key (``section.field`` where two sections of ``keys`` share a field name)."""
    fields = [split_key(key)[1] for key in keys if key != NAME_KEY]
    parts = [_text(swept[NAME_KEY])] if NAME_KEY in swept else []
    for key, value in swept.items():
        if key != NAME_KEY:
            field = split_key(key)[1]
            parts.append(f"{key if fields.count(field) > 1 else field}={_text(value)}")
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", "-".join(parts))


def trial_name(setting: str, seed: int) -> str:
    """``<setting>-seed=<seed>``."""
    return f"{setting}-seed={seed}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "_".join(map(_text, value))
    return str(value)


def _eval_metrics(value: str) -> None:
    """A trial's ``train.eval_metrics`` names known metrics (checked before anything trains)."""
    if value:
        try:
            metric_names(value)
        except ConfigError as error:
            raise ConfigError(f"train.eval_metrics: {error}") from None


def _unique_names(trials: list[tuple[Trial, int]]) -> None:
    """Every trial's name is a folder name of its own: distinct, and short enough to carry the
    lock and temporary names made from it within a file system's 255 bytes."""
    seen: dict[str, int] = {}
    for trial, number in trials:
        size = len(trial.name.encode("utf-8"))
        if size > MAX_TRIAL_NAME:
            raise ConfigError(
                f"grid block {number} gives trial {trial.name[:40]}... of {size} "
                f"bytes, more than {MAX_TRIAL_NAME}: sweep shorter values"
            )
        if trial.name in seen:
            where = (
                f"grid blocks {seen[trial.name]} and {number} both give"
                if seen[trial.name] != number
                else f"grid block {number} repeats"
            )
            raise ConfigError(f"{where} trial {trial.name}")
        seen[trial.name] = number
