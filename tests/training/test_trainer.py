"""The trainer: run directory, checkpoints, exact resume, signals, NaN guard, evaluation hook.

Every test trains a small VAE for a few steps on 64 images of an 8x8 square at 8 x 8 positions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import threading
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from conftest import terminate_after_first_row
from helpers import nsvae_command

import nsvae.experiment
import nsvae.precision
import nsvae.training.trainer as trainer
from nsvae.config import Config
from nsvae.data import ArrayGroundTruthData
from nsvae.errors import CheckpointError, ConfigError, NsvaeWarning, RunLockedError, TrainingError
from nsvae.experiment import train_run
from nsvae.files import atomic_write, file_lock
from nsvae.rundir.checkpoint import list_checkpoints, load_checkpoint
from nsvae.rundir.run import run_lock, trained_on
from nsvae.training import Run, TrainingInterrupted, load_run, train


def tiny_config(**train) -> Config:
    """Non-Syn on an independent selection batch with epsilon-greedy: every RNG stream is used."""
    settings = {
        "steps": 8,
        "batch_size": 8,
        "log_every": 2,
        "checkpoint_every": 4,
        "keep_checkpoints": 2,
        "threads": 1,
        "device": "cpu",
        "figures": False,
        **train,
    }
    return Config().updated(
        {
            "model": {"z_dim": 4},
            "objective": {
                "name": "nonsyn",
                "policy": "epsilon-greedy",
                "epsilon": 0.5,
                "selection_batch": "independent",
            },
            "train": settings,
        }
    )


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    pa, pb = parameters(a), parameters(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert torch.equal(pa[key], pb[key]), key


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("time", "steps_per_s")} for row in rows]


def files(folder) -> list[str]:
    """Names in ``folder`` but its lock file (``.lock``, left empty of meaning once released)."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".lock")


def test_run_directory_and_round_trip(tmp_path, squares):
    config = tiny_config(figures=True)
    run = train_run(config, tmp_path / "run", data=squares)

    assert run.step == 8 and not run.model.training
    board = ["tensorboard"] if importlib.util.find_spec("tensorboard") else []
    assert files(run.path) == ["checkpoints", "config.json", "figures", "metrics.jsonl", *board]
    assert files(run.path / "figures") == ["reconstructions.png", "traversals.png"]
    stored = json.loads((run.path / "config.json").read_text())
    assert stored["config"] == config.to_dict()
    assert stored["observation_shape"] == [1, 64, 64]
    assert {"nsvae", "torch", "numpy", "python", "platform", "cpu"} <= set(stored["versions"])
    assert stored["starts"] == [{"step": 0, "versions": stored["versions"]}]

    rows = run.metrics()
    assert [row["step"] for row in rows] == [2, 4, 6, 8]
    for row in rows:
        assert {
            "step",
            "time",
            "loss",
            "recon",
            "kl",
            "kl_per_latent",
            "steps_per_s",
            "synergy",
            "a_best_size",
            "a_best_freq",
        } <= row.keys()
        assert len(row["kl_per_latent"]) == len(row["a_best_freq"]) == 4
        assert all(0 <= f <= 1 for f in row["a_best_freq"])
        assert math.isclose(row["kl"], sum(row["kl_per_latent"]), rel_tol=1e-5, abs_tol=1e-6)
        assert math.isclose(row["a_best_size"], sum(row["a_best_freq"]), rel_tol=1e-5)
        assert row["steps_per_s"] > 0

    loaded = load_run(run.path)
    assert isinstance(loaded, Run) and loaded.step == 8 and not loaded.model.training
    assert loaded.config == config
    assert_same_parameters(loaded.model, run.model)
    assert loaded.metrics() == rows


