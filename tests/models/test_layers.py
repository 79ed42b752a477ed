"""The reformulated convolutions equal torch's plain layers: forward, data and weight gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nsvae.config import ModelConfig
from nsvae.models import build_model
from nsvae.models import layers as fast
from nsvae.objectives import build_objective, objective_config
from nsvae.objectives.base import adam
from nsvae.rundir.checkpoint import join_optimizer, split_optimizer
from nsvae.training.step import optimizer_steps

TOLERANCE = 1e-5


def twins(plain_class, fast_class, *args, **kwargs):
    """A plain torch layer and its reformulated twin with the same (channels-last) weights."""
    torch.manual_seed(0)
    plain = plain_class(*args, **kwargs).to(memory_format=torch.channels_last)
    reformulated = fast_class(*args, **kwargs).to(memory_format=torch.channels_last)
    reformulated.load_state_dict(plain.state_dict())
    return plain, reformulated


def passes(layer, x, grad_seed=1):
    """Output, and the gradients of x, weight and bias, for a fixed random output gradient."""
    x = x.detach().clone().requires_grad_(True)
    y = layer(x)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_seed))
    grads = torch.autograd.grad(y, [x, layer.weight, layer.bias], g)
    return y, grads


def graph_nodes(y: torch.Tensor) -> set[str]:
    """Names of the backward nodes between y and the leaves: which code the backward runs."""
    names, todo = set(), [y.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and type(node).__name__ not in names:
            names.add(type(node).__name__)
            todo += [child for child, _ in node.next_functions]
    return names


def assert_close(a, b, scale=1.0):
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= TOLERANCE * max(scale, b.abs().max().item())


# (plain class, reformulated class, layer arguments, input shape, backward that must run)
LAYERS = {
    "patch conv 2x2 (dlib conv3)": (
        nn.Conv2d,
        fast.Conv2d,
        (32, 64, 2, 2, 0),
        (16, 32, 16, 16),
        "AddmmBackward0",
    ),
    "patch conv 2x2 (dlib conv4)": (
        nn.Conv2d,
        fast.Conv2d,
        (64, 64, 2, 2, 0),
        (16, 64, 8, 8),
        "AddmmBackward0",
    ),
    "patch conv 4x4 stride 4": (
        nn.Conv2d,
        fast.Conv2d,
        (3, 8, 4, 4, 0),
        (4, 3, 16, 16),
        "AddmmBackward0",
    ),
    "patch conv 2x3, stride (2, 3)": (
        nn.Conv2d,
        fast.Conv2d,
        (3, 5, (2, 3), (2, 3), 0),
        (4, 3, 8, 9),
        "AddmmBackward0",
    ),
    "2x2 stride-2 conv of an odd size": (
        nn.Conv2d,
        fast.Conv2d,
        (3, 5, 2, 2, 0),
        (4, 3, 9, 9),
        "_ConvBackward",
    ),
    "4x4 conv, unfolded weight gradient (seed conv3)": (
        nn.Conv2d,
        fast.Conv2d,
        (32, 64, 4, 2, 1),
        (16, 32, 16, 16),
        "_ConvBackward",
    ),
    "4x4 transposed conv, unfolded weight gradient (dlib deconv1)": (
        nn.ConvTranspose2d,
        fast.ConvTranspose2d,
        (64, 64, 4, 2, 1),
        (16, 64, 4, 4),
        "_ConvBackward",
    ),
    "4x4 transposed conv, unfolded weight gradient (dlib deconv2)": (
        nn.ConvTranspose2d,
        fast.ConvTranspose2d,
        (64, 32, 4, 2, 1),
        (16, 64, 8, 8),
        "_ConvBackward",
    ),
    "4x4 conv, one channel (dlib conv1)": (
        nn.Conv2d,
        fast.Conv2d,
        (1, 32, 4, 2, 1),
        (8, 1, 64, 64),
        "_ConvBackward",
    ),
    "4x4 transposed conv to one channel (dlib deconv4)": (
        nn.ConvTranspose2d,
        fast.ConvTranspose2d,
        (32, 1, 4, 2, 1),
        (8, 32, 32, 32),
        "_ConvBackward",
    ),
    "4x4 transposed conv to one channel, a tall image": (
        nn.ConvTranspose2d,
        fast.ConvTranspose2d,
        (6, 1, 4, 2, 1),
        (3, 6, 5, 3),
        "_ConvBackward",
    ),
    "4x4 transposed conv to one channel, output padding (no fold)": (
        nn.ConvTranspose2d,
        fast.ConvTranspose2d,
        (6, 1, 4, 2, 1, 1),
        (3, 6, 5, 3),
        "_ConvBackward",
    ),
    "4x4 transposed conv, too large to unfold (dlib deconv3)": (
        nn.ConvTranspose2d,
        fast.ConvTranspose2d,
        (32, 32, 4, 2, 1),
        (64, 32, 16, 16),
        "_ConvBackward",
    ),
    "3x3 conv, stride 1, padding 1": (
        nn.Conv2d,
        fast.Conv2d,
        (4, 6, 3, 1, 1),
        (4, 4, 10, 10),
        "_ConvBackward",
    ),
    "3x3 transposed conv, output padding": (
        nn.ConvTranspose2d,
        fast.ConvTranspose2d,
        (6, 4, 3, 2, 1, 1),
        (4, 6, 5, 5),
        "_ConvBackward",
    ),
    "grouped conv (plain)": (
        nn.Conv2d,
        fast.Conv2d,
        (8, 8, 2, 2, 0),
        (4, 8, 8, 8),
        "ConvolutionBackward0",
    ),
}


def folds(name: str) -> bool:
    """Whether the layer of LAYERS named ``name`` runs forward as a product and a fold."""
    return "to one channel" in name and "no fold" not in name


def unfolds(name: str) -> bool:
    """Whether the layer of LAYERS named ``name`` takes its weight gradient by im2col (in the
    dtypes of ``fast.UNFOLD_DTYPES``)."""
    return "unfolded weight gradient" in name


@pytest.mark.parametrize("name", LAYERS)
def test_a_reformulated_layer_equals_its_plain_twin_in_fp32(name, monkeypatch):
    # im2col runs in bf16 only, where it is faster; its arithmetic is checked here in fp32
    monkeypatch.setattr(fast, "UNFOLD_DTYPES", frozenset({torch.float32}))
    plain_class, fast_class, args, shape, backward = LAYERS[name]
    kwargs = {"groups": 2} if name.startswith("grouped") else {}
    plain, reformulated = twins(plain_class, fast_class, *args, **kwargs)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    x = x.to(memory_format=torch.channels_last)
    y_plain, grads_plain = passes(plain, x)
    y_fast, grads_fast = passes(reformulated, x)
    assert backward in graph_nodes(y_fast)
    if backward == "_ConvBackward":  # im2col and the fold run exactly where named so
        *_, unfold, fold = y_fast.grad_fn.geometry
        assert unfold == unfolds(name)
        assert fold == folds(name)
    assert_close(y_fast, y_plain)
    for fast_grad, plain_grad in zip(grads_fast, grads_plain, strict=True):
        assert_close(fast_grad, plain_grad)
    # the weight gradient is laid out as the weight, as a fused optimiser needs
    assert grads_fast[1].stride() == reformulated.weight.stride()


@pytest.mark.parametrize("name", [n for n in LAYERS if "plain" not in n])
def test_a_reformulated_layer_runs_in_bf16_under_autocast_as_its_twin_does(name):
    plain_class, fast_class, args, shape, backward = LAYERS[name]
    plain, reformulated = twins(plain_class, fast_class, *args)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(3))
    x = x.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_plain, grads_plain = passes(plain, x)
        y_fast, grads_fast = passes(reformulated, x)
    assert y_fast.dtype == y_plain.dtype == torch.bfloat16
    assert backward in graph_nodes(y_fast)
    if backward == "_ConvBackward":
        *_, unfold, fold = y_fast.grad_fn.geometry
        assert unfold == unfolds(name)  # im2col's dtype
        assert fold == folds(name)  # the fold ran under autocast too
    # bf16 keeps 8 bits of mantissa: both round the same fp32 sums, in another order
    scale = y_plain.abs().max().item()
    assert (y_fast.float() - y_plain.float()).abs().max().item() <= 2e-2 * scale
    for fast_grad, plain_grad in zip(grads_fast, grads_plain, strict=True):
        assert fast_grad.dtype == plain_grad.dtype
        scale = plain_grad.abs().max().item()
        assert (fast_grad.float() - plain_grad.float()).abs().max().item() <= 3e-2 * scale


@pytest.mark.parametrize("name", [n for n in LAYERS if unfolds(n)])
def test_in_fp32_the_weight_gradient_is_onednns_not_im2col(name):
    _, fast_class, args, shape, _ = LAYERS[name]
    layer = fast_class(*args).to(memory_format=torch.channels_last)
    y = layer(torch.randn(shape).to(memory_format=torch.channels_last))
    *_, unfold, _ = y.grad_fn.geometry
    assert not unfold


def test_the_folded_transposed_conv_to_one_channel_equals_its_twin_without_a_bias():
    plain, reformulated = twins(nn.ConvTranspose2d, fast.ConvTranspose2d, 8, 1, 4, 2, 1, bias=False)
    x = torch.randn((2, 8, 6, 4), generator=torch.Generator().manual_seed(4))
    x = x.to(memory_format=torch.channels_last).requires_grad_(True)
    y_plain, y_fast = plain(x), reformulated(x)
    assert y_fast.grad_fn.geometry[-1]  # the fold ran
    assert_close(y_fast, y_plain)
    g = torch.randn(y_plain.shape, generator=torch.Generator().manual_seed(5))
    grads_plain = torch.autograd.grad(y_plain, [x, plain.weight], g)
    grads_fast = torch.autograd.grad(y_fast, [x, reformulated.weight], g)
    for fast_grad, plain_grad in zip(grads_fast, grads_plain, strict=True):
        assert_close(fast_grad, plain_grad)


@pytest.mark.parametrize("layer_class", [fast.Conv2d, fast.ConvTranspose2d])
def test_off_the_cpu_a_layer_runs_the_plain_code(layer_class, monkeypatch):
    def reformulated(*args):
        raise AssertionError("a reformulation ran off the CPU, where none was measured")

    monkeypatch.setattr(fast, "_run", reformulated)
    layer = layer_class(32, 32, 4, 2, 1, device="meta")  # a device other than the CPU
    y = layer(torch.empty(64, 32, 16, 16, device="meta"))
    assert y.device.type == "meta"
    with pytest.raises(AssertionError, match="off the CPU"):  # the same layer on the CPU
        layer_class(32, 32, 4, 2, 1)(torch.zeros(1, 32, 16, 16))


def test_a_reformulated_layer_keeps_the_plain_layers_parameter_names_and_shapes():
    plain, reformulated = twins(nn.ConvTranspose2d, fast.ConvTranspose2d, 64, 32, 4, 2, 1)
    assert {k: v.shape for k, v in plain.state_dict().items()} == {
        k: v.shape for k, v in reformulated.state_dict().items()
    }
    assert isinstance(reformulated, nn.ConvTranspose2d)


def plain_copy(model: nn.Module) -> nn.Module:
    """The same model with torch's plain convolutions in place of the reformulated ones."""
    twin = build_model(ModelConfig(arch=model.arch, z_dim=model.z_dim), model.num_channels)
    twin.load_state_dict(model.state_dict())
    return fast.plain_layers(twin)


