"""The per-frame pixel arithmetic of contract steps 3-13 (crop, resize, mask, network input, paste).

NumPy and OpenCV only. Conventions: images are HxWx3 uint8 BGR as OpenCV decodes them; a crop
box is [xmin, xmax) x [ymin, ymax) (see inputs/landmarks.py); network tensors are CHW float32 in
[0, 1] (pixel / 255), channel order BGR, [real, masked] along channels.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..contract import BORDER, CROP_SIZE, MASK_COLS, MASK_ROWS
from ..inputs.landmarks import CropBox, check_box_inside, crop_box
from .blend import NO_BLEND, Blend, feather

#: Parsing colours (BGR) whose pixels keep the template's original crop.
PARSING_KEEP_COLOURS = ((0, 0, 255), (255, 255, 255))
_INNER = slice(BORDER, CROP_SIZE - BORDER)


def crop_region(image: np.ndarray, box: CropBox) -> np.ndarray:
    """The box cut out of `image` (a view; cut short at the right and bottom edges, as NumPy slicing)."""
    return image[box.slices()]


def crop_face(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, CropBox]:
    """The landmarks' crop box cut out of `image` (crop_region) and the box (step 3); TemplateError
    for a bad box or one that starts outside the image."""
    box = crop_box(landmarks)
    check_box_inside(box, image.shape[1::-1], "<image>")
    return crop_region(image, box), box


def resize_crop(crop: np.ndarray) -> np.ndarray:
    """Resize a crop to 328x328 with bicubic interpolation (step 4)."""
    return cv2.resize(crop, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_CUBIC)


def inner_region(resized: np.ndarray) -> np.ndarray:
    """A copy of the central 320x320 of a 328x328 crop (step 5)."""
    return resized[_INNER, _INNER].copy()


def mask_region(inner: np.ndarray) -> np.ndarray:
    """A copy of `inner` with rows 5..309 and columns 5..314 (inclusive) set to 0 (step 6)."""
    masked = inner.copy()
    masked[MASK_ROWS, MASK_COLS] = 0
    return masked


def network_input(inner: np.ndarray) -> np.ndarray:
    """The (6, 320, 320) float32 network input: [real, masked] BGR, CHW, divided by 255.0 (step 7)."""
    both = np.concatenate([inner, mask_region(inner)], axis=2).transpose(2, 0, 1)
    # C order matters: a channels-last array would send torch down other (less exact) kernels.
    return np.ascontiguousarray(both, dtype=np.float32) / np.float32(255.0)


def to_pixels(output: np.ndarray) -> np.ndarray:
    """Network output (3, 320, 320) in [0, 1] to 320x320x3 uint8 by x255 in float32 and truncation (step 10)."""
    return (output.transpose(1, 2, 0) * np.float32(255)).astype(np.uint8)


def parsing_keep_mask(parsing_crop: np.ndarray) -> np.ndarray:
    """True where a parsing pixel is exactly one of PARSING_KEEP_COLOURS (BGR) (step 12)."""
    keep = np.zeros(parsing_crop.shape[:2], dtype=bool)
    for colour in PARSING_KEEP_COLOURS:
        keep |= (parsing_crop == colour).all(axis=2)
    return keep


def paste_generated_region(
    image: np.ndarray,
    generated: np.ndarray,
    coords: CropBox | tuple[int, int, int, int],
    crop_size: tuple[int, int] | None = None,
    resized_crop: np.ndarray | None = None,
    parsing: np.ndarray | None = None,
    blend: Blend = NO_BLEND,
) -> np.ndarray:
    """The frame with the generated 320x320 pixels pasted back (steps 11-13), feathered in when
    `blend` says so (render/blend.py; the parsing mask still keeps its pixels).

    Args:
        image: the template frame, HxWx3 uint8 BGR (left unchanged).
        generated: 320x320x3 uint8 BGR from `to_pixels`.
        coords: the crop box (a CropBox or (xmin, ymin, xmax, ymax)).
        crop_size: (h, w) of the crop as cut from the image; None measures it.
        resized_crop: the 328x328 resized crop whose 4-pixel ring frames the generated pixels;
            recomputed from `image` when not given.
        parsing: the template's parsing image (same size as `image`) to keep the pixels marked
            red or white from the original crop; None for no parsing.
        blend: NO_BLEND for the contract's exact paste, or the feather's settings.
    """
    box = CropBox(*map(int, coords))
    original = crop_region(image, box)
    canvas = resize_crop(original) if resized_crop is None else resized_crop.copy()
    canvas[_INNER, _INNER] = generated
    h, w = original.shape[:2] if crop_size is None else crop_size
    back = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_CUBIC)
    if blend.feathered:
        back = feather(back, original, blend)
    if parsing is not None:
        keep = parsing_keep_mask(crop_region(parsing, box))
        back[keep] = original[keep]
    frame = image.copy()
    frame[box.slices()] = back
    return frame
