"""Whole frames against the naive SPEC.md transcription: every mode, parsing, a cut box,
start_frame > 0, a DataParallel checkpoint, batching. Realistic sizes, 110-point landmarks."""

from __future__ import annotations

import numpy as np

from frame_generation_pipeline import FrameGenerator, TemplateSet, UNetModel
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.inputs.features import AudioFeatures

from . import spec_reference
from .spec_reference import assert_same_frame


def _render_both(checkpoint, mode, folder, rows, start_frame=0, use_parsing=False, batch_size=1):
    model = UNetModel(checkpoint, mode, device="cpu")
    generator = FrameGenerator(model, mode, batch_size=batch_size)
    templates = TemplateSet.from_folder(folder, use_parsing=use_parsing)
    ours = list(generator.iter_frames(templates, AudioFeatures(rows, mode), start_frame))
    expected = list(spec_reference.render(checkpoint, mode, str(folder), rows, start_frame, use_parsing))
    assert len(ours) == len(expected) == rows.shape[0]
    for i, (a, b) in enumerate(zip(ours, expected)):
        assert_same_frame(a, b, f"frame {i}")
    return ours


def test_ave_with_and_without_parsing(checkpoints, templates_640):
    rows = synthetic.random_features("ave", 3, seed=4)
    plain = _render_both(checkpoints["ave"], "ave", templates_640, rows)
    parsed = _render_both(checkpoints["ave"], "ave", templates_640, rows, use_parsing=True)
    assert any(not np.array_equal(a, b) for a, b in zip(plain, parsed)), "parsing must change some pixels"
    template = TemplateSet.from_folder(templates_640).load(1).image
    assert not np.array_equal(plain[0], template), "the generated region must differ from the template"


def test_hubert_at_720p_with_a_box_cut_by_the_bottom_edge_and_start_frame(checkpoints, tmp_path):
    def low_face(k):
        return 560.0 + 6 * k, 420.0 + 3 * k, 300.0

    folder = synthetic.make_templates(tmp_path / "low", 5, 1280, 720, parsing=False, face_box=low_face)
    templates = TemplateSet.from_folder(folder)
    assert all(templates.box(k).ymax > 720 for k in range(5)), "the fixture must cut the crop box"
    rows = synthetic.random_features("hubert", 3, seed=6).reshape(3, 2, 1024)
    _render_both(checkpoints["hubert"], "hubert", folder, rows, start_frame=2)


def test_wenet_from_a_dataparallel_checkpoint_with_parsing(checkpoints, templates_640, tmp_path):
    import torch

    checkpoint = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in torch.load(checkpoints["wenet"]).items()}, checkpoint)
    rows = synthetic.random_features("wenet", 3, seed=7).reshape(3, 256, 32)
    _render_both(checkpoint, "wenet", templates_640, rows, use_parsing=True)


def test_prewindowed_features_and_batching(checkpoints, templates_640):
    per_frame = synthetic.random_features("ave", 4, seed=8)
    windows = AudioFeatures(per_frame, "ave").windows(range(4))
    _render_both(checkpoints["ave"], "ave", templates_640, windows, batch_size=3)


def test_batch_size_does_not_change_frames(checkpoints, templates_640):
    model = UNetModel(checkpoints["ave"], "ave", device="cpu")
    templates = TemplateSet.from_folder(templates_640)
    features = AudioFeatures(synthetic.random_features("ave", 5, seed=1), "ave")
    single = list(FrameGenerator(model, batch_size=1).iter_frames(templates, features))
    batched = list(FrameGenerator(model, batch_size=4).iter_frames(templates, features))  # a full and a partial batch
    for i, (a, b) in enumerate(zip(single, batched, strict=True)):
        assert_same_frame(b, a, f"frame {i}")
