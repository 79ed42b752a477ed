"""The command line as a whole: help, usage errors and unexpected input stay one line."""

import subprocess
import sys

import pytest

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
    done = subprocess.run([sys.executable, "-m", "nsvae.cli", "train", "--alpha", "x"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
