"""Per-frame image arithmetic of SPEC.md steps 2-13: landmarks, crop box, crop, mask, paste.

Conventions: images are HxWx3 uint8 BGR as OpenCV reads them; landmarks are (K, 2) int32 (x, y);
a crop box is [xmin, xmax) x [ymin, ymax) in pixels and may run past the right or bottom edge, in
which case the crop is cut short exactly as NumPy slicing does. Network tensors are CHW float32 in
[0, 1] (pixel / 255), channel order BGR, [real, masked] along channels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch

from .errors import TemplateError

#: Side of the square the crop is resized to before the 4-pixel border is cut off.
CROP_SIZE = 328
#: Side of the region the network sees and generates.
MODEL_SIZE = 320
_BORDER = (CROP_SIZE - MODEL_SIZE) // 2
#: Landmark rows the crop box uses: left edge (x), right edge (x), top (y).
LEFT_POINT, RIGHT_POINT, TOP_POINT = 1, 31, 52
MIN_LANDMARKS = TOP_POINT + 1
#: Parsing colours (BGR) whose pixels keep the template's original crop.
PARSING_KEEP_COLOURS = ((0, 0, 255), (255, 255, 255))


class CropBox(NamedTuple):
    """The lower-face crop box [xmin, xmax) x [ymin, ymax) in template pixels; unpacks as a tuple."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int

    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) slices selecting the box from an HxW image."""
        return slice(self.ymin, self.ymax), slice(self.xmin, self.xmax)


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
            raise TemplateError(
                source, f"line {number}: non-numeric landmark {line.strip()!r}"
            ) from None
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
    """The crop box of SPEC step 3; raises TemplateError for width <= 0 or a negative corner."""
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


def check_box_inside(box: CropBox, image_shape: tuple[int, ...], source: str) -> None:
    """Raise TemplateError if the box starts outside an image of `image_shape` (empty crop)."""
    height, width = image_shape[:2]
    if box.xmin >= width or box.ymin >= height:
        raise TemplateError(
            source,
            f"crop box {list(box)} starts outside the {width}x{height} image",
        )


def crop_face_region(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, CropBox]:
    """Cut the crop box out of `image` (a view, cut short at the edges) and return it with the box."""
    box = crop_box(landmarks)
    check_box_inside(box, image.shape, "<image>")
    return image[box.slices()], box


def resize_crop(crop: np.ndarray) -> np.ndarray:
    """Resize a crop to 328x328 with bicubic interpolation (SPEC step 4)."""
    return cv2.resize(crop, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_CUBIC)


def inner_region(resized: np.ndarray) -> np.ndarray:
    """A copy of the central 320x320 of a 328x328 crop (SPEC step 5)."""
    return resized[_BORDER : CROP_SIZE - _BORDER, _BORDER : CROP_SIZE - _BORDER].copy()


def mask_region(inner: np.ndarray) -> np.ndarray:
    """A copy of `inner` with rows 5..309 and columns 5..314 (inclusive) set to 0 (SPEC step 6)."""
    masked = inner.copy()
    masked[5:310, 5:315] = 0
    return masked


def network_input(inner: np.ndarray) -> np.ndarray:
    """The (6, 320, 320) float32 network input: [real, masked] BGR, CHW, divided by 255.0."""
    both = np.concatenate([inner, mask_region(inner)], axis=2).transpose(2, 0, 1)
    # C order matters: a channels-last array would send torch down other (less exact) kernels.
    return np.ascontiguousarray(both, dtype=np.float32) / np.float32(255.0)


def to_pixels(output: np.ndarray) -> np.ndarray:
    """Network output (3, 320, 320) in [0, 1] to 320x320x3 uint8 by x255 in float32 and truncation."""
    return (output.transpose(1, 2, 0) * np.float32(255)).astype(np.uint8)


def parsing_keep_mask(parsing_crop: np.ndarray) -> np.ndarray:
    """True where a parsing pixel is exactly one of PARSING_KEEP_COLOURS (BGR)."""
    keep = np.zeros(parsing_crop.shape[:2], dtype=bool)
    for colour in PARSING_KEEP_COLOURS:
        keep |= (parsing_crop == colour).all(axis=2)
    return keep


def paste_generated_region(
    image: np.ndarray,
    generated: np.ndarray,
    coords: CropBox | tuple[int, int, int, int],
    crop_size: tuple[int, int],
    resized_crop: np.ndarray | None = None,
    parsing: np.ndarray | None = None,
) -> np.ndarray:
    """Return a copy of `image` with the generated 320x320 pixels pasted back (SPEC steps 11-13).

    Args:
        image: the template frame, HxWx3 uint8 BGR (left unchanged).
        generated: 320x320x3 uint8 BGR from `to_pixels`.
        coords: the crop box (a CropBox or (xmin, ymin, xmax, ymax)).
        crop_size: (h, w) of the crop as cut from the image.
        resized_crop: the 328x328 resized crop whose 4-pixel ring frames the generated pixels;
            recomputed from `image` when not given.
        parsing: the template's parsing image (same size as `image`) to keep the pixels marked
            red or white from the original crop; None for no parsing.
    """
    box = CropBox(*map(int, coords))
    rows, cols = box.slices()
    original = image[rows, cols]
    canvas = resize_crop(original) if resized_crop is None else resized_crop.copy()
    canvas[_BORDER : CROP_SIZE - _BORDER, _BORDER : CROP_SIZE - _BORDER] = generated
    h, w = crop_size
    back = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_CUBIC)
    if parsing is not None:
        keep = parsing_keep_mask(parsing[rows, cols])
        back[keep] = original[keep]
    frame = image.copy()
    frame[rows, cols] = back
    return frame


class ImageProcessor:
    """The per-frame image operations under the names users of the upstream port know."""

    load_image = staticmethod(read_image)
    load_landmarks = staticmethod(read_landmarks)
    crop_face_region = staticmethod(crop_face_region)
    resize_crop = staticmethod(resize_crop)
    inner_region = staticmethod(inner_region)
    create_masked_region = staticmethod(mask_region)
    paste_generated_region = staticmethod(paste_generated_region)
    parsing_keep_mask = staticmethod(parsing_keep_mask)

    @staticmethod
    def prepare_input_tensors(inner: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """From a 320x320x3 uint8 BGR region: ((1, 6, 320, 320) input, (3, 320, 320) real image)."""
        concat = torch.from_numpy(network_input(inner))
        return concat[None], concat[:3]
