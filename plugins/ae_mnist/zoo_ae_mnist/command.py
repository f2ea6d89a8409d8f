"""The `zoo data` commands ae_mnist registers (click only at import: zoo imports this on every start)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("data")
def data_group() -> None:
    """Fetch real data sets (for users with internet; nothing else downloads)."""


@data_group.command("download")
@click.argument("dataset", type=click.Choice(["mnist"]))
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("data/mnist"),
              show_default=True)
def data_download(dataset: str, directory: Path) -> None:
    """Download DATASET with torchvision's downloader into --dir."""
    from zoo_ae_mnist.download import download_mnist

    path = download_mnist(directory)
    click.echo(f"downloaded {dataset} to {path}; train with: zoo train ae_mnist --data {directory}")
