"""``nsvae train``: a few headline flags, and one flag per other config field, generated."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Annotated

import click
import typer

from nsvae.cli.app import HELP_FROM_LIBRARY, SEED, LibraryHelp, app, flag
from nsvae.errors import ConfigError, warn

# Headline flag -> the config key it sets (the others are generated from the config classes).
HEADLINE = {
    "model": "objective.name",
    "data": "data.name",
    "steps": "train.steps",
    "seed": "train.seed",
    "device": "train.device",
}
SETTINGS_PANEL = "Settings (any other config value: --set section.key=value)"


class TrainCommand(LibraryHelp):
    """``nsvae train``: its signature's headline flags, plus one flag for each other field of
    the config classes and of every objective (:func:`nsvae.config.settings`), added when the
    command runs or shows its help, since reading the config classes imports torch."""

    def load_settings(self) -> dict:
        """Every setting by key (:func:`nsvae.config.settings`), read once; the first call also
        adds a flag for each one that is not a headline flag (``self.settings``)."""
        if not hasattr(self, "every_setting"):
            from nsvae.config import settings

            self.every_setting = {setting.key: setting for setting in settings()}
            self.settings = {
                key: setting
                for key, setting in self.every_setting.items()
                if key not in HEADLINE.values()
            }
            self.params += _setting_params(self.settings.values())
        return self.every_setting

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        self.load_settings()
        return super().get_params(ctx)

    def invoke(self, ctx: click.Context):
        ctx.meta["settings"] = {key: ctx.params.pop(_param_name(key)) for key in self.settings}
        return super().invoke(ctx)


def _param_name(key: str) -> str:
    return key.replace(".", "__")


def _setting_params(settings) -> list[click.Parameter]:
    """The flags of :class:`nsvae.config.Setting` s, built by typer from a generated signature:
    ``--name VALUE`` (two values for a pair), ``--name/--no-name`` for a boolean; a flag not
    given is None and leaves the config's value alone."""

    def flags(**values) -> None:
        pass

    def parameter(setting) -> inspect.Parameter:
        kind = (
            Path
            if setting.path
            else typing.get_args(setting.kind)[0]
            if type(None) in typing.get_args(setting.kind)
            else setting.kind
        )
        flag = f"{setting.flag}/--no-{setting.flag[2:]}" if kind is bool else setting.flag
        option = typer.Option(flag, help=setting.help, rich_help_panel=SETTINGS_PANEL)
        return inspect.Parameter(
            _param_name(setting.key),
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[kind | None, option],
        )

    flags.__signature__ = inspect.Signature([parameter(setting) for setting in settings])
    generated = typer.Typer(add_completion=False)
    generated.command()(flags)
    return typer.main.get_command(generated).params


@app.command("train", cls=TrainCommand)
def train_command(
    ctx: typer.Context,
    config_file: Annotated[Path | None, flag("--config", "TOML config; flags override it.")] = None,
    assignments: Annotated[
        list[str] | None,
        flag("--set", "Any config value, e.g. --set objective.c_max=25 (repeatable; TOML values)."),
    ] = None,
    model: Annotated[str | None, flag("--model", "Objective.")] = None,
    data: Annotated[str | None, flag("--data", "Dataset.")] = None,
    steps: Annotated[int | None, flag("--steps", "Optimisation steps in all.")] = None,
    seed: Annotated[int | None, flag("--seed", "Seed of every random generator.", **SEED)] = None,
    device: Annotated[str | None, flag("--device", "auto, cpu, cuda or cuda:N.")] = None,
    run_dir: Annotated[
        Path | None, flag("--run-dir", "Run directory (default runs/<model>-<time>).")
    ] = None,
    resume: Annotated[
        Path | None,
        flag(
            "--resume",
            "Continue this run where it stopped (with --config: train that file's "
            "config, which may differ from the run's only in resumable fields such as steps).",
        ),
    ] = None,
    progress: Annotated[bool, flag("--progress/--no-progress", "Show a progress bar.")] = True,
) -> None:
    """Train a VAE (Non-Syn by default); flags override --set, then --config, then defaults.

    The data is dSprites by default, or another dataset with --data NAME (docs/datasets.md),
    your own npz with --data array --data-path FILE.npz, or a folder or zip
    of images with --data images --data-path DIR_OR_ZIP.
    """
    from nsvae.experiment import train_run

    headline = {HEADLINE[name]: value for name, value in locals().items() if name in HEADLINE}
    overrides = _overrides(assignments or (), {**ctx.meta["settings"], **headline})
    config, run_dir = _config_and_run_dir(config_file, overrides, run_dir, resume)
    typer.echo(f"run: {run_dir}")
    run = train_run(config, run_dir, resume=resume is not None, progress=progress)
    typer.echo(f"done: {run.step} steps; run in {run.path}")


