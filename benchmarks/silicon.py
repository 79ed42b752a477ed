"""What the CPU can do, and what each layer of a model gets out of it.

Shared by the benchmarks that quote a share of the machine's peak:

* :func:`matmul_peak`: the best FLOP/s of square matrix products, warmed up, at the thread count
  torch runs with: the ceiling a share is quoted against;
* :func:`layer_table`: forward, data-gradient and weight-gradient time of every convolution and
  linear layer of a model, plain torch layers beside nsvae's reformulated ones, at a precision.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import nn

from nsvae.models.layers import plain_layers
from nsvae.precision import autocast


def matmul_peak(dtype: torch.dtype, sizes=(1024, 2048), repeats: int = 10) -> float:
    """Best FLOP/s of an n x n product in ``dtype`` over ``sizes``: three warm-up calls, then the
    fastest of ``repeats`` timed calls, at ``torch.get_num_threads()`` threads."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        for _ in range(3):
            a @ b
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def _median_ms(function, repeats: int, setup=lambda: None) -> float:
    """Median milliseconds of ``function(setup())`` over ``repeats`` calls (``setup`` untimed),
    after three untimed calls."""
    for _ in range(3):
        function(setup())
    times = []
    for _ in range(repeats):
        state = setup()
        start = time.perf_counter()
        function(state)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _pass_times(layer: nn.Module, x: torch.Tensor, precision: str, repeats: int) -> dict:
    """Milliseconds of the forward pass, and of the data and weight gradients each on its own:
    the backward alone is timed after an untimed forward, with the other input frozen."""
    parameters = list(layer.parameters())

    def forward(input_grad: bool, weight_grad: bool):
        inputs = x.detach().requires_grad_(input_grad)
        for parameter in parameters:
            parameter.requires_grad_(weight_grad)
        with autocast(x.device, precision):
            y = layer(inputs)
        return y, [inputs] if input_grad else parameters

    def backward(state) -> None:
        y, wanted = state
        torch.autograd.grad(y, wanted, torch.ones_like(y))

    times = {
        "forward": _median_ms(lambda _: forward(False, False), repeats),
        "data grad": _median_ms(backward, repeats, lambda: forward(True, False)),
        "weight grad": _median_ms(backward, repeats, lambda: forward(False, True)),
    }
    for parameter in parameters:
        parameter.requires_grad_(True)
    return times


def _layer_inputs(
    model: nn.Module, x: torch.Tensor, precision: str
) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """(name, layer, input) of every convolution and linear layer, in the order they run, each
    input as a step at ``precision`` gives it to the layer (bf16 after the first)."""
    seen = []
    hooks = [
        module.register_forward_hook(
            lambda module, inputs, _, name=name: seen.append((name, module, inputs[0].detach()))
        )
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
    ]
    with torch.no_grad(), autocast(x.device, precision):
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


def _flops(layer: nn.Module, x: torch.Tensor) -> float:
    """Floating-point operations of one pass (2 per multiply-add; each pass has as many)."""
    with torch.no_grad():
        y = layer(x.float())
    if isinstance(layer, nn.Linear):
        return 2.0 * x.shape[0] * layer.in_features * layer.out_features
    per_output = layer.weight[0].numel() if isinstance(layer, nn.Conv2d) else layer.weight.numel()
    spatial = y.shape[2] * y.shape[3] if isinstance(layer, nn.Conv2d) else x.shape[2] * x.shape[3]
    outputs = layer.out_channels if isinstance(layer, nn.Conv2d) else 1
    return 2.0 * x.shape[0] * spatial * outputs * per_output


def layer_table(model: nn.Module, x: torch.Tensor, precision: str, repeats: int = 20) -> str:
    """A table of each layer's three passes (ms and GFLOP/s), torch's plain layers against the
    reformulated ones (:mod:`nsvae.models.layers`), at ``precision``, on the batch ``x``.

    A pass a training step never takes (the data gradient of the first layer, whose input is the
    data) is listed and marked with ``*``; the totals leave it out.
    """
    reformulated = _layer_inputs(model, x, precision)
    plain = _layer_inputs(plain_layers(copy.deepcopy(model)), x, precision)
    header = f"{'layer':28s} {'shape in':>16s} {'GFLOP':>6s}  " + "  ".join(
        f"{p:>21s}" for p in ("forward", "data grad", "weight grad")
    )
    lines = [
        f"per-layer passes at {precision}: ms, plain torch layer -> nsvae's (nsvae's GFLOP/s)",
        header,
    ]
    totals = {"plain": 0.0, "nsvae": 0.0}
    for index, ((name, layer, inputs), (_, twin, _)) in enumerate(
        zip(reformulated, plain, strict=True)
    ):
        flops = _flops(layer, inputs)
        cells = []
        times = {
            "plain": _pass_times(twin, inputs, precision, repeats),
            "nsvae": _pass_times(layer, inputs, precision, repeats),
        }
        for key in ("forward", "data grad", "weight grad"):
            skipped = index == 0 and key == "data grad"
            for kind in totals:
                totals[kind] += 0.0 if skipped else times[kind][key]
            before, after = times["plain"][key], times["nsvae"][key]
            cell = f"{before:5.2f} -> {after:5.2f}" + ("*" if skipped else " ")
            cells.append(f"{cell:>14s} ({flops / max(after, 1e-3) / 1e6:4.0f})")
        shape = "x".join(map(str, inputs.shape[1:]))
        kind = type(layer).__name__.replace("Transpose", "T")
        lines.append(
            f"{name + ' ' + kind:28s} {shape:>16s} {flops / 1e9:6.3f}  " + "  ".join(cells)
        )
    lines.append(
        f"sum of the passes a step takes: plain {totals['plain']:.2f} ms, "
        f"nsvae {totals['nsvae']:.2f} ms (layers alone, caches warm: a step spends more)"
    )
    return "\n".join(lines)
