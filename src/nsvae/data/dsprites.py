"""dSprites (Matthey et al., 2017), rendered offline, and loaders for the official files.

The renderer follows ``dsprites-spec.md``: the 737,280 images of the official factor grid
(color 1, shape 3, scale 6, orientation 40, posX 32, posY 32; posY fastest), drawn as the official
LÖVE renderer drew them. A pixel is on iff its centre lies inside the sprite. The sprite's reference
point is ``(16 + 32 posX, 16 + 32 posY)`` px (posY = 0 at the top); it is scaled by ``scale`` and
turned counter-clockwise on screen by ``orientation``. The square (half-side 9.6 px) and the
ellipse (a 100-gon with semi-axes 9.6 * 1.33 and 9.6 / 1.33 px) are polygons; in exact mode their
vertices are snapped to 1/256 px and pixel centres on an edge follow the GPU fill rule. The heart
is the classic parametric curve fitted to the official pixels (drawn as a 4096-gon, within 1e-5 px
of the curve).

Fast path (spec 2.7): every pixel-centre offset from a reference point lies on the lattice
``0.5 + m / 31`` px, so one fine mask per (shape, scale, orientation) on that lattice holds all
32 x 32 positions, which are strided views of it. In exact mode the few lattice points near a
square or ellipse edge are decided again per image with that image's snapped vertices.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from nsvae.data.files import (
    OfficialFile,
    cached_array,
    check_checksum,
    data_root,
    expected_checksums,
    fetch,
)
from nsvae.data.ground_truth import FactorSpace, GroundTruthData
from nsvae.data.npz import read_npz, write_npz
from nsvae.errors import DataError, one_line
from nsvae.files import atomic_path

# ------------------------------------------------------------------------------ official layout

LATENT_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENT_SIZES = (1, 3, 6, 40, 32, 32)
FACTOR_NAMES = LATENT_NAMES[1:]
NUM_IMAGES = 737_280
IMAGE_SIZE = 64
SHAPE_NAMES = ("square", "ellipse", "heart")

OFFICIAL_FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
OFFICIAL_URL = f"https://github.com/deepmind/dsprites-dataset/raw/master/{OFFICIAL_FILENAME}"
#: Published checksums of the official files (dsprites-spec.md 1.1): git blob SHA-1 and MD5 of the
#: npz; git blob SHA-1, MD5 and SHA-256 of the hdf5 copy.
OFFICIAL_CHECKSUMS = {
    ".npz": ("d98996d3f8ee1550e06b9d4ed78d0beb478910d5", "7da33b31b13a06f4b04a70402ce90c2e"),
    ".hdf5": (
        "3c8de5d40afa425dfd9de811d71248449aae238b",
        "b331c4447a651c44bf5e8ae09022e230",
        "729fa22e884c9c500e1f17415d580746b4c5894fbbb780a1319bbcfa39a745bb",
    ),
}
OFFICIAL_FILE = OfficialFile(
    "dsprites", OFFICIAL_FILENAME, OFFICIAL_URL, OFFICIAL_CHECKSUMS[".npz"], name="dSprites"
)


def latents_possible_values() -> dict[str, np.ndarray]:
    """The official factor values, bit-identical to the official file's metadata (spec 1.2)."""
    return {
        "color": np.array([1.0]),
        "shape": np.array([1.0, 2.0, 3.0]),
        "scale": np.linspace(0.5, 1, 6),
        "orientation": 2 * np.pi * np.arange(40) / 39,
        "posX": np.arange(32) / 31,
        "posY": np.arange(32) / 31,
    }


def latents_classes() -> np.ndarray:
    """Classes [737280, 6] int64 of every image in official (row-major, posY fastest) order."""
    return np.indices(LATENT_SIZES, dtype=np.int64).reshape(len(LATENT_SIZES), -1).T


