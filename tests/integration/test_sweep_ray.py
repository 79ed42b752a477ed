"""``nsvae sweep`` on local Ray and ``nsvae study report``, on the tiny squares data.

One Ray session serves the module (the sweep uses a session its process already started); the
kill-and-rerun test starts the command in a process of its own, as a user would. The Chromium
test needs Debian's ``chromium`` and is skipped, with that reason, where it is absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray Tune not installed: pip install 'nsvae[sweep]'")
pytestmark = pytest.mark.slow  # Ray's start and real trials: minutes of worker time

from helpers import chromium, image_sources, needs_chromium, nsvae_command  # noqa: E402

import nsvae  # noqa: E402
from nsvae.cli import main  # noqa: E402
from nsvae.config import Config  # noqa: E402
from nsvae.errors import TrainingError  # noqa: E402
from nsvae.experiment import train_run  # noqa: E402
from nsvae.files import read_json, read_rows, write_json  # noqa: E402
from nsvae.metrics.results import flat_metrics  # noqa: E402
from nsvae.rundir.checkpoint import load_latest  # noqa: E402
from nsvae.sweep import Resources, load_results, load_study, run_sweep  # noqa: E402
from nsvae.sweep.results import metric_columns  # noqa: E402

SOURCE = Path(nsvae.__file__).resolve().parents[1]
TRAIN = {"steps": 30, "batch_size": 16, "log_every": 10, "checkpoint_every": 10}
BASE = """
[base.data]
name = "array"
path = "{data}"
[base.model]
z_dim = 3
[base.train]
{train}
"""
SIX_TRIALS = (
    """
[study]
name = "tiny"
seeds = [0, 1]
metrics = ["mig", "latent_synergy"]
report = false
"""
    + BASE
    + """
[[grid]]
"objective.name" = "beta_vae"
"objective.beta" = [1.0, 4.0]

