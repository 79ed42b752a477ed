"""A_best selection policies: each equals a plain-Python loop twin written from its description."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nsvae.errors import ConfigError, DataError
from nsvae.objectives.selection import POLICIES, select_best

SETTINGS = settings(max_examples=150, derandomize=True, deadline=None, database=None)
# Values and discounts whose sums and products are exact in float32: comparisons are then the
# same in the library (kl's dtype) and in the twins (Python floats), ties included.
EXACT_VALUES = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0]
EXACT_OMEGAS = [0.25, 0.5, 0.75, 0.875, 0.9375, 1.0]
EXAMPLE = [3.0, 0.34, 0.36]


def reference_twin(k: list[float], omega: float) -> set[int]:
    """The seed's rule: d rounds; round 1 the strict argmax; later rounds scan by index."""
    first = 0
    for j in range(len(k)):
        if k[j] > k[first]:
            first = j
    members, total = [first], k[first]
    for _ in range(len(k) - 1):
        best, winner = total, None
        for j in range(len(k)):
            if j not in members and omega * (total + k[j]) > best:
                best, winner = total + k[j], j
        if winner is not None:
            members.append(winner)
            total = best
    return set(members)


def sorted_twin(k: list[float], omega: float) -> set[int]:
    """Visit by decreasing KL (ties by index); add while omega * (S + k) > S."""
    order = sorted(range(len(k)), key=lambda j: (-k[j], j))
    members, total = [order[0]], k[order[0]]
    for j in order[1:]:
        if not omega * (total + k[j]) > total:
            break
        members.append(j)
        total += k[j]
    return set(members)


def epsilon_twin(k: list[float], omega: float, explore: list[bool], priority: list[float]):
    """Each round's candidate: largest priority if the round explores, else largest KL."""
    remaining, members, total = list(range(len(k))), [], 0.0
    for r in range(len(k)):
        key = priority if explore[r] else k
        j = max(remaining, key=lambda i: (key[i], -i))
        if members and not omega * (total + k[j]) > total:
            break
        members.append(j)
        remaining.remove(j)
        total += k[j]
    return set(members)


def as_sets(mask: torch.Tensor) -> list[set[int]]:
    return [set(row.nonzero().flatten().tolist()) for row in mask.reshape(-1, mask.shape[-1])]


def rows(kl: torch.Tensor) -> list[list[float]]:
    return kl.reshape(-1, kl.shape[-1]).tolist()


@st.composite
def problems(draw, max_d: int = 12):
    """(kl [d] or [B, d], omega): small exact values with many ties, or float64 noise."""
    d, b = draw(st.integers(1, max_d)), draw(st.integers(1, 4))
    if draw(st.booleans()):
        values = st.sampled_from(EXACT_VALUES)
        omega = draw(st.sampled_from(EXACT_OMEGAS))
        dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    else:
        values = st.floats(0.0, 10.0, allow_subnormal=False)
        omega = draw(st.floats(0.05, 1.0))
        dtype = torch.float64
    kl = torch.tensor(
        draw(st.lists(st.lists(values, min_size=d, max_size=d), min_size=b, max_size=b)),
        dtype=dtype,
    )
    return (kl[0] if b == 1 and draw(st.booleans()) else kl), omega


@SETTINGS
@given(problems())
def test_reference_equals_loop_twin(problem):
    kl, omega = problem
    assert as_sets(select_best(kl, omega, "reference")) == [
        reference_twin(k, omega) for k in rows(kl)
    ]


@SETTINGS
@given(problems())
def test_sorted_equals_loop_twin(problem):
    kl, omega = problem
    assert as_sets(select_best(kl, omega, "sorted")) == [sorted_twin(k, omega) for k in rows(kl)]


@SETTINGS
@given(problems(), st.sampled_from([0.0, 0.3, 0.7, 1.0]), st.integers(0, 2**16))
def test_epsilon_greedy_equals_loop_twin(problem, epsilon, seed):
    kl, omega = problem
    mask = select_best(kl, omega, "epsilon-greedy", epsilon, torch.Generator().manual_seed(seed))
    draws = torch.Generator().manual_seed(seed)  # the documented draws, in their order
    explore = (torch.rand(kl.shape, generator=draws) < epsilon).reshape(-1, kl.shape[-1])
    priority = torch.rand(kl.shape, generator=draws).reshape(-1, kl.shape[-1])
    expected = [
        epsilon_twin(k, omega, e, p)
        for k, e, p in zip(rows(kl), explore.tolist(), priority.tolist(), strict=True)
    ]
    assert as_sets(mask) == expected


