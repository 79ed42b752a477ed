"""``nsvae report``: figures and a self-contained report.html, checked in headless Chromium.

The Chromium test needs Debian's ``chromium`` package (``apt-get install -y chromium``); it is
skipped, with that reason, where the browser is absent.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import chromium, image_sources, needs_chromium
from PIL import Image

from nsvae.cli import main
from nsvae.config import Config
from nsvae.data.ground_truth import ArrayGroundTruthData
from nsvae.training import train
from nsvae.viz.report import FIGURES, format_value, write_report

EVAL = {
    "metrics": {
        "mig": {"score": 0.3125, "per_factor": [0.25, 0.375]},
        "factor_vae": {"train_accuracy": 0.8, "eval_accuracy": 0.75, "num_active_dims": 3},
        "latent_synergy": {"synergy": 0.0421, "mutual_information": 3.5},
        "factor_synergy": {"mean": 0.0123, "per_factor": {"x": 0.01, "y": 0.0146}},
    },
    "params": {},
    "representation": "mean",
    "seed": 0,
    "fast": True,
    "step": 12,
}


def square_images(size: int = 8) -> np.ndarray:
    """A 10x10 square at every position of a size x size grid (factors x, y)."""
    images = np.zeros((size, size, 1, 64, 64), np.float32)
    for x in range(size):
        for y in range(size):
            images[x, y, 0, 4 + 6 * y : 14 + 6 * y, 4 + 6 * x : 14 + 6 * x] = 1.0
    return images.reshape(size * size, 1, 64, 64)


@pytest.fixture(scope="module")
def data():
    return ArrayGroundTruthData(square_images(), (8, 8), ("x", "y"))


@pytest.fixture(scope="module")
def report(data, tmp_path_factory):
    """A tiny trained run with an eval.json and its report."""
    config = Config.from_dict(
        {
            "model": {"z_dim": 3},
            "train": {
                "steps": 12,
                "batch_size": 16,
                "log_every": 4,
                "checkpoint_every": 1000,
                "threads": 1,
                "device": "cpu",
                "figures": False,
            },
        }
    )
    run = train(config, tmp_path_factory.mktemp("report") / "tiny-run", data=data)
    (run.path / "eval.json").write_text(json.dumps(EVAL))
    return write_report(run.path, data=data, num_samples=256)


def test_report_embeds_every_figure_and_table(report):
    page = report.read_text(encoding="utf-8")
    sources = image_sources(page)
    expected = [f.name for f in FIGURES if (report.parent / "figures" / f.name).exists()]
    assert len(expected) == 7  # all but eval_curves.png (no --eval-every rows)
    assert len(sources) == len(expected)
    assert sum(s.startswith("data:image/gif;base64,") for s in sources) == 1
    assert all(s.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for s in sources)
    for figure in expected:
        Image.open(report.parent / "figures" / figure).verify()
    # self-contained: nothing is fetched (links only to anchors of the page)
    assert not re.search(r'(?:src|href)="(?!data:|#)', page)
    assert "url(" not in page and "@import" not in page
    for text in (
        "tiny-run",
        "Disentanglement metrics",
        "0.3125",
        "Synergy",
        "0.0421",
        "x: 0.01, y: 0.0146",
        "Configuration",
        "alpha",
        "Versions",
        "torch",
    ):
        assert text in page


def test_format_value():
    assert format_value(0.123456) == "0.1235"
    assert format_value([1.0, 2]) == "[1, 2]"
    assert format_value({"a": 0.5, "b": [True]}) == "a: 0.5, b: [True]"
    assert format_value(None) == "None"


def test_report_command(report, data, monkeypatch, capsys):
    monkeypatch.setattr("nsvae.rundir.run.build_data", lambda config: data)
    report.unlink()
    assert main(["report", str(report.parent), "--num-samples", "256"]) == 0
    assert capsys.readouterr().out.strip() == str(report.parent / "report.html")
    assert report.exists()


def test_report_command_on_a_missing_run(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 4
    err = capsys.readouterr().err
    assert err.startswith("nsvae: error: not a run directory") and err.count("\n") == 1


@needs_chromium
def test_report_renders_in_headless_chromium(report, tmp_path):
    url = report.resolve().as_uri()
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile").stdout
    count = len(image_sources(report.read_text(encoding="utf-8")))
    assert f'data-images="{count}/{count}"' in dom  # every <img> decoded, naturalWidth > 0
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2400", url, profile=tmp_path / "profile")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1280)
    background = np.bincount(pixels.astype(np.int64).ravel()).argmax()
    assert np.mean(np.abs(pixels - background) > 30) > 0.05  # text and figures, not a blank page
    assert pixels.std() > 20


def test_captured_factors_section_names_each_factors_latent_and_the_seed_bar():
    from nsvae.viz.report import captured_html

    nmi = np.zeros((4, 5))
    nmi[0, 3], nmi[1, 4], nmi[2, 1], nmi[3, 0] = 0.7, 0.45, 0.6, 0.2
    mig = {
        "discrete_mig": 0.3,
        "normalized_mi": nmi.tolist(),
        "captured_by": [-1, 2, -1, 0, -1],
        "factor_names": ["shape", "scale", "orientation", "posX", "posY"],
    }
    page = captured_html(mig)
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", page)
    assert rows[1:] == [
        ("scale", "z2", "z2: 0.600"),
        ("orientation", "none", "z0: 0.000"),
        ("posX", "z0", "z0: 0.700"),
        ("posY", "none", "z1: 0.450"),
    ]
    assert rows[0][:2] == ("shape", "none")
    assert "seed bar (MIG &gt;= 0.20 and posX, posY, scale each captured): not met" in page
    mig.update(captured_by=[-1, 2, -1, 0, 1])
    assert "each captured): met" in captured_html(mig)
    two = {
        "normalized_mi": [[0.9, 0.0], [0.0, 0.8]],
        "captured_by": [0, 1],
        "factor_names": ["x", "y"],
        "discrete_mig": 0.8,
    }
    assert "seed bar" not in captured_html(two)