[[grid]]
"objective.name" = "nonsyn"
"objective.alpha" = 5.0
"""
)


def study_text(data: Path, template: str = SIX_TRIALS, **train) -> str:
    values = {**TRAIN, **train}
    return template.format(data=data, train="\n".join(f"{k} = {v}" for k, v in values.items()))


@pytest.fixture(scope="module")
def ray_session():
    """Ray on 2 CPUs for the whole module, its files in a short temporary folder."""
    folder = tempfile.mkdtemp(prefix="nsvae-ray-test-")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=folder)
    yield
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def six(ray_session, squares_npz, tmp_path_factory):
    """The 6-trial study (two blocks, two seeds), run once: (directory, summary, lines)."""
    out = tmp_path_factory.mktemp("sweep") / "tiny"
    path = out.parent / "tiny.toml"
    path.write_text(study_text(squares_npz))
    lines = []
    summary = run_sweep(load_study(path), out, Resources(cpus_per_trial=1), say=lines.append)
    return out, summary, lines


NAMES = [
    "beta_vae-beta=1-seed=0",
    "beta_vae-beta=1-seed=1",
    "beta_vae-beta=4-seed=0",
    "beta_vae-beta=4-seed=1",
    "nonsyn-alpha=5-seed=0",
    "nonsyn-alpha=5-seed=1",
]


def test_six_trials_run_end_to_end(six):
    out, summary, lines = six
    assert (summary.trials, summary.skipped, summary.done, summary.failed) == (6, 0, 6, 0)
    assert lines[0].startswith("study tiny: 6 trials, 0 finished, 6 to run")
    assert sorted(line.split(" ")[1].rstrip(":") for line in lines[1:]) == NAMES
    assert all("done at step 30 in" in line for line in lines[1:])
    for name in NAMES:
        trial = out / "trials" / name
        record = read_json(trial / "trial.json")
        assert (record["status"], record["step"], record["resumed"]) == ("done", 30, False)
        assert set(read_json(trial / "eval.json")["metrics"]) == {"mig", "latent_synergy"}
        assert (trial / "figures" / "traversals.png").is_file()
        config = read_json(trial / "config.json")["config"]
        assert config["train"]["threads"] == 1  # follows --cpus-per-trial
        assert config["train"]["seed"] == int(name[-1])
    assert (out / "study.toml").read_text() == (out.parent / "tiny.toml").read_text()


def test_results_table_columns_and_values_are_the_trials_eval_json(six):
    out, _, _ = six
    table = load_results(out)
    assert list(table["name"]) == NAMES and set(table["status"]) == {"done"}
    assert list(table.columns[:9]) == [
        "name",
        "setting",
        "status",
        "objective.name",
        "objective.beta",
        "objective.alpha",
        "seed",
        "steps",
        "seconds",
    ]
    for _, row in table.iterrows():
        expected = flat_metrics(read_json(out / "trials" / row["name"] / "eval.json")["metrics"])
        assert metric_columns(table) == list(expected)
        assert {column: row[column] for column in expected} == expected
    row = table.iloc[2]
    assert (
        row["setting"],
        row["objective.name"],
        row["objective.beta"],
        row["seed"],
        row["steps"],
    ) == ("beta_vae-beta=4", "beta_vae", 4.0, 0, 30)
    assert np.isnan(row["objective.alpha"]) and row["seconds"] > 0


def test_tensorboard_shows_every_trial_side_by_side(six):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    out, _, _ = six
    board = EventMultiplexer().AddRunsFromDirectory(str(out))
    board.Reload()
    runs = board.Runs()
    assert sorted(runs) == [f"trials/{name}/tensorboard" for name in NAMES]
    for run in runs:
        steps = [event.step for event in board.Scalars(run, "loss")]
        assert steps == [10, 20, 30]


def test_rerunning_skips_finished_trials(six):
    out, _, _ = six
    stamps = {path: path.stat().st_mtime_ns for path in (out / "trials").rglob("*")}
    lines = []
    summary = run_sweep(load_study(out.parent / "tiny.toml"), out, say=lines.append)
    assert (summary.skipped, summary.done, summary.ray_seconds) == (6, 0, 0.0)
    assert lines == [f"study tiny: 6 trials, 6 finished, 0 to run; results: {out}/results.csv"]
    assert stamps == {path: path.stat().st_mtime_ns for path in (out / "trials").rglob("*")}


def test_a_changed_study_adds_its_new_trials_and_keeps_the_old(six, squares_npz, tmp_path):
    out = tmp_path / "tiny"
    shutil.copytree(six[0], out)
    changed = SIX_TRIALS.replace("seeds = [0, 1]", "seeds = [0]").replace(
        '"objective.alpha" = 5.0', '"objective.alpha" = 5.0\n\n[[grid]]\n"objective.name" = "vae"'
    )
    path = tmp_path / "tiny.toml"
    path.write_text(study_text(squares_npz, changed))
    summary = run_sweep(load_study(path), out)
    assert (summary.trials, summary.skipped, summary.done) == (4, 3, 1)
    table = load_results(out)
    assert list(table["name"][:4]) == [
        "beta_vae-beta=1-seed=0",
        "beta_vae-beta=4-seed=0",
        "nonsyn-alpha=5-seed=0",
        "vae-seed=0",
    ]
    assert sorted(table["name"][4:]) == [n for n in NAMES if n.endswith("1")]
    assert set(table["status"]) == {"done"}


def test_ray_workers_import_this_nsvae(ray_session):
    @ray.remote
    def where():
        import nsvae

        return nsvae.__file__

    assert ray.get(where.remote()) == nsvae.__file__


def test_study_report_command(six, capsys):
    out, _, _ = six
    assert main(["study", "report", str(out)]) == 0
    page_path = out / "report.html"
    assert capsys.readouterr().out.strip() == str(page_path)
    page = page_path.read_text(encoding="utf-8")
    for figure in ("distributions", "hyperparameters", "synergy", "rank_correlation"):
        assert (out / "figures" / f"{figure}.png").is_file()
    assert len(image_sources(page)) == 4
    assert all(source.startswith("data:image/png;base64,") for source in image_sources(page))
    for text in (
        "nsvae study report",
        "tiny",
        "beta_vae-beta=4",
        "nonsyn-alpha=5",
        "mig.discrete_mig",
        "latent_synergy.synergy_latent",
        "Study file",
    ):
        assert text in page
    summary = (out / "summary.md").read_text(encoding="utf-8").splitlines()
    assert summary[2].startswith("| setting | model | seeds | ")
    assert [line.split(" | ")[0] for line in summary[4:]] == [
        "| beta_vae-beta=1",
        "| beta_vae-beta=4",
        "| nonsyn-alpha=5",
    ]
    assert all(" | 2 | " in line for line in summary[4:])  # two seeds each

    assert main(["study", "report", str(out), "--against", "beta_vae-beta=1"]) == 0
    assert '<section id="against"><h2>Against beta_vae-beta=1</h2>' in page_path.read_text(
        encoding="utf-8"
    )
    summary = (out / "summary.md").read_text(encoding="utf-8").splitlines()
    caption = next(n for n, line in enumerate(summary) if line.startswith("Against "))
    assert summary[caption].startswith("Against beta_vae-beta=1 (2 seeds): the share of seed")
    assert [line.split(" | ")[:2] for line in summary[caption + 4 :]] == [
        ["| beta_vae-beta=4", "2"],
        ["| nonsyn-alpha=5", "2"],
    ]
    capsys.readouterr()
    assert main(["study", "report", str(out), "--against", "vae"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nsvae: error: no finished trial of setting 'vae'")
    assert err.count("\n") == 1


def test_study_report_of_a_directory_without_results(tmp_path, capsys):
    assert main(["study", "report", str(tmp_path)]) == 4
    err = capsys.readouterr().err
    assert err.startswith("nsvae: error: no results.csv in") and err.count("\n") == 1


@needs_chromium
def test_study_report_renders_in_headless_chromium(six, tmp_path):
    out, _, _ = six
    main(["study", "report", str(out)])
    url = (out / "report.html").resolve().as_uri()
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile").stdout
    assert 'data-images="4/4"' in dom  # every figure decoded
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2400", url, profile=tmp_path / "profile")
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    background = np.bincount(pixels.astype(np.int64).ravel()).argmax()
    assert np.mean(np.abs(pixels - background) > 30) > 0.02  # tables and figures, not blank


KILL_STUDY = (
    """
