"""render/arithmetic.py: contract steps 3-13 on small hand-built and random inputs, against the
transcription in spec_reference and the literal upstream expressions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from frame_generation_pipeline.errors import TemplateError
from frame_generation_pipeline.inputs.landmarks import CropBox, parse_landmarks
from frame_generation_pipeline.render.arithmetic import (
    crop_face,
    inner_region,
    mask_region,
    network_input,
    parsing_keep_mask,
    paste_generated_region,
    resize_crop,
    to_pixels,
)

from . import spec_reference as spec
from .helpers import face_points, lms_text


@pytest.fixture
def rng_image():
    return np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def test_crop_runs_past_the_bottom_edge_like_numpy(rng_image):
    lms = parse_landmarks(lms_text(face_points(top=(0.0, 200.0))))
    crop, box = crop_face(rng_image, lms)
    assert box.ymax == 360 > rng_image.shape[0]
    assert crop.shape == (40, 160, 3)
    xmin, ymin, xmax, ymax = spec.crop_box(spec.landmarks_from_text(lms_text(face_points(top=(0.0, 200.0)))))
    assert np.array_equal(crop, rng_image[ymin:ymax, xmin:xmax])


def test_a_crop_starting_outside_the_image_is_refused(rng_image):
    lms = parse_landmarks(lms_text(face_points(top=(0.0, 240.0))))
    with pytest.raises(TemplateError, match="starts outside the 320x240 image"):
        crop_face(rng_image, lms)


def test_mask_equals_cv2_rectangle(rng_image):
    inner = inner_region(resize_crop(rng_image[:100, :120]))
    expected = cv2.rectangle(inner.copy(), (5, 5, 310, 305), (0, 0, 0), -1)
    masked = mask_region(inner)
    assert np.array_equal(masked, expected)
    assert masked[309, 314].sum() == 0 and masked[310, 314].any() and masked[309, 315].any()
    assert inner[5:310, 5:315].any(), "the mask must not write into its input"


@pytest.mark.parametrize("rows, cols", [(slice(10, 90), slice(20, 100)), (slice(0, 240), slice(100, 140))])
def test_network_input_is_real_then_masked_divided_by_255(rng_image, rows, cols):
    square, expected = spec.image_input(rng_image[rows, cols])
    resized = resize_crop(rng_image[rows, cols])
    assert np.array_equal(resized, square)
    ours = network_input(inner_region(resized))
    assert ours.dtype == np.float32 and ours.shape == (6, 320, 320) and ours.flags.c_contiguous
    assert np.array_equal(ours[None], expected.numpy())


def test_to_pixels_truncates_instead_of_rounding():
    output = np.full((3, 320, 320), 0.999, np.float32)
    output[0, 0, 0] = 1.0
    output[1, 0, 0] = 0.0
    pixels = to_pixels(output)
    assert pixels.shape == (320, 320, 3) and pixels.dtype == np.uint8
    assert pixels[1, 1, 0] == 254 and pixels[0, 0, 0] == 255 and pixels[0, 0, 1] == 0
    random = np.random.default_rng(1).random((3, 320, 320), dtype=np.float32)
    assert np.array_equal(to_pixels(random), spec.to_pixels(random))


def test_paste_keeps_the_resized_ring_and_cut_box(rng_image):
    box = CropBox(100, 200, 260, 360)  # runs past the bottom edge: a 40 x 160 crop
    crop = rng_image[200:360, 100:260]
    h, w = crop.shape[:2]
    crop328 = resize_crop(crop)
    generated = np.random.default_rng(3).integers(0, 256, (320, 320, 3), dtype=np.uint8)
    expected = spec.paste(rng_image.copy(), tuple(box), crop328, generated)
    ours = paste_generated_region(rng_image, generated, box, (h, w), resized_crop=crop328)
    assert np.array_equal(ours, expected)
    assert np.array_equal(paste_generated_region(rng_image, generated, tuple(box), (h, w)), expected)
    assert np.array_equal(paste_generated_region(rng_image, generated, box), expected)
    assert not np.array_equal(ours, rng_image), "the template itself stays unchanged"
    assert np.array_equal(ours[:200], rng_image[:200]) and np.array_equal(ours[:, :100], rng_image[:, :100])


def test_parsing_keeps_exactly_red_and_white(rng_image):
    parsing = np.zeros_like(rng_image)
    parsing[205:210, 120:130] = (0, 0, 255)
    parsing[215:220, 120:130] = (255, 255, 255)
    parsing[225:230, 120:130] = (0, 0, 254)
    keep = parsing_keep_mask(parsing)
    assert keep.sum() == 100 and keep[207, 125] and keep[217, 125] and not keep[227, 125]
    box = CropBox(100, 200, 260, 360)
    generated = np.zeros((320, 320, 3), np.uint8)
    out = paste_generated_region(rng_image, generated, box, (40, 160), parsing=parsing)
    assert np.array_equal(out[205:210, 120:130], rng_image[205:210, 120:130])
    assert np.array_equal(out[215:220, 120:130], rng_image[215:220, 120:130])
    assert not np.array_equal(out[225:230, 120:130], rng_image[225:230, 120:130])
    square = resize_crop(rng_image[200:360, 100:260])
    assert np.array_equal(out, spec.paste(rng_image.copy(), tuple(box), square, generated, parsing))