@pytest.mark.parametrize("arch", ["dlib", "seed", "seed-linear"])
def test_every_architecture_encodes_decodes_and_differentiates_as_with_plain_layers(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, z_dim=6))
    twin = plain_copy(model)
    assert not any(isinstance(m, (fast.Conv2d, fast.ConvTranspose2d)) for m in twin.modules())
    x = torch.rand(32, 1, 64, 64, generator=torch.Generator().manual_seed(4))
    results = []
    for network in (model, twin):
        mu, logvar = network.encode(x)
        logits = network.decode(mu)
        loss = logits.square().mean() + mu.square().sum() + logvar.sum()
        results.append((mu, logvar, logits, torch.autograd.grad(loss, list(network.parameters()))))
    for fast_value, plain_value in zip(results[0][:3], results[1][:3], strict=True):
        assert_close(fast_value, plain_value)
    for fast_grad, plain_grad in zip(results[0][3], results[1][3], strict=True):
        assert_close(fast_grad, plain_grad)


def one_step(fused: bool | None):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="dlib", z_dim=4))
    objective = build_objective(
        objective_config("nonsyn"), likelihood="bernoulli", z_dim=4, dataset_size=100
    )
    if fused:
        optimizer = adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    x = torch.rand(8, 1, 64, 64, generator=torch.Generator().manual_seed(5)).round()
    for step in range(3):
        terms, _ = objective.terms(model, [x], step)
        optimizer_steps({"model": optimizer}, terms)
    return model, optimizer


