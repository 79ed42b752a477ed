"""Typed configuration of a training run: data, model, objective and training sections.

A :class:`Config` round-trips through plain dicts (``config.json`` of a run) and TOML files
(``nsvae train --config FILE.toml``). Reading rejects unknown sections and keys and values of the
wrong type; :meth:`Config.validate` rejects out-of-range values and unknown names. Every problem
is one :class:`~nsvae.errors.ConfigError` with a one-line message naming the offending key.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from nsvae.errors import ConfigError

LIKELIHOODS = ("auto", "bernoulli", "gaussian")
MODES = ("batch", "sample")
SELECTION_BATCHES = ("same", "independent")
UPDATES = ("joint", "seed")


@dataclass
class DataConfig:
    """Which dataset to train on.

    ``name`` is a key of the dataset registry (:func:`nsvae.data.get_dataset`); ``path`` points
    to a dataset file where the dataset takes one; ``data_root`` overrides the cache folder.
    """

    name: str = "dsprites"
    path: str | None = None
    data_root: str | None = None


@dataclass
class ModelConfig:
    """Encoder/decoder architecture, number of latents and likelihood.

    ``arch`` is ``"dlib"`` (disentanglement_lib), ``"seed"`` (the seed's 128-unit layers with the
    encoder ReLU restored) or ``"seed-linear"`` (the seed's exactly). ``likelihood="auto"`` means
    Bernoulli for one channel and Gaussian for three.
    """

    arch: str = "dlib"
    z_dim: int = 10
    likelihood: str = "auto"


@dataclass
class ObjectiveConfig:
    """Training objective and its hyperparameters (see :mod:`nsvae.objectives`).

    ``beta`` weighs the KL of ``beta_vae`` (and of ``nonsyn``; the total correlation of
    ``beta_tcvae``); ``alpha`` (synergy weight), ``omega`` (greedy discount), ``policy``,
    ``mode``, ``selection_batch``, ``epsilon`` and ``update`` (``"joint"``: one Adam step on
    the whole loss; ``"seed"``: the seed's two steps per batch) belong to ``nonsyn``;
    ``capacity_gamma``, ``c_max`` and ``capacity_steps`` to ``annealed_vae``; ``lambda_od``,
    ``lambda_d_factor`` and ``dip_type`` to ``dip_vae``. Defaults follow the papers and
    disentanglement_lib.
    """

    name: str = "nonsyn"
    beta: float = 1.0
    alpha: float = 5.0
    omega: float = 0.9
    policy: str = "sorted"
    mode: str = "batch"
    selection_batch: str = "same"
    epsilon: float = 0.1
    update: str = "joint"
    capacity_gamma: float = 1000.0
    c_max: float = 25.0
    capacity_steps: int = 100000
    lambda_od: float = 10.0
    lambda_d_factor: float = 10.0
    dip_type: str = "i"


@dataclass
class TrainConfig:
    """Optimisation, logging and checkpointing of the training loop.

    ``threads=0`` lets the trainer pick all physical cores; ``eval_every=0`` disables evaluation
    during training.
    """

    steps: int = 15000
    batch_size: int = 64
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    log_every: int = 100
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    eval_every: int = 0
    figures: bool = True


@dataclass
class Config:
    """A full run configuration: ``data``, ``model``, ``objective`` and ``train`` sections."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
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
            On an unknown section or key, or a value of the wrong type.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"a config must be a table of sections, got {type(d).__name__}")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        for name in d:
            if name not in sections:
                raise ConfigError(f"unknown config section {name!r} (known: {', '.join(sections)})")
        return cls(
            **{
                name: _section_from_dict(_section_type(cls, name), d.get(name, {}), name)
                for name in sections
            }
        )

    def updated(self, overrides: Mapping[str, Mapping[str, Any]]) -> Config:
        """A copy with some values replaced, e.g. ``{"objective": {"alpha": 2.0}}``.

        Values that are ``None`` are skipped, so command-line flags that were not given can be
        passed through as they are. The result is type-checked like :meth:`from_dict`.
        """
        d = self.to_dict()
        for section, values in overrides.items():
            if section not in d:
                raise ConfigError(f"unknown config section {section!r}")
            d[section].update({k: v for k, v in values.items() if v is not None})
        return Config.from_dict(d)

    def validate(self) -> Config:
        """Check ranges and names; return ``self`` so calls chain.

        Raises
        ------
        ConfigError
            With a one-line message naming the first invalid value.
        """
        from nsvae.models import ARCHS
        from nsvae.objectives import OBJECTIVES
        from nsvae.objectives.dip_vae import DIP_TYPES
        from nsvae.synergy.selection import POLICIES

        d, m, o, t = self.data, self.model, self.objective, self.train
        _check(bool(d.name), "data.name must not be empty")
        _choice("model.arch", m.arch, ARCHS)
        _check(m.z_dim >= 1, f"model.z_dim must be >= 1, got {m.z_dim}")
        _choice("model.likelihood", m.likelihood, LIKELIHOODS)
        _choice("objective.name", o.name, tuple(OBJECTIVES))
        for key in ("beta", "alpha", "capacity_gamma", "c_max", "lambda_od", "lambda_d_factor"):
            value = getattr(o, key)
            _check(
                value >= 0 and math.isfinite(value), f"objective.{key} must be >= 0, got {value}"
            )
        _check(0 < o.omega <= 1, f"objective.omega must be in (0, 1], got {o.omega}")
        _choice("objective.policy", o.policy, POLICIES)
        _choice("objective.mode", o.mode, MODES)
        _choice("objective.selection_batch", o.selection_batch, SELECTION_BATCHES)
        _check(
            o.mode == "batch" or o.selection_batch == "same",
            "objective.selection_batch 'independent' needs objective.mode 'batch' "
            "(a per-sample subset has no counterpart in another batch)",
        )
        _check(0 <= o.epsilon <= 1, f"objective.epsilon must be in [0, 1], got {o.epsilon}")
        _choice("objective.update", o.update, UPDATES)
        _check(
            o.update == "joint" or o.name == "nonsyn",
            f"objective.update {o.update!r} needs objective.name 'nonsyn' (got {o.name!r})",
        )
        _check(
            o.capacity_steps >= 1, f"objective.capacity_steps must be >= 1, got {o.capacity_steps}"
        )
        _choice("objective.dip_type", o.dip_type, DIP_TYPES)
        _check(t.steps >= 1, f"train.steps must be >= 1, got {t.steps}")
        _check(t.batch_size >= 1, f"train.batch_size must be >= 1, got {t.batch_size}")
        _check(t.lr > 0 and math.isfinite(t.lr), f"train.lr must be > 0, got {t.lr}")
        _check(all(0 <= b < 1 for b in t.betas), f"train.betas must be in [0, 1), got {t.betas}")
        _check(t.seed >= 0, f"train.seed must be >= 0, got {t.seed}")
        _check(_is_device(t.device), f"unknown train.device {t.device!r} (auto, cpu, cuda, cuda:N)")
        _check(t.threads >= 0, f"train.threads must be >= 0 (0 = auto), got {t.threads}")
        _check(t.log_every >= 1, f"train.log_every must be >= 1, got {t.log_every}")
        _check(
            t.checkpoint_every >= 1,
            f"train.checkpoint_every must be >= 1, got {t.checkpoint_every}",
        )
        _check(
            t.keep_checkpoints >= 1,
            f"train.keep_checkpoints must be >= 1, got {t.keep_checkpoints}",
        )
        _check(t.eval_every >= 0, f"train.eval_every must be >= 0 (0 = off), got {t.eval_every}")
        return self


def load_config(path: str | Path) -> Config:
    """Read a TOML config file (missing keys take their defaults); not yet validated.

    Raises
    ------
    ConfigError
        If the file is missing, unreadable, not TOML, or has unknown keys or mistyped values.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    return Config.from_dict(d)


def save_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as TOML (keys whose value is ``None`` are left out: they are defaults)."""
    d = {
        section: {k: v for k, v in values.items() if v is not None}
        for section, values in config.to_dict().items()
    }
    Path(path).write_text(tomli_w.dumps(d), encoding="utf-8")


def _section_type(cls: type, name: str) -> type:
    return typing.get_type_hints(cls)[name]


def _section_from_dict(section_type: type, values: Any, section: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"config section {section!r} must be a table, got {values!r}")
    hints = typing.get_type_hints(section_type)
    for key in values:
        if key not in hints:
            raise ConfigError(f"unknown config key {section}.{key} (known: {', '.join(hints)})")
    return section_type(
        **{key: _coerce(values[key], hints[key], f"{section}.{key}") for key in values}
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


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, f"unknown {key} {value!r} (choose from: {', '.join(choices)})")


def _is_device(device: str) -> bool:
    head, _, index = device.partition(":")
    return device in ("auto", "cpu", "cuda") or (head == "cuda" and index.isdigit())
