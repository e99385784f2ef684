"""ONNX export and the onnxruntime backend."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from frame_generation_pipeline import FrameGenerationPipeline, FrameGenerator, TemplateSet, UNetModel
from frame_generation_pipeline import onnx_model as onnx_module
from frame_generation_pipeline.onnx_model import OnnxUNetModel
from frame_generation_pipeline.audio_features import AudioFeatures
from frame_generation_pipeline.backends import resolve_backend
from frame_generation_pipeline.cli import main
from frame_generation_pipeline.errors import ExportError
from frame_generation_pipeline.modes import MODES


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAME_GEN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("opset", [11, 17])
@pytest.mark.parametrize("mode", list(MODES))
def test_export_matches_torch_at_two_batch_sizes(checkpoints, tmp_path, mode, opset):
    model = UNetModel(checkpoints[mode], mode, device="cpu")
    path = tmp_path / f"{mode}.onnx"
    report = model.export_to_onnx(path, opset_version=opset)
    assert report.max_abs_difference <= 1e-4
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version == opset
    assert [i.name for i in graph.graph.input] == ["input", "audio"] and [o.name for o in graph.graph.output] == ["output"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["mode"] == mode and meta["checkpoint_sha256"] == model.checkpoint_sha256
    assert meta["audio_shape"] == str(list(MODES[mode].audio_shape)) and "BGR" in meta["input_layout"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(11)
    for batch in (1, 3):
        images = torch.rand((batch, 6, 320, 320), generator=generator)
        audio = torch.randn((batch, *MODES[mode].audio_shape), generator=generator)
        expected = model.predict(images, audio).numpy()
        got = session.run(["output"], {"input": images.numpy(), "audio": audio.numpy()})[0]
        assert got.shape == (batch, 3, 320, 320)
        assert np.abs(got - expected).max() <= 1e-4


def test_export_over_tolerance_is_refused_and_writes_nothing(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_module, "EXPORT_TOLERANCE", 0.0)
    with pytest.raises(ExportError, match="differs from torch by"):
        UNetModel(checkpoints["ave"], "ave", device="cpu").export_to_onnx(tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_onnxruntime_frames_within_2_of_torch(checkpoints, features, templates_640):
    torch_pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="torch")
    ort_pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="onnxruntime", batch_size=3)
    assert ort_pipeline.backend == "onnxruntime"
    templates = TemplateSet.from_folder(templates_640, use_parsing=True)
    feats = AudioFeatures.load(features["ave"], "ave")
    for a, b in zip(torch_pipeline.generator.iter_frames(templates, feats),
                    ort_pipeline.generator.iter_frames(templates, feats), strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_onnxruntime_streams_change_no_frame(checkpoints, features, templates_640, tmp_path):
    path = UNetModel(checkpoints["ave"], "ave", device="cpu").export_to_onnx(tmp_path / "ave.onnx").path
    templates = TemplateSet.from_folder(templates_640, use_parsing=True)
    feats = AudioFeatures.load(features["ave"], "ave")
    frames = {}
    for streams in (1, 2):
        model = OnnxUNetModel(path, "ave", device="cpu", streams=streams)
        assert model.streams == streams
        frames[streams] = list(FrameGenerator(model, batch_size=1).iter_frames(templates, feats))
    for a, b in zip(frames[1], frames[2], strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="streams must be at least 1"):
        OnnxUNetModel(path, "ave", device="cpu", streams=0)


def test_auto_picks_onnxruntime_on_cpu_and_the_export_is_cached(checkpoints, tmp_path):
    assert resolve_backend("auto", torch.device("cpu")) == "onnxruntime"
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    first = FrameGenerationPipeline(checkpoints["hubert"], mode="hubert", device="cpu", backend="auto")
    cached = list((tmp_path / "cache" / "onnx").iterdir())
    assert first.backend == "onnxruntime" and len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    FrameGenerationPipeline(checkpoints["hubert"], mode="hubert", device="cpu", backend="onnxruntime")
    assert cached[0].stat().st_mtime_ns == stamp, "the second pipeline must reuse the export"
    report = first.export_model_to_onnx(tmp_path / "hubert11.onnx", opset_version=11)
    assert report.opset_version == 11 and report.max_abs_difference <= 1e-4
    assert onnx_module.read_metadata(report.path)["mode"] == "hubert"


def test_a_given_onnx_file_of_another_mode_is_refused(checkpoints, tmp_path):
    UNetModel(checkpoints["wenet"], "wenet", device="cpu").export_to_onnx(tmp_path / "w.onnx")
    with pytest.raises(ValueError, match="exported for mode 'wenet', not 'ave'"):
        FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="onnxruntime", onnx_path=tmp_path / "w.onnx")


def test_export_onnx_command(checkpoints, tmp_path, capsys):
    assert main(["export-onnx", "--checkpoint", str(checkpoints["ave"]), "--output", str(tmp_path / "m.onnx"), "--opset", "11"]) == 0
    assert "max difference to torch" in capsys.readouterr().out
    assert onnx.load(str(tmp_path / "m.onnx")).opset_import[0].version == 11
