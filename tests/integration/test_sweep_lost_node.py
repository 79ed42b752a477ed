"""``nsvae sweep --address`` on a real two-node Ray cluster on this machine (a head and a second
node, :class:`ray.cluster_utils.Cluster`): the second node is killed while a trial
trains on it; the sweep finishes on the head, the lost trial starts again from its last
checkpoint, and nothing is trained twice from scratch."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from helpers import nsvae_command

ray = pytest.importorskip("ray", reason="Ray Tune not installed: pip install 'nsvae[sweep]'")
pytestmark = pytest.mark.slow  # two Ray nodes and two real trials: a minute or two

from ray.cluster_utils import Cluster  # noqa: E402

import nsvae  # noqa: E402
from nsvae.files import read_json, read_rows  # noqa: E402
from nsvae.sweep import load_results  # noqa: E402

SOURCE = Path(nsvae.__file__).resolve().parents[1]
STUDY = """
[study]
name = "lost-node"
seeds = [0, 1]
metrics = ["mig"]
report = false
[base.data]
name = "array"
path = "{data}"
[base.model]
z_dim = 3
[base.train]
steps = {steps}
batch_size = 16
log_every = 20
checkpoint_every = 20
threads = 1
figures = false
[[grid]]
"objective.name" = "vae"
"""
STEPS = 600  # a trial: some 25 s on one core


@pytest.fixture
def cluster(monkeypatch):
    """A head node with one CPU on this machine, its files (Ray's address file too) in a short
    temporary folder. (Ray turns a loopback address into the machine's own, so the nodes meet
    there; nothing leaves the machine.)"""
    monkeypatch.setenv("RAY_TMPDIR", tempfile.mkdtemp(prefix="nsvae-nodes-"))
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    try:
        yield cluster
    finally:
        cluster.shutdown()
        shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)


def test_a_sweep_survives_a_lost_node_and_resumes_its_trial(cluster, squares_npz, tmp_path):
    second = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    path, out = tmp_path / "study.toml", tmp_path / "study"
    path.write_text(STUDY.format(data=squares_npz, steps=STEPS))
    names = ["vae-seed=0", "vae-seed=1"]
    started = time.monotonic()
    process = subprocess.Popen(
        nsvae_command(
            "sweep",
            path,
            "--out",
            out,
            "--address",
            cluster.address,
            "--cpus-per-trial",
            "1",
            "--max-concurrent",
            "2",
        ),
        env={**os.environ, "PYTHONPATH": str(SOURCE)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        while not all(
            list((out / "trials" / name / "checkpoints").glob("*.safetensors")) for name in names
        ):  # both train: one on each node
            waited = time.monotonic() - started
            if process.poll() is not None or waited > 180:
                process.kill()
                pytest.fail(f"the trials never trained on both nodes: {process.stdout.read()}")
            time.sleep(0.2)
        cluster.remove_node(second, allow_graceful=False)  # the node dies with its trial
        output, _ = process.communicate(timeout=420)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    print(f"lost-node sweep: {time.monotonic() - started:.0f} s\n{output}")
    assert process.returncode == 0, output
    records = {name: read_json(out / "trials" / name / "trial.json") for name in names}
    assert {record["status"] for record in records.values()} == {"done"}
    assert {record["step"] for record in records.values()} == {STEPS}
    assert [record["resumed"] for record in records.values()].count(True) == 1, output
    assert "node was lost; it starts again from its last checkpoint" in output
    for name in names:  # each step logged once: the lost trial went on from its checkpoint
        steps = [row["step"] for row in read_rows(out / "trials" / name / "metrics.jsonl")]
        assert steps == list(range(20, STEPS + 1, 20)), name
    table = load_results(out)
    assert sorted(table["name"]) == names and table["status"].eq("done").all()
