"""Landmark files and the crop box they define (contract steps 2-3).

Conventions: landmarks are (K, 2) int32 (x, y) after truncation toward zero through float32; a
crop box is [xmin, xmax) x [ymin, ymax) in template pixels and may run past the right or bottom
edge, where the crop is cut short exactly as NumPy slicing does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import TemplateError

#: Landmark rows the crop box uses: left edge (x), right edge (x), top (y).
LEFT_POINT, RIGHT_POINT, TOP_POINT = 1, 31, 52
MIN_LANDMARKS = TOP_POINT + 1


class CropBox(NamedTuple):
    """The lower-face crop box [xmin, xmax) x [ymin, ymax) in template pixels; unpacks as a tuple."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int

    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) slices selecting the box from an HxW image."""
        return slice(self.ymin, self.ymax), slice(self.xmin, self.xmax)


def parse_landmarks(text: str, source: str = "<landmarks>") -> np.ndarray:
    """Parse `.lms` text (one `x y` pair per line) into (K, 2) int32, truncating toward zero.

    Values go through float32 first, as upstream does. Raises TemplateError for non-numeric text,
    a line without exactly two values, non-finite values or fewer than 53 points.
    """
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise TemplateError(source, f"line {number}: expected 'x y', found {line.strip()!r}")
        try:
            rows.append((float(fields[0]), float(fields[1])))
        except ValueError:
            raise TemplateError(source, f"line {number}: non-numeric landmark {line.strip()!r}") from None
    if len(rows) < MIN_LANDMARKS:
        raise TemplateError(
            source, f"has {len(rows)} landmarks, at least {MIN_LANDMARKS} are needed (points 1, 31, 52)"
        )
    values = np.array(rows, dtype=np.float32)
    if not np.isfinite(values).all():
        raise TemplateError(source, "holds NaN or infinite landmark values")
    if np.abs(values).max() >= 2**31:
        raise TemplateError(source, "holds landmark values too large for pixel coordinates")
    return values.astype(np.int32)


def landmark_text(points: np.ndarray) -> str:
    """`.lms` text of (K, 2) points, one `x y` line each (six decimals)."""
    return "".join(f"{x:.6f} {y:.6f}\n" for x, y in points)


def read_landmarks(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a `.lms` file into (K, 2) int32 landmarks (see parse_landmarks)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(path, "landmark file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(path, f"cannot read landmark file ({exc})") from None
    return parse_landmarks(text, source=str(path))


def crop_box(landmarks: np.ndarray, source: str = "<landmarks>") -> CropBox:
    """The crop box of contract step 3; TemplateError for width <= 0 or a negative corner."""
    xmin = int(landmarks[LEFT_POINT, 0])
    xmax = int(landmarks[RIGHT_POINT, 0])
    ymin = int(landmarks[TOP_POINT, 1])
    width = xmax - xmin
    if width <= 0:
        raise TemplateError(
            source, f"crop box width is {width} (point 31 x={xmax} is not right of point 1 x={xmin})"
        )
    if xmin < 0 or ymin < 0:
        raise TemplateError(source, f"crop box corner ({xmin}, {ymin}) lies outside the image")
    return CropBox(xmin, ymin, xmax, ymin + width)


def check_box_inside(box: CropBox, size: tuple[int, int], source: str) -> None:
    """Raise TemplateError if the box starts outside an image of (width, height) (an empty crop)."""
    width, height = size
    if box.xmin >= width or box.ymin >= height:
        raise TemplateError(source, f"crop box {list(box)} starts outside the {width}x{height} image")
