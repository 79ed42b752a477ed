"""Study files, trial names, the results table and the commands' errors, without Ray."""

from __future__ import annotations

import json
import math
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from conftest import terminate_after_first_row
from helpers import REPOSITORY, nsvae_command

from nsvae.cli import main
from nsvae.errors import DependencyError
from nsvae.metrics.results import flat_metrics
from nsvae.objectives import OBJECTIVES
from nsvae.sweep import Resources, load_study
from nsvae.sweep.results import _columns
from nsvae.sweep.runner import seed_by_seed, trial_config, trial_specs
from nsvae.sweep.study import parse_study, setting_name

STUDIES = REPOSITORY / "examples" / "studies"
PRESET_SETTINGS = {
    "locatello2019_dsprites": 36,
    "nonsyn_alpha_omega": 20,
    "cpu_study": 6,
    "cpu_study_v2": 6,
    "gpu_study": 6,
    "quick_dsprites": 2,
}
EXAMPLE = """
[study]
name = "nonsyn-vs-baselines"
seeds = [0, 1, 2]
metrics = ["mig", "latent_synergy"]

[base.train]
steps = 300
[base.model]
z_dim = 4

[[grid]]
"objective.name" = "nonsyn"
"objective.alpha" = [1.0, 5.0]
"objective.omega" = [0.5, 0.9]

[[grid]]
"objective.name" = "beta_vae"
"objective.beta" = [4.0]
"train.lr" = 1e-3
"""