def test_checkpoint_holds_model_optimizer_rng_and_sampler(tmp_path, squares):
    run = train(tiny_config(steps=4), tmp_path / "run", data=squares)
    tensors, state = load_checkpoint(list_checkpoints(run.path / "checkpoints")[-1])
    assert state["step"] == 4 and state["elapsed"] > 0
    assert {"torch", "numpy", "python"} <= state["rng"].keys()
    assert "generator" in state["sampler"]
    assert state["optimizer"]["param_groups"][0]["lr"] == 5e-4
    model_keys = {k for k in tensors if k.startswith("model.")}
    assert model_keys == {f"model.{k}" for k in run.model.state_dict()}
    assert any(k.endswith(".exp_avg_sq") for k in tensors)
    for key in model_keys:
        assert torch.equal(tensors[key], run.model.state_dict()[key.removeprefix("model.")])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_is_bit_identical(tmp_path, squares, precision):
    whole = train(tiny_config(steps=8, precision=precision), tmp_path / "whole", data=squares)
    train(tiny_config(steps=4, precision=precision), tmp_path / "split", data=squares)
    resumed = train(
        tiny_config(steps=8, precision=precision), tmp_path / "split", data=squares, resume=True
    )

    assert resumed.step == 8
    assert_same_parameters(whole.model, resumed.model)
    assert without_timing(resumed.metrics()) == without_timing(whole.metrics())


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_trains_and_records_what_the_device_runs_fastest(
    tmp_path, squares, monkeypatch, native
):
    monkeypatch.setattr(nsvae.precision, "native_bf16", lambda device: native)
    run = train(tiny_config(steps=2, precision="auto"), tmp_path / "run", data=squares)
    expected = "bf16" if native else "fp32"
    assert run.config.train.precision == expected
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["config"]["train"]["precision"] == expected
    same = train(tiny_config(steps=2, precision=expected), tmp_path / "same", data=squares)
    assert_same_parameters(run.model, same.model)


def test_auto_precision_resumes_at_the_runs_own_precision_on_any_cpu(
    tmp_path, squares, monkeypatch
):
    whole = train(tiny_config(steps=8, precision="bf16"), tmp_path / "whole", data=squares)
    monkeypatch.setattr(nsvae.precision, "native_bf16", lambda device: True)
    train(tiny_config(steps=4, precision="auto"), tmp_path / "split", data=squares)
    monkeypatch.setattr(nsvae.precision, "native_bf16", lambda device: False)  # another CPU
    resumed = train(
        tiny_config(steps=8, precision="auto"), tmp_path / "split", data=squares, resume=True
    )
    assert resumed.config.train.precision == "bf16"
    stored = json.loads((tmp_path / "split" / "config.json").read_text())
    assert stored["config"]["train"]["precision"] == "bf16"
    assert_same_parameters(whole.model, resumed.model)


def test_evaluations_during_training_encode_at_the_precision_that_trains(
    tmp_path, squares, monkeypatch
):
    seen = []

    def evaluate_model(*args, precision, **kwargs):
        seen.append(precision)
        return {"metrics": {}}

    monkeypatch.setattr(nsvae.experiment, "evaluate_model", evaluate_model)
    train_run(tiny_config(steps=2, precision="bf16"), tmp_path / "run", data=squares)
    monkeypatch.setattr(nsvae.precision, "native_bf16", lambda device: False)  # another CPU
    resumed = tiny_config(steps=4, precision="auto", eval_every=2, eval_metrics="mig")
    train_run(resumed, tmp_path / "run", data=squares, resume=True)
    assert seen == ["bf16"]


def test_resume_without_config_uses_the_stored_one(tmp_path, squares):
    train(tiny_config(steps=4), tmp_path / "run", data=squares)
    again = train(None, tmp_path / "run", data=squares, resume=True)
    assert again.step == 4 and again.config == tiny_config(steps=4)


def test_resume_refuses_a_change_of_objective(tmp_path, squares):
    train(tiny_config(steps=2), tmp_path / "run", data=squares)
    changed = tiny_config(steps=4).updated({"objective": {"alpha": 1.0}})
    with pytest.raises(ConfigError, match="cannot change objective.alpha"):
        train(changed, tmp_path / "run", data=squares, resume=True)


def test_fresh_run_refuses_a_used_directory(tmp_path, squares):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "something").write_text("x")
    with pytest.raises(CheckpointError, match="not empty"):
        train(tiny_config(), tmp_path / "run", data=squares)


