"""inputs/landmarks.py: contract steps 2-3 (landmark text, the crop box), against the transcription
in spec_reference, and every bad file or box refused with its reason."""

from __future__ import annotations

import numpy as np
import pytest

from frame_generation_pipeline.errors import TemplateError
from frame_generation_pipeline.inputs.landmarks import CropBox, check_box_inside, crop_box, parse_landmarks, read_landmarks

from . import spec_reference as spec
from .helpers import face_points, lms_text


def test_landmarks_go_through_float32_then_truncate_toward_zero():
    points = face_points()
    points[0] = (-0.7, 2.9999999)  # float32 rounds 2.9999999 to 3.0; float64 would truncate to 2
    lms = parse_landmarks(lms_text(points))
    assert lms.dtype == np.int32 and lms.shape == (110, 2)
    assert lms[0].tolist() == [0, 3]
    assert lms[1].tolist() == [100, 50] and lms[52].tolist() == [180, 120]
    assert np.array_equal(lms, spec.landmarks_from_text(lms_text(points)))


def test_landmarks_and_boxes_equal_the_transcription_on_random_faces():
    rng = np.random.default_rng(5)
    for _ in range(20):
        points = rng.uniform(0, 400, (rng.integers(53, 120), 2)).round(rng.integers(0, 7))
        points[31, 0] = points[1, 0] + rng.uniform(1, 150)  # a box at least a pixel wide
        text = lms_text(points.tolist())
        lms = parse_landmarks(text)
        assert np.array_equal(lms, spec.landmarks_from_text(text))
        assert tuple(crop_box(lms)) == spec.crop_box(spec.landmarks_from_text(text))


@pytest.mark.parametrize(
    "text, message",
    [(lms_text(face_points()[:52]), "has 52 landmarks, at least 53"), ("a b\n" * 60, "line 1: non-numeric"),
     ("1 2 3\n" * 60, "line 1: expected 'x y'"), (lms_text(face_points()).replace("150.0 150.0", "nan 1", 1), "NaN")],
)
def test_bad_landmark_text_is_refused_with_the_reason(text, message, tmp_path):
    path = tmp_path / "7.lms"
    path.write_text(text)
    with pytest.raises(TemplateError, match=message) as info:
        read_landmarks(path)
    assert str(path) in str(info.value)


def test_a_missing_landmark_file_is_named(tmp_path):
    with pytest.raises(TemplateError, match="landmark file not found") as info:
        read_landmarks(tmp_path / "3.lms")
    assert str(tmp_path / "3.lms") in str(info.value)


def test_crop_box_is_square_below_point_52():
    box = crop_box(parse_landmarks(lms_text(face_points())))
    assert box == CropBox(100, 120, 260, 280)
    assert tuple(box) == (100, 120, 260, 280)
    assert box.slices() == (slice(120, 280), slice(100, 260))


@pytest.mark.parametrize(
    "points, message",
    [(face_points(left=(200.0, 0.0), right=(200.0, 0.0)), "width is 0"), (face_points(left=(-5.0, 0.0)), "outside the image"),
     (face_points(top=(10.0, -3.0)), "outside the image")],
)
def test_bad_crop_boxes_are_refused(points, message):
    with pytest.raises(TemplateError, match=message) as info:
        crop_box(parse_landmarks(lms_text(points)), source="landmarks/3.lms")
    assert "landmarks/3.lms" in str(info.value)


def test_a_box_must_start_inside_the_image_but_may_run_past_its_edges():
    check_box_inside(CropBox(300, 200, 400, 300), (320, 240), "3.lms")  # runs past both edges: cut short later
    for box in (CropBox(320, 0, 330, 10), CropBox(0, 240, 10, 250)):
        with pytest.raises(TemplateError, match=r"starts outside the 320x240 image"):
            check_box_inside(box, (320, 240), "3.lms")