def study(text: str, tmp_path: Path, name: str = "study.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_study(path)


def test_trials_are_the_product_of_each_block_times_the_seeds(tmp_path):
    found = study(EXAMPLE, tmp_path)
    assert found.name == "nonsyn-vs-baselines"
    assert len(found.trials) == (2 * 2 + 1) * 3
    assert [t.name for t in found.trials[:4]] == [
        "nonsyn-alpha=1-omega=0.5-seed=0",
        "nonsyn-alpha=1-omega=0.5-seed=1",
        "nonsyn-alpha=1-omega=0.5-seed=2",
        "nonsyn-alpha=1-omega=0.9-seed=0",
    ]
    last = found.trials[-1]
    assert last.name == "beta_vae-beta=4-lr=0.001-seed=2"
    assert last.setting == "beta_vae-beta=4-lr=0.001"
    assert last.swept == {"objective.name": "beta_vae", "objective.beta": 4.0, "train.lr": 1e-3}
    # the base applies to every trial, the block's values and the seed on top of it
    assert (last.config.objective.beta, last.config.train.lr, last.config.train.seed) == (
        4.0,
        1e-3,
        2,
    )
    assert {(t.config.train.steps, t.config.model.z_dim) for t in found.trials} == {(300, 4)}
    assert found.swept_keys == (
        "objective.name",
        "objective.alpha",
        "objective.omega",
        "objective.beta",
        "train.lr",
    )
    assert (found.metrics, found.fast, found.report) == (("mig", "latent_synergy"), True, True)


def test_relative_data_paths_are_taken_from_the_study_files_folder(tmp_path):
    text = (
        '[base.data]\nname = "array"\npath = "data/squares.npz"\n'
        '[[grid]]\n"objective.name" = "vae"\n'
    )
    (tmp_path / "studies").mkdir()
    trial = study(text, tmp_path / "studies").trials[0]
    assert trial.config.data.path == str(tmp_path / "studies" / "data" / "squares.npz")


def test_setting_names_use_the_field_unless_two_sections_share_it():
    swept = {
        "objective.name": "beta_vae",
        "data.path": "a/b.npz",
        "model.z_dim": 4,
        "train.betas": [0.5, 0.9],
        "train.figures": False,
    }
    assert (
        setting_name(swept, tuple(swept))
        == "beta_vae-path=a_b.npz-z_dim=4-betas=0.5_0.9-figures=false"
    )
    clash = {"data.path": "x", "train.path": "y"}
    assert setting_name(clash, tuple(clash)) == "data.path=x-train.path=y"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[grid]]\n"objective.alpah" = [1.0]\n',
            "grid block 1: unknown config key objective.alpah",
        ),
        ('[[grid]]\n"objective.alpha" = ["x"]\n', "objective.alpha must be of type float"),
        ('[[grid]]\n"objective.omega" = [2.0]\n', "grid block 1: objective.omega"),
        ('[study]\nname = "x"\n', "the grid is empty"),
        ('[[grid]]\n"objective.alpha" = []\n', "objective.alpha is an empty axis"),
        ("[[grid]]\n", "grid block 1 is empty"),
        (
            '[study]\nmetrics = ["mig", "migg"]\n[[grid]]\n"objective.alpha" = 1.0\n',
            "unknown metric 'migg' in study.metrics",
        ),
        (
            '[base.train]\neval_metrics = "mig,migg"\n[[grid]]\n"objective.alpha" = 1.0\n',
            "train.eval_metrics: unknown metric migg",
        ),
        (
            '[study]\nmetrics = "fastest"\n[[grid]]\n"objective.alpha" = 1.0\n',
            "study.metrics must be 'fast', 'full' or a list",
        ),
        ('[study]\nseeds = [0, 0]\n[[grid]]\n"objective.alpha" = 1.0\n', "study.seeds must be"),
        (
            '[study]\nseeds = [4294967296]\n[[grid]]\n"objective.alpha" = 1.0\n',
            "study.seeds must be a non-empty list of distinct integers in [0, 2**32)",
        ),
        (
            '[[grid]]\n"data.path" = "' + "a" * 300 + '"\n',
            "of 312 bytes, more than 200: sweep shorter values",
        ),
        ('[study]\nseed = [0]\n[[grid]]\n"objective.alpha" = 1.0\n', "unknown key study.seed"),
        ("[studdy]\n", "unknown table studdy"),
        (
            '[base.trian]\nsteps = 1\n[[grid]]\n"objective.alpha" = 1.0\n',
            "unknown config section 'trian'",
        ),
        ('[base.train]\nseed = 1\n[[grid]]\n"objective.alpha" = 1.0\n', "study.seeds"),
        ('[[grid]]\n"train.seed" = [1, 2]\n', "study.seeds"),
        ("[[grid]]\nalpha = 1.0\n", "keys are section.field, got 'alpha'"),
        (
            '[[grid]]\n"objective.alpha" = 1.0\n[[grid]]\n"objective.alpha" = [1.0]\n',
            "grid blocks 1 and 2 both give trial alpha=1-seed=0",
        ),
        ('[[grid]]\n"objective.alpha" = [1.0, 1.0]\n', "grid block 1 repeats trial alpha=1-seed=0"),
        ("[[grid]\n", "is not valid TOML"),
    ],
)
def test_bad_study_files_are_one_line_errors_before_anything_trains(
    text, message, tmp_path, capsys
):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nsvae: error: {path}") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags", [["--list"], ["--trial", "vae-seed=0"], []])
def test_an_out_that_is_a_file_is_refused_in_one_line(flags, tmp_path, capsys):
    path = tmp_path / "study.toml"
    path.write_text('[[grid]]\n"objective.name" = "vae"\n')
    (tmp_path / "afile").write_text("")
    assert main(["sweep", str(path), "--out", str(tmp_path / "afile"), *flags]) == 4
    assert capsys.readouterr().err == (
        f"nsvae: error: --out {tmp_path}/afile is a file: give the study's directory\n"
    )


def test_a_missing_study_file(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"nsvae: error: study file not found: {tmp_path}/nope.toml\n"


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.stem)
def test_presets_are_valid_studies(path):
    tables = tomllib.loads(path.read_text())
    # an objective another branch adds (FactorVAE) is checked once it is registered
    missing = [b for b in tables["grid"] if b.get("objective.name", "nonsyn") not in OBJECTIVES]
    tables["grid"] = [b for b in tables["grid"] if b not in missing]
    found = parse_study(tables, path.stem, origin=str(path))
    settings = {t.setting for t in found.trials}
    assert len(found.trials) == len(settings) * len(tables["study"]["seeds"])
    per_block = [math.prod(len(v) for v in b.values() if isinstance(v, list)) for b in missing]
    assert len(settings) == PRESET_SETTINGS[path.stem] - sum(per_block)