def _overrides(assignments, flags: dict) -> dict:
    """Dotted key -> value: the ``--set`` assignments, then the flags given (paths absolute)."""
    from nsvae.config import parse_assignment

    overrides = {}
    for text in assignments:
        section, key, value = parse_assignment(text)
        overrides[f"{section}.{key}"] = value
    for key, value in flags.items():
        if value is not None:
            overrides[key] = str(value.absolute()) if isinstance(value, Path) else value
    return overrides


def _config_and_run_dir(config_file, overrides, run_dir, resume):
    """The config to train and its run directory: a new run's, or the resumed run's (whose
    config may change only in resumable fields, checked before any data loads)."""
    from nsvae.config import Config, load_config
    from nsvae.rundir import read_run_config
    from nsvae.rundir.run import training_config

    if resume is not None:
        if run_dir is not None:
            raise ConfigError("--resume takes the run's own directory; drop --run-dir")
        base = read_run_config(resume)[0] if config_file is None else load_config(config_file)
        config, run_dir = base.updated(overrides), resume
        training_config(run_dir, config, resume=True)
    else:
        base = Config() if config_file is None else load_config(config_file)
        config = base.updated(overrides).validate()
        run_dir = run_dir or _new_run_dir(config.objective.name)
    if "train.eval_metrics" in overrides and not config.train.eval_every:
        warn(
            f"--eval-metrics {overrides['train.eval_metrics']} scores nothing without "
            "--eval-every N (train.eval_every is 0)"
        )
    return config, run_dir


def _new_run_dir(name: str) -> Path:
    import time

    stem = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, number = stem, 1
    while path.exists():
        number += 1
        path = stem.with_name(f"{stem.name}-{number}")
    return path


def _complete_help(command: TrainCommand) -> None:
    """Add to each flag's help the choices its registry holds (objectives, datasets,
    architectures) and its default (per objective for the objective's settings)."""
    from nsvae.config import Config
    from nsvae.data import DATASETS
    from nsvae.models import ARCHS
    from nsvae.objectives import OBJECTIVES

    choices = {"objective.name": OBJECTIVES, "data.name": DATASETS, "model.arch": ARCHS}
    defaults = {key: setting.defaults for key, setting in command.load_settings().items()}
    defaults["objective.name"] = {"": Config().objective.name}
    for param in command.get_params(click.Context(command)):
        key = HEADLINE.get(param.name) or param.name.replace("__", ".")
        if key in choices:
            param.help += f" Choose from: {', '.join(choices[key])}."
        shown = {
            owner: value
            for owner, value in defaults.get(key, {}).items()
            if value not in (None, "")
        }
        if shown:
            param.help += f" (default {_defaults_text(shown)})"


def _defaults_text(defaults: dict) -> str:
    """``"5.0"``, or ``"beta_vae 1.0, nonsyn 1.0"`` for the objectives' settings."""
    if list(defaults) == [""]:
        return str(defaults[""])
    return ", ".join(f"{owner} {value}" for owner, value in defaults.items())


HELP_FROM_LIBRARY["train"] = _complete_help
