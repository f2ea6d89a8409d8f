"""Images a task takes, from wherever a caller has them: files and folders (the command line), encoded bytes
(uploads over HTTP, decoded in memory), PIL images, numpy arrays or tensors (Python).

Each becomes an :class:`ImageInput` with a name (output files are named after it) that decodes when asked, so a
task or a streaming runner holds only what it is working on.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo_core.errors import UsageError, ZooError

MAX_INPUT_PIXELS = 8192 * 8192  # a decoded image larger than this is refused before it is allocated


@dataclass(frozen=True)
class ImageInput:
    """One image: ``source`` is a Path, encoded bytes, a PIL image or an HWC/CHW array; ``name`` is its stem."""

    name: str
    source: Any

    def decode(self, size: int | tuple[int, int] | None = None, channels: int = 3, mode: str = "resize") -> np.ndarray:
        """The image as uint8 [H,W,channels], resized to ``size`` (None: its own size) with the one resize
        filter training data uses (:func:`zoo_core.images.decode_image`). A bad image is one ZooError."""
        from PIL import Image

        from zoo_core.images import RESIZE_FILTER, decode_image

        try:
            if isinstance(self.source, Path) and size is not None:
                return decode_image(self.source, size, mode, channels)
            image = self._pil()
            colour = "L" if channels == 1 else "RGB"
            image = image.convert(colour)
            if size is not None:
                height, width = (size, size) if isinstance(size, int) else size
                box = None
                if mode == "center_crop":
                    side = min(image.size)
                    box = ((image.width - side) / 2, (image.height - side) / 2, (image.width + side) / 2,
                           (image.height + side) / 2)
                image = image.resize((width, height), RESIZE_FILTER, box=box)
            array = np.asarray(image)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise ZooError(f"cannot read image {self.name}: {error}") from None
        return array[..., None] if channels == 1 else array

    def _pil(self) -> Any:
        from PIL import Image

        source = self.source
        if isinstance(source, Path):
            return Image.open(source)
        if isinstance(source, bytes):
            image = Image.open(io.BytesIO(source))
            if image.width * image.height > MAX_INPUT_PIXELS:
                raise ValueError(f"{image.width}x{image.height} pixels, more than {MAX_INPUT_PIXELS}")
            return image
        if isinstance(source, Image.Image):
            return source
        return Image.fromarray(_hwc_uint8(source, self.name))


def _hwc_uint8(array: Any, name: str) -> np.ndarray:
    """An array image as HWC uint8: HWC or CHW, 1 or 3 (or 4) channels, uint8 or float in [0,1]."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"{name}: an image array is [H,W], [H,W,C] or [C,H,W] with C 1, 3 or 4, "
                         f"got {list(array.shape)}")
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(f"{name}: a float image array holds values in [0,1]")
        return (array * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f"{name}: an image array is uint8 or float in [0,1], got {array.dtype}")


def image_inputs(value: Any, what: str = "images") -> list[ImageInput]:
    """``value`` as a list of images: one item or a sequence of paths (files, or folders expanded to their
    images), encoded bytes, PIL images, arrays or a batch tensor [N,C,H,W]."""
    from zoo_core.images import expand_image_paths

    items = _items(value)
    if not items:
        raise UsageError(f"{what}: no images given")
    inputs: list[ImageInput] = []
    paths: list[Any] = []

    def flush() -> None:
        if paths:
            inputs.extend(ImageInput(p.stem, p) for p in expand_image_paths(paths))
            paths.clear()

    for index, item in enumerate(items):
        if isinstance(item, str | Path):
            paths.append(item)
            continue
        flush()
        if isinstance(item, ImageInput):
            inputs.append(item)
        elif isinstance(item, bytes | bytearray):
            inputs.append(ImageInput(f"image{index}", bytes(item)))
        elif _is_pil(item) or hasattr(item, "shape"):
            inputs.append(ImageInput(_name_of(item, index), item))
        else:
            raise UsageError(f"{what}: item {index} is a {type(item).__name__}; give paths, PIL images or arrays")
    flush()
    return inputs


def _items(value: Any) -> list[Any]:
    if isinstance(value, str | Path | bytes | bytearray | ImageInput) or _is_pil(value):
        return [value]
    if hasattr(value, "shape"):  # one array image, or a batch [N,C,H,W] / [N,H,W,C]
        return list(value) if len(value.shape) == 4 else [value]
    if isinstance(value, Iterable):
        return list(value)
    raise UsageError(f"images: give paths, PIL images or arrays, got {type(value).__name__}")


def _is_pil(value: Any) -> bool:
    from PIL import Image

    return isinstance(value, Image.Image)


def _name_of(item: Any, index: int) -> str:
    filename = getattr(item, "filename", "")  # a PIL image opened from a file keeps its name
    return Path(filename).stem if filename else f"image{index}"


def load_tensor(inputs: list[ImageInput], size: int | tuple[int, int], channels: int = 3) -> Any:
    """Decode ``inputs`` into float [N,C,H,W] in [0,1] (torch), each resized to ``size``."""
    import torch

    arrays = [torch.from_numpy(i.decode(size, channels).copy()).permute(2, 0, 1) for i in inputs]
    return torch.stack(arrays).float() / 255.0
