"""Issue 15: exit codes, eval.json that keeps every result, one-line errors for bad input.

Each test names the item of the issue it checks; the trainer's items (locks, stuck runs,
resume checks, fallbacks) are in ``test_trainer.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import nsvae
from nsvae.cli import main
from nsvae.config import Config, load_config
from nsvae.data import ArrayGroundTruthData
from nsvae.errors import CheckpointError, ConfigError, DataError, NsvaeWarning
from nsvae.metrics import METRICS
from nsvae.metrics.evaluate import evaluate_run
from nsvae.metrics.results import read_evaluation, save_evaluation
from nsvae.rundir import load_run

TINY = [
    "--data",
    "array",
    "--steps",
    "4",
    "--batch-size",
    "8",
    "--z-dim",
    "3",
    "--log-every",
    "2",
    "--checkpoint-every",
    "2",
    "--threads",
    "1",
    "--device",
    "cpu",
    "--no-figures",
    "--no-progress",
]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nsvae: error: "), err
    return err


def codes_file(path, codes, factors=None):
    rng = np.random.RandomState(0)
    factors = rng.randint(0, 3, size=(len(codes), 2)) if factors is None else factors
    np.savez(path, factors=factors, codes=codes)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, squares_npz):
    """A tiny run trained through the command line (4 steps, 3 latents)."""
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--data-path", str(squares_npz), "--run-dir", str(run)]) == 0
    return run


@pytest.fixture
def good_codes(tmp_path):
    rng = np.random.RandomState(0)
    factors = rng.randint(0, 3, size=(300, 2))
    return codes_file(tmp_path / "codes.npz", factors + 0.1 * rng.randn(300, 2), factors)


# ------------------------------------------------------------------------- item 1: exit codes


def test_ctrl_c_outside_the_training_loop_exits_130(good_codes, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("nsvae.metrics.evaluate.evaluate_codes", interrupted)
    before = signal.getsignal(signal.SIGINT)  # ignored, when pytest runs as a background job
    assert main(["evaluate", "--codes", str(good_codes)]) == 130
    assert capsys.readouterr().err == "nsvae: interrupted by SIGINT\n"
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_sigterm_outside_the_training_loop_exits_143(good_codes, monkeypatch, capsys):
    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr("nsvae.metrics.evaluate.evaluate_codes", terminated)
    assert main(["evaluate", "--codes", str(good_codes)]) == 143
    assert capsys.readouterr().err == "nsvae: interrupted by SIGTERM\n"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def default_sigint() -> None:
    """In a child: Ctrl-C as a terminal delivers it, even when this test runs as a background
    job (whose shell ignores SIGINT, an inherited setting that Python then keeps)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_a_second_ctrl_c_while_shutting_down_prints_no_traceback(tmp_path, source_env):
    """A real process: Ctrl-C in a command, then Ctrl-C again while the interpreter exits."""
    script = textwrap.dedent("""
        import atexit, sys, time
        import nsvae.cli as cli
        import nsvae.metrics.evaluate as ev

        def slow(*args, **kwargs):
            print("ready", flush=True)
            time.sleep(60)

        def shutting_down():
            print("exiting", flush=True)
            time.sleep(2)

        ev.load_codes = lambda path: (None, None, None)
        ev.evaluate_codes = slow
        atexit.register(shutting_down)
        sys.argv = ["nsvae", "evaluate", "--codes", "x.npz"]
        sys.exit(cli.run())
    """)
    (tmp_path / "x.npz").write_bytes(b"")
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        text=True,
        env=source_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    try:
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGINT)
        assert process.stdout.readline() == "exiting\n"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert stderr == "nsvae: interrupted by SIGINT\n"