def test_locatello_preset_is_the_paper_protocol():
    tables = tomllib.loads((STUDIES / "locatello2019_dsprites.toml").read_text())
    assert tables["study"]["seeds"] == list(range(50))
    assert tables["base"]["train"]["steps"] == 300_000
    values = {
        (b["objective.name"], b.get("objective.dip_type")): next(
            v for k, v in b.items() if isinstance(v, list)
        )
        for b in tables["grid"]
    }
    assert values == {
        ("beta_vae", None): [1.0, 2.0, 4.0, 6.0, 8.0, 16.0],
        ("annealed_vae", None): [5.0, 10.0, 25.0, 50.0, 75.0, 100.0],
        ("factor_vae", None): [10.0, 20.0, 30.0, 40.0, 50.0, 100.0],
        ("dip_vae", "i"): [1.0, 2.0, 5.0, 10.0, 20.0, 50.0],
        ("dip_vae", "ii"): [1.0, 2.0, 5.0, 10.0, 20.0, 50.0],
        ("beta_tcvae", None): [1.0, 2.0, 4.0, 6.0, 8.0, 10.0],
    }


def test_gpu_study_is_the_cpu_study_at_the_published_budget_and_extends_its_trials():
    cpu, gpu = (load_study(STUDIES / f"{name}.toml") for name in ("cpu_study", "gpu_study"))
    assert {t.name for t in cpu.trials} < {t.name for t in gpu.trials}  # same trial folders
    assert len(gpu.trials) == 6 * 50
    by_name = {t.name: t for t in gpu.trials}
    for trial in cpu.trials:
        longer = by_name[trial.name]
        assert longer.config.train.steps == 300_000
        assert (
            longer.config.updated(
                {"train": {"steps": 30_000, "log_every": 500, "checkpoint_every": 5000}}
            )
            == trial.config
        )


def test_threads_follow_the_cpu_share_and_auto_means_cpu_without_gpus(tmp_path):
    trial = study(EXAMPLE, tmp_path).trials[0]
    on_two = trial_config(trial.config, Resources(cpus_per_trial=2))
    assert (on_two.train.threads, on_two.train.device) == (2, "cpu")
    on_gpu = trial_config(trial.config, Resources(cpus_per_trial=0.5, gpus_per_trial=1))
    assert (on_gpu.train.threads, on_gpu.train.device) == (1, "auto")
    pinned = trial.config.updated({"train": {"threads": 3}})
    assert trial_config(pinned, Resources(cpus_per_trial=1)).train.threads == 3


def test_flat_metrics_keeps_every_number_and_leaves_lists_to_eval_json():
    metrics = {
        "mig": {"discrete_mig": 0.25, "per_factor": [0.1, 0.4]},
        "factor_synergy": {"per_factor": {"x": 0.5, "y": 1}, "ok": True},
    }
    assert flat_metrics(metrics) == {
        "mig.discrete_mig": 0.25,
        "factor_synergy.per_factor.x": 0.5,
        "factor_synergy.per_factor.y": 1,
    }


def test_columns_are_trial_then_settings_then_metrics():
    rows = [
        {
            "name": "a",
            "setting": "s",
            "objective.name": "vae",
            "seed": 0,
            "status": "done",
            "mig.discrete_mig": 0.1,
            "objective.beta": 4.0,
            "steps": 3,
            "seconds": 1.0,
        },
        {
            "name": "b",
            "setting": "t",
            "objective.name": "vae",
            "train.lr": 0.1,
            "seed": 1,
            "status": "pending",
        },
    ]
    assert _columns(rows) == [
        "name",
        "setting",
        "status",
        "objective.name",
        "objective.beta",
        "train.lr",
        "seed",
        "steps",
        "seconds",
        "cpu",
        "nsvae_commit",
        "error",
        "mig.discrete_mig",
    ]


def test_without_ray_the_sweep_says_how_to_install_it(tmp_path, monkeypatch, capsys, squares_npz):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.delitem(sys.modules, "nsvae.sweep.ray_tune", raising=False)
    path = tmp_path / "study.toml"
    path.write_text(
        f'[base.data]\nname = "array"\npath = "{squares_npz}"\n[[grid]]\n"objective.name" = "vae"\n'
    )
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == DependencyError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "needs Ray Tune" in err and "pip install 'nsvae[sweep]'" in err
    # the rest works: the plan is written, the table lists the trial as pending
    assert "pending" in (tmp_path / "out" / "results.csv").read_text()


