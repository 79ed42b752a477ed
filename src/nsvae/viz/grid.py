"""Labelled image grids: the one renderer behind every traversal and reconstruction figure.

A grid is a 5-D array of tiles ``[rows, cols, C, H, W]`` with values in [0, 1]. It is drawn at one
screen pixel per image pixel (no resampling) with a label column on the left and a title on top,
so the output size is known exactly (:func:`grid_size`) and tests can check it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from nsvae.files import atomic_path

PAD = 2  # pixels between tiles
GROUP_PAD = 10  # pixels between groups of columns (one group per traversed image)
LABEL_WIDTH = 150  # pixels of the label column
TITLE_HEIGHT = 28  # pixels of the title band
MARGIN = 6  # pixels around the mosaic
DPI = 100
PAD_VALUE = 0.85  # light grey between tiles
BLANK_VALUE = 1.0  # white where a row has fewer images than columns


def grid_size(
    rows: int, cols: int, tile: tuple[int, int] = (64, 64), group: int = 0
) -> tuple[int, int]:
    """Pixel size ``(width, height)`` of :func:`render_grid`'s output.

    Parameters
    ----------
    rows, cols : int
        Number of tile rows and columns.
    tile : (int, int)
        Tile height and width in pixels.
    group : int
        Columns per group (a wider gap separates groups); 0 for no groups.
    """
    height, width = tile
    groups = (cols - 1) // group if group else 0
    mosaic_w = cols * width + (cols - 1) * PAD + groups * (GROUP_PAD - PAD)
    mosaic_h = rows * height + (rows - 1) * PAD
    return LABEL_WIDTH + mosaic_w + 2 * MARGIN, TITLE_HEIGHT + mosaic_h + 2 * MARGIN


def mosaic(tiles: np.ndarray, group: int = 0) -> np.ndarray:
    """Lay tiles ``[rows, cols, C, H, W]`` (values in [0, 1], NaN = blank) out as one RGB image.

    Returns a float array ``[height, width, 3]``; 1-channel tiles become grey, 3-channel stay RGB.
    """
    tiles = np.asarray(tiles, dtype=np.float32)
    if tiles.ndim != 5 or tiles.shape[2] not in (1, 3):
        raise ValueError(f"tiles must be [rows, cols, 1 or 3, H, W], got shape {tiles.shape}")
    rows, cols, channels, height, width = tiles.shape
    tiles = np.where(np.isnan(tiles), BLANK_VALUE, np.clip(tiles, 0.0, 1.0))
    tiles = np.broadcast_to(tiles, (rows, cols, 3, height, width)).transpose(0, 1, 3, 4, 2)
    total_w, total_h = grid_size(rows, cols, (height, width), group)
    canvas = np.full(
        (total_h - TITLE_HEIGHT - 2 * MARGIN, total_w - LABEL_WIDTH - 2 * MARGIN, 3),
        PAD_VALUE,
        dtype=np.float32,
    )
    for col in range(cols):
        x = col * (width + PAD) + ((col // group) * (GROUP_PAD - PAD) if group else 0)
        for row in range(rows):
            y = row * (height + PAD)
            canvas[y : y + height, x : x + width] = tiles[row, col]
    return canvas


def render_grid(
    tiles: np.ndarray, row_labels: list[str], title: str = "", group: int = 0
) -> np.ndarray:
    """Draw tiles ``[rows, cols, C, H, W]`` with one label per row; returns RGB uint8 ``[h, w, 3]``.

    The size is exactly :func:`grid_size` of the tile layout. Labels may hold a newline.
    """
    tiles = np.asarray(tiles)
    rows, cols, _, height, width = tiles.shape
    if len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} labels for {rows} rows")
    image = mosaic(tiles, group)
    total_w, total_h = grid_size(rows, cols, (height, width), group)
    figure = Figure(figsize=(total_w / DPI, total_h / DPI), dpi=DPI, facecolor="white")
    left, bottom = (LABEL_WIDTH + MARGIN) / total_w, MARGIN / total_h
    axes = figure.add_axes((left, bottom, image.shape[1] / total_w, image.shape[0] / total_h))
    axes.imshow(image, interpolation="nearest", aspect="auto")
    axes.set_axis_off()
    for row, label in enumerate(row_labels):
        y = 1 - (TITLE_HEIGHT + MARGIN + row * (height + PAD) + height / 2) / total_h
        figure.text(
            (LABEL_WIDTH - 4) / total_w,
            y,
            label,
            ha="right",
            va="center",
            fontsize=8.5,
            linespacing=1.3,
        )
    if title:
        figure.text(
            0.5 * (1 + left),
            1 - (TITLE_HEIGHT / 2 + MARGIN / 2) / total_h,
            title,
            ha="center",
            va="center",
            fontsize=10,
            fontweight="bold",
        )
    return figure_to_array(figure)


def figure_to_array(figure: Figure) -> np.ndarray:
    """Render a matplotlib figure (Agg, no pyplot state) to an RGB uint8 array."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(image: np.ndarray, path) -> Path:
    """Write an RGB uint8 array as a PNG, creating parent folders; returns the path.

    Written beside the name and renamed into place (:func:`nsvae.files.atomic_path`): a
    symbolic link planted at the name is replaced, never written through.
    """
    with atomic_path(path) as temporary:
        Image.fromarray(image).save(temporary, format="PNG", optimize=True)
    return Path(path)


def save_figure(figure: Figure, path) -> Path:
    """Write a matplotlib figure as a PNG (exact figure size, no tight crop); returns the path."""
    return save_png(figure_to_array(figure), path)