[study]
name = "killed"
metrics = ["mig"]
report = false
"""
    + BASE
    + """
[[grid]]
"objective.name" = "beta_vae"
"objective.beta" = 4.0

[[grid]]
"objective.name" = "vae"
"train.steps" = 200
"""
)


def test_a_killed_sweep_reruns_only_the_unfinished_trial_and_resumes_it(
    ray_session, squares_npz, tmp_path
):
    path, out = tmp_path / "killed.toml", tmp_path / "killed"
    path.write_text(study_text(squares_npz, KILL_STUDY))
    first = out / "trials" / "beta_vae-beta=4-seed=0"
    second = out / "trials" / "vae-steps=200-seed=0"
    command = nsvae_command("sweep", path, "--out", out, "--cpus", "1", "--max-concurrent", "1")
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONPATH": str(SOURCE)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for(
            lambda: (
                (first / "trial.json").is_file()
                and list((second / "checkpoints").glob("*.safetensors"))
            ),
            process,
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the command, Ray and its workers
        process.wait()
    assert not (second / "trial.json").exists()
    assert list((out / "ray" / "tmp").glob("session_*/logs"))  # Ray's logs stay inside DIR
    stamps = {p: p.stat().st_mtime_ns for p in first.rglob("*")}

    lines = []
    summary = run_sweep(load_study(path), out, Resources(cpus_per_trial=1), say=lines.append)
    assert (summary.skipped, summary.done) == (1, 1)
    assert lines[1].startswith("[1/1] vae-steps=200-seed=0: done at step 200")
    assert lines[1].endswith("resumed")
    assert stamps == {p: p.stat().st_mtime_ns for p in first.rglob("*")}  # not retrained
    steps = [row["step"] for row in read_rows(second / "metrics.jsonl")]
    assert steps == list(range(10, 201, 10))  # rows after the checkpoint logged once

    config = Config.from_dict(read_json(second / "config.json")["config"])
    reference = train_run(config, tmp_path / "uninterrupted")
    resumed, _ = load_latest(second)
    straight, _ = load_latest(reference.path)
    assert resumed.keys() == straight.keys()
    assert all(np.array_equal(resumed[k].numpy(), straight[k].numpy()) for k in resumed)


CTRL_C_STUDY = (
    """
[study]
name = "ctrl-c"
metrics = ["mig"]
report = false
"""
    + BASE
    + """
