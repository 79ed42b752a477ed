"""``nsvae train``: flags over a TOML file over defaults, resume, one-line errors."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import nsvae_command

from nsvae.cli import main
from nsvae.training import load_run

TOML = """
[data]
name = "array"
[model]
z_dim = 3
[objective]
alpha = 2.0
[train]
steps = 1000
batch_size = 8
log_every = 2
checkpoint_every = 2
threads = 1
device = "cpu"
figures = false
"""


@pytest.fixture
def run_toml(tmp_path):
    """The TOML above, in a file."""
    path = tmp_path / "run.toml"
    path.write_text(TOML)
    return path


def test_flags_override_the_config_file_and_resume_continues(
    tmp_path, capsys, run_toml, squares_npz
):
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--config",
            str(run_toml),
            "--data-path",
            str(squares_npz),
            "--steps",
            "4",
            "--omega",
            "0.8",
            "--run-dir",
            str(run),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"run: {run}" in out and "done: 4 steps" in out
    stored = json.loads((run / "config.json").read_text())["config"]
    assert stored["train"]["steps"] == 4  # flag
    assert stored["objective"]["omega"] == 0.8  # flag
    assert stored["objective"]["alpha"] == 2.0  # file
    assert stored["model"]["z_dim"] == 3  # file
    assert stored["objective"]["beta"] == 1.0  # default
    assert stored["data"] == {"name": "array", "path": str(squares_npz), "data_root": None}

    assert main(["train", "--resume", str(run), "--steps", "6", "--no-progress"]) == 0
    assert "done: 6 steps" in capsys.readouterr().out
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [2, 4, 6]
    data = load_run(run).data()  # rebuilt from the stored config
    assert data.factor_names == ("x", "y") and len(data) == 64


def test_resume_refuses_a_changed_objective(tmp_path, capsys, run_toml, squares_npz):
    run = tmp_path / "run"
    main(
        [
            "train",
            "--config",
            str(run_toml),
            "--data-path",
            str(squares_npz),
            "--steps",
            "2",
            "--run-dir",
            str(run),
            "--no-progress",
        ]
    )
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--alpha", "9", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"nsvae: error: cannot change objective.alpha when resuming {run} (run has 2.0, got 9.0)"
    )


def test_eval_metrics_choose_what_training_evaluates(tmp_path, capsys, run_toml, squares_npz):
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--config",
            str(run_toml),
            "--data-path",
            str(squares_npz),
            "--steps",
            "4",
            "--eval-every",
            "2",
            "--eval-metrics",
            "mig",
            "--run-dir",
            str(run),
            "--no-progress",
        ]
    )
    assert code == 0
    evals = [row for row in load_run(run).metrics() if "eval" in row]
    assert [row["step"] for row in evals] == [2, 4]
    assert all(set(row["eval"]) == {"mig"} for row in evals)
    assert 0.0 <= evals[-1]["eval"]["mig"]["discrete_mig"] <= 1.0
    capsys.readouterr()

    assert (
        main(
            [
                "train",
                "--config",
                str(run_toml),
                "--data-path",
                str(squares_npz),
                "--eval-every",
                "2",
                "--eval-metrics",
                "mig,nope",
                "--run-dir",
                str(tmp_path / "bad"),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("nsvae: error: unknown metric nope") and err.count("\n") == 1
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()  # refused before training

    assert (
        main(
            [
                "train",
                "--config",
                str(run_toml),
                "--data-path",
                str(squares_npz),
                "--steps",
                "2",
                "--eval-metrics",
                "mig",
                "--run-dir",
                str(tmp_path / "quiet"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        "nsvae: warning: --eval-metrics mig scores nothing without --eval-every N"
        in capsys.readouterr().err
    )
    assert not [row for row in load_run(tmp_path / "quiet").metrics() if "eval" in row]


def test_resume_with_a_config_file_checks_the_file_against_the_run(
    tmp_path, capsys, run_toml, squares_npz
):
    run = tmp_path / "run"
    given = ["--config", str(run_toml), "--data-path", str(squares_npz), "--no-progress"]
    main(["train", *given, "--steps", "2", "--run-dir", str(run)])
    assert main(["train", "--resume", str(run), *given, "--steps", "4"]) == 0
    assert "done: 4 steps" in capsys.readouterr().out

    changed = tmp_path / "changed.toml"
    changed.write_text(TOML.replace("alpha = 2.0", "alpha = 3.0"))
    assert (
        main(
            [
                "train",
                "--resume",
                str(run),
                "--config",
                str(changed),
                "--data-path",
                str(squares_npz),
                "--steps",
                "6",
                "--no-progress",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.strip() == (
        f"nsvae: error: cannot change objective.alpha when resuming {run} (run has 2.0, got 3.0)"
    )
    assert main(["train", "--resume", str(run), "--run-dir", str(run), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        "nsvae: error: --resume takes the run's own directory; drop --run-dir"
    )
    assert load_run(run).step == 4


@pytest.mark.parametrize(
    ("flags", "code", "words"),
    [
        (["--alpha", "-1"], 2, "objective.alpha must be >= 0"),
        (["--omega", "0"], 2, "objective.omega must be in (0, 1]"),
        (["--omega", "1.5"], 2, "objective.omega must be in (0, 1]"),
        (["--z-dim", "0"], 2, "model.z_dim must be >= 1"),
        (["--model", "gan"], 2, "unknown objective.name 'gan'"),
        (["--policy", "random"], 2, "unknown objective.policy"),
        (["--steps", "0"], 2, "train.steps must be >= 1"),
        (
            ["--precision", "fp16"],
            2,
            "unknown train.precision 'fp16' (choose from: fp32, bf16, auto)",
        ),
        (["--data", "mnist"], 2, "unknown dataset 'mnist'"),
        (
            ["--data-path", "MISSING/dsprites.npz"],
            3,
            "no dSprites file at {cwd}/MISSING/dsprites.npz",
        ),  # stored absolute
        (["--data", "array"], 2, "dataset 'array' needs its npz file"),
        (["--data", "array", "--data-path", "MISSING/grid.npz"], 3, "no array dataset file at"),
        (["--config", "MISSING/run.toml"], 2, "config file not found"),
        (["--resume", "MISSING/run"], 4, "not a run directory"),
    ],
)
def test_bad_values_give_one_line_and_an_exit_code(
    tmp_path, monkeypatch, capsys, flags, code, words
):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *flags, "--no-progress"]) == code
    err = capsys.readouterr().err
    assert err.startswith("nsvae: error: ") and err.count("\n") == 1
    assert words.format(cwd=tmp_path) in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_real_process_reports_one_line_without_traceback(tmp_path):
    result = subprocess.run(
        nsvae_command("train", "--omega", "2", "--no-progress"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == "nsvae: error: objective.omega must be in (0, 1], got 2.0\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_every_config_field_has_a_flag_with_help_and_each_flag_sets_its_field(
    tmp_path, monkeypatch, capsys
):
    import dataclasses

    import nsvae.experiment
    from nsvae.config import Config, settings
    from nsvae.objectives import OBJECTIVES, objective_class

    owners = [
        Config().data,
        Config().model,
        Config().train,
        *(objective_class(name).Config() for name in OBJECTIVES),
    ]
    fields = {item.name for owner in owners for item in dataclasses.fields(owner)} - {"name"}
    assert {setting.key.split(".")[1] for setting in settings()} == fields | {"name"}
    assert all(setting.help.endswith(".") for setting in settings())

    trained = []
    monkeypatch.setattr(
        nsvae.experiment,
        "train_run",
        lambda config, run_dir, **kw: (
            trained.append(config) or type("Run", (), {"step": 0, "path": run_dir})()
        ),
    )
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "train",
                "--model",
                "factor_vae",
                "--disc-betas",
                "0.4",
                "0.8",
                "--disc-width",
                "7",
                "--no-figures",
                "--data",
                "array",
                "--data-path",
                "x.npz",
                "--betas",
                "0.8",
                "0.9",
                "--set",
                "train.lr=0.01",
                "--lr",
                "0.02",
                "--run-dir",
                "out",
            ]
        )
        == 0
    )
    config = trained[-1]
    assert config.objective.disc_betas == (0.4, 0.8) and config.objective.disc_width == 7
    assert config.train.figures is False and config.train.betas == (0.8, 0.9)
    assert config.train.lr == 0.02  # a flag over --set
    assert config.data.path == str(tmp_path / "x.npz")  # a path flag is made absolute
    assert main(["train", "--model", "vae", "--alpha", "2", "--run-dir", "out"]) == 2
    assert "objective.alpha" in capsys.readouterr().err  # vae has no alpha: one line names it
