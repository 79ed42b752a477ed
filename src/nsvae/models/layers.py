"""Convolutions reformulated for speed on CPUs: the same functions as their torch twins.

:class:`Conv2d` and :class:`ConvTranspose2d` subclass :class:`torch.nn.Conv2d` and
:class:`torch.nn.ConvTranspose2d`: same parameters, same names, same shapes, so checkpoints and
exported models of the plain layers load unchanged. Only how the passes are computed differs;
each change below was measured to win on a step (``benchmarks/train_step.py --layers`` prints
every layer's passes, plain against reformulated). Grouped, dilated and non-zero-padded layers
run the plain layer's code, and so does every layer off the CPU: none of this was measured on
another device.

Bias gradient as a sum
    torch's backward of a transposed convolution computes the bias gradient in its slowest
    code path in bf16: on dlib's transposed convolutions at batch 64 it multiplies the time
    of the weight gradient by 1.4 to 4.5 (``benchmarks/bias_gradient.py``). Every layer
    here asks oneDNN for the data and weight gradients only and sums the output gradient for
    the bias.
Patch convolution (kernel = stride, no padding: dlib's 2x2 stride-2 convolutions)
    Non-overlapping windows, so the convolution *is* a matrix product of the [N, k*k*C] patches
    with the [k*k*C, O] weight, and its backward is two more products. oneDNN's convolution
    primitives spend several times longer on these small layers than the products do.
Small 4x4 stride-2 convolutions and transposed convolutions (padding 1), in bf16
    The weight gradient is one matrix product with the unfolded 4x4 windows (im2col,
    Chellapilla et al., 2006): ``dW = g^T @ unfold(x)`` for a convolution, ``dW = x^T @
    unfold(g)`` for a transposed one, where ``unfold`` gathers each window of the padded
    channels-last tensor into one row. Unfolding copies every element four times, which pays
    only while the unfolded matrix stays in cache: at most :data:`UNFOLD_MAX` elements, and at
    least :data:`UNFOLD_MIN_CHANNELS` channels (one-channel windows gather too slowly). On dlib's
    architecture at batch 64 that is the decoder's first two layers; on the seed's, also the
    encoder's last two. Only in the dtypes of :data:`UNFOLD_DTYPES`, bf16: oneDNN's fp32 weight
    gradient was faster on both CPUs measured without AMX (dlib's decoder, first two layers:
    torch's plain layers 1.64 and 2.84 ms against 2.07 and 3.99 unfolded on an AMD Zen 2, 1.41
    and 2.53 against 2.25 and 4.19 on a Zen 4; these layers with oneDNN's weight gradient, 1.60
    and 2.27 on the Zen 2), and on an Intel CPU with AMX slower in one run, faster in another.

Transposed 4x4 stride-2 convolutions to one channel (padding 1: the decoder's last layer on
    grayscale images)
    oneDNN's forward pass of this layer takes 8.6-8.8 ms in fp32 at batch 64 on 2 threads, for 0.07
    GFLOP (``--layers`` tables in ``results/benchmarks/``). Here it is one matrix product,
    ``taps = W^T @ x^T`` ([16, B*H*W]: each input pixel's contribution to the 16 output pixels its
    4x4 window covers), and :func:`_fold`, which adds the 16 rows onto their pixels in fp32
    through the output's four 2x2 phases: 2.5 ms. The backward pass is oneDNN's. The same
    formulation of the first, one-channel convolution (its 16 input taps saved for a one-product
    weight gradient) won no step and is not used.

Every pass takes its inputs in the dtype autocast gives them (bf16 under
:func:`nsvae.precision.autocast`), so a layer costs no extra casts. Each reformulation equals its
plain twin within 1e-5 in fp32 (``tests/models/test_layers.py``): the sums run in another order,
nothing else changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

UNFOLD_MAX = 2**21  # elements of the unfolded [rows, 16 * C] matrix (4 MiB in bf16)
UNFOLD_MIN_CHANNELS = 8
UNFOLD_DTYPES = frozenset({torch.bfloat16})  # where the unfolded weight gradient won


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] as a contiguous [B, H, W, C] tensor (a view for channels-last inputs)."""
    return x.permute(0, 2, 3, 1).contiguous()