[[grid]]
"objective.name" = "vae"
"train.steps" = [100000, 200000]
"""
)


@pytest.mark.parametrize(
    ("signal_name", "code", "new_output"),
    [("SIGINT", 130, "0"), ("SIGTERM", 143, "0"), ("SIGINT", 130, "1")],
)
def test_a_stopped_sweep_checkpoints_the_running_trial_and_starts_no_other(
    ray_session, squares_npz, tmp_path, signal_name, code, new_output
):
    """Ctrl-C (SIGINT to the command's process group) or SIGTERM (to the command) reaches no
    Ray worker; the sweep writes its stop file, the running trial checkpoints the step it
    reached (between its scheduled checkpoints), the other trial never starts (its record of an
    earlier failure stays as it was and is not counted), and the command exits 130 or 143.
    Whichever output engine Ray is told to use (``RAY_AIR_NEW_OUTPUT``): nsvae's callback is
    a public Tune callback, which neither drops."""
    path, out = tmp_path / "stop.toml", tmp_path / "stop"
    path.write_text(study_text(squares_npz, CTRL_C_STUDY, log_every=1, checkpoint_every=100000))
    first, second = (out / "trials" / f"vae-steps={n}-seed=0" for n in (100000, 200000))
    earlier = {
        "name": second.name,
        "setting": "vae-steps=200000",
        "seed": 0,
        "swept": {"objective.name": "vae", "train.steps": 200000},
        "evaluation": {"metrics": ["mig"], "fast": True},
        "resumed": False,
        "status": "failed",
        "error": "an earlier failure",
        "exit_code": 3,
        "step": None,
        "seconds": {},
    }
    write_json(second / "trial.json", earlier)
    command = nsvae_command("sweep", path, "--out", out, "--cpus", "1", "--max-concurrent", "1")
    environment = {**os.environ, "PYTHONPATH": str(SOURCE), "RAY_AIR_NEW_OUTPUT": new_output}
    process = subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(
            lambda: (first / "metrics.jsonl").is_file() and (first / "metrics.jsonl").read_text(),
            process,
        )
        if signal_name == "SIGINT":
            os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C
        else:
            process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == code, output
    assert f"{signal_name}: stopping; each running trial saves a checkpoint" in output
    assert "[1/2] vae-steps=100000-seed=0: stopped with a checkpoint; a rerun resumes it" in output
    assert "sweep stopped with 2 of 2 trials unfinished" in output
    step = load_latest(first)[1]["step"]
    assert 0 < step < 100000 and not (first / "trial.json").exists()
    assert read_json(second / "trial.json") == earlier and not (second / "config.json").exists()
    assert not (out / ".stop").exists()


def _wait_for(condition, process, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"sweep ended early: {process.stdout.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("sweep made no progress")
        time.sleep(0.05)


FAILING_STUDY = (
    """
[study]
name = "one-fails"
seeds = [0, 1]
metrics = ["mig"]
report = false
"""
    + BASE
    + """
[[grid]]
"objective.name" = "vae"
"data.path" = ["{data}", "later.npz"]
"""
)


def test_one_failing_trial_stops_no_other_and_runs_again_on_the_next_sweep(
    ray_session, squares_npz, tmp_path
):
    """On Ray, among four trials the two whose data file is missing fail (recorded, in the
    table's error column); the other two finish; the sweep ends in one line naming the failures;
    once the file exists, the next sweep runs the failed trials only."""
    path, out = tmp_path / "fails.toml", tmp_path / "fails"
    path.write_text(study_text(squares_npz, FAILING_STUDY))
    lines = []
    with pytest.raises(TrainingError, match="2 of 4 trials failed"):
        run_sweep(load_study(path), out, Resources(cpus_per_trial=1), say=lines.append)
    table = load_results(out).set_index("name")
    failed = table[table["status"] == "failed"]
    assert len(failed) == 2 and all("later.npz" in error for error in failed["error"])
    assert (table["status"] == "done").sum() == 2
    assert sum(": failed: " in line for line in lines) == 2

    shutil.copy(squares_npz, tmp_path / "later.npz")
    lines = []
    summary = run_sweep(load_study(path), out, Resources(cpus_per_trial=1), say=lines.append)
    assert (summary.skipped, summary.done, summary.failed) == (2, 2, 0)
    assert load_results(out)["status"].eq("done").all()