def latents_values(classes: np.ndarray) -> np.ndarray:
    """Factor values [n, 6] float64 of official classes [n, 6]."""
    values = latents_possible_values()
    return np.stack([values[name][classes[:, j]] for j, name in enumerate(LATENT_NAMES)], axis=1)


def metadata() -> dict:
    """The official metadata dict (spec 1.2), with arrays as lists so that it is JSON."""
    return {
        "title": "dSprites dataset",
        "version": 1,
        "date": "April 2017",
        "author": "lmatthey@google.com",
        "description": "Disentanglement test Sprites dataset. Procedurally generated 2D shapes, "
        "from 6 disentangled latent factors. Rendered offline by nsvae (dsprites-spec.md).",
        "latents_names": list(LATENT_NAMES),
        "latents_sizes": list(LATENT_SIZES),
        "latents_possible_values": {k: v.tolist() for k, v in latents_possible_values().items()},
    }


# ----------------------------------------------------------------------------------- geometry

HALF_SIZE = 9.6  # px at scale 1: 0.15 of the canvas
ELLIPSE_ASPECT = 1.33
ELLIPSE_SEGMENTS = 100
HEART_WIDTH = 0.5997 * 16  # the fitted constants of spec 2.3
HEART_HEIGHT = 0.66205
HEART_SHIFT = -1.4365
HEART_SEGMENTS = 4096
SNAP = 256  # vertices are snapped to 1/256 px in exact mode
LATTICE = 31  # pixel-centre offsets lie on 0.5 + m / 31 px
RENDERER_VERSION = {
    "renderer": 1,
    "half_size": HALF_SIZE,
    "ellipse": [ELLIPSE_ASPECT, ELLIPSE_SEGMENTS],
    "heart": [HEART_WIDTH, HEART_HEIGHT, HEART_SHIFT, HEART_SEGMENTS],
    "snap": SNAP,
}


def outline(shape: int) -> np.ndarray:
    """Canonical outline [V, 2] (u right, v down, px at scale 1, positive signed area).

    0 square, 1 ellipse (LÖVE's 100-segment polygon), 2 heart (dense polygon of the smooth curve).
    """
    if shape == 0:
        h = HALF_SIZE
        return np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    if shape == 1:
        phi = 2 * np.pi * np.arange(ELLIPSE_SEGMENTS) / ELLIPSE_SEGMENTS
        a, b = HALF_SIZE * ELLIPSE_ASPECT, HALF_SIZE / ELLIPSE_ASPECT
        return np.stack([a * np.cos(phi), b * np.sin(phi)], axis=1)
    t = 2 * np.pi * np.arange(HEART_SEGMENTS) / HEART_SEGMENTS
    curve = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([HEART_WIDTH * np.sin(t) ** 3, HEART_SHIFT - HEART_HEIGHT * curve], axis=1)


_OUTLINES = tuple(outline(shape) for shape in range(len(SHAPE_NAMES)))


def placed_outline(shape: int, scale: float, orientation: float) -> np.ndarray:
    """Outline [V, 2] as (dx, dy) px from the reference point: scaled, turned counter-clockwise."""
    c, s = np.cos(orientation), np.sin(orientation)
    u, v = _OUTLINES[shape].T * scale
    return np.stack([c * u + s * v, -s * u + c * v], axis=1)


def _row_crossings(x: np.ndarray, y: np.ndarray, origin: float, n: int):
    """Where each lattice row ``origin + q / 31`` (q < n) crosses the closed polygon (x, y).

    Edges own their lower end and not their upper one, so a row through a vertex is crossed once.
    Returns row indices, crossing abscissae and the crossed edges (edge e joins vertices e, e+1).
    """
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    first = np.clip(np.ceil((np.minimum(y, y1) - origin) * LATTICE), 0, n).astype(np.int64)
    stop = np.clip(np.ceil((np.maximum(y, y1) - origin) * LATTICE), 0, n).astype(np.int64)
    counts = stop - first
    edge = np.repeat(np.arange(x.size), counts)
    rows = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts - first, counts)
    t = (origin + rows / LATTICE - y[edge]) / (y1[edge] - y[edge])
    return rows, x[edge] + t * (x1[edge] - x[edge]), edge


