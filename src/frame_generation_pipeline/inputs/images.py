"""Image files: decoding to HxWx3 uint8 BGR as upstream's cv2.imread does, and sizes from headers."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import TemplateError

#: EXIF orientations that turn the image by 90 degrees (OpenCV applies them when decoding).
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 BGR, or raise TemplateError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise TemplateError(path, "image file not found")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise TemplateError(path, "not a decodable image (corrupt or empty file)")
    return image


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) as `read_image` would decode it, read from the file's header only.

    Decoding a 1080p JPEG costs ~10 ms; its header, microseconds: a folder of hundreds of
    templates is checked in well under a second. EXIF rotation is taken into account.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(_EXIF_ORIENTATION) if image.format == "JPEG" else None
    except FileNotFoundError:
        raise TemplateError(path, "image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise TemplateError(path, "not a decodable image (corrupt or empty file)") from None
    return (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)