def test_version_and_bare_nsvae(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"nsvae {nsvae.__version__}\n"
    for argv in ([], ["data"]):
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert "Usage" in captured.out and captured.err == ""


# ------------------------------------------------------------- item 4: eval.json keeps results


def test_eval_json_merges_metric_sets_and_representations(trained):
    params = {
        "mig": {"num_train": 200},
        "modularity_explicitness": {"num_train": 200, "num_test": 100},
    }
    evaluate_run(trained, metrics="mig", params=params)
    evaluate_run(trained, metrics="modularity_explicitness", params=params)
    evaluate_run(trained, metrics="mig", representation="sampled", params=params)
    again = evaluate_run(trained, metrics="mig", params=params, seed=1)  # replaces its entry
    entries = read_evaluation(trained / "eval.json")
    keys = sorted((e["metric"], e["representation"], e["seed"]) for e in entries)
    assert keys == [
        ("mig", "mean", 1),
        ("mig", "sampled", 0),
        ("modularity_explicitness", "mean", 0),
    ]
    stored = json.loads((trained / "eval.json").read_text())
    assert stored["metrics"]["mig"] == again["metrics"]["mig"]  # the headline: mean, newest
    assert set(stored["metrics"]) == {"mig", "modularity_explicitness"}


def test_a_failing_metric_keeps_the_others_printed_and_saved(tmp_path, capsys):
    rng = np.random.RandomState(0)
    factors = rng.randint(0, 4, size=(300, 2))
    path = codes_file(tmp_path / "one.npz", factors[:, :1] + 0.1 * rng.randn(300, 1), factors)
    output = tmp_path / "result.json"
    assert (
        main(
            [
                "evaluate",
                "--codes",
                str(path),
                "--metrics",
                "mig,modularity_explicitness",
                "--output",
                str(output),
            ]
        )
        == 6
    )
    captured = capsys.readouterr()
    assert "modularity_score" in captured.out
    assert captured.err.splitlines()[-1].startswith(
        "nsvae: error: 1 metric(s) failed (mig: mig needs at least 2 latents, got 1)"
    )
    assert "[1/2] mig" in captured.err and "[2/2] modularity_explicitness" in captured.err
    saved = json.loads(output.read_text())
    assert set(saved["metrics"]) == {"modularity_explicitness"} and "mig" in saved["failed"]


def test_unwritable_run_directory_fails_after_printing(trained, monkeypatch, capsys):
    def read_only(*args, **kwargs):
        raise CheckpointError(f"cannot write {trained / 'eval.json'}: Read-only file system")

    monkeypatch.setattr("nsvae.metrics.results.write_json", read_only)
    assert main(["evaluate", str(trained), "--metrics", "mig"]) == 4
    captured = capsys.readouterr()
    assert "discrete_mig" in captured.out
    assert captured.err.splitlines()[-1].endswith("Read-only file system")


def test_a_hand_edited_eval_json_is_kept_aside_and_replaced(tmp_path):
    (tmp_path / "eval.json").write_text('{"entries": [{"metric": 3}]}')
    with pytest.raises(CheckpointError, match="not an nsvae evaluation file"):
        read_evaluation(tmp_path / "eval.json")
    result = {"metrics": {"mig": {"discrete_mig": 0.5}}, "params": {"mig": {}}, "step": 3}
    with pytest.warns(NsvaeWarning, match="kept as eval.json.corrupt"):
        save_evaluation(tmp_path, result)
    assert [e["values"] for e in read_evaluation(tmp_path / "eval.json")] == [{"discrete_mig": 0.5}]
    assert (tmp_path / "eval.json.corrupt").read_text() == '{"entries": [{"metric": 3}]}'


def test_an_eval_json_of_another_format_is_refused(tmp_path):
    (tmp_path / "eval.json").write_text(json.dumps({"format": 99, "entries": []}))
    with pytest.raises(CheckpointError, match="has format 99; this nsvae reads format 2"):
        read_evaluation(tmp_path / "eval.json")
    with pytest.raises(CheckpointError, match="has format 99"):  # and is not replaced
        save_evaluation(
            tmp_path, {"metrics": {"mig": {"discrete_mig": 0.5}}, "params": {}, "step": 1}
        )
    assert json.loads((tmp_path / "eval.json").read_text()) == {"format": 99, "entries": []}
    assert not (tmp_path / "eval.json.corrupt").exists()


def test_first_format_eval_json_is_read_as_entries(tmp_path):
    first = {
        "metrics": {"mig": {"discrete_mig": 0.25}},
        "params": {"mig": {"num_train": 9}},
        "representation": "mean",
        "seed": 0,
        "fast": True,
        "step": 12,
    }
    (tmp_path / "eval.json").write_text(json.dumps(first))
    save_evaluation(
        tmp_path, {"metrics": {"dci": {"disentanglement": 0.5}}, "params": {"dci": {}}, "step": 14}
    )
    entries = read_evaluation(tmp_path / "eval.json")
    assert [(e["metric"], e["step"]) for e in entries] == [("mig", 12), ("dci", 14)]


# ------------------------------------------------ items 5 and 6: every failure is one line


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (["train", "--seed", "-1"], 2, "--seed"),
        (["train", "--seed", "4294967296"], 2, "--seed"),
        (["train", "--eval-every", "99999999999999999999"], 2, "eval_every must be below 2**63"),
        (["evaluate", "--codes", "c.npz", "--seed", "-1"], 2, "--seed"),
        (["report", "run", "--seed", "4294967296"], 2, "--seed"),
        (["data", "render", "dsprites", "--sheet", "sheet.jpg"], 2, "ending in .png"),
        (["train", "--model", "vae", "--alpha", "50"], 2, "objective.alpha 50.0 needs"),
        (["evaluate", "--codes", "c.npz", "--fast"], 2, "--fast and --representation apply"),
        (["evaluate", "--codes", "c.npz", "--representation", "sampled"], 2, "apply to a run"),
        (["evaluate", "--codes", "c.npz", "--output", "."], 2, "--output takes a file name"),
        (["evaluate", "run", "--output", "o.json"], 2, "--output goes with --codes"),
        (["evaluate", "--codes", "c.npz", "--metrics", "mig,nope"], 2, "unknown metric nope"),
        (["train", "--run-dir", "c.npz/run"], 4, "cannot lock"),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code(
    argv, code, words, tmp_path, monkeypatch, capsys, squares_npz
):
    monkeypatch.chdir(tmp_path)
    codes_file(tmp_path / "c.npz", np.zeros((5, 2)))
    if argv[0] == "train":
        argv = [*argv, *TINY, "--data-path", str(squares_npz)]
    assert main(argv) == code
    assert words in one_error_line(capsys)


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: not enough "
            "memory: you tried to allocate 204800000000 bytes."
        ),  # Windows
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't "
            "allocate memory: you tried to allocate 800000000000000 bytes. Error code 12 "
            "(Cannot allocate memory)"
        ),  # Linux
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    ],
)
def test_running_out_of_memory_is_one_line_saying_what_to_lower(error, monkeypatch, capsys):
    def run_out(**kwargs):
        raise error

    monkeypatch.setattr("nsvae.cli.program.app", run_out)
    assert main(["train"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("nsvae: error: out of memory") and "batch size" in line


@pytest.mark.parametrize(
    ("codes", "metrics", "words"),
    [
        (np.zeros((0, 2)), "mig", "n, d >= 1"),
        (np.ones((90, 2)) * 1e40, "dci", "reach 1e+40"),
        (np.ones((90, 2)) * 1e300, "unsupervised", "rescale them"),
        (np.random.RandomState(0).rand(90, 2) * 1e300, "sap", "rescale them"),  # was a hang
    ],
)
def test_empty_or_huge_codes_are_refused_at_once(codes, metrics, words, tmp_path, capsys):
    path = codes_file(tmp_path / "c.npz", codes)
    start = time.perf_counter()
    assert main(["evaluate", "--codes", str(path), "--metrics", metrics]) == 6
    assert words in one_error_line(capsys) and time.perf_counter() - start < 10


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ({"config": {"model": {"z_dim": -3}}, "observation_shape": [1, 64, 64]}, "model.z_dim"),
        ({"config": {}, "observation_shape": "x"}, "observation_shape"),
        ({"config": {}, "observation_shape": [0, 64]}, "observation_shape"),
        ({"config": {}}, "no 'observation_shape' field"),
        ({"config": [], "observation_shape": [1, 64, 64]}, "corrupt"),
        ([1, 2], "not laid out as nsvae writes it"),
    ],
)
def test_a_hand_edited_config_json_is_a_checkpoint_error(trained, tmp_path, edit, words):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(edit))
    with pytest.raises(CheckpointError, match="corrupt") as error:
        load_run(run)
    assert words in str(error.value)


