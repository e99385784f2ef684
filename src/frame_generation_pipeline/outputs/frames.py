"""Frames as numbered image files (`000000.png`, ...): lossless PNG by default, JPEG on request."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigurationError, OutputError
from ..files import write_bytes

logger = logging.getLogger(__name__)

IMAGE_FORMATS = ("png", "jpg")

def check_image_format(image_format: str) -> str:
    """`image_format` if it is one of IMAGE_FORMATS; ConfigurationError naming the choices otherwise."""
    if image_format not in IMAGE_FORMATS:
        raise ConfigurationError(f"unknown image format {image_format!r}: expected one of {', '.join(IMAGE_FORMATS)}")
    return image_format


def encode_image(image: np.ndarray, path: Path) -> bytes:
    """The bytes of `image` (HxWx3 uint8 BGR) in the format of `path`'s suffix."""
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OutputError(path, "image encoding failed")
    return encoded.tobytes()


def write_frames(
    frames: Iterable[np.ndarray], folder: str | os.PathLike[str], image_format: str = "png", count: int | None = None
) -> list[Path]:
    """Write frames as `{i:06d}.png` (or `.jpg`) into an existing `folder`; return the paths in order.

    `count`, when known, widens the zero padding so that names always sort in frame order.
    """
    check_image_format(image_format)
    folder = Path(folder)
    digits = max(6, len(str(max((count or 1) - 1, 0))))
    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"{i:0{digits}d}.{image_format}"
        write_bytes(path, encode_image(frame, path))
        paths.append(path)
    logger.debug("wrote %d frames to %s", len(paths), folder)
    return paths