def test_keeps_the_last_k_checkpoints(tmp_path, squares):
    run = train(
        tiny_config(steps=10, checkpoint_every=2, keep_checkpoints=2),
        tmp_path / "run",
        data=squares,
    )
    assert files(run.path / "checkpoints") == [
        "step-00000008.json",
        "step-00000008.safetensors",
        "step-00000010.json",
        "step-00000010.safetensors",
    ]


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    atomic_write(target, b"old")

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(CheckpointError, match="No space left"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert files(tmp_path) == ["state.json"]


def test_unfinished_checkpoint_is_ignored_and_removed(tmp_path, squares):
    run = train(tiny_config(steps=4), tmp_path / "run", data=squares)
    folder = run.path / "checkpoints"
    (folder / "step-00000006.safetensors").write_bytes(b"half written")  # no JSON: not committed
    (folder / "step-00000006.json.tmp").write_bytes(b"{")
    assert load_run(run.path).step == 4
    train(tiny_config(steps=8), run.path, data=squares, resume=True)
    assert files(folder) == [
        "step-00000004.json",
        "step-00000004.safetensors",
        "step-00000008.json",
        "step-00000008.safetensors",
    ]


def test_corrupt_or_missing_run_gives_checkpoint_error(tmp_path, squares):
    with pytest.raises(CheckpointError, match="not a run directory"):
        load_run(tmp_path / "nowhere")
    run = train(tiny_config(steps=2, checkpoint_every=2), tmp_path / "run", data=squares)
    weights = run.path / "checkpoints" / "step-00000002.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_run(run.path)
    (run.path / "checkpoints" / "step-00000002.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        load_run(run.path)
    (run.path / "config.json").write_text('{"config": {"model": {"z_dim": "ten"}}}')
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(run.path)


def assert_resumes_as_if_uninterrupted(config: Config, tmp_path: Path, squares) -> None:
    """Resuming ``tmp_path/split`` ends with the parameters and metrics of one uninterrupted
    run (``tmp_path/whole``)."""
    resumed = train(config, tmp_path / "split", data=squares, resume=True)
    whole = train(config, tmp_path / "whole", data=squares)
    assert_same_parameters(whole.model, resumed.model)
    assert without_timing(resumed.metrics()) == without_timing(whole.metrics())


def with_loss_hook(monkeypatch, hook):
    """Make the trainer's objective call ``hook(step, loss)`` and use what it returns."""
    build = trainer.build_objective

    def build_hooked(*args, **kwargs):
        objective = build(*args, **kwargs)
        terms_of = objective.terms

        def terms(model, batches, step):
            parts, logs = terms_of(model, batches, step)
            parts[0].loss = hook(step, parts[0].loss)
            return parts, logs

        objective.terms = terms
        return objective

    monkeypatch.setattr(trainer, "build_objective", build_hooked)


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(
    tmp_path, squares, monkeypatch
):
    with_loss_hook(monkeypatch, lambda step, loss: loss * math.nan if step == 5 else loss)
    config = tiny_config(steps=12, log_every=4, checkpoint_every=2, keep_checkpoints=5)
    with pytest.raises(TrainingError) as error:
        train(config, tmp_path / "run", data=squares)
    message = str(error.value)
    assert "\n" not in message
    assert "at step 6" in message and "step-00000004" in message
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == [
        "step-00000002.json",
        "step-00000004.json",
    ]
    good = load_run(tmp_path / "run")
    assert good.step == 4
    assert all(torch.isfinite(p).all() for p in good.model.parameters())
    assert [row["step"] for row in good.metrics()] == [4]


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers need the main thread",
)
def test_sigterm_saves_a_checkpoint_that_resumes_exactly(tmp_path, squares, monkeypatch):
    def terminate_at_step_4(step, loss):
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss

    with_loss_hook(monkeypatch, terminate_at_step_4)
    config = tiny_config(steps=9, log_every=3)
    before = signal.getsignal(signal.SIGTERM)  # the default, or what an earlier test left (Ray)
    with pytest.raises(TrainingInterrupted, match="SIGTERM at step 5") as error:
        train(config, tmp_path / "split", data=squares)
    assert error.value.exit_code == 143  # 128 + SIGTERM, the shell convention
    assert load_run(tmp_path / "split").step == 5
    monkeypatch.undo()
    assert_resumes_as_if_uninterrupted(config, tmp_path, squares)
    assert signal.getsignal(signal.SIGTERM) is before  # training puts the handler back


def test_a_stop_file_stops_training_in_a_thread_with_a_checkpoint_that_resumes_exactly(
    tmp_path, squares, monkeypatch
):
    """As in a Ray worker: training in a thread (no signal handlers) stops when the file appears
    and checkpoints that step, which is not a multiple of checkpoint_every."""
    stop_file = tmp_path / ".stop"

    def ask_at_step_4(step, loss):
        if step == 4:
            stop_file.touch()
        return loss

    with_loss_hook(monkeypatch, ask_at_step_4)
    from nsvae.training.trainer import _StopRequests

    monkeypatch.setattr(_StopRequests, "FILE_CHECK_SECONDS", 0.0)
    config = tiny_config(steps=9, log_every=3, checkpoint_every=100)
    outcome = {}

    def in_a_thread():
        try:
            train(config, tmp_path / "split", data=squares, stop_file=stop_file)
        except TrainingInterrupted as error:
            outcome["error"] = error

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join()
    error = outcome["error"]
    assert str(error) == (
        f"interrupted by a stop request ({stop_file}) at step 5; checkpoint "
        f"saved, continue with: nsvae train --resume {tmp_path / 'split'}"
    )
    assert (error.exit_code, error.step) == (130, 5)
    assert load_run(tmp_path / "split").step == 5
    monkeypatch.undo()
    assert_resumes_as_if_uninterrupted(config, tmp_path, squares)


@pytest.mark.slow
def test_sigterm_in_a_real_process(tmp_path, squares_npz):
    """``nsvae train`` gets SIGTERM after its first metrics row: exit 143, one line, resumable."""
    run = tmp_path / "run"
    command = nsvae_command(
        "train",
        "--data",
        "array",
        "--data-path",
        squares_npz,
        "--steps",
        "100000",
        "--batch-size",
        "8",
        "--z-dim",
        "4",
        "--log-every",
        "1",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--no-figures",
        "--no-progress",
        "--run-dir",
        run,
    )
    code, stdout, stderr = terminate_after_first_row(command, run / "metrics.jsonl")
    assert code == 143, stderr
    assert stdout == f"run: {run}\n"
    assert stderr.startswith("nsvae: error: interrupted by SIGTERM at step ")
    assert stderr.count("\n") == 1
    interrupted = load_run(run)
    assert interrupted.step >= 1
    longer = interrupted.config.updated({"train": {"steps": interrupted.step + 2}})
    assert train(longer, run, resume=True).step == interrupted.step + 2  # data from config


def test_eval_every_appends_eval_rows_without_touching_training(tmp_path, squares):
    calls = []

    def on_eval(model, step):
        calls.append((step, model.training))
        torch.randn(100)  # consuming the global generator must not change training
        np.random.rand(3)  # noqa: NPY002
        return {"fake": {"score": np.float64(0.5)}}

    with_eval = train(
        tiny_config(eval_every=4, seed=3), tmp_path / "eval", data=squares, on_eval=on_eval
    )
    plain = train(tiny_config(seed=3), tmp_path / "plain", data=squares)

    assert calls == [(4, False), (8, False)]
    eval_rows = [row for row in with_eval.metrics() if "eval" in row]
    assert eval_rows == [
        {"step": 4, "eval": {"fake": {"score": 0.5}}},
        {"step": 8, "eval": {"fake": {"score": 0.5}}},
    ]
    assert_same_parameters(with_eval.model, plain.model)


def test_rows_are_mirrored_to_tensorboard_when_it_is_installed(tmp_path, squares, monkeypatch):
    written = []

    class SummaryWriter:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            written.append((tag, step))

        def close(self):
            written.append("closed")

    monkeypatch.setitem(
        sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=SummaryWriter)
    )
    train(tiny_config(steps=2), tmp_path / "run", data=squares)
    assert {("loss", 2), ("synergy", 2), ("kl_per_latent/3", 2), ("a_best_freq/0", 2)} <= set(
        written
    )
    assert written[-1] == "closed"