def _lattice_mask(points: np.ndarray, origin: float, n: int) -> np.ndarray:
    """Inside mask [n, n] (bool) of the lattice ``origin + (row, col) / 31`` (even-odd rule)."""
    rows, xc, _ = _row_crossings(points[:, 0], points[:, 1], origin, n)
    after = np.clip(np.floor((xc - origin) * LATTICE).astype(np.int64) + 1, 0, n)
    toggles = np.bincount(rows * (n + 1) + after, minlength=n * (n + 1)).astype(np.uint8)
    return (np.cumsum(toggles.reshape(n, n + 1), axis=1, dtype=np.uint8)[:, :n] & 1).view(bool)


def _near_edges(points: np.ndarray, origin: float, n: int):
    """Lattice points next to a crossing of a row or a column with the outline, and that edge.

    These are the points within 1/31 px of the outline along an axis: the only ones whose side
    can change when the vertices move by the (at most 1/512 px) of snapping. Returns unique
    (row, col) lattice coordinates and one crossed edge for each.
    """
    rows, xc, row_edges = _row_crossings(points[:, 0], points[:, 1], origin, n)
    cols, yc, col_edges = _row_crossings(points[:, 1], points[:, 0], origin, n)
    right = np.floor((xc - origin) * LATTICE).astype(np.int64) + 1
    below = np.floor((yc - origin) * LATTICE).astype(np.int64) + 1
    r = np.concatenate([rows, rows, below - 1, below])
    c = np.concatenate([right - 1, right, cols, cols])
    edges = np.concatenate([row_edges, row_edges, col_edges, col_edges])
    inside = (r >= 0) & (r < n) & (c >= 0) & (c < n)
    flat, first = np.unique(r[inside] * n + c[inside], return_index=True)
    return flat // n, flat % n, edges[inside][first]


def _lattice_users(q: np.ndarray, width: int):
    """The (position k, window index j) pairs whose pixel centre is lattice point q, on one axis.

    ``q = 31 j + 31 - k``: one pair, or two when q is a multiple of 31. Returns k [m, 2],
    j [m, 2] and a validity mask [m, 2].
    """
    t, j = q % LATTICE, q // LATTICE
    k = np.stack([LATTICE - t, np.zeros_like(t)], axis=1)
    index = np.stack([j, j - 1], axis=1)
    valid = np.stack([j < width, (t == 0) & (j >= 1)], axis=1)
    return k, index, valid


def _positions_view(lattice: np.ndarray, width: int) -> np.ndarray:
    """View [posX, posY, i, j] of the window pixel (i, j) of every position on a lattice mask.

    Window pixel (i, j) of position (kx, ky) is image pixel (16 + ky - w + i, 16 + kx - w + j) with
    ``w = (width - 1) // 2``; its centre lies at lattice point (31 + 31 i - ky, 31 + 31 j - kx).
    """
    step = lattice.strides[0]
    return as_strided(
        lattice[LATTICE:, LATTICE:],
        shape=(32, 32, width, width),
        strides=(-1, -step, LATTICE * step, LATTICE),
        writeable=False,
    )


