"""The seed's `image_processor` module: the per-frame image operations under their known names.

The arithmetic lives in render/arithmetic.py (NumPy + OpenCV) and the landmark rules in
inputs/landmarks.py; `ImageProcessor` gathers them as the upstream port named them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .contract import CROP_SIZE, MODEL_SIZE
from .inputs.images import read_image
from .inputs.landmarks import CropBox, check_box_inside, crop_box, parse_landmarks, read_landmarks
from .render.arithmetic import (
    crop_region,
    inner_region,
    mask_region,
    network_input,
    parsing_keep_mask,
    paste_generated_region,
    resize_crop,
    to_pixels,
)

if TYPE_CHECKING:
    import torch

__all__ = [
    "CROP_SIZE", "MODEL_SIZE", "CropBox", "ImageProcessor", "crop_box", "crop_face_region", "inner_region",
    "mask_region", "network_input", "parse_landmarks", "parsing_keep_mask", "paste_generated_region",
    "read_image", "read_landmarks", "resize_crop", "to_pixels",
]


def crop_face_region(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, CropBox]:
    """Cut the landmarks' crop box out of `image` (a view, cut short at the edges) and return both."""
    box = crop_box(landmarks)
    check_box_inside(box, image.shape[1::-1], "<image>")
    return crop_region(image, box), box


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
        import torch

        concat = torch.from_numpy(network_input(inner))
        return concat[None], concat[:3]
