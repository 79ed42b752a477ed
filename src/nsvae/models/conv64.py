"""Convolutional Gaussian encoder and decoder for 64x64xC images.

Three architectures (:data:`ARCHS`) share one layout of four stride-2 convolutions, one hidden
fully-connected layer and a linear mean/log-variance head; the decoder mirrors it:

``dlib`` (default)
    disentanglement_lib's ``conv_encoder``/``deconv_decoder`` (Locatello et al., 2019).
``seed``
    the Non-Syn seed's model (Barrientos & Sootla, 2018), with the encoder's ReLU after the FC
    layer restored.
``seed-linear``
    the seed's model exactly (no ReLU after the encoder's FC layer).

ReLUs work in place, convolution weights are stored channels-last and the convolutions are
:mod:`nsvae.models.layers`' reformulations of torch's (same functions and parameters, faster on
the CPU; torch's own code elsewhere).
Under bf16 autocast (:mod:`nsvae.precision`) the posterior head and the decoder's logits stay
fp32. Layer sizes, speed and precision: docs/architectures.md.
"""

from __future__ import annotations

import torch
from torch import nn

from nsvae.models.layers import Conv2d, ConvTranspose2d
from nsvae.precision import full_precision

ARCHS = ("dlib", "seed", "seed-linear")
# (out channels, kernel, padding) of the encoder convolutions; all have stride 2.
_CONVS = {
    "dlib": ((32, 4, 1), (32, 4, 1), (64, 2, 0), (64, 2, 0)),
    "seed": ((32, 4, 1), (32, 4, 1), (64, 4, 1), (64, 4, 1)),
}
_HIDDEN = {"dlib": 256, "seed": 128}


def encoder(arch: str, num_channels: int, z_dim: int) -> nn.Sequential:
    """Encoder of ``arch``: [B, C, 64, 64] -> [B, 2 * z_dim] (mean, then log-variance)."""
    family = "dlib" if arch == "dlib" else "seed"
    layers: list[nn.Module] = []
    channels = num_channels
    for out, kernel, padding in _CONVS[family]:
        layers += [
            Conv2d(channels, out, kernel, stride=2, padding=padding),
            nn.ReLU(inplace=True),
        ]
        channels = out
    hidden = _HIDDEN[family]
    layers += [nn.Flatten(), nn.Linear(64 * 4 * 4, hidden)]
    if arch != "seed-linear":
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.Linear(hidden, 2 * z_dim))
    return nn.Sequential(*layers)


def decoder(arch: str, num_channels: int, z_dim: int) -> nn.Sequential:
    """Decoder of ``arch``: [B, z_dim] -> logits [B, C, 64, 64]."""
    hidden = _HIDDEN["dlib" if arch == "dlib" else "seed"]
    layers: list[nn.Module] = [
        nn.Linear(z_dim, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, 64 * 4 * 4),
        nn.ReLU(inplace=True),
        nn.Unflatten(1, (64, 4, 4)),
    ]
    channels = 64
    for out in (64, 32, 32):
        layers += [ConvTranspose2d(channels, out, 4, stride=2, padding=1), nn.ReLU(inplace=True)]
        channels = out
    layers.append(ConvTranspose2d(channels, num_channels, 4, stride=2, padding=1))
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """Variational autoencoder with a diagonal Gaussian posterior (Kingma & Welling, 2014).

    Parameters
    ----------
    arch : str
        One of :data:`ARCHS`.
    z_dim : int
        Number of latents.
    num_channels : int
        Image channels C of the [B, C, 64, 64] inputs.
    likelihood : str
        ``"bernoulli"`` or ``"gaussian"``: how the objective scores the decoder's logits.

    Notes
    -----
    Convolution weights are stored channels-last; call ``.contiguous()`` on state-dict tensors
    before writing them with safetensors.
    """

    def __init__(self, arch: str, z_dim: int, num_channels: int, likelihood: str):
        super().__init__()
        self.arch = arch
        self.z_dim = z_dim
        self.num_channels = num_channels
        self.likelihood = likelihood
        self.encoder = encoder(arch, num_channels, z_dim)
        self.decoder = decoder(arch, num_channels, z_dim)
        self.to(memory_format=torch.channels_last)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance [B, z_dim] of images x [B, C, 64, 64] in [0, 1].

        Both are fp32 under autocast too: the head runs in full precision.
        """
        *body, head = self.encoder
        for layer in body:
            x = layer(x)
        with full_precision(x.device):
            mu, logvar = head(x.float()).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits [B, C, 64, 64] at codes z [B, z_dim]; sigmoid gives the mean image.

        The logits are fp32 (cast back under autocast), so every loss is an fp32 reduction.
        """
        return self.decoder(z).float()

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Sample ``z = mu + exp(logvar / 2) * eps`` with eps from torch's global generator.

        Using the global generator (no private one) makes a resumed run bit-exact once the
        trainer restores torch's RNG state.
        """
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode, sample and decode: a dict with ``mu``, ``logvar``, ``z`` and ``x_logits``."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return {"mu": mu, "logvar": logvar, "z": z, "x_logits": self.decode(z)}
