"""ONNX export, the onnxruntime backend, the export cache and the checks on a given --onnx file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from frame_generation_pipeline import FrameGenerationPipeline, FrameGenerator, TemplateSet, UNetModel
from frame_generation_pipeline.app.cli import main
from frame_generation_pipeline.contract import MODES, get_mode
from frame_generation_pipeline.errors import ExportError, ModelFileError
from frame_generation_pipeline.files import file_sha256
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.models import export as export_module
from frame_generation_pipeline.models.backends.onnxruntime_backend import OnnxRuntimeBackend
from frame_generation_pipeline.models.cache import export_path
from frame_generation_pipeline.models.onnx_files import onnx_metadata

from .helpers import WITHOUT_TORCH


def _check_export(path, model, mode, opset, numbers=True):
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version == opset
    assert [i.name for i in graph.graph.input] == ["input", "audio"] and [o.name for o in graph.graph.output] == ["output"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["mode"] == mode and meta["checkpoint_sha256"] == model.checkpoint_sha256
    assert meta["audio_shape"] == str(list(MODES[mode].audio_shape)) and "BGR" in meta["input_layout"]
    if not numbers:  # the export checked itself against torch before it was kept
        return
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(11)
    images = torch.rand((2, 6, 320, 320), generator=generator)  # batch 2 through the dynamic axis
    audio = torch.randn((2, *MODES[mode].audio_shape), generator=generator)
    expected = model.predict(images, audio).numpy()
    got = session.run(["output"], {"input": images.numpy(), "audio": audio.numpy()})[0]
    assert got.shape == (2, 3, 320, 320)
    assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.parametrize("mode", list(MODES))
def test_export_matches_torch(checkpoints, exports, mode):
    _check_export(exports[mode], UNetModel(checkpoints[mode], mode, device="cpu"), mode, 17, numbers=mode == "ave")


def test_export_over_tolerance_is_refused_and_writes_nothing(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "_compare_with_torch", lambda *args: [(2e-4, 1.0)])
    with pytest.raises(ExportError, match="differs from torch by 2.00e-04 \\(limit 1e-04\\)"):
        UNetModel(checkpoints["ave"], "ave", device="cpu").export_to_onnx(tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_onnxruntime_frames_within_2_of_torch(checkpoints, features, templates_640, exports):
    exact = FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="torch")
    fast = FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="onnxruntime", batch_size=3,
                                   onnx_path=exports["ave"])
    assert fast.backend == "onnxruntime" and exact.model.exact and not fast.model.exact
    templates = TemplateSet.from_folder(templates_640, use_parsing=True)
    feats = AudioFeatures.load(features["ave"], "ave")
    for a, b in zip(exact.generator.iter_frames(templates, feats), fast.generator.iter_frames(templates, feats), strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_onnxruntime_streams_change_no_frame(features, templates_640, exports):
    templates = TemplateSet.from_folder(templates_640, use_parsing=True)
    feats = AudioFeatures.load(features["ave"], "ave")
    frames = {}
    for streams in (1, 2):
        model = OnnxRuntimeBackend(mode="ave", model_file=exports["ave"], device="cpu", streams=streams)
        assert model.streams == streams
        frames[streams] = list(FrameGenerator(model, batch_size=1).iter_frames(templates, feats, frame_count=4))
    for a, b in zip(frames[1], frames[2], strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="streams must be at least 1"):
        OnnxRuntimeBackend(mode="ave", model_file=exports["ave"], device="cpu", streams=0)


def test_the_export_is_cached_by_checkpoint_and_reused(checkpoints, exports):
    exports["ave"]  # noqa: B018 (its graphs exported into the session's cache on first use)
    sha256 = file_sha256(checkpoints["ave"])
    graphs = [export_path(sha256, get_mode("ave"), part) for part in ("first", "rest")]  # what onnxruntime runs
    assert all(graph.parent.name == "onnx" and graph.name.startswith(sha256[:24]) for graph in graphs)
    stamps = [graph.stat().st_mtime_ns for graph in graphs]
    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="onnxruntime")
    assert pipeline.model.path == graphs[0] and pipeline.model.splits
    assert [graph.stat().st_mtime_ns for graph in graphs] == stamps, "the pipeline must reuse the export"
    assert sorted(p.name for p in graphs[0].parent.iterdir() if p.name.startswith(sha256[:24])) == \
        sorted(export_path(sha256, get_mode("ave"), part).name for part in ("full", "first", "rest"))


def test_a_given_onnx_file_of_another_mode_is_refused(checkpoints, exports):
    with pytest.raises(ModelFileError, match="exported for mode 'wenet', not 'ave'"):
        FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="onnxruntime", onnx_path=exports["wenet"])


def test_a_given_onnx_file_of_another_checkpoint_is_refused_naming_both(checkpoints, exports, tmp_path):
    other = tmp_path / "other.pth"
    other.write_bytes(checkpoints["ave"].read_bytes() + b"\0")  # another file, another sha256
    with pytest.raises(ModelFileError) as info:
        FrameGenerationPipeline(other, device="cpu", backend="onnxruntime", onnx_path=exports["ave"])
    message = str(info.value)
    assert str(exports["ave"]) in message and str(other) in message and "sha256" in message and "\n" not in message


NO_TORCH = WITHOUT_TORCH + """
from frame_generation_pipeline import FrameGenerationPipeline
pipeline = FrameGenerationPipeline(sys.argv[1], device="cpu", backend="onnxruntime", onnx_path=sys.argv[2])
frames = list(pipeline.generator.iter_frames(sys.argv[3], sys.argv[4], frame_count=2))
print(pipeline.backend, len(frames), frames[0].shape, "torch" in sys.modules)
"""


def test_a_given_onnx_file_loads_no_torch_at_all(checkpoints, exports, templates_640, features):
    result = subprocess.run([sys.executable, "-c", NO_TORCH, str(checkpoints["ave"]), str(exports["ave"]),
                             str(templates_640), str(features["ave"])], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["onnxruntime", "2", "(480,", "640,", "3)", "False"]


def test_onnx_with_the_torch_backend_is_refused(checkpoints, exports):
    with pytest.raises(ValueError, match="is for the onnxruntime or openvino backend, not torch"):
        FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="torch", onnx_path=exports["ave"])


def test_export_onnx_command_at_opset_11_for_older_runtimes(checkpoints, tmp_path, capsys):
    assert main(["export-onnx", "--checkpoint", str(checkpoints["wenet"]), "--mode", "wenet", "--output",
                 str(tmp_path / "w11.onnx"), "--opset", "11"]) == 0
    assert "max difference to torch" in capsys.readouterr().err
    _check_export(tmp_path / "w11.onnx", UNetModel(checkpoints["wenet"], "wenet", device="cpu"), "wenet", 11)
    assert onnx_metadata(tmp_path / "w11.onnx")["mode"] == "wenet"


def test_a_file_that_is_no_onnx_model_is_refused_in_one_line(checkpoints, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model\n" * 20)
    with pytest.raises(ModelFileError) as info:
        FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="onnxruntime", onnx_path=bad)
    message = str(info.value)
    assert message.startswith(f"{bad}: onnxruntime cannot load it (") and message.endswith(")") and "\n" not in message
