"""The seed's `image_processor` names: each is the real function, or a shim that calls it and
returns its result (the functions themselves: test_arithmetic.py, test_landmarks.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from frame_generation_pipeline import image_processor
from frame_generation_pipeline.image_processor import ImageProcessor

from .helpers import face_points, lms_text

_RNG = np.random.default_rng(0)
IMAGE, SQUARE, INNER = (_RNG.integers(0, 256, (*size, 3), dtype=np.uint8) for size in ((240, 320), (328, 328), (320, 320)))
LANDMARKS = np.asarray(face_points(top=(0.0, 200.0)), np.int32)


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b))


#: seed name (on ImageProcessor, or `module.` for the module's own) -> (the real function's name, its arguments).
SEED_NAMES = {
    "load_image": ("read_image", lambda folder: (folder / "0.png",)),
    "load_landmarks": ("read_landmarks", lambda folder: (folder / "0.lms",)),
    "crop_face_region": ("crop_face", lambda folder: (IMAGE, LANDMARKS)),
    "module.crop_face_region": ("crop_face", lambda folder: (IMAGE, LANDMARKS)),
    "resize_crop": ("resize_crop", lambda folder: (IMAGE[10:90, 20:100],)),
    "inner_region": ("inner_region", lambda folder: (SQUARE,)),
    "create_masked_region": ("mask_region", lambda folder: (INNER,)),
    "paste_generated_region": ("paste_generated_region", lambda folder: (IMAGE, INNER, (100, 200, 260, 360))),
    "parsing_keep_mask": ("parsing_keep_mask", lambda folder: (IMAGE,)),
    "prepare_input_tensors": ("network_input", lambda folder: (INNER,)),
}


@pytest.mark.parametrize("seed_name", SEED_NAMES)
def test_each_seed_name_calls_the_real_function_with_the_same_result(seed_name, tmp_path, monkeypatch):
    real_name, make_arguments = SEED_NAMES[seed_name]
    cv2.imwrite(str(tmp_path / "0.png"), IMAGE)
    (tmp_path / "0.lms").write_text(lms_text(face_points()))
    arguments = make_arguments(tmp_path)
    real = getattr(image_processor, real_name)
    calls = []
    monkeypatch.setattr(image_processor, real_name, lambda *given: calls.append(given) or real(*given))
    seed = getattr(image_processor, seed_name[7:]) if seed_name.startswith("module.") else getattr(ImageProcessor, seed_name)
    result = seed(*arguments)
    called = len(calls) == 1 and all(given is argument for given, argument in zip(calls[0], arguments, strict=True))
    assert seed is real or called, f"{seed_name} does not call {real_name} with its arguments"
    expected = real(*arguments)
    if seed_name == "prepare_input_tensors":  # the seed's tensors: batched input and its real half
        assert tuple(result[0].shape) == (1, 6, 320, 320) and tuple(result[1].shape) == (3, 320, 320)
        expected = (expected[None], expected[:3])
        result = tuple(tensor.numpy() for tensor in result)
    assert _same(result, expected)
