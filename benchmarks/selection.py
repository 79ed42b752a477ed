"""Cost of choosing A_best against the number of latents d: nsvae's policies vs the seed's loop.

For d in 10, 32, 64, 128, 256 and both selection modes (``batch``: one KL vector [d]; ``sample``:
one per sample, [B, d] with B = 64), each policy of :func:`nsvae.objectives.selection.select_best`
is timed against a plain-Python greedy loop that follows the seed's way (Barrientos & Sootla,
2018, github.com/Gonzalob90/non-synergistic-vae): d rounds, each over every latent not yet
chosen, a candidate subset's KL summed from the tensor and read with ``.item()`` (one host
synchronisation per candidate); the seed's rule (strict argmax in round one, later candidates
accepted when ``omega * (S + k_j)`` beats the best so far). In ``sample`` mode the loop runs once
per sample; since that is linear in B, it is timed on ``--baseline-rows`` samples and scaled to B
(said in the output).

KL values: five informative latents (1 to 5 nats) and the rest nearly collapsed (< 0.05 nats),
as in a trained model; the vectorised policies cost the same whatever the values.
Figures are medians of repeated calls after one warm-up call, all in the same run.

Run: ``python benchmarks/selection.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nsvae.objectives.selection import POLICIES, select_best


def seed_loop(kl: torch.Tensor, omega: float) -> list[int]:
    """A_best of one KL vector [d], the seed's way: Python rounds, ``.item()`` per candidate."""
    d = kl.shape[0]
    chosen: list[int] = []
    best_value = 0.0
    for _ in range(d):
        candidate_set = chosen
        for j in range(d):
            if j in chosen:
                continue
            subset = chosen + [j]
            value = kl[subset].sum().item()
            if (omega * value if chosen else value) > best_value:
                candidate_set, best_value = subset, value
        chosen = candidate_set
    return chosen


def kl_values(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Per-latent KL: five informative latents and the rest nearly collapsed."""
    g = torch.Generator().manual_seed(0)
    kl = torch.rand(shape, generator=g) * 0.05
    kl[..., :5] += 1 + 4 * torch.rand(kl[..., :5].shape, generator=g)
    return kl.to(device)


def median_ms(call, device: torch.device, repeats: int, budget_s: float) -> float:
    """Median wall time of ``call()`` in ms: one warm-up, then up to ``repeats`` calls (>= 3)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    call()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (len(times) < repeats and time.perf_counter() - start < budget_s):
        tick = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - tick)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 32, 64, 128, 256])
    parser.add_argument("--batch", type=int, default=64, help="B of sample mode")
    parser.add_argument("--omega", type=float, default=0.9)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per timing at most")
    parser.add_argument("--baseline-rows", type=int, default=4, help="sample-mode loop rows")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    generator = torch.Generator(device).manual_seed(0)
    print(
        f"select_best vs the seed's Python loop: torch {torch.__version__}, device {device}, "
        f"{torch.get_num_threads()} thread(s), omega {args.omega}, epsilon {args.epsilon}, "
        f"sample mode B = {args.batch} (loop timed on {args.baseline_rows} rows, scaled)"
    )
    print(f"{'mode':6s} {'d':>4s} {'policy':15s} {'nsvae ms':>9s} {'seed loop ms':>12s} {'x':>8s}")
    for mode in ("batch", "sample"):
        for d in args.dims:
            kl = kl_values((d,) if mode == "batch" else (args.batch, d), device)
            rows = kl[None] if mode == "batch" else kl[: args.baseline_rows]
            scale = 1 if mode == "batch" else args.batch / len(rows)
            loop_ms = scale * median_ms(
                lambda rows=rows: [seed_loop(row, args.omega) for row in rows],
                device,
                args.repeats,
                args.budget,
            )
            for policy in POLICIES:
                ours = median_ms(
                    lambda kl=kl, policy=policy: select_best(
                        kl, args.omega, policy, args.epsilon, generator
                    ),
                    device,
                    args.repeats,
                    args.budget,
                )
                print(
                    f"{mode:6s} {d:4d} {policy:15s} {ours:9.3f} {loop_ms:12.1f} "
                    f"{loop_ms / ours:8.1f}"
                )


if __name__ == "__main__":
    main()
