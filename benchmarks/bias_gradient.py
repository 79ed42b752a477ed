"""The bias gradient of dlib's transposed convolutions in bf16: inside torch's backward, or a sum.

For each transposed convolution of dlib's decoder at batch 64, channels-last bf16 (as a bf16
training step runs it), the script times torch's convolution backward asked for the weight
gradient alone, for the weight and bias gradients together (what a plain
``nn.ConvTranspose2d`` asks for), and the bias gradient as the sum of the output gradient
(what :mod:`nsvae.models.layers` computes instead). Medians of warmed-up calls.

Run: ``python benchmarks/bias_gradient.py``.
"""

from __future__ import annotations

import statistics
import time

import torch

from nsvae.device import physical_cores
from nsvae.provenance import cpu_description

# (in channels, out channels, input size) of dlib's decoder's transposed convolutions
LAYERS = ((64, 64, 4), (64, 32, 8), (32, 32, 16), (32, 1, 32))


def median_ms(function, repeats: int = 20) -> float:
    for _ in range(3):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    torch.set_num_threads(physical_cores())
    print(f"CPU: {cpu_description()}")
    print(
        f"transposed convolutions (4x4, stride 2), batch 64, bf16, channels-last, "
        f"{torch.get_num_threads()} threads; median ms"
    )
    print(f"  {'layer':22s} {'weight':>8s} {'weight+bias':>12s} {'bias as a sum':>14s}")
    last = torch.channels_last
    for cin, cout, size in LAYERS:
        x = torch.randn(64, cin, size, size, dtype=torch.bfloat16).to(memory_format=last)
        grad = torch.randn(64, cout, 2 * size, 2 * size, dtype=torch.bfloat16)
        grad = grad.to(memory_format=last)
        weight = torch.randn(cin, cout, 4, 4, dtype=torch.bfloat16).to(memory_format=last)

        def backward(mask, grad=grad, x=x, weight=weight, cout=cout):
            return torch.ops.aten.convolution_backward(
                grad, x, weight, [cout], [2, 2], [1, 1], [1, 1], True, [0, 0], 1, mask
            )

        times = (
            median_ms(lambda: backward([False, True, False])),
            median_ms(lambda: backward([False, True, True])),
            median_ms(lambda grad=grad: grad.sum((0, 2, 3))),
        )
        name = f"{cin} -> {cout}, {size} -> {2 * size} px"
        print(f"  {name:22s} {times[0]:8.2f} {times[1]:12.2f} {times[2]:14.2f}")


if __name__ == "__main__":
    main()