def test_tensorboard_takes_nested_evaluation_rows(tmp_path, monkeypatch):
    """Evaluation rows hold matrices, per-factor lists and text: numbers become tag paths."""
    from nsvae.training.logs import TensorBoard

    written = {}

    class SummaryWriter:
        def __init__(self, log_dir):
            pass

        def add_scalar(self, tag, value, step):
            assert isinstance(value, int | float)
            written[tag] = (value, step)

    monkeypatch.setitem(
        sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=SummaryWriter)
    )
    board = TensorBoard(tmp_path)
    board.write(
        {
            "step": 7,
            "eval": {
                "mig": {
                    "discrete_mig": 0.2,
                    "normalized_mi": [[0.5, 0.1], [0.0, 0.9]],
                    "captured_by": [0, -1],
                },
                "note": "text",
                "missing": None,
            },
        }
    )
    assert written == {
        "eval/mig/discrete_mig": (0.2, 7),
        "eval/mig/normalized_mi/0/0": (0.5, 7),
        "eval/mig/normalized_mi/0/1": (0.1, 7),
        "eval/mig/normalized_mi/1/0": (0.0, 7),
        "eval/mig/normalized_mi/1/1": (0.9, 7),
        "eval/mig/captured_by/0": (0, 7),
        "eval/mig/captured_by/1": (-1, 7),
    }


