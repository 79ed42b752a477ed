"""Issue 15: random input never gives a traceback or an internal error (exit 70).

Hypothesis drives the command line's argument parsing (the commands' work is replaced by a stub
once the arguments are accepted, so nothing trains or renders) and the readers of npz codes,
``config.json`` and ``eval.json`` with random bytes and random valid-looking structures.
``FUZZ_EXAMPLES=1000`` runs more examples than CI's 60 per test.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsvae.cli import main
from nsvae.errors import NsvaeError, NsvaeWarning
from nsvae.metrics.evaluate import evaluate_codes, load_codes
from nsvae.metrics.results import read_evaluation, save_evaluation
from nsvae.rundir import read_run_config

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
WORDS = [
    "train",
    "evaluate",
    "report",
    "data",
    "render",
    "fetch",
    "dsprites",
    "--help",
    "--version",
    "--model",
    "--alpha",
    "--omega",
    "--seed",
    "--steps",
    "--z-dim",
    "--set",
    "--config",
    "--resume",
    "--run-dir",
    "--codes",
    "--metrics",
    "--fast",
    "--output",
    "--representation",
    "--sheet",
    "--data",
    "--data-path",
    "--no-progress",
    "run",
    "codes.npz",
    "run.toml",
    "-1",
    "0",
    "1e300",
    "nan",
    "4294967296",
    "mig,dci",
    "x=1",
    "objective.alpha=3",
    "sampled",
    "vae",
    "",
    "é",
    "\x00",
]
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


class Reached(NsvaeError):
    """The stub of a command's work: the arguments were accepted."""

    exit_code = 99


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    """Commands parse and validate, then stop before any work; files live in ``tmp_path``."""

    def reached(*args, **kwargs):
        raise Reached("reached")

    for target in (
        "nsvae.experiment.train_run",
        "nsvae.metrics.evaluate.evaluate_run",
        "nsvae.metrics.evaluate.evaluate_codes",
        "nsvae.viz.report.write_report",
        "nsvae.data.dsprites.cached_images",
        "nsvae.data.dsprites.fetch_dsprites",
    ):
        monkeypatch.setattr(target, reached)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text("[train]\nsteps = 3\n")
    np.savez(tmp_path / "codes.npz", factors=np.zeros((4, 2), int), codes=np.zeros((4, 2)))


@FUZZ
@given(argv=st.lists(st.sampled_from(WORDS) | st.text(max_size=6), max_size=7))
def test_cli_arguments_never_crash(stubbed, capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code != 70 and "Traceback" not in captured.err, (argv, captured.err)
    if code not in (0, Reached.exit_code):
        assert len(captured.err.strip().splitlines()) == 1, (argv, captured.err)


@FUZZ
@given(content=st.binary(max_size=300) | st.sampled_from([b"PK\x03\x04", b"PK\x05\x06"]))
def test_random_bytes_as_codes_are_a_typed_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("bytes") / "codes.npz"
    path.write_bytes(content)
    with pytest.raises(NsvaeError):
        load_codes(path)


ARRAYS = st.tuples(
    st.sampled_from([np.int64, np.float64, np.float32, np.uint8, np.bool_, np.complex64, "U3"]),
    st.lists(st.integers(0, 5), max_size=3),
    st.sampled_from([0.0, 1.0, -1.0, 1e300, np.nan, np.inf, 7.0]),
)


@FUZZ
@given(factors=ARRAYS, codes=ARRAYS, sizes=st.none() | ARRAYS)
def test_valid_looking_codes_give_results_or_a_typed_error(tmp_path_factory, factors, codes, sizes):
    given_arrays = {"factors": factors, "codes": codes, "factor_sizes": sizes}
    path = tmp_path_factory.mktemp("codes") / "codes.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's casts of nan and inf to int
        np.savez(
            path,
            **{
                name: np.full(shape, value).astype(dtype)
                for name, spec in given_arrays.items()
                if spec is not None
                for dtype, shape, value in [spec]
            },
        )
        with contextlib.suppress(NsvaeError):
            evaluate_codes(*load_codes(path), metrics="mig,modularity_explicitness")


@FUZZ
@given(stored=JSONISH | st.fixed_dictionaries({"config": JSONISH, "observation_shape": JSONISH}))
def test_random_config_json_is_a_checkpoint_error_or_a_config(tmp_path_factory, stored):
    run = tmp_path_factory.mktemp("run")
    (run / "config.json").write_text(json.dumps(stored))
    with contextlib.suppress(NsvaeError):
        read_run_config(run)


@FUZZ
@given(
    stored=JSONISH | st.fixed_dictionaries({"entries": st.lists(JSONISH, max_size=3)}),
    raw=st.binary(max_size=40),
)
def test_random_eval_json_is_read_or_replaced(tmp_path_factory, stored, raw):
    run = tmp_path_factory.mktemp("eval")
    for content in (json.dumps(stored).encode(), raw):
        (run / "eval.json").write_bytes(content)
        with contextlib.suppress(NsvaeError):
            read_evaluation(run / "eval.json")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NsvaeWarning)  # "kept as eval.json.corrupt"
            save_evaluation(run, {"metrics": {"mig": {"discrete_mig": 0.5}}, "params": {"mig": {}}})
        assert read_evaluation(run / "eval.json")[-1]["values"] == {"discrete_mig": 0.5}
