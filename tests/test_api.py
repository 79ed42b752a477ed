"""The front door: ``import nsvae`` and its verbs, as a notebook uses them."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import square_images
from helpers import REPOSITORY

import nsvae
from nsvae.config import Config
from nsvae.data import ArrayGroundTruthData
from nsvae.errors import ConfigError


@pytest.mark.slow
def test_importing_nsvae_loads_no_torch_until_a_verb_is_used():
    code = (
        "import sys, nsvae; before = 'torch' in sys.modules; nsvae.METRICS; "
        "print(before, 'torch' in sys.modules, sorted(set(nsvae.API) <= set(dir(nsvae)) "
        "for _ in [0]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "[True]"]
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        nsvae.trian  # noqa: B018


def test_the_readmes_example_trains_scores_and_reopens_a_run(tmp_path, squares_npz):
    run = nsvae.train(
        {
            "objective.name": "nonsyn",
            "objective.alpha": 5.0,
            "train.steps": 6,
            "train.batch_size": 8,
            "train.figures": False,
            "data.name": "array",
            "data.path": str(squares_npz),
            "model.z_dim": 3,
        },
        tmp_path / "quick",
    )
    scores = nsvae.evaluate(run, metrics=["mig", "unibound"], fast=True)
    assert scores["failed"] == {} and 0 <= scores["metrics"]["unibound"]["unibound"] <= 1
    again = nsvae.load(tmp_path / "quick")
    assert again.step == run.step == 6 and again.config == run.config
    assert not (tmp_path / "quick" / "eval.json").exists()  # evaluate writes only when asked
    nsvae.evaluate(tmp_path / "quick", metrics="mig", fast=True, save=True)
    assert (tmp_path / "quick" / "eval.json").is_file()
    assert set(nsvae.OBJECTIVES) >= {"nonsyn", "vae", "beta_vae", "factor_vae", "beta_tcvae"}
    # the verb is nsvae.train whatever was imported before; the stage is nsvae.training
    from nsvae import training

    assert nsvae.train.__module__ == "nsvae.api" and callable(training.train)


class EncodeOnly(torch.nn.Module):
    """An encoder of someone else's: encode() and nothing nsvae's VAE has besides."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(64 * 64, 6)

    def encode(self, x):
        h = self.linear(x.flatten(1))
        return h[:, :3], h[:, 3:]


def _squares() -> ArrayGroundTruthData:
    return ArrayGroundTruthData(square_images(), [8, 8], ["x", "y"])


def test_any_encoder_and_any_function_is_scored_by_every_metric_it_can_be():
    torch.manual_seed(0)
    data = _squares()
    module = nsvae.evaluate(EncodeOnly(), data, metrics="mig,mig_chen,beta_vae", fast=True)
    assert module["failed"] == {} and set(module["metrics"]) == {"mig", "mig_chen", "beta_vae"}

    weights = np.random.RandomState(0).standard_normal((64 * 64, 3))

    def codes(observations):
        return observations.reshape(len(observations), -1) @ weights

    def posterior(observations):
        mu = codes(observations)
        return mu, np.full_like(mu, -4.0)

    plain = nsvae.evaluate(codes, data, metrics="mig,mig_chen", fast=True)
    assert set(plain["metrics"]) == {"mig"}
    assert "needs an encoder's posterior" in plain["skipped"]["mig_chen"]
    encoder = nsvae.evaluate(posterior, data, metrics="mig,mig_chen", fast=True)
    assert set(encoder["metrics"]) == {"mig", "mig_chen"} and encoder["skipped"] == {}
    assert encoder["metrics"]["mig"] == plain["metrics"]["mig"]  # the means are the codes


def test_a_model_or_function_without_data_and_a_bad_config_are_one_line_errors():
    from nsvae.errors import MetricError

    with pytest.raises(MetricError, match="needs its data"):
        nsvae.evaluate(EncodeOnly())
    with pytest.raises(ConfigError, match="must be a Config, a dict"):
        nsvae.train(42, "runs/never")
    with pytest.raises(ConfigError, match="unknown config key objective.alhpa"):
        nsvae.train({"objective.alhpa": 5.0}, "runs/never")


def test_dotted_and_sectioned_overrides_mix():
    config = Config().updated(
        {"objective.name": "beta_vae", "objective.beta": 4, "train": {"steps": 10}}
    )
    assert (config.objective.name, config.objective.beta, config.train.steps) == (
        "beta_vae",
        4.0,
        10,
    )
    with pytest.raises(ConfigError, match="section table or a section.field key"):
        Config().updated({"steps": 10})
    with pytest.raises(ConfigError, match="expected a section.field key"):
        Config().updated({"train.x.y": 1})


NOTEBOOK = """
import torch
import nsvae

run = nsvae.train({"data.name": "array", "data.path": DATA, "model.z_dim": 4,
                   "train.steps": 200, "train.batch_size": 16, "train.figures": False},
                  "runs/notebook")

class Mine(torch.nn.Module):  # someone else's encoder: encode() and nothing more
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 64, 8))
    def encode(self, x):
        return self.net(x).chunk(2, dim=1)

scores = nsvae.evaluate(Mine(), nsvae.dataset("array", path=DATA), metrics="mig,mig_chen",
                        fast=True)
assert scores["failed"] == {}, scores["failed"]
seed = nsvae.load(REPRODUCTION)
print(run.step, sorted(scores["metrics"]), seed.step, seed.config.objective.update)
"""


@pytest.mark.slow
def test_a_notebook_trains_scores_any_encoder_and_opens_a_committed_model(tmp_path, squares_npz):
    """The issue's notebook, in a fresh interpreter with nothing imported but nsvae (and torch
    for the hand-written encoder)."""
    reproduction = REPOSITORY / "results" / "reproduction" / "joint-update-step110000"
    code = (
        f"DATA = {str(squares_npz)!r}; REPRODUCTION = {str(reproduction)!r}; "
        "import sys; import nsvae; TORCH_BEFORE = 'torch' in sys.modules\n"
        "assert not TORCH_BEFORE, 'import nsvae loaded torch'\n" + NOTEBOOK
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["200", "['mig',", "'mig_chen']", "110000", "joint"]


def _python_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


# Every document with Python blocks: the README and the docs' tutorial today, any page later.
DOCUMENTS = [
    str(path.relative_to(REPOSITORY))
    for path in [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]
    if _python_blocks(path.read_text(encoding="utf-8"))
]


def test_the_readme_and_the_tutorial_have_python_blocks():
    assert {"README.md", "docs/tutorial.md"} <= set(DOCUMENTS)


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_python_blocks_of_every_document_run_verbatim(document, tmp_path):
    """A document's Python blocks, as written, one after another in a fresh interpreter, from a
    folder that has the clone's ``results/`` (the README: 1,000 steps on rendered dSprites, a
    few minutes; the tutorial: 400 steps and fast scores, a minute or two)."""
    blocks = _python_blocks((REPOSITORY / document).read_text(encoding="utf-8"))
    assert blocks, f"{document} has no Python block"
    (tmp_path / "results").symlink_to(REPOSITORY / "results")
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(blocks)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