def test_factor_sizes_whose_product_overflows_int64_are_refused():
    with pytest.raises(DataError, match="make a grid of"):
        ArrayGroundTruthData(np.zeros((4, 1, 64, 64)), [2**32, 2**32])


def test_seeds_are_checked_where_they_enter():
    with pytest.raises(ConfigError, match=r"train.seed must be an integer in \[0, 2\*\*32\)"):
        Config().updated({"train": {"seed": 2**32}}).validate()


# ------------------------------------------------------------------------- item 8: rough edges


def test_relative_data_paths_in_a_toml_are_relative_to_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "run.toml").write_text('[data]\nname = "array"\npath = "data/mine.npz"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config("study/run.toml").data.path == str(folder / "data" / "mine.npz")


def test_help_shows_defaults_and_metric_names(capsys):
    from nsvae.data import DATASETS
    from nsvae.objectives import OBJECTIVES

    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    squeezed = re.sub(r"[\s│]", "", text)  # the registries' names, not a hand-kept copy
    assert "(defaultnonsyn5.0)" in squeezed  # --alpha: the default of the objective it is for
    assert "(defaultbeta_vae1.0,nonsyn1.0,beta_tcvae1.0)" in squeezed  # --beta
    assert "(default15000)" in squeezed  # --steps
    assert "Choosefrom:" + ",".join(OBJECTIVES) + "." in squeezed
    assert "Choosefrom:" + ",".join(DATASETS) + "." in squeezed
    assert main(["evaluate", "--help"]) == 0
    text = re.sub(r"[\s│]", "", capsys.readouterr().out)  # rich wraps words in a box
    assert "Choosefrom:" + ",".join(METRICS) + "." in text


def test_report_shows_progress_and_survives_a_corrupt_eval_json(trained, capsys):
    (trained / "eval.json").write_text("[]")
    assert main(["report", str(trained), "--num-samples", "64", "--samples-per-cell", "1"]) == 0
    captured = capsys.readouterr()
    assert "encoding" in captured.err and "drawing" in captured.err
    assert "nsvae: warning: corrupt" in captured.err and "shows no metrics" in captured.err
    assert captured.out.strip() == str(trained / "report.html")


def test_an_exported_run_scores_as_the_run_and_cannot_be_resumed(trained, tmp_path, capsys):
    assert main(["evaluate", str(trained), "--metrics", "mig"]) == 0
    capsys.readouterr()
    out = tmp_path / "exported"
    assert main(["export", str(trained), str(trained)]) == 4
    assert "not into itself" in one_error_line(capsys)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main(["export", str(trained), str(tmp_path / "taken")]) == 4
    assert "exists and is not empty" in one_error_line(capsys)
    assert main(["export", str(trained), str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"written: {out / 'model.safetensors'}")
    kept = {"config.json", "eval.json", "figures", "metrics.jsonl", "report.html"}
    assert {p.name for p in out.iterdir()} == {
        p.name for p in trained.iterdir() if p.name in kept
    } | {"model.safetensors"}
    capsys.readouterr()
    original, exported = load_run(trained), load_run(out)
    assert exported.step == original.step
    for name, value in original.model.state_dict().items():
        assert torch.equal(exported.model.state_dict()[name], value), name
    scores = [
        evaluate_run(path, metrics="mig,unsupervised", save=False)["metrics"]
        for path in (trained, out)
    ]
    assert scores[0] == scores[1]

    assert main(["report", str(out), "--num-samples", "64"]) == 0  # figures from the weights
    assert (out / "report.html").is_file()
    capsys.readouterr()

    assert main(["train", "--resume", str(out), "--no-progress"]) == 4
    assert "is an exported model" in one_error_line(capsys)
    assert (out / "metrics.jsonl").read_bytes() == (trained / "metrics.jsonl").read_bytes()
    (out / "model.safetensors").write_bytes(b"not safetensors")
    assert main(["evaluate", str(out), "--metrics", "mig"]) == 4
    assert "corrupt weights file" in one_error_line(capsys)


def test_a_file_in_the_way_of_a_cache_folder_is_one_line_naming_the_cache(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert main(["data", "render", "dsprites", "--data-root", str(tmp_path / "afile")]) == 3
    assert re.fullmatch(
        rf"nsvae: error: cannot write .*{tmp_path}/afile/dsprites/\S+: Not a "
        r"directory\n",
        capsys.readouterr().err,
    )