# ------------------------------------------------------------------ reliability (issue 15)


def test_a_run_with_nan_at_step_2_starts_over_fresh_or_resumed(tmp_path, squares, monkeypatch):
    """Issue 15, item 3: no checkpoint yet (NaN at step 2, or killed) is not a stuck run."""
    with_loss_hook(monkeypatch, lambda step, loss: loss * math.nan if step == 1 else loss)
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(tiny_config(), tmp_path / "run", data=squares)
    assert list_checkpoints(tmp_path / "run" / "checkpoints") == []
    monkeypatch.undo()
    for resume in (False, True):
        with pytest.warns(NsvaeWarning, match="no checkpoint .* starting it over"):
            run = train(
                tiny_config(steps=2, checkpoint_every=1000),
                tmp_path / "run",
                data=squares,
                resume=resume,
            )
        assert run.step == 2 and [row["step"] for row in run.metrics()] == [2]
        for path in list_checkpoints(run.path / "checkpoints"):  # stuck again, for the resume
            path.unlink()


def test_a_resume_records_its_start_and_warns_when_the_cpu_or_code_changed(
    tmp_path, squares, monkeypatch
):
    import nsvae.rundir.run as run_module

    run = train(tiny_config(steps=2), tmp_path / "run", data=squares)
    first = json.loads((run.path / "config.json").read_text())["versions"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_config(steps=4), run.path, data=squares, resume=True)
    assert not [w for w in caught if "resumes with" in str(w.message)]  # same CPU and code
    elsewhere = first | {"cpu": "Other CPU; ISA: avx2", "nsvae_commit": "0123456789ab"}
    monkeypatch.setattr(run_module, "versions", lambda: elsewhere)
    with pytest.warns(NsvaeWarning, match="resumes with another cpu, nsvae_commit .*trajectory"):
        train(tiny_config(steps=6), run.path, data=squares, resume=True)
    stored = json.loads((run.path / "config.json").read_text())
    assert [start["step"] for start in stored["starts"]] == [0, 2, 4]
    assert [start["versions"] for start in stored["starts"]] == [first, first, elsewhere]
    assert stored["versions"] == elsewhere
    commits = [first.get("nsvae_commit"), "0123456789ab"]  # none outside a git checkout
    assert trained_on(run.path) == {
        "cpu": f"{first['cpu']} + Other CPU; ISA: avx2",
        "nsvae_commit": " + ".join(commit for commit in commits if commit),
    }


