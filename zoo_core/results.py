"""What a task returns: its pictures as uint8 arrays with captions and a layout, plus named arrays.

A task computes and returns; it writes nothing. The shells decide what happens next: `zoo generate` saves the
result (:meth:`TaskResult.save`), the server encodes it in memory (:meth:`TaskResult.png_files`), a Python caller
takes :attr:`~TaskResult.images`, :meth:`~TaskResult.to_pil` or :meth:`~TaskResult.grid`, and Jupyter shows it
(:meth:`~TaskResult._repr_png_`). No torch here: results are numpy, so a result outlives the runtime that made it.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo_core.errors import UsageError, ZooError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OUTPUT_SUFFIX = ".png"


def to_uint8_images(batch: Any, value_range: tuple[float, float] = (0.0, 1.0)) -> list[np.ndarray]:
    """A float batch [N,C,H,W] (numpy or torch, C 1 or 3) in ``value_range`` as HWC uint8 arrays, rounded as
    :func:`zoo_core.images.make_grid` rounds, so an image equals its tile in the grid."""
    array = np.asarray(batch.detach().cpu() if hasattr(batch, "detach") else batch, dtype=np.float32)
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N,1|3,H,W], got {list(array.shape)}")
    low, high = value_range
    scaled = np.clip((array - low) / (high - low), 0.0, 1.0)
    return [(image.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8) for image in scaled]


def encode_png(array: np.ndarray) -> bytes:
    """An HWC (or HW) uint8 array as PNG bytes, with the encoder settings every zoo PNG is written with."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_rgb_or_grey(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _rgb_or_grey(array: np.ndarray) -> np.ndarray:
    return array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array


@dataclass
class TaskResult:
    """A task's output.

    ``images`` are the task's products, one HWC uint8 array each (a sample, a translation, a decoded code), with
    ``captions`` and, where each is saved as its own file (``translate``), ``names``. ``picture`` is the composed
    figure `zoo generate` saves (a grid with captions, enlarged where tiles are small) under ``filename``;
    ``columns`` is its layout. ``arrays`` holds named numbers a caller may want (codes, originals).
    """

    images: list[np.ndarray]
    summary: str
    filename: str
    picture: np.ndarray | None = None
    captions: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    columns: int = 8
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.captions and len(self.captions) != len(self.images):
            raise ValueError(f"{len(self.captions)} captions for {len(self.images)} images")
        if self.names and len(self.names) != len(self.images):
            raise ValueError(f"{len(self.names)} file names for {len(self.images)} images")
        if not self.filename.endswith(OUTPUT_SUFFIX):
            raise ValueError(f"a result's file name ends in {OUTPUT_SUFFIX}, got {self.filename!r}")

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.images[0].shape)) if self.images else "-"
        return f"<TaskResult {len(self.images)} image(s) of {shape}: {self.summary}>"

    # -- for Python callers -------------------------------------------------------------------------------------
    def grid_array(self) -> np.ndarray:
        """The composed picture as an HWC uint8 array (a plain grid of the images where the task composed none)."""
        if self.picture is not None:
            return self.picture
        return tile(self.images, self.columns)

    def grid(self) -> Any:
        """The composed picture as a PIL image."""
        from PIL import Image

        return Image.fromarray(_rgb_or_grey(self.grid_array()))

    def to_pil(self) -> list[Any]:
        """Each image as a PIL image."""
        from PIL import Image

        return [Image.fromarray(_rgb_or_grey(image)) for image in self.images]

    def _repr_png_(self) -> bytes:
        """Jupyter shows a result as its picture."""
        return encode_png(self.grid_array())

    # -- for the shells -----------------------------------------------------------------------------------------
    def png_files(self) -> dict[str, bytes]:
        """Every file :meth:`save` would write into a folder, encoded in memory, by name (the picture first)."""
        files = {self.filename: encode_png(self.grid_array())}
        for name, image in zip(self.names, self.images, strict=False):
            files[name] = encode_png(image)
        return files

    def save(self, path: str | os.PathLike[str], force: bool = False,
             log: Any = None) -> list[Path]:
        """Write the result as PNG files, atomically, and return their paths.

        ``path`` is a folder (the picture is written as :attr:`filename`, and each image under its own name where
        the task names them) or, for a result without per-image files, a ``.png`` file. An existing file is
        replaced only when it is a PNG (zoo writes nothing else here), and that is said on stderr; anything else
        needs ``force``. A name the file system refuses is one clear error.
        """
        target = Path(path)
        exists, is_dir = _probe(target)
        if self.names:
            if target.suffix or (exists and not is_dir):
                raise UsageError(f"--out {target}: this task writes one PNG per input, so --out must be a folder")
            files = {target / name: image for name, image in zip(self.names, self.images, strict=True)}
            files[target / self.filename] = self.grid_array()
        else:
            if is_dir or (not target.suffix and not exists):
                target = target / self.filename
            files = {target: self.grid_array()}
        for file in files:
            check_output_file(file, force)
        written = []
        say = log or _stderr
        for file, image in files.items():
            replaced = file.exists()
            written.append(_write_png(file, image))
            if replaced:
                say(f"zoo: replaced {file}")
        return written


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _probe(path: Path) -> tuple[bool, bool]:
    """Whether ``path`` exists and is a folder; a name the file system refuses (too long, ...) is one error."""
    if any(len(os.fsencode(part)) > 255 for part in path.parts):
        raise UsageError(f"--out {str(path)[:80]}...: a name in it is longer than the 255 bytes a file system allows")
    try:
        return path.exists(), path.is_dir()
    except OSError as error:
        raise UsageError(f"--out {path}: {error.strerror or error}") from None


