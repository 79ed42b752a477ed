"""Typed configuration of a training run: data, model, objective and training sections.

A :class:`Config` round-trips through plain dicts (``config.json`` of a run) and TOML files
(``nsvae train --config FILE.toml``). Reading rejects unknown sections and keys and values of the
wrong type; :meth:`Config.validate` rejects out-of-range values and unknown names. Every problem
is one :class:`~nsvae.errors.ConfigError` with a one-line message naming the offending key.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from nsvae.checks import (
    adam_betas,
    at_least,
    check,
    check_fields,
    check_seed,
    positive,
    setting,
)
from nsvae.errors import ConfigError
from nsvae.objectives import OBJECTIVES, ObjectiveConfig, objective_class, objective_config
from nsvae.precision import check_precision

# Fields of the flat objective section written before each objective had its own config class.
LEGACY_OBJECTIVE_FIELDS = frozenset(
    {
        "beta",
        "alpha",
        "omega",
        "policy",
        "mode",
        "selection_batch",
        "epsilon",
        "capacity_gamma",
        "c_max",
        "capacity_steps",
        "lambda_od",
        "lambda_d_factor",
        "dip_type",
    }
)


@dataclass
class DataConfig:
    """Which dataset to train on.

    ``name`` is a key of the dataset registry (:func:`nsvae.data.get_dataset`); ``path`` points
    to a dataset file where the dataset takes one; ``data_root`` overrides the cache folder.
    """

    name: str = setting("dsprites", "Dataset.")
    path: str | None = setting(
        None,
        "Dataset file or folder (array: your own npz; images: a folder or zip; "
        "scream-dsprites: the scream image).",
        resumable=True,
        path=True,
        flag="--data-path",
    )
    data_root: str | None = setting(None, "Data cache folder.", resumable=True)

    def validate(self) -> DataConfig:
        """The name must be registered (the dataset registry's rule)."""
        from nsvae.data import check_dataset_name

        check_dataset_name(self.name)
        return self


@dataclass
class ModelConfig:
    """Encoder/decoder architecture, number of latents and likelihood.

    ``arch`` is ``"dlib"`` (disentanglement_lib), ``"seed"`` (the seed's 128-unit layers with the
    encoder ReLU restored) or ``"seed-linear"`` (the seed's exactly). ``likelihood="auto"`` means
    Bernoulli for one channel and Gaussian for three.
    """

    arch: str = setting("dlib", "Architecture.")
    z_dim: int = setting(10, "Number of latents.")
    likelihood: str = setting("auto", "auto, bernoulli or gaussian.")

    def validate(self) -> ModelConfig:
        """Architecture, latents and likelihood (the model builder's rules)."""
        from nsvae.models import check_model

        check_model(self.arch, self.z_dim, self.likelihood)
        return self


def _device(key: str, value: str) -> None:
    head, _, index = value.partition(":")
    known = value in ("auto", "cpu", "cuda") or (head == "cuda" and index.isdigit())
    check(known, f"unknown {key} {value!r} (auto, cpu, cuda, cuda:N)")


@dataclass
class TrainConfig:
    """Optimisation, logging and checkpointing of the training loop.

    ``threads=0`` lets the trainer pick all physical cores. Every ``eval_every`` steps (0: never)
    the comma-separated ``eval_metrics`` (default: every metric) are scored at their fast sample
    counts. ``precision`` is ``"fp32"``, ``"bf16"`` (autocast of the convolutions and
    products, :mod:`nsvae.precision`; evaluation encodes at the same precision) or ``"auto"``
    (bf16 where the device has bf16 arithmetic, else fp32; the run records which); ``compile``
    compiles the model's forward pass with :func:`torch.compile` (its first step, which pays the
    compilation, is timed and logged as ``compile_s``). Fields marked resumable may change when a
    run is resumed: none of them changes what a step computes.
    """

    steps: int = setting(15000, "Optimisation steps in all.", check=at_least(1), resumable=True)
    batch_size: int = setting(64, "Batch size.", check=at_least(1))
    lr: float = setting(5e-4, "Adam learning rate.", check=positive)
    betas: tuple[float, float] = setting((0.9, 0.999), "Adam's moment decays.", check=adam_betas)
    seed: int = setting(0, "Seed of every random generator.", check=check_seed)
    device: str = setting("auto", "auto, cpu, cuda or cuda:N.", check=_device, resumable=True)
    threads: int = setting(
        0, "CPU threads (0: physical cores).", check=at_least(0, " (0 = auto)"), resumable=True
    )
    log_every: int = setting(100, "Steps between metrics rows.", check=at_least(1), resumable=True)
    checkpoint_every: int = setting(
        1000, "Steps between checkpoints.", check=at_least(1), resumable=True
    )
    keep_checkpoints: int = setting(
        3, "Checkpoints kept (the newest).", check=at_least(1), resumable=True
    )
    eval_every: int = setting(
        0,
        "Steps between fast evaluations (0: never).",
        check=at_least(0, " (0 = off)"),
        resumable=True,
    )
    eval_metrics: str = setting(
        "", "Metrics of those evaluations, comma-separated (empty: all).", resumable=True
    )
    figures: bool = setting(True, "Write traversal figures at the end.", resumable=True)
    precision: str = setting(
        "fp32",
        "fp32, bf16 (autocast; posterior, KL, selection, losses stay fp32), or auto (bf16 "
        "where the device has bf16 arithmetic, else fp32).",
        check=check_precision,
    )
    compile: bool = setting(False, "torch.compile the model (first-step cost logged).")

    def validate(self) -> TrainConfig:
        """Every field's own rule."""
        check_fields(self, "train")
        return self


@dataclass
class Config:
    """A full run configuration: ``data``, ``model``, ``objective`` and ``train`` sections.

    The ``objective`` section is the config class of the objective it names
    (``NonSynObjective.Config`` by default), looked up in :data:`nsvae.objectives.OBJECTIVES`.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=objective_config)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (JSON-friendly: tuples become lists)."""
        return {
            section.name: {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(getattr(self, section.name)).items()
            }
            for section in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Config:
        """Build a config from a nested dict; missing keys take their defaults.

        Raises
        ------
        ConfigError
            On an unknown section, key or objective name, or a value of the wrong type.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"a config must be a table of sections, got {type(d).__name__}")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        for name in d:
            if name not in sections:
                raise ConfigError(f"unknown config section {name!r} (known: {', '.join(sections)})")
        return cls(
            **{
                name: _section_from_dict(
                    _section_type(cls, name, d.get(name, {})), d.get(name, {}), name
                )
                for name in sections
            }
        )

    def updated(self, overrides: Mapping[str, Any]) -> Config:
        """A copy with some values replaced, given by section, ``{"objective": {"alpha": 2.0}}``,
        or by dotted key, ``{"objective.alpha": 2.0}`` (the two may be mixed).

        Values that are ``None`` are skipped, so command-line flags that were not given can be
        passed through as they are. A new ``objective.name`` starts that section from the new
        objective's defaults. The result is type-checked like :meth:`from_dict`.

        Raises
        ------
        ConfigError
            An unknown section or key, a dotted key that is not ``section.field``, a section
            that is not a table, or a value of the wrong type.
        """
        d = self.to_dict()
        for section, values in _by_section(overrides).items():
            if section not in d:
                raise ConfigError(f"unknown config section {section!r}")
            given = {k: v for k, v in values.items() if v is not None}
            if (
                section == "objective"
                and given.get("name", d[section]["name"]) != d[section]["name"]
            ):
                d[section] = {}
            d[section].update(given)
        return Config.from_dict(d)

    def validate(self) -> Config:
        """Check ranges and names, each by the owner of its rule; return ``self``.

        The dataset registry checks ``data``, the model builder ``model``, the objective's own
        config class ``objective`` and :class:`TrainConfig` ``train``.

        Raises
        ------
        ConfigError
            With a one-line message naming the first invalid value.
        """
        self.data.validate()
        self.model.validate()
        self.objective.validate("objective")
        self.train.validate()
        return self

    @classmethod
    def from_stored(cls, d: Mapping[str, Any]) -> Config:
        """:meth:`from_dict` of a run's ``config.json``, including those written before each
        objective had its own config class (a flat objective section with every objective's
        fields: the fields of other objectives, which training never read, are dropped).
        """
        objective = d.get("objective") if isinstance(d, Mapping) else None
        if isinstance(objective, Mapping) and set(objective) >= LEGACY_OBJECTIVE_FIELDS:
            own = objective_class(objective.get("name", "nonsyn")).Config
            hints = typing.get_type_hints(own)
            others = {
                key for other in OBJECTIVES.values() for key in typing.get_type_hints(other.Config)
            }
            d = {
                **d,
                "objective": {k: v for k, v in objective.items() if k in hints or k not in others},
            }
        return cls.from_dict(d)


def _by_section(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"section.field": value}`` and ``{"section": {field: value}}`` entries, by section."""
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides must be a table, got {type(overrides).__name__}")
    sections: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if "." in str(key):
            section, field_name = split_key(str(key))
            sections.setdefault(section, {})[field_name] = value
        elif isinstance(value, Mapping):
            sections.setdefault(key, {}).update(value)
        else:
            raise ConfigError(
                f"{key!r} must be a section table or a section.field key "
                f"(e.g. 'objective.alpha'), got {value!r}"
            )
    return sections


@dataclass(frozen=True)
class Setting:
    """One config key as a command line sets it: ``key`` (``section.field``), its type, its
    flag, one line of help, and the field's default for each owner (``{"": default}``, or one
    entry per objective that has the field)."""

    key: str
    kind: Any
    flag: str
    help: str
    defaults: dict[str, Any]
    path: bool = False


def settings() -> list[Setting]:
    """Every settable field of every section and of every registered objective, in section
    order; a field that several objectives share (``beta``) is one setting whose help names each
    objective's meaning where they differ.

    Raises
    ------
    TypeError
        Two objectives give one field different types (a programming error).
    """
    owners = [
        ("data", "", DataConfig),
        ("model", "", ModelConfig),
        ("objective", None, ObjectiveConfig),
        ("train", "", TrainConfig),
    ]
    owners[2:3] = [("objective", name, objective_class(name).Config) for name in OBJECTIVES]
    found: dict[str, Setting] = {}
    helps: dict[str, dict[str, list[str]]] = {}
    for section, owner, cls in owners:
        hints = typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            if item.name == "name" and section == "objective":
                continue
            key = f"{section}.{item.name}"
            flag = item.metadata.get("flag", "--" + item.name.replace("_", "-"))
            old = found.get(key)
            if old is not None and old.kind != hints[item.name]:
                raise TypeError(f"{key} is {old.kind} and {hints[item.name]} in two objectives")
            defaults = {**(old.defaults if old else {}), owner: item.default}
            found[key] = Setting(
                key, hints[item.name], flag, "", defaults, item.metadata.get("path", False)
            )
            helps.setdefault(key, {}).setdefault(item.metadata["help"], []).append(owner)
    return [
        dataclasses.replace(setting, help=_joined_help(helps[key]))
        for key, setting in found.items()
    ]


def _joined_help(helps: dict[str, list[str]]) -> str:
    """One help line, or ``"beta_vae, nonsyn: Weight of the KL. beta_tcvae: ..."``."""
    if len(helps) == 1:
        return next(iter(helps))
    return " ".join(f"{', '.join(owners)}: {text}" for text, owners in helps.items())


def resumable_fields(config: Config) -> dict[str, set[str]]:
    """Per section, the fields that may change when a run is resumed."""
    return {
        section.name: {
            f.name
            for f in dataclasses.fields(getattr(config, section.name))
            if f.metadata.get("resumable")
        }
        for section in dataclasses.fields(config)
    }


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``"section.field=value"`` -> ``(section, field, value)``; the value is read as TOML
    (``2``, ``0.5``, ``true``, ``[0.9, 0.99]``, ``"text"``), or kept as text when it is not TOML.

    Raises
    ------
    ConfigError
        Without ``=`` or a ``section.field`` key.
    """
    key, equals, raw = text.partition("=")
    usage = f"--set takes section.field=value, got {text!r}"
    if not equals:
        raise ConfigError(usage)
    section, name = split_key(key.strip(), usage)
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, name, value


def split_key(key: str, message: str = "") -> tuple[str, str]:
    """``"section.field"`` -> ``(section, field)``: the keys of ``--set`` and of a study's grid.

    Raises
    ------
    ConfigError
        With ``message`` (default: what was expected) when ``key`` is not ``section.field``.
    """
    section, dot, name = key.partition(".")
    if not (dot and section and name) or "." in name:
        raise ConfigError(message or f"expected a section.field key, got {key!r}")
    return section, name


def load_config(path: str | Path) -> Config:
    """Read a TOML config file (missing keys take their defaults); not yet validated.

    Relative ``data.path`` and ``data.data_root`` are taken relative to the file's folder and
    stored absolute, so a run reads the same data from any working directory.

    Raises
    ------
    ConfigError
        If the file is missing, unreadable, not TOML, or has unknown keys or mistyped values.
    """
    tables = read_toml(path, "config file")[1]
    data = tables.get("data")
    if isinstance(data, dict):
        tables["data"] = absolute_data_paths(data, Path(path).parent)
    return Config.from_dict(tables)


def absolute_data_paths(data: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """A ``data`` section whose relative ``path`` and ``data_root`` are taken relative to
    ``folder`` (a config or study file's) and made absolute, so a run reads the same data from
    any working directory."""
    data = dict(data)
    for key in ("path", "data_root"):
        if isinstance(data.get(key), str):
            data[key] = str((folder / Path(data[key]).expanduser()).absolute())
    return data


def read_toml(path: str | Path, what: str) -> tuple[str, dict[str, Any]]:
    """The text of a TOML file and its tables.

    Raises
    ------
    ConfigError
        ``<what> not found: PATH``, ``cannot read <what> PATH: ...`` or ``PATH is not valid
        TOML: ...``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {what} {path}: {error}") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def save_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as TOML (keys whose value is ``None`` are left out: they are defaults)."""
    d = {
        section: {k: v for k, v in values.items() if v is not None}
        for section, values in config.to_dict().items()
    }
    Path(path).write_text(tomli_w.dumps(d), encoding="utf-8")


def _section_type(cls: type, name: str, values: Any) -> type:
    if name == "objective":
        chosen = values.get("name", "nonsyn") if isinstance(values, Mapping) else "nonsyn"
        if not isinstance(chosen, str):
            raise ConfigError(f"objective.name must be of type str, got {chosen!r}")
        return objective_class(chosen).Config
    return typing.get_type_hints(cls)[name]


def _section_from_dict(section_type: type, values: Any, section: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"config section {section!r} must be a table, got {values!r}")
    hints = typing.get_type_hints(section_type)
    for key in values:
        if key not in hints:
            if section == "objective":
                _other_objectives_key(section_type, key, values[key])
            raise ConfigError(f"unknown config key {section}.{key} (known: {', '.join(hints)})")
    return section_type(
        **{key: _coerce(values[key], hints[key], f"{section}.{key}") for key in values}
    )


def _other_objectives_key(section_type: type, key: str, value: Any) -> None:
    """Name the objectives that have ``key`` when the chosen one has not."""
    owners = [
        name
        for name, objective in OBJECTIVES.items()
        if key in typing.get_type_hints(objective.Config)
    ]
    if owners:
        known = ", ".join(typing.get_type_hints(section_type))
        raise ConfigError(
            f"objective.{key} {value!r} needs objective.name "
            f"{' or '.join(map(repr, owners))} (objective {section_type().name!r} takes: {known})"
        )


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against a field's type; ints are accepted for floats, lists for tuples."""
    allowed = typing.get_args(hint) if typing.get_origin(hint) is not tuple else ()
    if value is None and type(None) in allowed:
        return None
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)) and len(value) == len(typing.get_args(hint)):
            return tuple(
                _coerce(v, t, key) for v, t in zip(value, typing.get_args(hint), strict=True)
            )
        raise ConfigError(
            f"{key} must be a list of {len(typing.get_args(hint))} numbers, got {value!r}"
        )
    base = next((t for t in allowed if t is not type(None)), hint)
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base in (str, bool) and isinstance(value, base):
        return value
    raise ConfigError(f"{key} must be of type {base.__name__}, got {value!r}")