def test_a_run_written_before_starts_were_recorded_resumes_with_its_versions_kept(
    tmp_path, squares
):
    run = train(tiny_config(steps=2), tmp_path / "run", data=squares)
    stored = json.loads((run.path / "config.json").read_text())
    old = {key: value for key, value in stored.items() if key != "starts"}
    old["versions"] = {"nsvae": "0.1.0", "torch": stored["versions"]["torch"]}
    (run.path / "config.json").write_text(json.dumps(old))
    train(tiny_config(steps=4), run.path, data=squares, resume=True)
    starts = json.loads((run.path / "config.json").read_text())["starts"]
    assert starts[0] == {"step": None, "versions": old["versions"]}
    assert starts[1]["step"] == 2
    (run.path / "config.json").write_text(json.dumps(old))  # as an earlier nsvae wrote it
    assert trained_on(run.path) == {"cpu": None, "nsvae_commit": None}


def test_a_run_directory_trained_by_another_process_is_refused(tmp_path, squares):
    """Issue 15, item 2: the lock, held here as another trainer holds it."""
    run = train(tiny_config(steps=4), tmp_path / "run", data=squares)
    before = (run.path / "config.json").read_bytes()
    with run_lock(run.path):
        with pytest.raises(
            RunLockedError,
            match=f"{run.path} is in use by another nsvae process \\(pid {os.getpid()}\\)",
        ):
            train(tiny_config(steps=8), run.path, data=squares, resume=True)
        with pytest.raises(RunLockedError):
            train(tiny_config(steps=8), run.path, data=squares)
    assert (run.path / "config.json").read_bytes() == before
    assert train(tiny_config(steps=8), run.path, data=squares, resume=True).step == 8


def test_readers_wait_while_a_checkpoint_is_written(tmp_path, squares):
    """Issue 15, items 2 and 8: load_run takes the checkpoint lock that writers hold."""
    run = train(tiny_config(steps=4), tmp_path / "run", data=squares)
    loaded = []
    with file_lock(run.path / "checkpoints" / ".lock"):
        reader = threading.Thread(target=lambda: loaded.append(load_run(run.path).step))
        reader.start()
        reader.join(0.5)
        assert reader.is_alive() and not loaded  # blocked while the "writer" holds the lock
    reader.join(30)
    assert loaded == [4]


def test_a_corrupt_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, squares):
    """Issue 15, items 5 and 8: NaN weights (checksum intact) and a torn file both fall back."""
    run = train(
        tiny_config(steps=8, checkpoint_every=2, keep_checkpoints=3), tmp_path / "run", data=squares
    )
    folder = run.path / "checkpoints"
    tensors, state = load_checkpoint(folder / "step-00000008.json")
    tensors = {k: v.fill_(math.nan) if k.startswith("model.") else v for k, v in tensors.items()}
    blob = safetensors.torch.save(tensors)
    (folder / "step-00000008.safetensors").write_bytes(blob)
    state["sha256"] = hashlib.sha256(blob).hexdigest()
    (folder / "step-00000008.json").write_text(json.dumps(state))
    (folder / "step-00000006.safetensors").write_bytes(b"torn")
    with pytest.warns(NsvaeWarning, match="NaN or infinite.*newest intact checkpoint, step 4"):
        assert load_run(run.path).step == 4
    with pytest.warns(NsvaeWarning):
        assert (
            train(
                tiny_config(steps=10, checkpoint_every=2, keep_checkpoints=3),
                run.path,
                data=squares,
                resume=True,
            ).step
            == 10
        )
    for path in list_checkpoints(folder)[:-1]:
        path.unlink()
    (folder / "step-00000010.safetensors").write_bytes(b"torn")
    with pytest.raises(CheckpointError, match="no intact checkpoint"):
        load_run(run.path)


@pytest.mark.parametrize("elapsed", ["garbage", -1.0, None, True])
def test_a_corrupt_elapsed_time_in_a_checkpoint_is_a_checkpoint_error(elapsed, tmp_path, squares):
    config = tiny_config(steps=2, checkpoint_every=2)
    run = train(config, tmp_path / "run", data=squares)
    state_path = run.path / "checkpoints" / "step-00000002.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "elapsed": elapsed}))
    with pytest.raises(CheckpointError, match="elapsed time is corrupt"):
        train(tiny_config(steps=4, checkpoint_every=2), run.path, data=squares, resume=True)