def check_output_file(path: Path, force: bool = False) -> None:
    """Refuse to write a PNG at ``path`` where that would destroy what zoo did not write, or cannot work."""
    if path.suffix.lower() != OUTPUT_SUFFIX:
        raise UsageError(f"--out {path}: zoo writes PNG pictures; give a folder or a file name ending in .png")
    exists, _ = _probe(path)
    regular = exists and path.is_file()
    if not exists:
        return
    if not regular:
        raise UsageError(f"--out {path}: exists and is not a regular file; zoo writes only files")
    if force:
        return
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(PNG_SIGNATURE))
    except OSError as error:
        raise UsageError(f"--out {path}: cannot read the existing file ({error.strerror or error})") from None
    if head != PNG_SIGNATURE:
        raise UsageError(f"--out {path}: exists and is not a PNG picture; zoo replaces only pictures it could "
                         "have written (use another name, or --force to replace it)")


def _write_png(path: Path, image: np.ndarray) -> Path:
    from zoo_core import io as zio

    try:
        zio.write_bytes(path, encode_png(image))
    except OSError as error:
        raise ZooError(f"cannot write {path}: {error.strerror or error}") from None
    return path


def result_from_files(files: Mapping[str, bytes], summary: str) -> TaskResult:
    """A result read back from the PNG files an API 0.1 task wrote (file name → bytes): the grid, or the only
    file, becomes the picture; every other file is one named image."""
    from PIL import Image

    def decode(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))

    if not files:
        raise ZooError("the task wrote no picture")
    names = sorted(files)
    grids = [n for n in names if "grid" in n]
    main = names[0] if len(names) == 1 else (grids[0] if grids else names[0])
    others = [n for n in names if n != main]
    picture = decode(files[main])
    if not others:
        return TaskResult(images=[picture], summary=summary, filename=Path(main).name, picture=picture)
    return TaskResult(images=[decode(files[n]) for n in others], names=others, summary=summary,
                      filename=main, picture=picture)


def tile(images: Sequence[np.ndarray], columns: int, padding: int = 2) -> np.ndarray:
    """HWC uint8 images of one size tiled ``columns`` per row on white, as make_grid lays tensors out."""
    if not images:
        raise ValueError("no images to tile")
    rgb = [np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image for image in images]
    height, width = rgb[0].shape[:2]
    cols = max(1, min(columns, len(rgb)))
    rows = (len(rgb) + cols - 1) // cols
    grid = np.full((rows * (height + padding) + padding, cols * (width + padding) + padding, 3), 255, np.uint8)
    for index, image in enumerate(rgb):
        top, left = padding + (index // cols) * (height + padding), padding + (index % cols) * (width + padding)
        grid[top:top + height, left:left + width] = image
    return grid
