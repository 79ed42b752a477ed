"""Mixed precision: bf16 autocast of the convolutions, with the statistics kept in fp32."""

from __future__ import annotations

import os
import platform
import warnings

import pytest
import torch

import nsvae.precision as precision_module
from nsvae.config import Config, ModelConfig
from nsvae.errors import ConfigError, NsvaeWarning
from nsvae.models import build_model, encode_posterior
from nsvae.objectives import build_objective, objective_config
from nsvae.precision import autocast, native_bf16, resolve_precision
from nsvae.provenance import cpu_description

# bf16 keeps 8 bits of mantissa: the convolutions round each product to ~0.4 %, and the sums of
# a whole image (recon) and of the latents (KL) average those errors out.
LOSS_RTOL = 1e-2


@pytest.fixture
def batch(squares):
    return torch.from_numpy(squares.observations[:16].astype("float32"))


def nonsyn_step(batch, precision):
    """The Non-Syn terms and logs of one fixed batch (same weights, same sampling noise)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(z_dim=4))
    objective = build_objective(objective_config("nonsyn"), likelihood=model.likelihood)
    with autocast("cpu", precision):
        terms, logs = objective.terms(model, [batch], 0)
    return terms, logs


def test_bf16_losses_agree_with_fp32_on_a_fixed_batch(batch):
    (full,), full_logs = nonsyn_step(batch, "fp32")
    (half,), half_logs = nonsyn_step(batch, "bf16")
    torch.testing.assert_close(half.loss, full.loss, rtol=LOSS_RTOL, atol=0)
    for key in ("recon", "kl", "kl_per_latent"):
        torch.testing.assert_close(half_logs[key], full_logs[key], rtol=LOSS_RTOL, atol=1e-3)
    assert not torch.equal(half.loss, full.loss)  # bf16 did run


def test_posterior_kl_selection_and_losses_stay_fp32_under_autocast(batch, monkeypatch):
    seen = {}

    def record(key, tensor):
        seen[key] = tensor.dtype

    model = build_model(ModelConfig(z_dim=4))
    model.encoder[0].register_forward_hook(lambda module, inputs, out: record("conv", out))
    objective = build_objective(objective_config("nonsyn"), likelihood=model.likelihood)
    select = objective.select

    def recording_select(kl):
        record("selection", kl)
        return select(kl)

    monkeypatch.setattr(objective, "select", recording_select)
    with autocast("cpu", "bf16"):
        outputs = model(batch)
        (term,), logs = objective.terms(model, [batch], 0)
    assert seen == {"conv": torch.bfloat16, "selection": torch.float32}
    assert {outputs[key].dtype for key in ("mu", "logvar", "z", "x_logits")} == {torch.float32}
    assert term.loss.dtype == torch.float32
    assert {logs[key].dtype for key in ("recon", "kl", "kl_per_latent", "synergy")} == {
        torch.float32
    }


def test_fp32_autocast_is_no_autocast(batch):
    model = build_model(ModelConfig(z_dim=4)).eval()
    with torch.no_grad():
        plain = model.encode(batch)
        with autocast("cpu", "fp32"):
            wrapped = model.encode(batch)
    assert all(torch.equal(a, b) for a, b in zip(plain, wrapped, strict=True))


def test_a_code_does_not_depend_on_the_rows_encoded_with_it(batch):
    model = build_model(ModelConfig(z_dim=4)).eval()
    observations = batch.numpy()
    for precision in ("fp32", "bf16"):
        together = encode_posterior(model, observations, precision=precision)
        alone = [
            encode_posterior(model, observations[i : i + 1], precision=precision)
            for i in (0, 5, 15)
        ]
        for i, (mu, logvar) in zip((0, 5, 15), alone, strict=True):
            assert torch.equal(mu[0], together[0][i]) and torch.equal(logvar[0], together[1][i])


def test_bad_precision_is_a_one_line_config_error():
    with pytest.raises(
        ConfigError,
        match=r"^unknown train.precision 'fp16' \(choose from: "
        r"fp32, bf16, auto\)$",
    ):
        Config().updated({"train": {"precision": "fp16"}}).validate()
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        autocast("cpu", "half")


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="needs Linux's /proc/cpuinfo")
@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 CPUs name AVX-512 BF16")
def test_a_cpu_has_native_bf16_exactly_when_it_lists_avx512_bf16():
    listed = cpu_description().partition("; ISA: ")[2].split()
    assert native_bf16("cpu") == ("avx512_bf16" in listed)


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_where_the_device_has_bf16_arithmetic_and_fp32_elsewhere(monkeypatch, native):
    monkeypatch.setattr(precision_module, "native_bf16", lambda device: native)
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for: kept, however slow


@pytest.fixture
def fresh_warning():
    """The once-per-process warning of bf16 in reference code, not yet given (and reset after)."""
    precision_module._warn_reference_bf16.cache_clear()
    yield
    precision_module._warn_reference_bf16.cache_clear()


def test_bf16_without_onednn_bf16_kernels_warns_once_and_still_runs_bf16(
    batch, monkeypatch, fresh_warning
):
    monkeypatch.setattr(precision_module, "_onednn_bf16", lambda: False)
    model = build_model(ModelConfig(z_dim=4))
    expected = r"^bf16 on a CPU without bf16 kernels .*'fp32'$"
    with pytest.warns(NsvaeWarning, match=expected), autocast("cpu", "bf16"):
        out = model.encoder[0](batch)
    assert out.dtype == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with autocast("cpu", "bf16"):
            pass