def test_a_corrupt_metrics_line_is_skipped_with_a_warning(tmp_path, squares):
    """Issue 15, item 8: one bad line in metrics.jsonl no longer blocks resume."""
    run = train(tiny_config(steps=4), tmp_path / "run", data=squares)
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    (run.path / "metrics.jsonl").write_text("\n".join([lines[0], "{garbage", *lines[1:]]) + "\n")
    with pytest.warns(NsvaeWarning, match="skipped 1 corrupt line"):
        resumed = train(tiny_config(steps=8), run.path, data=squares, resume=True)
    assert [row["step"] for row in resumed.metrics()] == [2, 4, 6, 8]


def test_resume_refuses_other_data_and_fewer_steps_without_rewriting_config(tmp_path, squares):
    """Issue 15, item 7."""
    run = train(tiny_config(steps=4), tmp_path / "run", data=squares)
    before = (run.path / "config.json").read_bytes()
    regridded = ArrayGroundTruthData(squares.observations, [4, 16], ["a", "b"])
    with pytest.raises(ConfigError, match="other data: it was trained on factor grid"):
        train(tiny_config(steps=8), run.path, data=regridded, resume=True)
    with pytest.raises(ConfigError, match="train.steps 2 is below the step 4"):
        train(tiny_config(steps=2), run.path, data=squares, resume=True)
    assert (run.path / "config.json").read_bytes() == before
    assert train(tiny_config(steps=6), run.path, data=squares, resume=True).step == 6


def test_progress_without_a_terminal_writes_lines_not_a_bar(tmp_path, squares, capsys):
    """Issue 15, item 8: stderr is not a TTY under capsys."""
    train(tiny_config(steps=4), tmp_path / "run", data=squares, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and "step 4/4 loss=" in err


def test_collapsed_model_warns(tmp_path):
    """Issue 15, item 8: every latent below 0.01 nats at the last logged row."""
    run = Run(tmp_path, tiny_config(), None, 2)
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 2, "kl_per_latent": [0.3, 0.0]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.warn_if_collapsed()  # one latent is alive
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 2, "kl_per_latent": [0.001, 0]}))
    with pytest.warns(NsvaeWarning, match="every latent of .* has collapsed"):
        run.warn_if_collapsed()


@pytest.mark.slow
def test_two_trainers_on_one_run_directory(tmp_path, squares_npz, capsys, source_env):
    """Issue 15, item 2: a second trainer (fresh or --resume) is refused in one line while the
    first trains in another process; the first's run stays intact and resumable."""
    from nsvae.cli import main

    run = tmp_path / "run"
    flags = [
        "--data",
        "array",
        "--data-path",
        str(squares_npz),
        "--batch-size",
        "8",
        "--z-dim",
        "4",
        "--log-every",
        "1",
        "--checkpoint-every",
        "5",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--no-figures",
        "--no-progress",
    ]
    first = subprocess.Popen(
        nsvae_command("train", *flags, "--steps", "100000", "--run-dir", run),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=source_env,
    )
    try:
        for _ in range(600):
            if first.poll() is not None or list_checkpoints(run / "checkpoints"):
                break
            threading.Event().wait(0.1)
        for second in (["--resume", str(run)], [*flags, "--steps", "9", "--run-dir", str(run)]):
            assert main(["train", *second]) == 7
            err = capsys.readouterr().err
            assert err == (
                f"nsvae: error: {run} is in use by another nsvae process "
                f"(pid {first.pid}); wait for it to finish or choose another run "
                "directory\n"
            )
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 143, stderr
    stopped = load_run(run)
    steps = [row["step"] for row in stopped.metrics()]
    assert steps == list(range(1, len(steps) + 1))  # no interleaved rows
    assert main(["train", "--resume", str(run), "--steps", str(stopped.step + 2)]) == 0
    assert load_run(run).step == stopped.step + 2