@SETTINGS
@given(problems())
def test_epsilon_zero_equals_sorted(problem):
    kl, omega = problem
    mask = select_best(kl, omega, "epsilon-greedy", 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(mask, select_best(kl, omega, "sorted"))


def test_seed_example():
    k = torch.tensor(EXAMPLE)
    assert as_sets(select_best(k, 0.9, "reference")) == [{0, 1}]
    assert as_sets(select_best(k, 0.9, "sorted")) == [{0, 2}]
    assert as_sets(select_best(k, 0.9)) == [{0, 2}]  # sorted is the default


@pytest.mark.parametrize("policy", POLICIES)
def test_ties_go_to_the_lower_index(policy):
    # 4 first; 0.75 * (4 + 2) > 4 admits one 2; then 0.75 * (6 + 2) = 6 is not > 6.
    k = torch.tensor([[4.0, 2.0, 2.0], [2.0, 2.0, 4.0]])
    assert as_sets(select_best(k, 0.75, policy, epsilon=0.0)) == [{0, 1}, {0, 2}]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("omega", [0.1, 0.5])
def test_small_omega_keeps_only_the_argmax(policy, omega):
    # Nothing can exceed (1/omega - 1) * S >= S >= every k once the largest KL is in.
    k = torch.tensor([[1.0, 3.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    assert as_sets(select_best(k, omega, policy, epsilon=0.0)) == [{1}, {0}]


@pytest.mark.parametrize("policy", POLICIES)
def test_omega_one_keeps_every_informative_latent(policy):
    k = torch.tensor([[0.0, 2.0, 0.0, 1.0, 3.0, 0.5], [0.0] * 6])
    assert as_sets(select_best(k, 1.0, policy, epsilon=0.0)) == [{1, 3, 4, 5}, {0}]


@pytest.mark.parametrize("policy", POLICIES)
def test_never_empty_and_shape_kept(policy):
    g = torch.Generator().manual_seed(0)
    kl = torch.rand(2, 3, 7, generator=g) * (torch.rand(2, 3, 7, generator=g) < 0.3)
    kl[0, 0] = 0.0
    mask = select_best(kl, 0.9, policy, generator=g)
    assert mask.shape == kl.shape and mask.dtype == torch.bool
    assert mask.any(-1).all()
    if policy != "epsilon-greedy":
        assert torch.equal(mask, select_best(kl.reshape(6, 7), 0.9, policy).reshape(2, 3, 7))


@pytest.mark.parametrize("policy", POLICIES)
def test_negative_rounding_noise_counts_as_zero(policy):
    noisy = torch.tensor([-1e-7, 0.0, 2.0, -3.0, 1.0])
    clean = torch.tensor([0.0, 0.0, 2.0, 0.0, 1.0])
    assert torch.equal(select_best(noisy, 1.0, policy, 0.0), select_best(clean, 1.0, policy, 0.0))


@pytest.mark.parametrize("omega", [0.6, 0.75, 0.9, 0.95])
def test_reference_longest_chain_within_a_round(omega):
    # After the largest KL (S = 1) the values S + k_j rise by just over 1/omega in index order,
    # so round 2 accepts every one of them in turn and keeps the last: the longest possible chain.
    steps = math.floor(math.log(2) / -math.log(omega))
    chain = [omega ** -(i + 1) * (1 + (i + 1) * 1e-9) - 1 for i in range(steps)]
    k = [1.0] + [c for c in chain if c <= 1.0]
    kl = torch.tensor(k, dtype=torch.float64)
    assert as_sets(select_best(kl, omega, "reference")) == [reference_twin(k, omega)]


@SETTINGS
@given(st.sampled_from([0.6, 0.75, 0.9, 0.95]), st.randoms(use_true_random=False))
def test_reference_largest_subsets(omega, rng):
    # Many latents just above the joining threshold (1/omega - 1) * S as S grows from 1: the
    # regime where the reference rule adds the most latents; order shuffled.
    k, total = [1.0], 1.0
    while (step := (1 / omega - 1) * total * (1 + rng.random() * 1e-3)) <= 1.0:
        k.append(step)
        total += step
    rng.shuffle(k)
    kl = torch.tensor(k, dtype=torch.float64)
    assert as_sets(select_best(kl, omega, "reference")) == [reference_twin(k, omega)]
    assert as_sets(select_best(kl, omega, "sorted")) == [sorted_twin(k, omega)]


def test_epsilon_greedy_is_reproducible_with_a_generator():
    kl = torch.rand(32, 10, generator=torch.Generator().manual_seed(3))

    def draw(seed):
        return select_best(kl, 0.9, "epsilon-greedy", 0.5, torch.Generator().manual_seed(seed))

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def test_epsilon_one_picks_uniform_random_latents():
    # Equal KL and omega = 1/2: only the first visit is accepted, so A_best is one latent, the
    # argmax (index 0) when greedy and a uniformly random one when every round explores.
    kl = torch.ones(4000, 4)
    g = torch.Generator().manual_seed(0)
    greedy = select_best(kl, 0.5, "epsilon-greedy", 0.0, g)
    assert greedy[:, 0].all() and greedy.sum() == 4000
    random = select_best(kl, 0.5, "epsilon-greedy", 1.0, g)
    assert (random.sum(1) == 1).all()
    assert torch.allclose(random.float().mean(0), torch.full((4,), 0.25), atol=0.03)


@pytest.mark.parametrize("policy", POLICIES)
def test_mask_carries_no_gradient(policy):
    kl = torch.rand(3, 6, generator=torch.Generator().manual_seed(0)).requires_grad_()
    best = select_best(kl, 0.9, policy)
    assert best.dtype == torch.bool and not best.requires_grad
    (kl * ~best).sum().backward()
    assert torch.equal(kl.grad, (~best).float())


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"policy": "greedy"}, ConfigError),
        ({"omega": 0.0}, ConfigError),
        ({"omega": -0.5}, ConfigError),
        ({"omega": 1.5}, ConfigError),
        ({"omega": float("nan")}, ConfigError),
        ({"policy": "epsilon-greedy", "epsilon": 1.5}, ConfigError),
        ({"policy": "epsilon-greedy", "epsilon": -0.1}, ConfigError),
        ({"kl": torch.tensor(1.0)}, DataError),
        ({"kl": torch.zeros(4, 0)}, DataError),
    ],
)
def test_bad_input_gives_one_line_error(kwargs, error):
    args = {"kl": torch.tensor(EXAMPLE), "omega": 0.9} | kwargs
    with pytest.raises(error) as info:
        select_best(**args)
    assert "\n" not in str(info.value)
