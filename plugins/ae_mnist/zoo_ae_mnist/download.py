"""`zoo data download mnist`: fetches the real MNIST with torchvision's downloader. Only ae_mnist needs it, so it
lives here and the zoo's core needs no torchvision; zoo_core.api's ``load_mnist`` reads what it writes."""

from __future__ import annotations

import contextlib
from pathlib import Path

from zoo_core.api import DataError


def download_mnist(directory: Path) -> Path:
    """Fetch both MNIST splits with torchvision into ``directory``; returns the folder holding the IDX files."""
    import torchvision  # imported here: it costs seconds and only this command needs it

    directory = Path(directory)
    raw = directory / "MNIST" / "raw"
    folders = [directory, directory / "MNIST", raw]
    created = [folder for folder in folders if not folder.exists()]
    files_before = set(raw.iterdir()) if raw.is_dir() else set()
    try:
        for train in (True, False):
            torchvision.datasets.MNIST(root=str(directory), train=train, download=True)
    except (OSError, RuntimeError, ValueError) as error:
        _remove_partial_download(raw, files_before, created)
        # torchvision's message is "Error downloading X:" then the reason on later lines: keep them all, on one
        message = " ".join(str(error).split()) or type(error).__name__
        cause = error.__cause__ or error.__context__
        if message.endswith(":") and cause is not None:
            message += " " + (" ".join(str(cause).split()) or type(cause).__name__)
        raise DataError(f"could not download MNIST into {directory} ({message[:300]}); check the network, or copy "
                        "the four IDX files there by hand") from None
    return raw


def _remove_partial_download(raw: Path, files_before: set[Path], created: list[Path]) -> None:
    """Undo what a failed download left: the files it started and the folders it made (when empty)."""
    if raw.is_dir():
        for path in set(raw.iterdir()) - files_before:
            if path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
    for folder in reversed(created):
        with contextlib.suppress(OSError):  # not empty: something else is in it now, keep it
            folder.rmdir()
