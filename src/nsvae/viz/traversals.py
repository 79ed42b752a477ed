"""Latent traversals and reconstructions of a VAE: PNG grids and an animated GIF.

A traversal decodes a base code with one latent swept over ``[-limit, limit]`` and the others
held fixed. Bases are posterior means of data images (as in Higgins et al., 2017, "beta-VAE",
Fig. 7) or samples of the prior N(0, I). Rows are ordered by the latent's KL to the prior,
largest first (as YannDubs/disentangling-vae does), so informative latents come first and
collapsed ones (KL ~ 0, images that do not change) last.

Model contract: ``model.encode(x) -> (mu, logvar)``, ``model.decode(z) -> logits`` (sigmoid gives
the mean image), ``x`` float ``[B, C, 64, 64]`` in [0, 1], ``model.z_dim``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from nsvae.errors import DataError
from nsvae.files import atomic_path
from nsvae.gaussian import kl_per_latent
from nsvae.models import decode_codes, encode_observations
from nsvae.viz.grid import render_grid, save_png

FIGURE_IMAGES = 20  # observations shown in reconstructions and traversals


def check_observations(observations) -> np.ndarray:
    """Return observations as float32 ``[n, C, H, W]`` or raise :class:`DataError`."""
    observations = np.asarray(observations, dtype=np.float32)
    if observations.ndim != 4 or observations.shape[0] == 0:
        raise DataError(
            f"observations must be a non-empty [n, C, H, W] array, got {observations.shape}"
        )
    return observations


def encode(model: torch.nn.Module, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log-variances ``([n, d], [n, d])`` of observations ``[n, C, H, W]``."""
    return encode_observations(model, check_observations(observations))


def decode(model: torch.nn.Module, codes: np.ndarray) -> np.ndarray:
    """Mean images ``sigmoid(decode(z))`` ``[..., C, H, W]`` of codes ``[..., d]``."""
    codes = np.asarray(codes, dtype=np.float32)
    images = decode_codes(model, codes.reshape(-1, codes.shape[-1]))
    return images.reshape(*codes.shape[:-1], *images.shape[1:])