def test_a_second_sweep_on_the_same_directory_is_refused_in_one_line(tmp_path, capsys, squares_npz):
    from nsvae.errors import RunLockedError
    from nsvae.files import file_lock

    path = tmp_path / "study.toml"
    path.write_text(
        f'[base.data]\nname = "array"\npath = "{squares_npz}"\n[[grid]]\n"objective.name" = "vae"\n'
    )
    with file_lock(tmp_path / "out" / ".lock"):  # as a sweep running in another process
        code = main(["sweep", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == RunLockedError.exit_code and err.count("\n") == 1
    assert "in use by another nsvae sweep" in err
    assert not (tmp_path / "out" / "results.csv").exists()  # nothing was touched


@pytest.mark.slow
def test_one_trial_runs_without_ray_and_a_finished_one_is_not_run_again(
    tmp_path, monkeypatch, capsys, squares_npz
):
    import pandas as pd

    monkeypatch.setitem(sys.modules, "ray", None)  # no Ray anywhere in this test
    path = tmp_path / "study.toml"
    path.write_text(
        f'[study]\nseeds = [0, 1]\nmetrics = ["mig"]\n'
        f'[base.data]\nname = "array"\npath = "{squares_npz}"\n'
        "[base.model]\nz_dim = 3\n"
        "[base.train]\nsteps = 4\nbatch_size = 8\ncheckpoint_every = 2\n"
        'figures = false\n[[grid]]\n"objective.name" = "vae"\n'
    )
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--list"]) == 0
    listed = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [state for _, state in listed] == ["pending", "pending"]
    first, second = (name for name, _ in listed)

    assert main(["sweep", str(path), "--out", str(out), "--trial", first]) == 0
    assert f"trial {first}: done at step 4" in capsys.readouterr().out
    table = pd.read_csv(out / "results.csv").set_index("name")
    assert table.loc[first, "status"] == "done" and table.loc[second, "status"] == "pending"
    assert 0.0 <= table.loc[first, "mig.discrete_mig"] <= 1.0
    record = (out / "trials" / first / "trial.json").read_bytes()

    assert main(["sweep", str(path), "--out", str(out), "--trial", first]) == 0  # finished
    assert (out / "trials" / first / "trial.json").read_bytes() == record
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out), "--list"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{first}\tfinished", f"{second}\tpending"]

    assert main(["sweep", str(path), "--out", str(out), "--trial", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no trial 'nope'" in err


def test_trials_run_seed_by_seed_so_a_stopped_study_has_equal_seeds(tmp_path):
    specs = trial_specs(study(EXAMPLE, tmp_path), tmp_path / "out", Resources())
    ordered = seed_by_seed(specs)
    assert sorted(s.name for s in ordered) == sorted(s.name for s in specs)
    assert [s.seed for s in ordered] == [0] * 5 + [1] * 5 + [2] * 5
    assert (
        [s.setting for s in ordered[:5]]
        == [s.setting for s in ordered[5:10]]
        == [
            "nonsyn-alpha=1-omega=0.5",
            "nonsyn-alpha=1-omega=0.9",
            "nonsyn-alpha=5-omega=0.5",
            "nonsyn-alpha=5-omega=0.9",
            "beta_vae-beta=4-lr=0.001",
        ]
    )


@pytest.mark.slow
def test_a_kept_model_rescores_the_study_with_new_columns_and_the_old_ones_untouched(
    tmp_path, monkeypatch, capsys, squares_npz
):
    import shutil

    import pandas as pd

    monkeypatch.setitem(sys.modules, "ray", None)
    text = (
        f'[study]\nseeds = [0]\nmetrics = ["mig"]\nfast = false\n'
        f'[base.data]\nname = "array"\npath = "{squares_npz}"\n[base.model]\nz_dim = 3\n'
        "[base.train]\nsteps = 6\nbatch_size = 8\ncheckpoint_every = 3\nfigures = false\n"
        '[[grid]]\n"objective.name" = "vae"\n'
    )
    path = tmp_path / "study.toml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--trial", "vae-seed=0"]) == 0
    trial = out / "trials" / "vae-seed=0"
    assert (trial / "model.safetensors").is_file()  # kept by default

    # a folder kept for sharing: the results and the weights, no checkpoints
    kept = tmp_path / "kept"
    shutil.copytree(out, kept, ignore=shutil.ignore_patterns("checkpoints", ".*lock"))
    assert not (kept / "trials" / "vae-seed=0" / "checkpoints").exists()
    before = pd.read_csv(kept / "results.csv")
    eval_before = json.loads((kept / "trials" / "vae-seed=0" / "eval.json").read_text())
    capsys.readouterr()
    assert main(["study", "rescore", str(kept), "--metrics", "mig,sap"]) == 0
    assert "[1/1] vae-seed=0: scored 1 of 1 metrics; mig already scored" in capsys.readouterr().out
    assert main(["study", "rescore", str(kept), "--metrics", "sap"]) == 0
    assert "[1/1] vae-seed=0: already scored" in capsys.readouterr().out
    # the fast sample sizes are another protocol: scored, not skipped
    assert main(["study", "rescore", str(kept), "--metrics", "sap", "--fast"]) == 0
    assert "[1/1] vae-seed=0: scored 1 of 1 metrics\n" in capsys.readouterr().out
    assert main(["study", "rescore", str(kept), "--metrics", "mig", "--again"]) == 0
    assert "[1/1] vae-seed=0: scored 1 of 1 metrics\n" in capsys.readouterr().out
    after = pd.read_csv(kept / "results.csv")
    assert "sap.SAP_score" in after.columns and "sap.SAP_score" not in before.columns
    for column in before.columns:  # the old columns keep their values
        assert after[column].equals(before[column]), column
    # the exported weights are the trained model: its MIG comes back from them exactly
    eval_after = json.loads((kept / "trials" / "vae-seed=0" / "eval.json").read_text())
    assert eval_after["metrics"]["mig"] == eval_before["metrics"]["mig"]
    assert "sap" in eval_after["metrics"] and "sap" not in eval_before["metrics"]

    # a study that keeps no models writes none
    path.write_text(text.replace("fast = false\n", "fast = false\nkeep_models = false\n"))
    assert main(["sweep", str(path), "--out", str(tmp_path / "bare"), "--trial", "vae-seed=0"]) == 0
    assert not (tmp_path / "bare" / "trials" / "vae-seed=0" / "model.safetensors").exists()

    capsys.readouterr()
    assert main(["study", "rescore", str(tmp_path / "none"), "--metrics", "mig"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no trials in" in err
    assert main(["study", "rescore", str(kept), "--metrics", "nope"]) == 2


def test_one_trial_refuses_a_running_copy_and_exits_with_the_trials_own_code(
    tmp_path, monkeypatch, capsys, squares_npz
):
    from nsvae.errors import DataError, RunLockedError
    from nsvae.files import file_lock

    monkeypatch.setitem(sys.modules, "ray", None)
    path = tmp_path / "study.toml"
    path.write_text(
        '[base.data]\nname = "array"\npath = "missing.npz"\n[[grid]]\n"objective.name" = "vae"\n'
    )
    out = tmp_path / "out"
    (out / "trials").mkdir(parents=True)
    with file_lock(out / "trials" / ".vae-seed=0.lock"):  # the same trial in another process
        code = main(["sweep", str(path), "--out", str(out), "--trial", "vae-seed=0"])
    assert code == RunLockedError.exit_code
    assert "trial vae-seed=0 is running in another process" in capsys.readouterr().err
    assert not (out / "trials" / "vae-seed=0").exists()  # nothing touched

    with file_lock(out / ".lock"):  # a Ray sweep in this directory
        code = main(["sweep", str(path), "--out", str(out), "--trial", "vae-seed=0"])
    assert code == RunLockedError.exit_code and "in use by a Ray sweep" in capsys.readouterr().err

    code = main(["sweep", str(path), "--out", str(out), "--trial", "vae-seed=0"])
    err = capsys.readouterr().err
    assert code == DataError.exit_code and err.count("\n") == 1  # the trial's own error
    assert "trial vae-seed=0 failed: no array dataset file" in err
    assert main(["sweep", str(path), "--out", str(out), "--list"]) == 0
    assert capsys.readouterr().out == "vae-seed=0\tfailed\n"

    assert main(["sweep", str(path), "--out", str(out), "--list", "--trial", "x"]) == 2
    assert "not both" in capsys.readouterr().err


def test_a_trial_out_of_memory_fails_with_the_configuration_exit_code(
    tmp_path, monkeypatch, capsys
):
    def allocate(*args, **kwargs):
        return torch.empty(10**14)  # torch's own failed allocation on this CPU

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr("nsvae.sweep.trial.run_experiment", allocate)
    path = tmp_path / "study.toml"
    path.write_text('[[grid]]\n"objective.name" = "vae"\n')
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--trial", "vae-seed=0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nsvae: error: trial vae-seed=0 failed: RuntimeError: ")
    assert "allocate memory" in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_trial_stopped_by_sigterm_exits_143_and_is_left_unfinished(
    tmp_path, capsys, squares_npz, source_env
):
    """A scheduler's SIGTERM (a SLURM preemption): the trial checkpoints, leaves no record (not
    "failed"), and the command exits 143 so the scheduler requeues it."""
    import pandas as pd

    path, out = tmp_path / "study.toml", tmp_path / "out"
    path.write_text(
        f'[study]\nmetrics = ["mig"]\n'
        f'[base.data]\nname = "array"\npath = "{squares_npz}"\n'
        "[base.model]\nz_dim = 3\n[base.train]\nsteps = 100000\nbatch_size = 8\n"
        "log_every = 1\ncheckpoint_every = 100000\nfigures = false\n"
        '[[grid]]\n"objective.name" = "vae"\n'
    )
    trial = out / "trials" / "vae-seed=0"
    code, _, stderr = terminate_after_first_row(
        nsvae_command("sweep", path, "--out", out, "--trial", "vae-seed=0"),
        trial / "metrics.jsonl",
        source_env,
    )
    assert code == 143, stderr
    assert stderr.startswith("nsvae: error: trial vae-seed=0 interrupted by SIGTERM at step ")
    assert stderr.endswith("; checkpoint saved, run the same command again to resume it\n")
    assert not (trial / "trial.json").exists()
    assert list((trial / "checkpoints").glob("step-*.json"))
    assert main(["sweep", str(path), "--out", str(out), "--list"]) == 0
    assert capsys.readouterr().out == "vae-seed=0\tunfinished\n"
    assert pd.read_csv(out / "results.csv")["status"].tolist() == ["unfinished"]


def test_summary_cells_are_the_median_and_the_range_or_the_quartiles():
    import pandas as pd

    from nsvae.sweep.report import median_and_spread, summary_markdown

    three = pd.Series([0.3, 0.1, 0.2])
    assert median_and_spread(three) == "0.2 (0.1 to 0.3)"  # under 5 seeds: lowest to highest
    assert median_and_spread(pd.Series([1.0, 2, 3, 4, 5, 100])) == "3.5 (2.25 to 4.75)"
    assert median_and_spread(pd.Series([0.5, None])) == "0.5"
    assert median_and_spread(pd.Series([], dtype=float)) == ""
    frame = pd.DataFrame(
        {
            "setting": ["vae", "vae", "vae", "tc"],
            "objective.name": ["vae", "vae", "vae", "beta_tcvae"],
            "mig.discrete_mig": [0.3, 0.1, 0.2, 0.4],
        }
    )
    lines = summary_markdown(frame, ["mig.discrete_mig"]).splitlines()
    assert lines[2:] == [
        "| setting | model | seeds | mig.discrete_mig |",
        "|---|---|---|---|",
        "| vae | vae | 3 | 0.2 (0.1 to 0.3) |",
        "| tc | beta_tcvae | 1 | 0.4 |",
    ]


def test_superiority_is_the_share_of_seed_pairs_won_and_its_exact_p_value():
    import itertools

    import numpy as np
    import pandas as pd
    from scipy.stats import mannwhitneyu

    from nsvae.sweep.report import smallest_p, superiority

    share, p = superiority(pd.Series([0.4, 0.5, 0.6]), pd.Series([0.1, 0.2, 0.3]))
    assert share == 1.0 and p == pytest.approx(2 / math.comb(6, 3))  # the smallest 3-vs-3 p: 0.1
    share, p = superiority(pd.Series([0.1, 0.2, 0.3]), pd.Series([0.4, 0.5, 0.6]))
    assert share == 0.0 and p == pytest.approx(0.1)
    rng = np.random.default_rng(0)
    values, reference = rng.normal(size=4), rng.normal(size=5)
    values[0] = reference[0]  # a tie counts half
    won = sum(
        1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(values, reference)
    )
    share, _ = superiority(pd.Series(values), pd.Series(reference))
    assert share == pytest.approx(won / 20)
    share, p = superiority(pd.Series([1.0, None]), pd.Series([], dtype=float))
    assert math.isnan(share) and math.isnan(p)
    for n, m in ((3, 3), (2, 6), (8, 9)):  # without ties: scipy's exact Mann-Whitney test
        values, reference = rng.normal(size=n), rng.normal(size=m)
        exact = mannwhitneyu(values, reference, method="exact").pvalue
        assert superiority(pd.Series(values), pd.Series(reference))[1] == pytest.approx(exact)
    for tied in ([1.0, 1.0, 1.0], [3.0, 2.0, 1.5]):  # ties never push p below the exact bound
        assert superiority(pd.Series(tied), pd.Series([0.0, 0.0, 0.5])) == (1.0, 0.1)
    assert smallest_p(3, 3) == 0.1 and smallest_p(2, 1) == pytest.approx(2 / 3)
    assert superiority(pd.Series([1.0, 2.0]), pd.Series([0.5]))[1] == pytest.approx(2 / 3)
    assert smallest_p(1, 1) == 1.0 and superiority(pd.Series([1.0]), pd.Series([0.5])) == (1, 1)


def test_the_interval_of_the_difference_of_medians_is_the_bootstrap_percentile_interval():
    import pandas as pd

    from nsvae.sweep.report import median_difference_interval

    # two seeds a side: each resampled median is the lower, the middle or the upper value, so
    # the 2.5 % and 97.5 % points are the extreme differences (each 1/16 likely)
    assert median_difference_interval(pd.Series([0.0, 1.0]), pd.Series([10.0, 12.0])) == (
        -12.0,
        -9.0,
    )
    assert median_difference_interval(pd.Series([3.0] * 5), pd.Series([1.0] * 5)) == (2.0, 2.0)
    low, high = median_difference_interval(
        pd.Series(range(5), dtype=float), pd.Series(range(5), dtype=float)
    )
    assert low < 0 < high and low == -high
    assert all(
        map(math.isnan, median_difference_interval(pd.Series([1.0]), pd.Series([], dtype=float)))
    )


def test_summary_compares_every_setting_with_the_reference_and_refuses_an_unknown_one():
    import pandas as pd

    from nsvae.errors import ConfigError
    from nsvae.sweep.report import compare_with, summary_markdown

    frame = pd.DataFrame(
        {
            "setting": ["vae"] * 3 + ["tc"] * 3,
            "objective.name": ["vae"] * 3 + ["beta_tcvae"] * 3,
            "mig.discrete_mig": [0.1, 0.2, 0.3, 0.4, 0.5, 0.25],
        }
    )
    comparison = compare_with(frame, ["mig.discrete_mig"], "vae")
    lines = summary_markdown(frame, ["mig.discrete_mig"], comparison).splitlines()
    assert lines[-5].startswith("Against vae (3 seeds): the share of seed pairs")
    assert lines[-3:] == [
        "| setting | seeds | mig.discrete_mig |",
        "|---|---|---|",
        "| tc | 3 | 0.89 (p 0.2; -0.05 to +0.4) |",
    ]  # 8 of 9 pairs won
    with pytest.raises(ConfigError, match="no finished trial of setting 'ae'.*: vae, tc$"):
        compare_with(frame, ["mig.discrete_mig"], "ae")


def test_a_study_says_what_its_trials_trained_on_and_warns_when_they_differ():
    import pandas as pd

    from nsvae.sweep.report import mixed_provenance, summary_markdown, trained_on_counts

    frame = pd.DataFrame(
        {
            "setting": ["vae"] * 3,
            "objective.name": ["vae"] * 3,
            "cpu": ["A; ISA: amx_bf16", "A; ISA: amx_bf16", None],
            "nsvae_commit": ["0123456789ab"] * 3,
            "mig.discrete_mig": [0.1, 0.2, 0.3],
        }
    )
    assert trained_on_counts(frame, "cpu") == "A; ISA: amx_bf16 (2), not recorded (1)"
    assert trained_on_counts(frame, "nsvae_commit") == "0123456789ab (3)"
    assert trained_on_counts(frame.drop(columns="cpu"), "cpu") == "not recorded"
    assert mixed_provenance(frame) == []  # one recorded CPU: nothing to warn about
    frame.loc[2, "cpu"] = "B; ISA: avx2"
    assert mixed_provenance(frame) == [
        "Trials trained on more than one CPU: A; ISA: amx_bf16 (2), B; ISA: avx2 (1). "
        "Kernels round differently, so their seeds are other draws of the same recipe."
    ]
    assert mixed_provenance(frame)[0] in summary_markdown(frame, ["mig.discrete_mig"])


RECORD = {
    "name": "vae-seed=0",
    "setting": "vae",
    "seed": 0,
    "swept": {},
    "status": "done",
    "step": 2,
    "error": None,
    "seconds": {"train": 1.5},
}


@pytest.mark.parametrize(
    "record",
    [
        [1],
        {**RECORD, "status": 5},
        {**RECORD, "step": "x"},
        {**RECORD, "status": "failed"},
        {"status": "done"},
        {key: value for key, value in RECORD.items() if key != "seconds"},
    ],
)
def test_a_damaged_trial_record_is_one_line_naming_it(record, tmp_path, capsys):
    from nsvae.errors import CheckpointError
    from nsvae.sweep.results import recorded_specs

    path = tmp_path / "study.toml"
    path.write_text('[base.train]\nsteps = 2\n[[grid]]\n"objective.name" = "vae"\n')
    trial = tmp_path / "out" / "trials" / "vae-seed=0"
    trial.mkdir(parents=True)
    (trial / "trial.json").write_text(json.dumps(record))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--list"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("nsvae: error: ") and "trial.json is not a trial record" in err
    assert err.count("\n") == 1
    with pytest.raises(CheckpointError, match="is not a trial record"):  # a trial the study
        recorded_specs(tmp_path / "out")  # no longer lists


GOOD_TABLE = (
    "name,setting,status,objective.name,seed,mig.discrete_mig\nvae-seed=0,vae,done,vae,0,0.25\n"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GOOD_TABLE[:-3], "its last line is cut off"),  # would read 0.25 as 0.
        ("a,b,c\n1,2,3\n", "no name, setting, status column"),
        (
            GOOD_TABLE.replace("vae,done", ",done"),
            "a row without its trial's name, setting or status",
        ),
        (GOOD_TABLE.replace("0.25", "abc"), "a mig.discrete_mig value that is not a number"),
    ],
)
def test_a_damaged_results_table_is_refused_in_one_line(text, problem, tmp_path, capsys):
    from nsvae.sweep import load_results

    (tmp_path / "results.csv").write_text(text)
    assert main(["study", "report", str(tmp_path)]) == 4
    err = capsys.readouterr().err
    assert (
        err == f"nsvae: error: {tmp_path}/results.csv is not a results table ({problem}): "
        "run nsvae sweep again to rewrite it\n"
    )
    (tmp_path / "results.csv").write_text(GOOD_TABLE)
    assert load_results(tmp_path)["mig.discrete_mig"].tolist() == [0.25]


def test_trials_lost_without_a_signal_exit_5_not_the_ctrl_c_code(
    tmp_path, monkeypatch, capsys, squares_npz
):
    from nsvae.sweep import runner

    # Ray came back with the trials unfinished and no signal asked it to: their workers died
    monkeypatch.setattr(runner, "_run_on_ray", lambda *args: (0.0, None))
    path = tmp_path / "study.toml"
    path.write_text(
        f'[study]\nseeds = [0, 1]\nmetrics = ["mig"]\n[base.data]\nname = "array"\n'
        f'path = "{squares_npz}"\n[base.train]\nsteps = 2\n'
        '[[grid]]\n"objective.name" = "vae"\n'
    )
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 of 2 trials ended without a record" in err
    # stopped by a signal, the same trials are an interruption: 130 (SIGINT) or 143 (SIGTERM)
    monkeypatch.setattr(runner, "_run_on_ray", lambda *args: (0.0, "SIGTERM"))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 143
