"""Choice of A_best, the latents that the Non-Synergistic VAE leaves out of its synergy penalty.

Barrientos & Sootla [1]_ penalise synergy through Griffith & Koch's S_max [2]_, the information
"beyond the maximum of its parts": the objective adds ``alpha * KL(A_worst)``, where A_best is the
subset of latents with the largest joint KL and A_worst its complement. The subset is found by a
greedy search with a discount ``omega``: a latent j joins A (whose KL so far is S) only when
``omega * (S + k_j) > S``, so each newcomer must raise the subset's KL by a factor above
``1 / omega``. The KL of a subset is the sum of its per-latent KL ``k`` (diagonal posteriors).

Conventions shared by the three policies (:data:`POLICIES`):

- ``kl`` is ``[..., d]``; every leading index is an independent problem. Negative entries (the
  rounding noise of an analytic KL) count as 0.
- The first latent a search visits is always accepted, so A_best is never empty (the seed's
  code returns an empty subset when every KL is 0).
- Every comparison is ``omega * (S + k_j) > S`` in ``kl``'s dtype (the seed's form), with S
  summed in the order of acceptance. Cases that only rounding decides may differ from a float32
  loop, since ``torch.cumsum`` may accumulate in higher precision; on CPU with float64 input the
  policies agree exactly with loops over Python floats.
- Ties go to the lower index: ``sorted`` visits equal KL values in index order, and
  ``reference`` scans candidates in index order with strict comparisons.
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
        ``"sorted"`` (default) visits latents by decreasing KL and stops at the first rejection:
        A_best is the longest prefix of that order in which every latent after the first
        satisfies the rule. ``"reference"`` is the order-dependent rule of the seed
        (``greedy_policy_s_max_discount_worst`` in the authors' code): round 1 takes the first
        argmax; every later round scans the remaining latents by ascending index with a running
        ``best = S``, accepts j when ``omega * (S + k_j) > best`` and at once sets
        ``best = S + k_j``, then adds only the *last* latent it accepted (a round that accepts
        none leaves A as it is, and so does every round after it); d rounds in all.
        ``"epsilon-greedy"`` is ``"sorted"`` in which each round's candidate is, with probability
        ``epsilon``, a uniformly random remaining latent instead of the remaining latent of
        largest KL; the candidate still has to pass the rule, the first is always accepted, and
        the search stops at the first rejection. (The seed's e-greedy added the random latent
        unconditionally and went on for d rounds, so with epsilon = 1 it always kept all d.)
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
    No host synchronisation; loop lengths depend on d and omega only, never on the values:

    - ``sorted``: closed form; one sort, one cumulative sum, one cumulative count of rejections.
    - ``reference``: inherently sequential (a round's winner depends on the order of acceptances
      within it, the next round on the winner). It runs a fixed number of tensor steps that
      is bounded through ``omega`` (:func:`_reference_bounds`): for ``omega = 0.9`` at most 22
      rounds of at most 8 chain steps whatever d (the r-th round after the first at most
      ``d - 1 - r``); ``omega = 1`` needs ``d - 1`` rounds of one step (each round's winner is
      then the first maximum).
    - ``epsilon-greedy``: the visiting order merges the KL order with a random one, skipping
      latents already visited; that merge is built in a loop of d tensor steps, then accepted in
      closed form as for ``sorted``.

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
