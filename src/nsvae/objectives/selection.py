"""Choice of A_best, the latents that the Non-Synergistic VAE leaves out of its synergy penalty.

The Non-Syn objective [1]_ penalises S_max [2]_ through ``alpha * KL(A_worst)``: A_best is the
subset of latents with the largest joint KL (the sum of the per-latent KLs ``k``), A_worst its
complement. A greedy search with discount ``omega`` finds it: latent j joins A (KL so far S)
only when ``omega * (S + k_j) > S``. The three policies (:data:`POLICIES`) solve each leading
index of ``kl [..., d]`` independently, count negative entries as 0, always accept the first
latent they visit (A_best is never empty), compare in ``kl``'s dtype and break ties to the lower
index. The policies, their conventions in full and the differences from the seed's code:
docs/nonsyn.md#choosing-a_best.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nsvae.checks import check, choice, unit_interval
from nsvae.errors import DataError

POLICIES = ("reference", "sorted", "epsilon-greedy")


@torch.no_grad()
def select_best(
    kl: torch.Tensor,
    omega: float,
    policy: str = "sorted",
    epsilon: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Boolean mask of A_best, the latents the synergy penalty leaves out.

    Parameters
    ----------
    kl : tensor [..., d]
        Per-latent KL ``k_j`` in nats, ``d >= 1`` latents last; leading dimensions are solved
        independently (mode ``batch`` passes ``k.mean(0)`` of shape [d], mode ``sample`` [B, d]).
    omega : float in (0, 1]
        Discount of the greedy search: latent j joins when ``omega * (S + k_j) > S``.
    policy : {"sorted", "reference", "epsilon-greedy"}
        ``"sorted"`` (default) visits latents by decreasing KL and stops at the first rejection.
        ``"reference"`` is the seed's order-dependent rule (``greedy_policy_s_max_discount_worst``
        in the authors' code): rounds that scan the remaining latents by index and add the last
        one accepted. ``"epsilon-greedy"`` is ``"sorted"`` whose candidate is, with probability
        ``epsilon``, a random remaining latent, which still has to pass the rule. Full rules:
        docs/nonsyn.md#the-three-policies.
    epsilon : float in [0, 1]
        Exploration probability of ``"epsilon-greedy"`` (ignored by the other policies).
    generator : torch.Generator, optional
        Random source of ``"epsilon-greedy"``, on ``kl``'s device (default: torch's global one).
        Each call draws two uniform tensors of ``kl``'s shape, in this order: the per-round coin
        flips (round r explores when draw r < epsilon) and the priorities of the random
        candidates (the remaining latent of largest priority; ties to the lower index).

    Returns
    -------
    tensor of bool, shape of ``kl``
        True where the latent is in A_best; at least one True per row; no gradient.

    Raises
    ------
    ConfigError
        Unknown policy, ``omega`` outside (0, 1] or ``epsilon`` outside [0, 1].
    DataError
        ``kl`` has no latent dimension.

    Notes
    -----
    No host synchronisation; loop lengths depend on d and omega only, never on the values
    (``reference`` is bounded through omega by :func:`_reference_bounds`). Cost of each policy:
    docs/nonsyn.md#cost-no-host-synchronisation.

    References
    ----------
    .. [1] G. Barrientos and S. Sootla, "Non-synergistic variational autoencoders", 2018,
       OpenReview Skl3M20qYQ.
    .. [2] V. Griffith and C. Koch, "Quantifying synergistic mutual information", in Guided
       Self-Organization: Inception, Springer, 2014.

    Examples
    --------
    >>> k = torch.tensor([3.0, 0.34, 0.36])
    >>> select_best(k, 0.9, "sorted").nonzero().flatten().tolist()
    [0, 2]
    >>> select_best(k, 0.9, "reference").nonzero().flatten().tolist()
    [0, 1]
    """
    omega, epsilon = _check(kl, omega, policy, epsilon)
    k = kl.detach()
    k = (k if k.is_floating_point() else k.to(torch.get_default_dtype())).clamp_min(0)
    rows = k.reshape(-1, k.shape[-1])
    if policy == "reference":
        best = _reference(rows, omega)
    elif policy == "sorted":
        best = _accept_in_order(rows, _kl_order(rows), omega)
    else:
        best = _accept_in_order(rows, _explore_order(rows, epsilon, generator), omega)
    return best.reshape(kl.shape)


def check_selection(omega: float, policy: str, epsilon: float, prefix: str = "") -> None:
    """The one rule for a selection's settings; ``prefix`` names their config section.

    Raises
    ------
    ConfigError
        Unknown ``policy``, ``omega`` outside (0, 1] or ``epsilon`` outside [0, 1].
    """
    choice(f"{prefix}policy", policy, POLICIES)
    check(0.0 < float(omega) <= 1.0, f"{prefix}omega must be in (0, 1], got {omega}")
    unit_interval(f"{prefix}epsilon", float(epsilon))


def _check(kl: torch.Tensor, omega: float, policy: str, epsilon: float) -> tuple[float, float]:
    """Validated ``(omega, epsilon)`` as floats; a one-line typed error otherwise."""
    check_selection(omega, policy, epsilon)
    if kl.ndim == 0 or kl.shape[-1] == 0:
        raise DataError(f"kl must have shape [..., d] with d >= 1 latents, got {tuple(kl.shape)}")
    return float(omega), float(epsilon)


