"""``nsvae data render`` and ``nsvae data fetch``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nsvae.cli.app import HELP_FROM_LIBRARY, LibraryHelp, data_app
from nsvae.errors import ConfigError

DataRootOption = Annotated[
    Path | None,
    typer.Option("--data-root", help="Data root (default: $NSVAE_DATA, else ~/.cache/nsvae)."),
]
DatasetArgument = Annotated[str, typer.Argument(help="Dataset name: dsprites.")]


def _dsprites_only(dataset: str) -> None:
    if dataset != "dsprites":
        raise ConfigError(f"unknown dataset {dataset!r}; only 'dsprites' is rendered or fetched")


@data_app.command("render")
def data_render(
    dataset: DatasetArgument,
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the official npz layout here.")
    ] = None,
    sheet: Annotated[
        Path | None, typer.Option("--sheet", help="Write a contact sheet PNG.")
    ] = None,
    data_root: DataRootOption = None,
) -> None:
    """Render dSprites into the cache (or reuse it); optionally write an npz and a contact sheet."""
    import time

    from nsvae.data import dsprites

    _dsprites_only(dataset)
    if sheet is not None and sheet.suffix.lower() != ".png":
        raise ConfigError(f"--sheet writes a PNG: give a file name ending in .png, got {sheet}")
    start = time.perf_counter()
    images, reused = dsprites.cached_images(data_root)
    data = dsprites.DSprites(images)
    how = "reused" if reused else f"rendered in {time.perf_counter() - start:.1f} s"
    typer.echo(f"dSprites cache ({how}): {dsprites.cache_path(data_root)}")
    if output is not None:
        typer.echo(f"npz (official layout): {dsprites.save_npz(output, data.images)}")
    if sheet is not None:
        path = dsprites.save_contact_sheet(
            sheet, lambda classes: data.images[data.factors_to_index(classes[:, 1:])]
        )
        typer.echo(f"contact sheet: {path}")


@data_app.command("fetch", cls=LibraryHelp)
def data_fetch(
    dataset: Annotated[str, typer.Argument(help="Dataset with published files.")],
    data_root: DataRootOption = None,
) -> None:
    """Download the official files and check their checksums (offline: says where to put them)."""
    from nsvae.data import fetch_dataset

    for path in fetch_dataset(dataset, data_root):
        typer.echo(f"{dataset} official file (checksum OK): {path}")


def _fetch_help(command) -> None:
    """Name the datasets that have published files (from the registry)."""
    from nsvae.data import fetchable_datasets

    argument = next(param for param in command.params if param.name == "dataset")
    argument.help = f"Dataset with published files: {', '.join(fetchable_datasets())}."


HELP_FROM_LIBRARY["fetch"] = _fetch_help
