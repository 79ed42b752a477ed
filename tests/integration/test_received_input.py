"""Received folders are untrusted input (issue 28): failures that gave exit 70 or loaded silently.

Each test failed before its fix: a ``{`` in a path broke the "in use" message, a JSON integer
past Python's digit limit escaped every JSON reader's fallback, and an exported tensor of
another dtype was cast into the model without a word.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import safetensors.torch
import torch

from nsvae.cli import main
from nsvae.config import ModelConfig
from nsvae.data.images import preprocess
from nsvae.errors import CheckpointError, DataError, NsvaeWarning, RunLockedError
from nsvae.files import file_lock, read_json, read_rows
from nsvae.models import build_model
from nsvae.rundir.checkpoint import (
    load_checkpoint,
    load_latest,
    load_module,
    load_weights,
    save_weights,
)
from nsvae.rundir.run import run_lock

HUGE = "1" * 5000  # past sys.get_int_max_str_digits(): json raises a plain ValueError


def test_the_in_use_message_of_a_folder_whose_name_has_braces_names_it_and_its_holder(tmp_path):
    run_dir = tmp_path / "run {x} {pid}"  # braces, and the very field the message fills
    run_dir.mkdir()
    with run_lock(run_dir), pytest.raises(RunLockedError) as error, run_lock(run_dir):
        pass
    message = str(error.value)
    assert message.startswith(f"{run_dir} is in use by another nsvae process (pid {os.getpid()})")


def test_a_lock_held_elsewhere_is_named_with_its_braces_and_holder(tmp_path):
    path = tmp_path / "{a}.lock"
    with (
        file_lock(path),
        pytest.raises(RunLockedError) as error,
        file_lock(path, wait=False, busy=lambda pid: f"{path} is busy ({pid})"),
    ):
        pass
    assert str(error.value) == f"{path} is busy ({os.getpid()})"


@pytest.mark.parametrize(
    "reader, text, message",
    [
        (read_json, f'{{"steps": {HUGE}}}', "cannot read"),
        (load_checkpoint, f'{{"format": 1, "step": {HUGE}}}', "corrupt checkpoint"),
    ],
)
def test_a_json_file_with_an_integer_past_the_digit_limit_is_corrupt_input(
    tmp_path, reader, text, message
):
    path = tmp_path / "step-00000004.json"
    path.write_text(text)
    with pytest.raises(CheckpointError, match=message):
        reader(path)


def test_a_jsonl_line_with_an_integer_past_the_digit_limit_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(f'{{"step": 1}}\n{{"step": {HUGE}}}\n{{"step": 3}}\n')
    with pytest.warns(NsvaeWarning, match="line 2"):
        rows = read_rows(path)
    assert [row["step"] for row in rows] == [1, 3]


def test_exported_weights_of_another_dtype_are_refused_not_cast(tmp_path):
    model = build_model(ModelConfig(arch="dlib", z_dim=3))
    path = tmp_path / "model.safetensors"
    save_weights(path, model, step=10)
    tensors, metadata = safetensors.torch.load_file(path), None
    with safetensors.safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    tensors["encoder.0.weight"] = tensors["encoder.0.weight"].to(torch.int32)
    safetensors.torch.save_file(tensors, path, metadata=metadata)
    weights, _ = load_weights(path)
    with pytest.raises(
        CheckpointError,
        match=r"encoder\.0\.weight is torch\.int32, the model's "
        r"is torch\.float32",
    ):
        load_module(build_model(ModelConfig(arch="dlib", z_dim=3)), weights)


TINY = [
    "--data",
    "array",
    "--steps",
    "2",
    "--batch-size",
    "8",
    "--z-dim",
    "3",
    "--log-every",
    "1",
    "--checkpoint-every",
    "2",
    "--threads",
    "1",
    "--device",
    "cpu",
    "--no-progress",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, squares_npz):
    """A tiny run with figures, trained through the command line."""
    run = tmp_path_factory.mktemp("received") / "run"
    assert main(["train", *TINY, "--data-path", str(squares_npz), "--run-dir", str(run)]) == 0
    return run


def test_export_into_a_folder_inside_the_run_is_refused_at_once(trained, capsys):
    assert main(["export", str(trained), str(trained / "figures" / "out")]) == 4
    err = capsys.readouterr().err
    assert "into a folder outside it" in err and err.count("\n") == 1
    assert not (trained / "figures" / "out").exists()


def test_export_refuses_a_symbolic_link_instead_of_copying_its_target(trained, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("the sharer's private file")
    link = trained / "figures" / "planted.png"
    link.symlink_to(secret)
    try:
        assert main(["export", str(trained), str(tmp_path / "out")]) == 4
    finally:
        link.unlink()
    err = capsys.readouterr().err
    assert f"{link} is a symbolic link" in err and err.count("\n") == 1
    assert not any(
        p.read_bytes() == secret.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()
    )


@pytest.mark.parametrize("exclusive", [True, False])
def test_a_lock_name_planted_as_a_link_to_the_users_file_is_refused_not_written(
    tmp_path, exclusive
):
    victim = tmp_path / "thesis.tex"
    victim.write_text("years of work")
    lock = tmp_path / "run" / ".eval.lock"
    lock.parent.mkdir()
    lock.symlink_to(victim)
    with pytest.raises(CheckpointError, match="not a regular file"), file_lock(lock, exclusive):
        pass
    assert victim.read_text() == "years of work"


def test_a_lock_name_planted_as_a_fifo_is_refused_at_once(tmp_path):
    lock = tmp_path / ".lock"
    os.mkfifo(lock)
    with pytest.raises(CheckpointError, match="not a regular file"), file_lock(lock):
        pass


def test_evaluate_on_a_received_run_with_a_planted_lock_link_exits_4_and_writes_nothing(
    trained, tmp_path, capsys
):
    victim = tmp_path / "notes.txt"
    victim.write_text("mine")
    lock = trained / ".eval.lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(victim)
    try:
        assert main(["evaluate", str(trained), "--metrics", "mig"]) == 4
    finally:
        lock.unlink()
    errors = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("nsvae: error:")
    ]
    assert len(errors) == 1 and "not a regular file" in errors[0]
    assert victim.read_text() == "mine"


@pytest.mark.parametrize("plant", ["fifo", "device", "folder"])
def test_a_planted_newest_checkpoint_is_skipped_for_the_newest_intact_one(trained, plant):
    checkpoints = trained / "checkpoints"
    newest = checkpoints / "step-00000099.json"
    if plant == "fifo":
        os.mkfifo(newest)
    elif plant == "device":
        newest.symlink_to("/dev/zero")
    else:
        newest.mkdir()
    try:
        with pytest.warns(NsvaeWarning, match="not a regular file|Is a directory"):
            _, state = load_latest(trained)
    finally:
        newest.rmdir() if plant == "folder" else newest.unlink()
    assert state["step"] == 2


def test_a_json_file_that_is_a_device_is_refused_at_once(tmp_path):
    planted = tmp_path / "config.json"
    planted.symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_json(planted)


def test_report_replaces_figures_planted_as_links_instead_of_writing_through_them(
    trained, tmp_path
):
    victims = {}
    for name in ("training_curves.png", "traversals.gif"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("the user's file")
        planted = trained / "figures" / name
        planted.unlink(missing_ok=True)
        planted.symlink_to(victim)
        victims[planted] = victim
    assert main(["report", str(trained), "--num-samples", "64", "--samples-per-cell", "1"]) == 0
    for planted, victim in victims.items():
        assert victim.read_text() == "the user's file"
        assert not planted.is_symlink() and planted.stat().st_size > 0


def image_bytes(image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def test_an_image_file_of_an_undocumented_format_is_not_decoded_whatever_its_name():
    from PIL import Image

    bmp = image_bytes(Image.new("RGB", (80, 80), (200, 10, 10)), "BMP")  # named .jpg by a sender
    with pytest.raises(DataError, match="not an image"):
        preprocess(bmp)
    assert preprocess(image_bytes(Image.new("RGB", (80, 80)), "PNG")).shape == (3, 64, 64)


def test_an_image_over_the_pixel_cap_is_refused_from_its_header_before_decoding():
    from PIL import Image

    huge = image_bytes(Image.new("1", (6000, 6000)), "PNG")  # 36 megapixels in a few kB
    assert len(huge) < 100_000
    with pytest.raises(DataError, match="6000 x 6000 pixels, over 33,554,432: not decoded"):
        preprocess(huge)


def test_a_swept_data_path_resolves_against_the_study_file_as_a_base_one_does(
    tmp_path, monkeypatch
):
    from nsvae.sweep.study import load_study

    folder = tmp_path / "studies"
    folder.mkdir()
    study = folder / "paths.toml"
    study.write_text(
        '[base.data]\nname = "array"\npath = "base.npz"\n'
        '[[grid]]\n"data.path" = ["swept.npz"]\n"objective.alpha" = [1.0]\n'
    )
    monkeypatch.chdir(tmp_path)  # a worker elsewhere must read the same files
    trial = load_study(study).trials[0]
    assert trial.config.data.path == str(folder / "swept.npz")
    assert trial.name == "path=swept.npz-alpha=1-seed=0"  # the name keeps the value as written


@pytest.mark.parametrize(
    "shape, sizes, message",
    [
        ((50_000, 64, 63), [50_000], "observations has shape"),
        ((50_000, 64, 64), [7, 7], "expected 49 observations"),
    ],
)
def test_an_npz_is_refused_from_its_headers_before_its_observations_are_inflated(
    tmp_path, shape, sizes, message
):
    import tracemalloc

    import numpy as np

    from nsvae.data import get_dataset

    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, observations=np.zeros(shape, np.uint8), factor_sizes=np.array(sizes))
    assert path.stat().st_size < 2**20  # about 200 MB of zeros, inflated
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=message):
            get_dataset("array", path=path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


@pytest.mark.slow
def test_a_trial_whose_every_metric_fails_is_failed_and_runs_again(
    tmp_path, monkeypatch, capsys, squares_npz
):
    import sys

    import nsvae.experiment

    monkeypatch.setitem(sys.modules, "ray", None)
    path = tmp_path / "study.toml"
    path.write_text(
        f'[study]\nmetrics = ["mig"]\n[base.data]\nname = "array"\n'
        f'path = "{squares_npz}"\n[base.model]\nz_dim = 3\n'
        "[base.train]\nsteps = 2\nbatch_size = 8\ncheckpoint_every = 2\n"
        'figures = false\n[[grid]]\n"objective.name" = "vae"\n'
    )
    out, trial = tmp_path / "out", "vae-seed=0"
    evaluate_run = nsvae.experiment.evaluate_run

    def every_metric_fails(run, **kwargs):
        return {**evaluate_run(run, **kwargs), "metrics": {}, "failed": {"mig": "boom"}}

    monkeypatch.setattr(nsvae.experiment, "evaluate_run", every_metric_fails)
    assert main(["sweep", str(path), "--out", str(out), "--trial", trial]) == 6
    assert "every metric failed: mig: boom" in capsys.readouterr().err
    assert main(["sweep", str(path), "--out", str(out), "--list"]) == 0
    assert capsys.readouterr().out == f"{trial}\tfailed\n"

    monkeypatch.setattr(nsvae.experiment, "evaluate_run", evaluate_run)  # the metric mended
    assert main(["sweep", str(path), "--out", str(out), "--trial", trial]) == 0
    assert f"trial {trial}: done at step 2" in capsys.readouterr().out


def test_an_image_skipped_as_unreadable_is_read_again_once_its_permissions_are_fixed(
    tmp_path, monkeypatch
):
    from PIL import Image

    from nsvae.data import files, images

    folder = tmp_path / "photos"
    folder.mkdir()
    for name, colour in (("a.png", (200, 10, 10)), ("b.png", (10, 200, 10))):
        (folder / name).write_bytes(image_bytes(Image.new("RGB", (80, 80), colour), "PNG"))
    locked = {folder / "b.png"}  # root reads any file whatever its mode: lock it by hand
    read_files, access = images.read_files, os.access

    def reading(source, names):
        for name, data in read_files(source, names):
            yield name, ("Permission denied" if folder / name in locked else data)

    monkeypatch.setattr(images, "read_files", reading)
    monkeypatch.setattr(
        files.os, "access", lambda path, mode: Path(path) not in locked and access(path, mode)
    )
    with pytest.warns(NsvaeWarning, match="skipped 1 of 2 files"):
        assert len(images.load_images(folder, data_root=tmp_path / "cache")) == 1
    locked.clear()  # chmod a+r: the file's size and modification time stay as they were
    assert len(images.load_images(folder, data_root=tmp_path / "cache")) == 2


def test_resuming_on_other_observations_of_the_same_grid_warns_and_the_same_data_does_not(
    tmp_path, squares_npz, capsys
):
    from conftest import square_images

    from nsvae.data.npz import save_array_dataset

    run, moved = tmp_path / "run", tmp_path / "moved.npz"
    assert main(["train", *TINY, "--data-path", str(squares_npz), "--run-dir", str(run)]) == 0
    moved.write_bytes(squares_npz.read_bytes())  # the same file, moved: resumes quietly
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--data-path", str(moved), "--steps", "4"]) == 0
    assert "other observations" not in capsys.readouterr().err
    inverted = save_array_dataset(
        tmp_path / "inverted.npz", 1 - square_images(), [8, 8], ["x", "y"]
    )
    assert main(["train", "--resume", str(run), "--data-path", str(inverted), "--steps", "6"]) == 0
    err = capsys.readouterr().err
    assert err.count("other observations than it was trained on: the factor grid is the same") == 1


def test_a_cache_the_disk_cannot_hold_is_one_line_and_leaves_no_file(tmp_path, monkeypatch):
    import errno

    import numpy as np

    from nsvae.data import files

    def full(descriptor, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    filled = []
    monkeypatch.setattr(files.os, "posix_fallocate", full)
    with pytest.raises(DataError, match="No space left on device") as error:
        files.cached_array(
            tmp_path / "cache.npy", np.uint8, (1000, 64, 64), filled.append, "image cache"
        )
    assert "\n" not in str(error.value) and "image cache" in str(error.value)
    assert filled == [] and list(tmp_path.iterdir()) == []  # nothing written, nothing left
    monkeypatch.undo()
    array, reused = files.cached_array(tmp_path / "cache.npy", np.uint8, (10, 4), lambda out: None)
    assert array.shape == (10, 4) and not reused


@pytest.mark.slow
def test_a_small_address_space_is_a_one_line_out_of_memory_error_not_an_internal_one(tmp_path):
    import subprocess
    import sys

    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (700_000 * 1024,) * 2); "
        "from nsvae.cli import main; sys.exit(main(['train', '--steps', '2', '--run-dir', "
        f"{str(tmp_path / 'run')!r}, '--no-progress']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and "out of memory" in done.stderr
    # a library the loader cannot map names the limit; an allocation that fails later, the run
    assert "ulimit -v" in done.stderr or "lower the batch size" in done.stderr
