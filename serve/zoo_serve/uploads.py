"""Uploaded files, checked before a task sees them: images (size-limited, decompression bombs refused) or
numpy ``.npy`` arrays. They stay in memory; the client's file name is ignored."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from zoo_serve.errors import BadRequest

NPY_MAGIC = b"\x93NUMPY"
IMAGE_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "WEBP": ".webp"}


def image_suffix(data: bytes, field: str, max_pixels: int) -> str:
    """The file suffix of an acceptable image, after checking its size and decoding it whole."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                kind = image.format or ""
                if width * height > max_pixels:
                    raise BadRequest(f"upload {field!r}: a {width}x{height} image is larger than the "
                                     f"{max_pixels} pixels this server decodes", status=413)
                if kind not in IMAGE_SUFFIX:
                    raise BadRequest(f"upload {field!r}: {kind or 'unknown'} images are not accepted; "
                                     f"send {', '.join(IMAGE_SUFFIX)}")
                image.load()  # a truncated or corrupt stream fails here, not inside the task
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadRequest(f"upload {field!r}: refused as a decompression bomb", status=413) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise BadRequest(f"upload {field!r} is not a readable image ({type(error).__name__})") from None
    return IMAGE_SUFFIX[kind]