def _rows(x: torch.Tensor) -> torch.Tensor:
    """x [B, C, H, W] as rows [B * H * W, C] in channels-last order."""
    return _nhwc(x).view(-1, x.shape[1])


def _unfold4(x: torch.Tensor) -> torch.Tensor:
    """The 4x4 windows, stride 2, padding 1, of x [B, C, H, W]: rows [B * H/2 * W/2, 16 * C].

    Each row lists its window in (kh, kw, c) order, the order of a channels-last 4x4 weight.
    """
    b, c, h, w = x.shape
    padded = F.pad(_nhwc(x), (0, 0, 1, 1, 1, 1))
    sb, sh, sw, sc = padded.stride()
    windows = padded.as_strided((b, h // 2, w // 2, 4, 4, c), (sb, 2 * sh, 2 * sw, sh, sw, sc))
    return windows.reshape(-1, 16 * c)


def _flat_weight(weight: torch.Tensor) -> torch.Tensor:
    """A [A, B, k, k] weight as [A, k * k * B] in (kh, kw, b) order (a view if channels-last)."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def _unflat_weight(flat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_flat_weight`: [A, k * k * B] -> [A, B, k, k], channels-last strides."""
    a, b, kh, kw = like.shape
    return flat.reshape(a, kh, kw, b).permute(0, 3, 1, 2)


def _fold(taps: torch.Tensor, shape: tuple, bias: torch.Tensor | None) -> torch.Tensor:
    """The 16 taps [16, B * H/2 * W/2] of a 4x4 stride-2 padding-1 window each, added onto the
    one-channel image [B, 1, H, W] = ``shape`` they cover.

    Row ``4 * kh + kw`` holds, for each window ``(b, i, j)`` in that order, the value added to
    pixel ``(2i - 1 + kh, 2j - 1 + kw)`` (dropped outside the image). Grouped by the 2x2 phase
    of their pixel, the taps add onto contiguous rows. The sums (and the bias, if given) run in
    fp32 at least, and are rounded to the taps' dtype once more at the end (in bf16 each tap was
    already rounded by the product that made it).
    """
    b, _, h, w = shape
    half_h, half_w = h // 2, w // 2
    split = taps.view(2, 2, 2, 2, b, half_h, half_w)  # (dh, p, dw, q): kh = 2 * dh + p
    dtype = torch.promote_types(taps.dtype, torch.float32)
    phases = taps.new_zeros((2, 2, b, half_h + 1, half_w + 1), dtype=dtype)
    for dh in (0, 1):
        for dw in (0, 1):
            phases[:, :, :, dh : dh + half_h, dw : dw + half_w] += split[dh, :, dw]
    image = phases.permute(2, 3, 0, 4, 1).reshape(b, 1, h + 2, w + 2)[:, :, 1:-1, 1:-1]
    if bias is not None:
        image = image + bias.to(dtype)
    return image.to(taps.dtype, memory_format=torch.contiguous_format)


class _Conv(torch.autograd.Function):
    """A convolution or transposed convolution (groups 1, dilation 1) whose backward computes
    the bias gradient as a sum and, with ``unfold``, the weight gradient by im2col; with
    ``fold``, a transposed one to one channel runs forward as a product and :func:`_fold`."""

    @staticmethod
    def forward(ctx, x, weight, bias, transposed, stride, padding, output_padding, unfold, fold):
        ctx.save_for_backward(x, weight)
        ctx.geometry = (transposed, stride, padding, output_padding, unfold, fold)
        if fold:
            b, _, h, w = x.shape
            return _fold(_flat_weight(weight).t() @ _rows(x).t(), (b, 1, 2 * h, 2 * w), bias)
        if transposed:
            return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        transposed, stride, padding, output_padding, unfold, _ = ctx.geometry
        grad = grad.contiguous(memory_format=torch.channels_last)
        need_dx, need_dw, need_db = ctx.needs_input_grad[:3]
        dx = dw = None
        if need_dx or (need_dw and not unfold):
            dx, dw, _ = torch.ops.aten.convolution_backward(
                grad,
                x,
                weight,
                None,
                stride,
                padding,
                (1, 1),
                transposed,
                output_padding,
                1,
                [need_dx, need_dw and not unfold, False],
            )
        if need_dw and unfold:
            rows, windows = (x, grad) if transposed else (grad, x)
            dw = _unflat_weight(_rows(rows).t() @ _unfold4(windows), weight)
        db = grad.sum((0, 2, 3)) if need_db else None
        return dx, dw, db, None, None, None, None, None, None


def _patch_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Convolution whose kernel k equals its stride, without padding, as one matrix product."""
    b, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    patches = _nhwc(x).view(b, h // kh, kh, w // kw, kw, c).transpose(2, 3)
    y = F.linear(patches.reshape(-1, kh * kw * c), _flat_weight(weight), bias)
    return y.view(b, h // kh, w // kw, o).permute(0, 3, 1, 2)


def _unfold_pays(unfolded: tuple, dtype: torch.dtype) -> bool:
    """Whether a 4x4 stride-2 unfold of a tensor shaped ``unfolded``, in ``dtype``, pays for the
    weight gradient (module docstring)."""
    b, c, h, w = unfolded
    in_cache = c >= UNFOLD_MIN_CHANNELS and b * (h // 2) * (w // 2) * 16 * c <= UNFOLD_MAX
    return in_cache and dtype in UNFOLD_DTYPES


def _reformulable(layer, x: torch.Tensor) -> bool:
    """False where the plain layer's code runs: off the CPU, groups, dilation, other padding
    modes."""
    return (
        x.device.type == "cpu"
        and layer.groups == 1
        and layer.dilation == (1, 1)
        and layer.padding_mode == "zeros"
        and isinstance(layer.padding, tuple)
        and x.dim() == 4
    )


def _run(layer, x: torch.Tensor, transposed: bool, unfolded: tuple) -> torch.Tensor:
    """The layer on x (a CPU tensor, :func:`_reformulable`): a patch product or :class:`_Conv`,
    in autocast's dtype."""
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        x = x.to(dtype)
        weight = layer.weight.to(dtype)
        bias = None if layer.bias is None else layer.bias.to(dtype)
    else:
        weight, bias = layer.weight, layer.bias
    patch = (
        not transposed
        and layer.padding == (0, 0)
        and layer.kernel_size == layer.stride
        and x.shape[2] % layer.stride[0] == 0
        and x.shape[3] % layer.stride[1] == 0
    )
    window4_stride2 = (layer.kernel_size, layer.stride, layer.padding) == ((4, 4), (2, 2), (1, 1))
    output_padding = layer.output_padding if transposed else (0, 0)
    fold = window4_stride2 and transposed and layer.out_channels == 1 and output_padding == (0, 0)
    unfold = window4_stride2 and _unfold_pays(unfolded, x.dtype)
    with torch.autocast("cpu", enabled=False):
        if patch:
            return _patch_conv(x, weight, bias)
        return _Conv.apply(
            x.contiguous(memory_format=torch.channels_last),
            weight,
            bias,
            transposed,
            layer.stride,
            layer.padding,
            output_padding,
            unfold,
            fold,
        )


class Conv2d(nn.Conv2d):
    """:class:`torch.nn.Conv2d`, reformulated where it pays (module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _reformulable(self, x):
            return super().forward(x)
        return _run(self, x, False, x.shape)


class ConvTranspose2d(nn.ConvTranspose2d):
    """:class:`torch.nn.ConvTranspose2d`, reformulated where it pays (module docstring)."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if output_size is not None or not _reformulable(self, x):
            return super().forward(x, output_size)
        unfolded = (x.shape[0], self.out_channels, 2 * x.shape[2], 2 * x.shape[3])
        return _run(self, x, True, unfolded)


def plain_layers(model: nn.Module) -> nn.Module:
    """Turn ``model``'s reformulated convolutions back into torch's plain layers, in place.

    The parameters are untouched (the classes share them), so the model computes the same
    function the plain way: the baseline of ``benchmarks/train_step.py`` and the twin of
    ``tests/models/test_layers.py``.
    """
    plain = {Conv2d: nn.Conv2d, ConvTranspose2d: nn.ConvTranspose2d}
    for module in model.modules():
        module.__class__ = plain.get(type(module), type(module))
    return model
