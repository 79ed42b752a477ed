"""Reconstruction losses: the negative log-likelihood of a batch under the decoder.

Both take the decoder's logits. Each is summed over pixels and averaged over the batch, as in
disentanglement_lib (Locatello et al., 2019) and the seed's code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nsvae.checks import choice


def bernoulli(x_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood: binary cross-entropy with logits, for binary images."""
    return F.binary_cross_entropy_with_logits(x_logits, x, reduction="sum") / len(x)


def gaussian(x_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gaussian (unit-variance, up to constants): sum of squared errors of ``sigmoid(logits)``."""
    return (torch.sigmoid(x_logits) - x).square().sum() / len(x)


LIKELIHOODS = {"bernoulli": bernoulli, "gaussian": gaussian}


def reconstruction_loss(x_logits: torch.Tensor, x: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Reconstruction loss of ``likelihood`` ("bernoulli" or "gaussian"), a scalar tensor.

    Parameters
    ----------
    x_logits : tensor [B, C, H, W]
        Decoder outputs before the sigmoid.
    x : tensor [B, C, H, W]
        Observations in [0, 1].
    likelihood : str
        Name of the likelihood.
    """
    choice("likelihood", likelihood, LIKELIHOODS)
    return LIKELIHOODS[likelihood](x_logits, x)
