"""FrameGenerationPipeline.generate_frames_only: files, order, formats, safe output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from frame_generation_pipeline import FrameGenerationPipeline, FrameGenerator, TemplateSet
from frame_generation_pipeline.errors import ConfigurationError, FrameGenerationError, TemplateError
from frame_generation_pipeline.files import MANIFEST
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.render.blend import FEATHER

from .helpers import earlier_output


@pytest.fixture(scope="module")
def pipeline(checkpoints):
    return FrameGenerationPipeline(checkpoints["ave"], mode="ave", device="cpu", batch_size=2)


def test_frames_are_lossless_and_in_order(pipeline, features, templates_640, tmp_path):
    paths = pipeline.generate_frames_only(features["ave"], templates_640, tmp_path / "out")
    assert [p.rsplit("/", 1)[1] for p in paths] == [f"{i:06d}.png" for i in range(7)]
    templates = TemplateSet.from_folder(templates_640)
    expected = list(pipeline.iter_frames(templates, AudioFeatures.load(features["ave"], "ave")))
    for path, frame in zip(paths, expected, strict=True):
        assert np.array_equal(cv2.imread(path), frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no temporary folder left behind"


def test_the_pipeline_renders_frames_lazily_with_its_own_batch(pipeline, features, templates_640, tmp_path):
    assert pipeline.batch_size == 2 == pipeline.generator.batch_size
    frames = pipeline.iter_frames(tmp_path / "no-templates", features["ave"])  # nothing is opened before the first frame
    with pytest.raises(FrameGenerationError, match="no-templates"):
        next(frames)
    first = list(pipeline.iter_frames(templates_640, features["ave"], start_frame=1, frame_count=3))
    whole = list(pipeline.generator.iter_frames(templates_640, features["ave"], start_frame=1, blend=FEATHER))  # the default paste
    assert len(first) == 3 and all(np.array_equal(a, b) for a, b in zip(first, whole[:3], strict=True))


def test_jpg_on_request(pipeline, features, templates_640, tmp_path):
    paths = pipeline.generate_frames_only(features["ave"], templates_640, tmp_path / "jpg", image_format="jpg")
    assert len(paths) == 7 and all(p.endswith(".jpg") for p in paths)
    assert cv2.imread(paths[0]).shape == (480, 640, 3)


def test_failure_midway_leaves_nothing_and_keeps_existing_files(pipeline, features, templates_640, tmp_path):
    broken = tmp_path / "tpl"
    broken.mkdir()
    for sub in ("full_body_img", "landmarks"):
        (broken / sub).mkdir()
        for f in (templates_640 / sub).iterdir():
            (broken / sub / f.name).write_bytes(f.read_bytes())
    (broken / "full_body_img" / "4.jpg").write_bytes(b"\xff\xd8 truncated")  # first used by frame 3
    out = earlier_output(tmp_path / "out", {"000000.png": b"precious"})
    with pytest.raises(TemplateError, match="4.jpg: not a decodable image"):
        pipeline.generate_frames_only(features["ave"], broken, out)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "000000.png"]
    assert (out / "000000.png").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tpl"]


def test_unknown_backend_and_format(checkpoints, features, templates_640, tmp_path, pipeline):
    with pytest.raises(ConfigurationError, match="unknown backend 'tensorflow'"):
        FrameGenerationPipeline(checkpoints["ave"], backend="tensorflow")
    with pytest.raises(ConfigurationError, match="unknown image format 'bmp'"):
        pipeline.generate_frames_only(features["ave"], templates_640, tmp_path / "x", image_format="bmp")


def test_generate_frames_from_template_sequence_keeps_the_known_call(pipeline, features, templates_640):
    generator = FrameGenerator(pipeline.model, mode="ave")
    frames = generator.generate_frames_from_template_sequence(
        templates_640 / "full_body_img", templates_640 / "landmarks", np.load(features["ave"]),
        start_frame=1, parsing_dir=templates_640 / "parsing",
    )
    assert len(frames) == 7 and frames[0].shape == (480, 640, 3)
    with pytest.raises(ConfigurationError, match="does not match the model's mode"):
        FrameGenerator(pipeline.model, mode="hubert")