def mean_kl_per_latent(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(q(z_j|x) || N(0, 1)) in nats averaged over the samples, ``[d]`` (design section 2)."""
    return kl_per_latent(torch.from_numpy(mu), torch.from_numpy(logvar)).mean(0).numpy()


def kl_order(kl: Sequence[float]) -> np.ndarray:
    """Latent indices by decreasing KL (ties keep index order)."""
    return np.argsort(-np.asarray(kl, dtype=np.float64), kind="stable")


def traversal_codes(bases: np.ndarray, latents: Sequence[int], values: np.ndarray) -> np.ndarray:
    """Codes ``[len(latents), n, len(values), d]``: each base with one latent set to each value."""
    bases = np.asarray(bases, dtype=np.float32)
    codes = np.repeat(bases[None, :, None, :], len(values), axis=2)
    codes = np.repeat(codes, len(latents), axis=0)
    for row, latent in enumerate(latents):
        codes[row, :, :, latent] = values
    return codes


def latent_label(index: int, kl: float, factor: str | None = None) -> str:
    """Row label: latent index, its KL in nats, and the factor it informs about most, if known."""
    head = f"z{index}" + (f" \u00b7 {factor}" if factor else "")
    return f"{head}\nKL {kl:.2f} nats"


def _labels(order, kl, latent_labels) -> list[str]:
    if latent_labels is not None and len(latent_labels) != len(kl):
        raise DataError(f"{len(latent_labels)} latent labels for {len(kl)} latents")
    return [
        latent_label(int(j), float(kl[j]), latent_labels[j] if latent_labels else None)
        for j in order
    ]


def _kl(model, mu, logvar, kl_per_latent) -> np.ndarray:
    kl = mean_kl_per_latent(mu, logvar) if kl_per_latent is None else np.asarray(kl_per_latent)
    if kl.shape != (model.z_dim,):
        raise DataError(f"kl_per_latent must have {model.z_dim} values, got shape {kl.shape}")
    return kl


def _row(images: np.ndarray, cols: int) -> np.ndarray:
    """One grid row of ``cols`` tiles from images ``[n, C, H, W]``; blank (NaN) past the end."""
    row = np.full((cols, *images.shape[1:]), np.nan, dtype=np.float32)
    row[: min(cols, len(images))] = images[:cols]
    return row


def traversal_grid(model, bases, kl, latent_labels=None, limit=3.0, steps=10):
    """Tiles ``[d, n * steps, C, H, W]`` and labels of the traversals of bases ``[n, d]``.

    Row r traverses latent ``kl_order(kl)[r]`` over ``linspace(-limit, limit, steps)`` around each
    base; the ``steps`` columns of one base sit side by side.
    """
    order = kl_order(kl)
    values = np.linspace(-limit, limit, steps, dtype=np.float32)
    images = decode(model, traversal_codes(bases, order, values))  # [d, n, steps, C, H, W]
    return images.reshape(len(order), -1, *images.shape[3:]), _labels(order, kl, latent_labels)


def save_traversals(
    model,
    observations,
    path,
    kl_per_latent=None,
    latent_labels=None,
    limit: float = 3.0,
    steps: int = 10,
    num_images: int = 1,
) -> Path:
    """Write a PNG grid of posterior traversals: originals, reconstructions, one row per latent.

    Parameters
    ----------
    model : VAE
        Anything with ``encode``/``decode``/``z_dim`` per the model contract.
    observations : array [n, C, 64, 64]
        Images in [0, 1]. The first ``num_images * steps`` fill the originals and
        reconstructions rows; images ``0, steps, 2 * steps, ...`` (the first of each group of
        ``steps`` columns) are traversed around their posterior mean.
    path : path-like
        PNG to write (parent folders are created).
    kl_per_latent : array [d], optional
        KL per latent (nats) that orders and labels the rows; by default the mean KL of the
        posteriors of ``observations``.
    latent_labels : sequence of str, optional
        Per latent, the factor it carries most information about (see
        :func:`nsvae.viz.factors.latent_factor_labels`); shown after the index.
    limit, steps : float, int
        Each latent takes ``steps`` values evenly spaced over ``[-limit, limit]``.
    num_images : int
        Number of images traversed side by side.

    Returns
    -------
    Path of the PNG, of size :func:`nsvae.viz.grid.grid_size` ``(d + 2, num_images * steps,
    group=steps)``.
    """
    observations = check_observations(observations)
    mu, logvar = encode(model, observations)
    kl = _kl(model, mu, logvar, kl_per_latent)
    cols = num_images * steps
    bases = mu[:cols:steps][:num_images]
    tiles, labels = traversal_grid(model, bases, kl, latent_labels, limit, steps)
    shown = observations[:cols]
    header = np.stack([_row(shown, tiles.shape[1]), _row(decode(model, mu[:cols]), tiles.shape[1])])
    which = "the first image" + (" of each group" if num_images > 1 else "")
    title = f"traversals of {which} over [{-limit:g}, {limit:g}] around its posterior mean"
    image = render_grid(
        np.concatenate([header, tiles]), ["original", "reconstruction", *labels], title, group=steps
    )
    return save_png(image, path)


def prior_samples(z_dim: int, num: int, seed: int = 0) -> np.ndarray:
    """``num`` codes drawn from the prior N(0, I), ``[num, z_dim]`` float32, fixed by ``seed``."""
    return np.random.RandomState(seed).standard_normal((num, z_dim)).astype(np.float32)


def save_prior_traversals(
    model,
    path,
    kl_per_latent,
    latent_labels=None,
    limit: float = 3.0,
    steps: int = 10,
    num_samples: int = 1,
    seed: int = 0,
) -> Path:
    """Write a PNG grid of traversals around samples of the prior N(0, I).

    The first row shows the decoded prior samples (at the first column of each group); then one
    row per latent, ordered and labelled by ``kl_per_latent`` as in :func:`save_traversals`.
    """
    kl = np.asarray(kl_per_latent, dtype=np.float64)
    if kl.shape != (model.z_dim,):
        raise DataError(f"kl_per_latent must have {model.z_dim} values, got shape {kl.shape}")
    bases = prior_samples(model.z_dim, num_samples, seed)
    tiles, labels = traversal_grid(model, bases, kl, latent_labels, limit, steps)
    samples = np.full((tiles.shape[1], *tiles.shape[2:]), np.nan, dtype=np.float32)
    samples[::steps] = decode(model, bases)
    title = f"prior traversals over [{-limit:g}, {limit:g}] around z ~ N(0, I)"
    image = render_grid(
        np.concatenate([samples[None], tiles]), ["prior sample", *labels], title, group=steps
    )
    return save_png(image, path)


def save_reconstructions(model, observations, path, max_images: int = 20, cols: int = 10) -> Path:
    """Write a PNG of originals and their reconstructions, in alternating rows of ``cols`` images.

    Returns the path; the grid has ``2 * ceil(n / cols)`` rows (n = ``min(len, max_images)``).
    """
    observations = check_observations(observations)[:max_images]
    recon = decode(model, encode(model, observations)[0])
    cols = min(cols, len(observations))
    rows, labels = [], []
    for start in range(0, len(observations), cols):
        end = start + cols
        rows += [_row(observations[start:end], cols), _row(recon[start:end], cols)]
        labels += ["original", "reconstruction"]
    return save_png(render_grid(np.stack(rows), labels, "reconstructions (mean image)"), path)


def sweep_values(limit: float = 3.0, steps: int = 20) -> np.ndarray:
    """Values of one GIF loop: ``-limit`` to ``limit`` and back, ``2 * steps - 2`` frames."""
    up = np.linspace(-limit, limit, steps, dtype=np.float32)
    return np.concatenate([up, up[-2:0:-1]])


def save_traversal_gif(
    model,
    observations,
    path,
    kl_per_latent=None,
    latent_labels=None,
    limit: float = 3.0,
    steps: int = 20,
    num_images: int = 4,
    num_prior: int = 2,
    seed: int = 0,
    frame_ms: int = 100,
) -> Path:
    """Write an animated GIF whose frames sweep every latent at once over ``[-limit, limit]``.

    Columns are the posterior means of the first ``num_images`` observations, then
    ``num_prior`` samples of the prior; the first row shows the base image (the data image or
    the decoded prior sample), and each further row one latent (ordered and labelled by KL as
    in :func:`save_traversals`) set to the frame's value, the others held at the base. The
    loop runs up and back down: :func:`sweep_values` gives the ``2 * steps - 2`` frames.
    """
    observations = check_observations(observations)[:num_images]
    mu, logvar = encode(model, observations)
    kl = _kl(model, mu, logvar, kl_per_latent)
    bases = np.concatenate([mu, prior_samples(model.z_dim, num_prior, seed)])
    values = np.linspace(-limit, limit, steps, dtype=np.float32)
    order = kl_order(kl)
    sweep = decode(model, traversal_codes(bases, order, values))  # [d, cols, steps, C, H, W]
    first = np.concatenate([observations, decode(model, bases[len(observations) :])])
    labels = ["data | prior", *_labels(order, kl, latent_labels)]
    frames = []
    for value in sweep_values(limit, steps):
        step = int(np.argmin(np.abs(values - value)))
        tiles = np.concatenate([first[None], sweep[:, :, step]])
        title = f"every latent at z = {value:+.2f}"
        frames.append(render_grid(tiles, labels, title, group=len(observations)))
    with atomic_path(path) as temporary:  # a link planted at the name is replaced
        iio.imwrite(temporary, np.stack(frames), extension=".gif", duration=frame_ms, loop=0)
    return Path(path)
