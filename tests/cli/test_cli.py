"""The command line as a whole: help, usage errors and unexpected input stay one line."""

import subprocess

import pytest
from helpers import nsvae_command

from nsvae.cli import main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("train", "evaluate", "report", "data"):
        assert command in out


@pytest.mark.parametrize(
    "argv",
    [["train", "--bogus"], ["train", "--steps", "many"], ["no-such-command"], ["data", "render"]],
)
def test_usage_errors_are_one_line_with_a_nonzero_exit(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("nsvae: error:")


def test_a_usage_error_in_a_real_process_prints_no_traceback():
    done = subprocess.run(
        nsvae_command("train", "--alpha", "x"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


# Every command and flag that works today; a change to the command line shows here first.
COMMANDS = {
    "train": sorted(
        [
            "--alpha",
            "--arch",
            "--batch-size",
            "--beta",
            "--checkpoint-every",
            "--compile",
            "--config",
            "--data",
            "--data-path",
            "--data-root",
            "--device",
            "--epsilon",
            "--eval-every",
            "--eval-metrics",
            "--figures",
            "--gamma",
            "--keep-checkpoints",
            "--likelihood",
            "--log-every",
            "--lr",
            "--mode",
            "--model",
            "--no-compile",
            "--no-figures",
            "--no-progress",
            "--omega",
            "--policy",
            "--precision",
            "--progress",
            "--resume",
            "--run-dir",
            "--seed",
            "--selection-batch",
            "--set",
            "--steps",
            "--threads",
            "--update",
            "--z-dim",
            # generated from the config classes since 2026-12-06 (issue 27)
            "--betas",
            "--capacity-gamma",
            "--c-max",
            "--capacity-steps",
            "--estimator",
            "--lambda-od",
            "--lambda-d-factor",
            "--dip-type",
            "--permute",
            "--disc-width",
            "--disc-layers",
            "--disc-lr",
            "--disc-betas",
        ]
    ),
    "evaluate": ["--codes", "--fast", "--metrics", "--output", "--representation", "--seed"],
    "report": ["--num-samples", "--samples-per-cell", "--seed"],
    "export": [],
    "robustness": ["--data", "--data-path", "--fast", "--kinds", "--metrics", "--out", "--seed"],
    "sweep": [
        "--address",
        "--cpus",
        "--cpus-per-trial",
        "--gpus-per-trial",
        "--list",
        "--max-concurrent",
        "--out",
        "--trial",
    ],
    "data render": ["--data-root", "--output", "--sheet"],
    "data fetch": ["--data-root"],
    "study report": ["--against"],
    "study rescore": ["--again", "--fast", "--metrics"],
}
# The documented exit codes (docs/commands.md#exit-codes) of the library's errors.
EXIT_CODES = {
    "ConfigError": 2,
    "DataError": 3,
    "CheckpointError": 4,
    "TrainingError": 5,
    "MetricError": 6,
    "RunLockedError": 7,
    "DependencyError": 8,
}


def test_every_command_flag_and_exit_code_of_today_is_still_there():
    import click
    import typer

    from nsvae import errors
    from nsvae.cli import app

    def flags(command, prefix=()):
        if hasattr(command, "commands"):
            return {
                name: flag
                for key, sub in command.commands.items()
                for name, flag in flags(sub, (*prefix, key)).items()
            }
        names = [
            name
            for param in command.get_params(click.Context(command))
            for name in (*param.opts, *getattr(param, "secondary_opts", []))
        ]
        return {
            " ".join(prefix): sorted(
                name for name in names if name.startswith("-") and name != "--help"
            )
        }

    assert flags(typer.main.get_command(app)) == COMMANDS
    assert {name: getattr(errors, name).exit_code for name in EXIT_CODES} == EXIT_CODES
    assert errors.signal_exit_code("SIGINT") == 130 and errors.signal_exit_code("SIGTERM") == 143
