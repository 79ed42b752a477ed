"""Every benchmark script imports (their code paths are the library's, which the tests cover)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from helpers import REPOSITORY

BENCHMARKS = REPOSITORY / "benchmarks"


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_benchmark_script_imports(path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # runs nothing: every script guards main()
    if "__main__" in path.read_text(encoding="utf-8"):
        assert callable(module.main)


def test_the_step_benchmark_times_bf16_by_default_only_where_the_cpu_has_bf16_arithmetic(
    monkeypatch,
):
    import argparse

    from nsvae.precision import native_bf16

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import train_step

    expected = ["fp32", "bf16"] if native_bf16("cpu") else ["fp32"]
    assert train_step.parse_precisions("auto") == expected
    assert train_step.parse_precisions("bf16,fp32,bf16") == ["bf16", "fp32"]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown precision 'fp16'"):
        train_step.parse_precisions("fp32,fp16")


def test_the_per_layer_table_counts_each_layers_flops_as_torchs_flop_counter(monkeypatch):
    """benchmarks/silicon.py's GFLOP/s rest on its FLOP count: it must agree with torch's."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nsvae.config import ModelConfig
    from nsvae.models import build_model
    from nsvae.models.layers import plain_layers

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import silicon

    model = plain_layers(build_model(ModelConfig(arch="dlib", z_dim=4)))
    x = torch.rand(2, 1, 64, 64)
    layers = silicon._layer_inputs(model, x, "fp32")
    assert len(layers) == 12  # 4 convolutions, 4 linear layers, 4 transposed convolutions
    for _, layer, inputs in layers:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            layer(inputs)
        assert silicon._flops(layer, inputs) == counter.get_total_flops()
