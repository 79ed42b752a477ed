"""The import graph of src/nsvae flows one way (``python tests/import_graph.py`` prints it)."""

from __future__ import annotations

import subprocess
import sys

from import_graph import SOURCE, cycles, import_graph, reachable, upward_imports


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "nsvae.viz.report" in graph["nsvae.experiment"]
    assert "nsvae.metrics.evaluate" in graph["nsvae.cli.evaluate"]  # inside evaluate_command
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_no_import_cycle_and_no_upward_import():
    graph = import_graph()
    assert cycles(graph) == []
    assert upward_imports(graph) == []


def test_training_reaches_neither_metrics_nor_viz():
    reached = reachable(import_graph(), "nsvae.training")
    assert "nsvae.rundir.run" in reached
    assert not [m for m in reached if m.startswith(("nsvae.metrics", "nsvae.viz"))]


def test_importing_train_loads_neither_metrics_nor_viz():
    code = (
        "import sys, nsvae.training; "
        "print([m for m in sys.modules if m.startswith(('nsvae.metrics', 'nsvae.viz'))])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SOURCE)},
    )
    assert out.stdout.strip() == "[]"


def test_importing_nsvae_leaves_the_environment_alone(monkeypatch):
    code = "import os, nsvae.config; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SOURCE)},
    )
    assert out.stdout.strip() == "None"