def _kl_order(k: torch.Tensor) -> torch.Tensor:
    """Latent indices [n, d] by decreasing KL, equal values in index order."""
    return torch.sort(k, dim=-1, descending=True, stable=True).indices


def _accept_in_order(k: torch.Tensor, order: torch.Tensor, omega: float) -> torch.Tensor:
    """A_best when latents are visited in ``order`` and the search stops at the first rejection.

    With ``after[r]`` the KL of the first r + 1 visited latents and ``before[r] = after[r - 1]``,
    visit r passes when ``omega * after[r] > before[r]``; A_best is the first visit plus the run
    of passes that follows it.
    """
    after = k.gather(-1, order).cumsum(-1)
    before = F.pad(after[:, :-1], (1, 0))
    passes = omega * after > before
    passes[:, 0] = True
    prefix = (~passes).cumsum(-1) == 0
    return torch.zeros_like(prefix).scatter_(-1, order, prefix)


def _explore_order(
    k: torch.Tensor, epsilon: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Visiting order [n, d] of epsilon-greedy: per round the largest KL or a random latent."""
    n, d = k.shape
    explore = torch.rand(n, d, generator=generator, device=k.device) < epsilon
    priority = torch.rand(n, d, generator=generator, device=k.device)
    by_kl = _kl_order(k)
    ranks = torch.arange(d, device=k.device, dtype=priority.dtype).expand(n, d)
    greedy = torch.empty_like(priority).scatter_(-1, by_kl, -ranks)
    visited = torch.zeros_like(explore)
    order = torch.empty_like(by_kl)
    for r in range(d):
        candidates = torch.where(explore[:, r, None], priority, greedy)
        pick = candidates.masked_fill(visited, -torch.inf).argmax(-1, keepdim=True)
        order[:, r, None] = pick
        visited.scatter_(-1, pick, True)
    return order


def _reference(k: torch.Tensor, omega: float) -> torch.Tensor:
    """A_best [n, d] under the seed's order-dependent rule (see :func:`select_best`)."""
    d = k.shape[-1]
    positions = torch.arange(d, device=k.device)
    first = k.argmax(-1, keepdim=True)
    best = torch.zeros_like(k, dtype=torch.bool).scatter_(-1, first, True)
    total = k.gather(-1, first).squeeze(-1)
    rounds, steps = _reference_bounds(omega, d)
    for r in range(rounds):
        # A round that accepts anything follows r that each added a latent: d - 1 - r remain.
        last, total = _round_winner(total[:, None] + k, ~best, total, omega, min(steps, d - 1 - r))
        best |= positions == last[:, None]
    return best


def _round_winner(
    value: torch.Tensor, remaining: torch.Tensor, total: torch.Tensor, omega: float, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Last latent one reference round accepts (-1 if none) and the subset's KL after it.

    ``value[:, j] = S + k_j``. Starting from ``best = S``, the round scans by index, accepts j
    when ``omega * value[:, j] > best`` and sets ``best = value[:, j]``; each step of the loop
    follows one acceptance. The next acceptance is simply the first remaining j with
    ``omega * value[:, j] > best``: no j up to the last acceptance can pass, since each was
    either accepted (``omega * value <= value <= best``) or rejected under a lower ``best``.
    """
    scaled = torch.where(remaining, omega * value, -torch.inf)
    if omega == 1.0:  # acceptances climb the strict records, so the round ends on the first max
        top = scaled.argmax(-1, keepdim=True)
        found = scaled.gather(-1, top).squeeze(-1) > total
        new_total = torch.where(found, value.gather(-1, top).squeeze(-1), total)
        return torch.where(found, top.squeeze(-1), -1), new_total
    last = torch.full_like(total, -1, dtype=torch.long)
    for _ in range(steps):
        passes = scaled > total[:, None]
        found = passes.any(-1)
        following = passes.to(torch.uint8).argmax(-1, keepdim=True)
        last = torch.where(found, following.squeeze(-1), last)
        total = torch.where(found, value.gather(-1, following).squeeze(-1), total)
    return last, total


def _reference_bounds(omega: float, d: int) -> tuple[int, int]:
    """Rounds after the first, and acceptances per round, that the reference rule can need.

    Once the largest KL M is in A, ``S >= M >= k_j``. A latent joins only if
    ``k_j > (1 / omega - 1) S``, and then S grows by a factor above ``1 / omega``, so after m
    latents ``S > M omega^-(m-1)`` and nothing joins once ``(1 / omega - 1) S >= M``: at most
    ``ceil(log(omega / (1 - omega)) / log(1 / omega))`` additions (none for omega <= 1/2).
    Within a round the accepted values ``S + k_j`` rise by factors above ``1 / omega`` from above
    S to at most 2S: fewer than ``log 2 / log(1 / omega)`` acceptances. One step of slack each
    for rounding; never more than ``d - 1``.
    """
    if omega == 1.0:
        return d - 1, 1
    gap = -math.log(omega)
    additions = math.ceil(math.log(omega / (1 - omega)) / gap) if omega > 0.5 else 0
    chain = math.floor(math.log(2) / gap) + 1
    return min(d - 1, additions + 1), min(d - 1, chain + 1)