def test_the_fused_adam_step_equals_the_foreach_step_on_channels_last_weights():
    """Three steps, so the moments (zero at the first) are used: moments paired with the wrong
    elements would move a weight by up to lr (1e-3) from its foreach twin. The two optimisers
    round differently, and the next steps' gradients carry it: after three steps the weights
    differ by up to 2.6e-7 on 2 threads and 1.02e-6 on 1 (an AMD EPYC), so the bound is 1 % of
    one step."""
    fused_model, fused = one_step(True)
    plain_model, _ = one_step(None)
    assert fused.param_groups[0]["fused"]
    for a, b in zip(fused_model.parameters(), plain_model.parameters(), strict=True):
        assert (a - b).abs().max().item() <= 1e-5


def test_optimizer_state_restored_from_a_checkpoint_is_laid_out_as_its_parameters():
    """Checkpoints store contiguous moments; torch's fused Adam on a channels-last weight with
    contiguous moments would pair the wrong elements without a word."""
    model, optimizer = one_step(True)
    tensors, layout = split_optimizer(optimizer)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    restored = adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    join_optimizer(restored, tensors, layout)
    for parameter in model.parameters():
        for value in restored.state[parameter].values():
            if value.shape == parameter.shape:
                assert value.stride() == parameter.stride()
                assert torch.equal(value, optimizer.state[parameter]["exp_avg"]) or torch.equal(
                    value, optimizer.state[parameter]["exp_avg_sq"]
                )
