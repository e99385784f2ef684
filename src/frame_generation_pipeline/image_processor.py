"""The seed's `image_processor` module: the per-frame image operations under their known names.

Nothing is computed here: every name is the real function, or a thin shim over it under the name
the upstream port used (its docstring names which). The arithmetic lives in render/arithmetic.py
(NumPy + OpenCV), the landmark rules in inputs/landmarks.py, decoding in inputs/images.py.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from .contract import CROP_SIZE, MODEL_SIZE
from .inputs.images import read_image
from .inputs.landmarks import CropBox, crop_box, parse_landmarks, read_landmarks
from .render.arithmetic import (
    crop_face,
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
    """The seed's name for render.arithmetic.crop_face: (the crop, its box)."""
    return crop_face(image, landmarks)


class ImageProcessor:
    """The per-frame image operations under the names users of the upstream port know."""

    resize_crop = staticmethod(resize_crop)
    inner_region = staticmethod(inner_region)
    paste_generated_region = staticmethod(paste_generated_region)
    parsing_keep_mask = staticmethod(parsing_keep_mask)
    crop_face_region = staticmethod(crop_face_region)

    @staticmethod
    def load_image(path: str | os.PathLike[str]) -> np.ndarray:
        """The seed's name for inputs.images.read_image."""
        return read_image(path)

    @staticmethod
    def load_landmarks(path: str | os.PathLike[str]) -> np.ndarray:
        """The seed's name for inputs.landmarks.read_landmarks."""
        return read_landmarks(path)

    @staticmethod
    def create_masked_region(inner: np.ndarray) -> np.ndarray:
        """The seed's name for render.arithmetic.mask_region."""
        return mask_region(inner)

    @staticmethod
    def prepare_input_tensors(inner: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """render.arithmetic.network_input as the seed's tensors: ((1, 6, 320, 320) input, (3, 320, 320) real image)."""
        import torch

        concat = torch.from_numpy(network_input(inner))
        return concat[None], concat[:3]