def _snapped_inside(points, x0, y0, rows, cols, edges) -> np.ndarray:
    """GPU rasterisation of pixel centres (rows, cols) [m] against a convex outline at (x0, y0).

    Vertices are snapped to 1/256 px, so everything is an exact integer in 1/256 px. A centre on
    an edge is inside iff the edge is a left edge or a horizontal bottom edge (spec 2.4). Only the
    edges [m, k] given for each centre are tested: the others are too far to change its side.
    """
    start, end = points[edges % len(points)], points[(edges + 1) % len(points)]

    def snap(centre, offset):
        return np.floor((centre[:, None] + offset) * SNAP + 0.5).astype(np.int64)

    ax, ay = snap(x0, start[..., 0]), snap(y0, start[..., 1])
    ex, ey = snap(x0, end[..., 0]) - ax, snap(y0, end[..., 1]) - ay
    px, py = (SNAP * cols + SNAP // 2)[:, None], (SNAP * rows + SNAP // 2)[:, None]
    cross = ex * (py - ay) - ey * (px - ax)
    inclusive = (ey < 0) | ((ey == 0) & (ex <= 0))
    return np.all(cross + inclusive > 0, axis=1)


def render_block(
    shape: int, scale: int, orientation: int, out: np.ndarray | None = None, exact: bool = True
) -> np.ndarray:
    """All 32 x 32 positions of one (shape, scale, orientation) class triple.

    Parameters
    ----------
    shape, scale, orientation : int
        Official class indices.
    out : uint8 array [32, 32, 64, 64] or [1024, 64, 64], optional
        Written in place (posX, posY order); a new array by default.
    exact : bool
        Snap square and ellipse vertices and apply the fill rule (the official pixels); otherwise
        the unsnapped geometry.

    Returns
    -------
    uint8 array [32, 32, 64, 64] with values {0, 1}.
    """
    values = latents_possible_values()
    block = np.zeros((32, 32, IMAGE_SIZE, IMAGE_SIZE), np.uint8) if out is None else out
    block = block.reshape(32, 32, IMAGE_SIZE, IMAGE_SIZE)
    block[...] = 0
    points = placed_outline(shape, values["scale"][scale], values["orientation"][orientation])
    w = int(np.ceil(np.hypot(points[:, 0], points[:, 1]).max())) + 1
    width = 2 * w + 1
    n = LATTICE * width + 1
    origin = 0.5 - w - 1  # offset of lattice point 0: pixel centre of (j=0, kx=31)
    size = IMAGE_SIZE * IMAGE_SIZE
    window = as_strided(
        block[:, :, 16 - w :, 16 - w :],
        shape=(32, 32, width, width),
        strides=(32 * size + 1, size + IMAGE_SIZE, IMAGE_SIZE, 1),
    )
    window[...] = _positions_view(_lattice_mask(points, origin, n), width)
    if exact and shape != 2:
        qy, qx, edge = _near_edges(points, origin, n)
        kx, j, valid_x = _lattice_users(qx, width)
        ky, i, valid_y = _lattice_users(qy, width)
        valid = valid_x[:, :, None] & valid_y[:, None, :]
        point = np.broadcast_to(np.arange(len(qx))[:, None, None], valid.shape)[valid]
        kx, j = (np.broadcast_to(a[:, :, None], valid.shape)[valid] for a in (kx, j))
        ky, i = (np.broadcast_to(a[:, None, :], valid.shape)[valid] for a in (ky, i))
        rows, cols = 16 + ky - w + i, 16 + kx - w + j
        centre = 16 + 32 * values["posX"]
        edges = edge[point][:, None] + np.arange(-3, 4)
        block[kx, ky, rows, cols] = _snapped_inside(
            points, centre[kx], centre[ky], rows, cols, edges
        )
    return block


def _check_classes(classes) -> np.ndarray:
    return FactorSpace(LATENT_SIZES).check_factors(classes)


def render(latents_classes, exact: bool = True) -> np.ndarray:
    """Render any rows of official classes.

    Parameters
    ----------
    latents_classes : int array [n, 6]
        Class indices of (color, shape, scale, orientation, posX, posY), as in the official file.
    exact : bool
        See :func:`render_block`.

    Returns
    -------
    uint8 array [n, 64, 64] with values {0, 1}.
    """
    classes = _check_classes(latents_classes)
    images = np.empty((len(classes), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    block_of = classes[:, 1] * 240 + classes[:, 2] * 40 + classes[:, 3]
    buffer = np.empty((32, 32, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for block in np.unique(block_of):
        rows = np.flatnonzero(block_of == block)
        render_block(*np.unravel_index(block, (3, 6, 40)), out=buffer, exact=exact)
        images[rows] = buffer[classes[rows, 4], classes[rows, 5]]
    return images


def render_all(
    out: np.ndarray | None = None, exact: bool = True, threads: int | None = None
) -> np.ndarray:
    """Render the full grid [737280, 64, 64] uint8 in official order (into ``out`` if given).

    The 720 (shape, scale, orientation) blocks are independent and numpy releases the GIL in
    the heavy loops, so they are spread over ``threads`` threads (default: one per CPU).
    """
    if out is None:
        out = np.empty((NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE), np.uint8)

    def render_into(block: int) -> None:
        images = out[block * 1024 : (block + 1) * 1024]
        render_block(*np.unravel_index(block, (3, 6, 40)), out=images, exact=exact)

    with ThreadPoolExecutor(threads or os.cpu_count()) as pool:
        list(pool.map(render_into, range(3 * 6 * 40)))
    return out


# -------------------------------------------------------------------------------------- cache


def renderer_hash() -> str:
    """Short hash of the renderer's version and geometry; it names the cache."""
    text = json.dumps(RENDERER_VERSION, sort_keys=True).encode()
    return hashlib.sha1(text).hexdigest()[:12]


def cache_path(root: str | os.PathLike | None = None) -> Path:
    """Where the rendered images are cached: ``<root>/dsprites/rendered-<hash>/imgs.npy``."""
    return data_root(root) / "dsprites" / f"rendered-{renderer_hash()}" / "imgs.npy"


def cached_images(root: str | os.PathLike | None = None) -> tuple[np.ndarray, bool]:
    """The full rendered grid from the on-disk cache, rendering it first if it is not there.

    The cache is a plain ``.npy`` file (2.8 GB) opened as a copy-on-write memory map: it opens in
    milliseconds with no decoding, pages come in on first use, and processes on one machine share
    them through the page cache. It is made by :func:`nsvae.data.files.cached_array`, so a cache
    file is always complete.

    Returns
    -------
    images : uint8 array [737280, 64, 64], memory-mapped
    reused : bool
        False if the grid was rendered by this call.
    """
    shape = (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE)
    images, reused = cached_array(
        cache_path(root), np.uint8, shape, lambda out: len(render_all(out=out)), "dSprites cache"
    )
    if images.shape != shape:
        raise DataError(
            f"corrupt dSprites cache {cache_path(root)} ({list(images.shape)}); delete it"
        )
    return images, reused


# ------------------------------------------------------------------------------------- dataset


class DSprites(GroundTruthData):
    """dSprites as ground-truth data: factors shape, scale, orientation, posX, posY.

    The constant colour factor of the official file is dropped, so flat indices are the official
    ones. Observations are float32 [n, 1, 64, 64] with values {0, 1}.

    Parameters
    ----------
    images : uint8 array [737280, 64, 64]
        Every image in official order (rendered, cached or read from an official file).
    source : str
        Where the images come from (for provenance).
    """

    factor_names = FACTOR_NAMES
    observation_shape = (1, IMAGE_SIZE, IMAGE_SIZE)
    deterministic = True

    def __init__(self, images: np.ndarray, source: str = "rendered"):
        if images.dtype != np.uint8 or images.shape != (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(
                f"dSprites images must be uint8 [737280, 64, 64], got "
                f"{images.dtype} {list(images.shape)}"
            )
        self.factor_space = FactorSpace(LATENT_SIZES[1:])
        self.images = images
        self.source = source

    @classmethod
    def load(cls, data_root: str | os.PathLike | None = None) -> DSprites:
        """The rendered dataset, from the cache under the data root (rendered there if absent)."""
        images, _ = cached_images(data_root)
        return cls(images, source=f"rendered:{renderer_hash()}")

    @classmethod
    def from_file(cls, path: str | os.PathLike, checksum: str | None = "official") -> DSprites:
        """Load the official npz or hdf5 file through the same contract.

        Parameters
        ----------
        path : path
            ``*.npz`` (keys ``imgs``, ``latents_classes``, ``latents_values``; ``metadata`` is
            skipped, nothing is unpickled) or ``*.hdf5`` / ``*.h5`` (datasets ``imgs``,
            ``latents/classes``, ``latents/values``).
        checksum : str or None
            ``"official"``: the published checksums of the official file; a hex digest (git blob
            SHA-1, SHA-1, MD5 or SHA-256) to expect instead; None: no check.

        Raises
        ------
        DataError
            Missing, wrong, truncated or corrupt file, wrong keys, dtypes, shapes or latents.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"no dSprites file at {path}")
        kind = ".hdf5" if path.suffix.lower() in (".hdf5", ".h5") else ".npz"
        expected = expected_checksums(OFFICIAL_CHECKSUMS[kind], checksum)
        if expected:
            check_checksum(path, expected)
        arrays = _read_hdf5(path) if kind == ".hdf5" else read_npz(path, tuple(_KEYS))
        _check_layout(arrays, path)
        return cls(arrays["imgs"], source=str(path))

    def sample_observations_from_factors(self, factors, random_state):
        index = self.factors_to_index(factors)
        return self.images[index][:, None].astype(np.float32)

    def observations_array(self):
        return self.images[:, None], 1.0


# ----------------------------------------------------------------------------- official files

_KEYS = {"imgs": "imgs", "latents_classes": "latents/classes", "latents_values": "latents/values"}


def _read_hdf5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as file:
            missing = [n for n in _KEYS.values() if not isinstance(file.get(n), h5py.Dataset)]
            if missing:
                raise DataError(f"{path}: missing datasets {missing}")
            _check_dtypes({key: file[name].dtype for key, name in _KEYS.items()}, path)
            return {key: file[name][()] for key, name in _KEYS.items()}
    except OSError as error:
        raise DataError(f"{path}: unreadable hdf5 file ({one_line(error)})") from None


def _check_dtypes(dtypes: dict, path: Path) -> None:
    wanted = {"imgs": np.uint8, "latents_classes": np.int64, "latents_values": np.float64}
    for key, dtype in wanted.items():
        if dtypes[key] != dtype:
            raise DataError(f"{path}: {key} has dtype {dtypes[key]}, expected {np.dtype(dtype)}")


def _check_layout(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Keys, dtypes, shapes and content of the official layout (spec 1.2-1.3)."""
    _check_dtypes({key: array.dtype for key, array in arrays.items()}, path)
    shapes = {
        "imgs": (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE),
        "latents_classes": (NUM_IMAGES, 6),
        "latents_values": (NUM_IMAGES, 6),
    }
    for key, shape in shapes.items():
        if arrays[key].shape != shape:
            found = list(arrays[key].shape)
            raise DataError(f"{path}: {key} has shape {found}, expected {list(shape)}")
    classes = latents_classes()
    if not np.array_equal(arrays["latents_classes"], classes):
        raise DataError(f"{path}: latents_classes are not the official grid in official order")
    if not np.array_equal(arrays["latents_values"], latents_values(classes)):
        raise DataError(f"{path}: latents_values are not the official factor values")
    if arrays["imgs"].max() > 1:
        raise DataError(f"{path}: imgs must hold 0/1 values, found {arrays['imgs'].max()}")


def official_path(root: str | os.PathLike | None = None) -> Path:
    """Where :func:`fetch_dsprites` puts (and looks for) the official npz."""
    return OFFICIAL_FILE.path(root)


def fetch_dsprites(root: str | os.PathLike | None = None) -> Path:
    """Download the official npz to :func:`official_path` and check its checksum.

    A file already there is checked and reused. Without network the :class:`DataError` says
    where to put a file downloaded by hand (:func:`nsvae.data.files.fetch`).
    """
    return fetch(OFFICIAL_FILE, root)


def save_npz(
    path: str | os.PathLike,
    images: np.ndarray,
    classes: np.ndarray | None = None,
    compress: bool = True,
) -> Path:
    """Write images in the official npz layout; ``metadata`` is a JSON string (no pickle).

    ``classes`` [n, 6] are the official classes of the images (the full grid by default).
    """
    classes = latents_classes() if classes is None else _check_classes(classes)
    if len(classes) != len(images):
        raise DataError(f"{len(images)} images for {len(classes)} rows of latents_classes")
    arrays = {
        "metadata": np.array(json.dumps(metadata())),
        "imgs": images,
        "latents_classes": classes,
        "latents_values": latents_values(classes),
    }
    return write_npz(path, arrays, compress)


# ------------------------------------------------------------------------------- contact sheet


def gif_frame_classes() -> np.ndarray:
    """Classes [320, 6] of the frames of the official ``dsprites.gif`` (spec section 2.6).

    Per shape (heart, ellipse, square): scale up, down and up at the top-left position; one turn
    of orientation at the largest scale; for the heart only, a loop of positions along the
    border; then scale down.
    """
    up, down, every = list(range(6)), list(range(5, -1, -1)), range(32)
    frames = []
    for shape in (2, 1, 0):
        frames += [(shape, s, 0, 0, 0) for s in up + down + up]
        frames += [(shape, 5, o, 0, 0) for o in range(40)]
        if shape == 2:
            frames += [(shape, 5, 39, 0, y) for y in every]
            frames += [(shape, 5, 39, x, 31) for x in every]
            frames += [(shape, 5, 39, 31, y) for y in every[::-1]]
            frames += [(shape, 5, 39, x, 0) for x in every[::-1]]
        frames += [(shape, s, 39, 0, 0) for s in down]
    return np.array([(0, *frame) for frame in frames])


def contact_sheet_classes() -> np.ndarray:
    """Official classes of the contact sheet, in rows of 10 (-1 rows pad).

    Three rows of shape x scale, three rows of 10 orientations per shape (scale 1), one row of
    positions along the diagonal (heart, scale 1); centred sprites otherwise.
    """
    rows = [[(0, s, c, 0, 16, 16) for c in range(6)] for s in range(3)]
    rows += [[(0, s, 5, o, 16, 16) for o in range(0, 40, 4)] for s in range(3)]
    rows += [[(0, 2, 5, 0, p, p) for p in np.linspace(0, 31, 10).round().astype(int)]]
    return np.array([row + [(-1,) * 6] * (10 - len(row)) for row in rows])


def contact_sheet(images_of) -> np.ndarray:
    """Contact sheet as a uint8 image (0 background, 255 sprite, 128 gutters).

    ``images_of(classes [n, 6]) -> uint8 images [n, 64, 64]`` supplies the images
    (:func:`render` or a lookup in a loaded dataset).
    """
    grid = contact_sheet_classes()
    valid = grid[..., 0] >= 0
    tiles = np.zeros(grid.shape[:2] + (IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    tiles[valid] = images_of(grid[valid]) * 255
    gap = 2
    padded = np.pad(tiles, ((0, 0), (0, 0), (gap, 0), (gap, 0)), constant_values=128)
    rows, cols, height, width = padded.shape
    sheet = padded.transpose(0, 2, 1, 3).reshape(rows * height, cols * width)
    return np.pad(sheet, ((0, gap), (0, gap)), constant_values=128)


def save_contact_sheet(path: str | os.PathLike, images_of) -> Path:
    """Write :func:`contact_sheet` as a PNG (nearest-neighbour upscaled x2)."""
    from PIL import Image

    path = Path(path)
    sheet = contact_sheet(images_of)
    image = Image.fromarray(sheet).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST)
    with atomic_path(path, DataError) as temporary:
        image.save(temporary, format="PNG")
    return path
