"""The template folder: layout checks, the ping-pong schedule, up-front validation; its images' decoding."""

from __future__ import annotations

import shutil

import pytest

from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.errors import ConfigurationError, TemplateError
from frame_generation_pipeline.inputs.templates import TemplateSet, ping_pong_schedule

from .spec_reference import template_indices


def test_schedule_bounces_as_upstream():
    assert ping_pong_schedule(9, 4) == [1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert ping_pong_schedule(3, 1) == [0, 0, 0]
    assert ping_pong_schedule(5, 2) == [1, 0, 1, 0, 1]


@pytest.mark.parametrize("count", [2, 3, 5, 8])
@pytest.mark.parametrize("start", [0, 1])
def test_schedule_equals_spec_transcription(count, start):
    assert ping_pong_schedule(40, count, start) == template_indices(40, count, start)


def test_start_frame_bounces_over_the_remaining_templates():
    schedule = ping_pong_schedule(12, 6, start_frame=3)
    assert schedule == [4, 5, 4, 3, 4, 5, 4, 3, 4, 5, 4, 3]
    assert ping_pong_schedule(3, 6, start_frame=5) == [5, 5, 5]


@pytest.mark.parametrize("start", [6, 9, -1])
def test_start_frame_past_the_templates_is_refused(start):
    with pytest.raises(ConfigurationError, match=f"start_frame {start} is outside the 6 templates"):
        ping_pong_schedule(3, 6, start_frame=start)


@pytest.fixture
def folder(tmp_path):
    return synthetic.make_templates(tmp_path / "tpl", 4, 160, 120, parsing=True)


def test_layout_is_read(folder):
    templates = TemplateSet.from_folder(folder, use_parsing=True)
    assert len(templates) == 4
    frame = templates.load(2)
    assert frame.image.shape == (120, 160, 3) and frame.parsing.shape == (120, 160, 3)
    assert templates.parsing_path(2).name == "2.png"
    assert TemplateSet.from_folder(folder).parsing_path(2) is None


@pytest.mark.parametrize(
    "damage, message",
    [("rm_root", "template folder not found"), ("rm_landmarks", "landmarks: template folder not found"),
     ("rm_lms", "2.lms: template 2 of 0..3 is missing"), ("rename_jpg", "3.jpg: template 3 of 0..3 is missing"),
     ("empty", "holds no .jpg template frames"), ("rm_parsing", "1.png: template 1 of 0..3 is missing")],
)
def test_layout_problems_are_named(folder, damage, message):
    if damage == "rm_root":
        shutil.rmtree(folder)
    elif damage == "rm_landmarks":
        shutil.rmtree(folder / "landmarks")
    elif damage == "rm_lms":
        (folder / "landmarks" / "2.lms").unlink()
    elif damage == "rename_jpg":
        (folder / "full_body_img" / "3.jpg").rename(folder / "full_body_img" / "7.jpg")
    elif damage == "empty":
        for jpg in (folder / "full_body_img").glob("*.jpg"):
            jpg.unlink()
    elif damage == "rm_parsing":
        (folder / "parsing" / "1.png").unlink()
    with pytest.raises(TemplateError, match=message):
        TemplateSet.from_folder(folder, use_parsing=True)


def test_the_folder_above_the_templates_names_the_one_that_holds_them(folder):
    with pytest.raises(TemplateError) as raised:
        TemplateSet.from_folder(folder.parent)
    assert str(raised.value) == f"{folder.parent}: holds no full_body_img/: give the folder that holds full_body_img/ and landmarks/ ({folder})"


def test_validate_checks_every_used_landmark_file_up_front(folder):
    (folder / "landmarks" / "3.lms").write_text("1 2\n" * 10)
    templates = TemplateSet.from_folder(folder)
    templates.validate(templates.schedule(2))  # frames 0, 1 use templates 1, 2 only
    with pytest.raises(TemplateError, match="3.lms: has 10 landmarks"):
        templates.validate(templates.schedule(3))


def test_validate_refuses_a_box_outside_the_frame(folder):
    lines = (folder / "landmarks" / "1.lms").read_text().splitlines()
    lines[52] = "80.0 500.0"
    (folder / "landmarks" / "1.lms").write_text("\n".join(lines) + "\n")
    templates = TemplateSet.from_folder(folder)
    with pytest.raises(TemplateError, match="1.lms: crop box .* starts outside the 160x120 image"):
        templates.validate(templates.schedule(3))


def test_parsing_of_another_size_is_refused(folder):
    import cv2
    import numpy as np

    cv2.imwrite(str(folder / "parsing" / "1.png"), np.zeros((10, 10, 3), np.uint8))
    templates = TemplateSet.from_folder(folder, use_parsing=True)
    with pytest.raises(TemplateError, match="1.png: is 10x10, but the templates are 160x120"):
        templates.load(1)
    with pytest.raises(TemplateError, match="1.png: is 10x10, but the templates are 160x120"):
        templates.validate(templates.schedule(3))


def test_a_template_frame_of_another_size_is_refused_before_decoding(folder, monkeypatch):
    import cv2
    import numpy as np

    from frame_generation_pipeline.inputs import templates as templates_module

    cv2.imwrite(str(folder / "full_body_img" / "2.jpg"), np.zeros((100, 150, 3), np.uint8))
    templates = TemplateSet.from_folder(folder)
    decoded = []
    monkeypatch.setattr(templates_module, "read_image", lambda path: decoded.append(path))
    with pytest.raises(TemplateError, match=r"full_body_img/2.jpg: is 150x100, but the templates are 160x120 \(0.jpg\)"):
        templates.validate(templates.schedule(3))
    assert decoded == [], "sizes come from the file headers"


def test_exif_rotation_counts_in_the_size(tmp_path):
    from PIL import Image

    from frame_generation_pipeline.inputs.images import image_size, read_image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed, as OpenCV decodes it
    Image.new("RGB", (40, 30)).save(tmp_path / "r.jpg", exif=exif)
    assert image_size(tmp_path / "r.jpg") == (30, 40) == read_image(tmp_path / "r.jpg").shape[1::-1]


def test_unreadable_images_are_named(tmp_path):
    from frame_generation_pipeline.inputs.images import read_image

    with pytest.raises(TemplateError, match="image file not found"):
        read_image(tmp_path / "0.jpg")
    (tmp_path / "1.jpg").write_bytes(b"\xff\xd8 garbage")
    with pytest.raises(TemplateError, match="1.jpg: not a decodable image"):
        read_image(tmp_path / "1.jpg")


def test_images_numbered_from_one_are_named_with_the_fix(folder):
    images = folder / "full_body_img"
    for k in range(3, -1, -1):
        (images / f"{k}.jpg").rename(images / f"{k + 1}.jpg")
    with pytest.raises(TemplateError, match=r"images are numbered from 1 \(1..4\) but landmarks from 0 \(0..3\); "
                       r"rename image k.jpg to \(k-1\).jpg"):
        TemplateSet.from_folder(folder)


def test_a_folder_numbered_from_one_throughout_is_named_with_the_fix(folder):
    for sub, suffix in (("full_body_img", "jpg"), ("landmarks", "lms")):
        for k in range(3, -1, -1):
            (folder / sub / f"{k}.{suffix}").rename(folder / sub / f"{k + 1}.{suffix}")
    with pytest.raises(TemplateError, match=r"images are numbered 1..4; templates must be numbered from 0: rename k.jpg "
                       r"to \(k-1\).jpg, e.g. `for k in \$\(seq 1 4\); do mv .*; done`, and the same in landmarks/"):
        TemplateSet.from_folder(folder)
