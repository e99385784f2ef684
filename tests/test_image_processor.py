"""SPEC steps 2-13 on hand-built inputs, each against the literal upstream expression."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from frame_generation_pipeline.errors import TemplateError
from frame_generation_pipeline.image_processor import (
    CropBox,
    ImageProcessor,
    crop_box,
    inner_region,
    mask_region,
    network_input,
    parse_landmarks,
    parsing_keep_mask,
    paste_generated_region,
    read_image,
    read_landmarks,
    resize_crop,
    to_pixels,
)


def _lms_text(points):
    return "".join(f"{x} {y}\n" for x, y in points)


def _points(n=110, left=(100.7, 50.0), right=(260.2, 50.0), top=(180.0, 120.9)):
    points = [(150.0, 150.0)] * n
    points[1], points[31], points[52] = left, right, top
    return points


def test_landmarks_go_through_float32_then_truncate_toward_zero():
    points = _points()
    points[0] = (-0.7, 2.9999999)  # float32 rounds 2.9999999 to 3.0; float64 would truncate to 2
    lms = parse_landmarks(_lms_text(points))
    assert lms.dtype == np.int32 and lms.shape == (110, 2)
    assert lms[0].tolist() == [0, 3]
    assert lms[1].tolist() == [100, 50] and lms[52].tolist() == [180, 120]
    expected = np.array([np.array(line.split(" "), dtype=np.float32) for line in _lms_text(points).splitlines()], dtype=np.int32)
    assert np.array_equal(lms, expected)


@pytest.mark.parametrize(
    "text, message",
    [(_lms_text(_points()[:52]), "has 52 landmarks, at least 53"), ("a b\n" * 60, "line 1: non-numeric"),
     ("1 2 3\n" * 60, "line 1: expected 'x y'"), (_lms_text(_points()).replace("150.0 150.0", "nan 1", 1), "NaN")],
)
def test_bad_landmark_text_is_refused_with_the_reason(text, message, tmp_path):
    path = tmp_path / "7.lms"
    path.write_text(text)
    with pytest.raises(TemplateError, match=message) as info:
        read_landmarks(path)
    assert str(path) in str(info.value)


def test_crop_box_is_square_below_point_52():
    box = crop_box(parse_landmarks(_lms_text(_points())))
    assert box == CropBox(100, 120, 260, 280)
    assert tuple(box) == (100, 120, 260, 280)


@pytest.mark.parametrize(
    "points, message",
    [(_points(left=(200.0, 0.0), right=(200.0, 0.0)), "width is 0"), (_points(left=(-5.0, 0.0)), "outside the image"),
     (_points(top=(10.0, -3.0)), "outside the image")],
)
def test_bad_crop_boxes_are_refused(points, message):
    with pytest.raises(TemplateError, match=message):
        crop_box(parse_landmarks(_lms_text(points)), source="landmarks/3.lms")


def test_crop_runs_past_the_bottom_edge_like_numpy(rng_image):
    lms = parse_landmarks(_lms_text(_points(top=(0.0, 200.0))))
    crop, box = ImageProcessor.crop_face_region(rng_image, lms)
    assert box.ymax == 360 > rng_image.shape[0]
    assert crop.shape == (40, 160, 3)
    assert np.array_equal(crop, rng_image[200:360, 100:260])


def test_mask_equals_cv2_rectangle(rng_image):
    inner = inner_region(resize_crop(rng_image[:100, :120]))
    expected = cv2.rectangle(inner.copy(), (5, 5, 310, 305), (0, 0, 0), -1)
    masked = mask_region(inner)
    assert np.array_equal(masked, expected)
    assert masked[309, 314].sum() == 0 and masked[310, 314].any() and masked[309, 315].any()
    assert inner[5:310, 5:315].any(), "the mask must not write into its input"


def test_network_input_is_real_then_masked_divided_by_255(rng_image):
    crop328 = cv2.resize(rng_image[10:90, 20:100], (328, 328), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(resize_crop(rng_image[10:90, 20:100]), crop328)
    inner = crop328[4:324, 4:324].copy()
    masked = cv2.rectangle(inner.copy(), (5, 5, 310, 305), (0, 0, 0), -1)
    expected = np.concatenate([inner.transpose(2, 0, 1).astype(np.float32) / 255.0,
                               masked.transpose(2, 0, 1).astype(np.float32) / 255.0])
    ours = network_input(inner_region(crop328))
    assert ours.dtype == np.float32 and ours.shape == (6, 320, 320)
    assert np.array_equal(ours, expected)
    concat, real = ImageProcessor.prepare_input_tensors(inner)
    assert tuple(concat.shape) == (1, 6, 320, 320) and np.array_equal(real.numpy(), expected[:3])


def test_to_pixels_truncates_instead_of_rounding():
    output = np.full((3, 320, 320), 0.999, np.float32)
    output[0, 0, 0] = 1.0
    output[1, 0, 0] = 0.0
    pixels = to_pixels(output)
    assert pixels.shape == (320, 320, 3) and pixels.dtype == np.uint8
    assert pixels[1, 1, 0] == 254 and pixels[0, 0, 0] == 255 and pixels[0, 0, 1] == 0


def test_paste_keeps_the_resized_ring_and_cut_box(rng_image):
    box = CropBox(100, 200, 260, 360)
    crop = rng_image[200:360, 100:260]
    h, w = crop.shape[:2]
    crop328 = resize_crop(crop)
    generated = np.random.default_rng(3).integers(0, 256, (320, 320, 3), dtype=np.uint8)
    expected_crop = crop328.copy()
    expected_crop[4:324, 4:324] = generated
    expected = rng_image.copy()
    expected[200:360, 100:260] = cv2.resize(expected_crop, (w, h), interpolation=cv2.INTER_CUBIC)
    ours = paste_generated_region(rng_image, generated, box, (h, w), resized_crop=crop328)
    assert np.array_equal(ours, expected)
    assert np.array_equal(paste_generated_region(rng_image, generated, tuple(box), (h, w)), expected)
    assert not np.array_equal(ours, rng_image), "the template itself stays unchanged"


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


def test_unreadable_images_are_named(tmp_path):
    with pytest.raises(TemplateError, match="image file not found"):
        read_image(tmp_path / "0.jpg")
    (tmp_path / "1.jpg").write_bytes(b"\xff\xd8 garbage")
    with pytest.raises(TemplateError, match="1.jpg: not a decodable image"):
        read_image(tmp_path / "1.jpg")


@pytest.fixture
def rng_image():
    return np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
